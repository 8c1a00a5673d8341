"""glacierkit.dl.losses: focal loss against cross-entropy, ignore handling, deep supervision."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from glacierkit.dl.losses import FocalLoss, deep_supervision_loss  # noqa: E402
from glacierkit.errors import InputError  # noqa: E402


def _batch(k=4, seed=0, ignore_frac=0.2):
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(2, k, 8, 9, generator=g)
    target = torch.randint(0, k, (2, 8, 9), generator=g)
    target[torch.rand(2, 8, 9, generator=g) < ignore_frac] = 255
    return logits, target


def test_gamma0_equals_cross_entropy():
    logits, target = _batch()
    assert (target == 255).any() and (target != 255).any()
    ours = FocalLoss(gamma=0.0)(logits, target)
    ref = F.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    none = FocalLoss(gamma=0.0, reduction="none")(logits, target)
    ref_none = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    torch.testing.assert_close(none, ref_none, rtol=1e-6, atol=1e-7)
    assert (none[target == 255] == 0).all()


def test_label_smoothing_equals_cross_entropy():
    logits, target = _batch(seed=3)
    ours = FocalLoss(gamma=0.0, label_smoothing=0.1)(logits, target)
    ref = F.cross_entropy(logits, target, ignore_index=255, label_smoothing=0.1)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(ours, FocalLoss(gamma=0.0)(logits, target))


def test_alpha_is_per_pixel_mean_not_weight_normalised():
    logits, target = _batch(seed=1)
    alpha = torch.tensor([0.5, 1.0, 2.0, 0.0])
    ours = FocalLoss(gamma=0.0, alpha=alpha)(logits, target)
    n_valid = (target != 255).sum()
    ref = F.cross_entropy(logits, target, weight=alpha, ignore_index=255, reduction="sum")
    torch.testing.assert_close(ours, ref / n_valid, rtol=1e-6, atol=1e-7)
    total = FocalLoss(gamma=0.0, alpha=alpha.tolist(), reduction="sum")(logits, target)
    torch.testing.assert_close(total, ref, rtol=1e-6, atol=1e-6)


def test_focal_matches_formula_and_downweights_easy_pixels():
    logits, target = _batch(k=3, seed=2, ignore_frac=0.0)
    gamma = 2.0
    loss = FocalLoss(gamma=gamma, reduction="none")(logits, target)
    p = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    expected = -((1 - p) ** gamma) * torch.log(p)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    ce = F.cross_entropy(logits, target, reduction="none")
    assert (loss <= ce + 1e-7).all()
    ratio = loss / ce
    # the ratio (1 - p)^γ is smaller for better-classified pixels
    order = torch.argsort(p.flatten())
    assert ratio.flatten()[order[0]] > ratio.flatten()[order[-1]]
    mean = FocalLoss(gamma=gamma)(logits, target)
    torch.testing.assert_close(mean, expected.mean())


def test_all_ignored_gives_zero_with_gradient():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255, dtype=torch.long)
    for fl in (FocalLoss(), FocalLoss(gamma=0.0, alpha=[1.0, 2.0, 3.0], label_smoothing=0.1)):
        loss = fl(logits, target)
        assert loss.item() == 0.0
        assert loss.requires_grad
        loss.backward()
        assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()
        logits.grad = None


def test_confident_pixels_have_finite_gradient():
    # p_t == 1 in float32: (1 - p)^γ with γ < 1 must not give inf * 0 = NaN
    logits = torch.tensor([[[[60.0]], [[-60.0]]]], requires_grad=True)  # (1, 2, 1, 1)
    target = torch.zeros((1, 1, 1), dtype=torch.long)
    for gamma in (0.5, 2.0):
        loss = FocalLoss(gamma=gamma)(logits, target)
        loss.backward()
        assert math.isfinite(loss.item()) and torch.isfinite(logits.grad).all()
        logits.grad = None


def test_focal_errors():
    logits, target = _batch(k=3)
    with pytest.raises(InputError, match="int64"):
        FocalLoss()(logits, target.float())
    with pytest.raises(InputError, match=r"outside 0\.\.2"):
        FocalLoss()(logits, torch.full_like(target, 7))
    with pytest.raises(InputError, match="one weight per class"):
        FocalLoss(alpha=[1.0, 2.0])(logits, target)
    with pytest.raises(InputError, match="target must be"):
        FocalLoss()(logits, target[:, :4])
    with pytest.raises(InputError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(InputError, match="reduction"):
        FocalLoss(reduction="avg")
    with pytest.raises(InputError, match="label_smoothing"):
        FocalLoss(label_smoothing=1.0)
    with pytest.raises(InputError, match="alpha"):
        FocalLoss(alpha=[1.0, -1.0])


def test_deep_supervision_loss_weighting():
    g = torch.Generator().manual_seed(0)
    main = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
    aux = [torch.randn(2, 3, 8, 8, generator=g, requires_grad=True) for _ in range(2)]
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    fl = FocalLoss()
    total, parts = deep_supervision_loss(main, aux, target, fl)
    expected = fl(main, target) + 0.5 * fl(aux[0], target) + 0.25 * fl(aux[1], target)
    torch.testing.assert_close(total, expected)
    assert set(parts) == {"main", "aux0", "aux1", "total"}
    assert not any(v.requires_grad for v in parts.values())
    torch.testing.assert_close(parts["aux1"], fl(aux[1], target))
    total.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (main, *aux))
    # the aux gradient is scaled by its weight
    torch.testing.assert_close(aux[1].grad, 0.25 * torch.autograd.grad(
        fl(aux[1], target), aux[1])[0])
    with pytest.raises(InputError, match="one weight per output"):
        deep_supervision_loss(main, aux, target, fl, aux_weights=(1.0,))
    with pytest.raises(InputError, match="upsample"):
        deep_supervision_loss(main, [aux[0][:, :, :4], aux[1]], target, fl)
