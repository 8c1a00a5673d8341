"""Segmentation losses: focal loss and the deep-supervision weighting.

Cross-entropy (with optional label smoothing) is the ``gamma=0`` case of :class:`FocalLoss`.

Shapes: logits ``(B, K, H, W)``, integer targets ``(B, H, W)`` (int64) with ``ignore_index``
(255 by default, see :mod:`glacierkit.dl.labels`) for unlabelled pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from glacierkit.errors import DependencyNotFoundError, InputError

try:
    import torch
    from torch import Tensor, nn
except ImportError as exc:  # pragma: no cover - exercised only without the dl extra
    raise DependencyNotFoundError(
        "glacierkit.dl.losses needs PyTorch; install the deep-learning extra with "
        "`pip install 'glacierkit[dl]'`."
    ) from exc

__all__ = ["FocalLoss", "deep_supervision_loss"]

_REDUCTIONS = ("mean", "sum", "none")


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) for dense classification.

    Per labelled pixel with true class ``t`` and softmax probabilities ``p``::

        loss = α_t · (1 − p_t)^γ · CE,   CE = −(1 − ε) log p_t − (ε / K) Σ_k log p_k

    where ``ε`` is ``label_smoothing`` (0: plain ``−log p_t``) and ``α_t = 1`` when ``alpha`` is
    ``None``. With ``gamma=0`` and ``alpha=None`` this is exactly
    ``F.cross_entropy(logits, target, ignore_index=..., label_smoothing=ε)``.

    ``reduction="mean"`` averages over the labelled (non-ignored) pixels — also when ``alpha``
    is given, i.e. it is **not** normalised by the sum of the weights as
    ``F.cross_entropy(weight=...)`` is (it equals that loss with ``reduction="sum"`` divided by
    the number of labelled pixels). A batch without labelled pixels gives 0 (with a zero
    gradient, no NaN). ``"sum"`` sums over labelled pixels; ``"none"`` returns ``(B, H, W)``
    with 0 at ignored pixels.

    Args:
        gamma: focusing parameter ``γ >= 0`` (2 in the paper; 0 gives cross-entropy).
        alpha: ``None`` or per-class weights ``(K,)`` (sequence or tensor, >= 0).
        ignore_index: target value of unlabelled pixels.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: ``ε`` in ``[0, 1)``: the target puts ``1 − ε`` on the true class and
            spreads ``ε`` uniformly over all ``K`` classes (useful for facies, whose
            boundaries are uncertain).
    """

    alpha: Tensor | None

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | Tensor | None = None,
                 ignore_index: int = 255, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__()
        if not gamma >= 0:
            raise InputError(f"gamma must be >= 0 (0 gives cross-entropy); got {gamma}.")
        if reduction not in _REDUCTIONS:
            raise InputError(f"reduction must be one of {', '.join(_REDUCTIONS)}; "
                             f"got {reduction!r}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)
        if alpha is not None:
            a = torch.as_tensor(alpha, dtype=torch.float32).flatten()
            if a.numel() == 0 or bool((a < 0).any()) or not bool(torch.isfinite(a).all()):
                raise InputError(f"alpha must be per-class weights >= 0, one per class; "
                                 f"got {alpha!r}.")
            self.register_buffer("alpha", a)
        else:
            self.alpha = None

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits`` ``(B, K, H, W)`` against ``target`` ``(B, H, W)`` int64.

        Returns a scalar (``"mean"``, ``"sum"``) or ``(B, H, W)`` (``"none"``).
        """
        _check_pair(logits, target)
        k = logits.shape[1]
        if self.alpha is not None and self.alpha.numel() != k:
            raise InputError(f"alpha has {self.alpha.numel()} weights but the logits have "
                             f"{k} classes; give one weight per class.")
        valid = target != self.ignore_index
        if bool(((target < 0) | (target >= k))[valid].any()):
            bad = torch.unique(target[valid & ((target < 0) | (target >= k))])[:5].tolist()
            raise InputError(f"target holds class values {bad} outside 0..{k - 1} (and not "
                             f"ignore_index={self.ignore_index}); check the label classes.")
        safe = torch.where(valid, target, torch.zeros_like(target))
        logp = torch.log_softmax(logits.float(), dim=1)  # (B, K, H, W)
        logp_t = logp.gather(1, safe[:, None]).squeeze(1)  # (B, H, W)
        ce = -logp_t
        if self.label_smoothing > 0:
            eps = self.label_smoothing
            ce = (1.0 - eps) * ce - (eps / k) * logp.sum(dim=1)
        loss = ce
        if self.gamma > 0:
            # 1 - p_t computed as -expm1(log p_t): accurate when p_t is close to 1
            one_minus_p = (-torch.expm1(logp_t)).clamp_min(1e-12)
            loss = one_minus_p.pow(self.gamma) * loss
        if self.alpha is not None:
            loss = self.alpha.to(loss.dtype)[safe] * loss
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        if self.reduction == "none":
            return loss
        total = loss.sum()
        if self.reduction == "sum":
            return total
        return total / valid.sum().clamp_min(1).to(total.dtype)


def _check_pair(logits: Tensor, target: Tensor) -> None:
    if logits.ndim != 4:
        raise InputError(f"logits must be (B, K, H, W); got shape {tuple(logits.shape)}.")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise InputError(f"target must be (B, H, W) = {(logits.shape[0], *logits.shape[2:])} "
                         f"to match the logits {tuple(logits.shape)}; got "
                         f"{tuple(target.shape)}.")
    if target.dtype != torch.int64:
        raise InputError(f"target must be int64 class indices; got {target.dtype}. "
                         "Convert with target.long().")


def deep_supervision_loss(
    main: Tensor,
    aux_list: Sequence[Tensor],
    target: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    aux_weights: Sequence[float] = (0.5, 0.25),
) -> tuple[Tensor, dict[str, Tensor]]:
    """Main loss plus weighted auxiliary (deep-supervision) losses.

    ``total = loss_fn(main, target) + Σ_i aux_weights[i] · loss_fn(aux_list[i], target)``,
    **not** normalised by ``1 + Σ w_i`` (the main term keeps weight 1, so the aux heads add
    gradient without shrinking the main one; the loss value is therefore larger than the main
    loss alone — compare runs by ``parts["main"]``).

    Args:
        main: main logits ``(B, K, H, W)``.
        aux_list: auxiliary logits, each ``(B, K, H, W)`` (as ``forward_aux`` returns them,
            finest first).
        target: ``(B, H, W)`` int64.
        loss_fn: e.g. :class:`FocalLoss`.
        aux_weights: one weight per auxiliary output.

    Returns:
        ``(total, parts)`` with ``parts`` holding detached scalars ``"main"``, ``"aux0"``,
        ``"aux1"``, ... and ``"total"`` for logging.
    """
    if len(aux_list) != len(aux_weights):
        raise InputError(f"got {len(aux_list)} auxiliary outputs but {len(aux_weights)} "
                         f"aux_weights {tuple(aux_weights)}; give one weight per output.")
    main_loss = loss_fn(main, target)
    total = main_loss
    parts = {"main": main_loss.detach()}
    for i, (aux, w) in enumerate(zip(aux_list, aux_weights, strict=True)):
        if aux.shape != main.shape:
            raise InputError(f"aux output {i} has shape {tuple(aux.shape)} but the main output "
                             f"{tuple(main.shape)}; upsample it (forward_aux does).")
        aux_loss = loss_fn(aux, target)
        parts[f"aux{i}"] = aux_loss.detach()
        total = total + float(w) * aux_loss
    parts["total"] = total.detach()
    return total, parts
