"""Spatially disjoint train/validation/test splits of a scene.

Neighbouring pixels are strongly correlated, so a random *pixel* split leaks test information
into training. Here every pixel belongs to exactly one part, given by an ``int8 (H, W)`` map:
``0`` train, ``1`` validation, ``2`` test, ``-1`` unused (buffer).

Two guarantees, both checked by property tests:

1. **No overlap.** Patches are only ever drawn *wholly inside* one part:
   :meth:`SplitMap.windows`, :meth:`SplitMap.valid_origins` and
   :meth:`SplitMap.valid_centres` return only windows whose every pixel carries that part's
   value. A training patch therefore never contains a validation or test pixel (and so never
   their labels), whatever the patch size.
2. **Buffer.** With ``buffer_px = g``, every part is eroded by ``ceil(g / 2)`` pixels
   (Chebyshev distance) at its borders with other parts; the removed pixels become ``-1``.
   Two pixels of different parts are then at least ``g + 1`` pixels apart (at least ``g``
   unused pixels lie between them), which keeps the immediate neighbourhood of test pixels out
   of training patches. The default ``buffer_px`` is ``patch_size // 2`` (0 without a patch
   size). Scene edges do not erode.

Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from glacierkit.errors import InputError

SPLITS = ("train", "val", "test")
"""Split names; their index is the value in the split map."""
UNUSED = -1
"""Split-map value of buffer / unused pixels."""


def _split_id(split: str | int) -> int:
    if isinstance(split, str):
        if split not in SPLITS:
            raise InputError(f"split {split!r} is not one of {list(SPLITS)}.")
        return SPLITS.index(split)
    if int(split) not in (0, 1, 2):
        raise InputError(f"split index {split!r} must be 0 (train), 1 (val) or 2 (test).")
    return int(split)


@dataclass(eq=False)
class SplitMap:
    """Which split every pixel belongs to.

    Attributes:
        map: ``int8 (H, W)``: 0 train, 1 val, 2 test, -1 unused buffer.
        buffer_px: Guaranteed minimum number of unused pixels between two parts.
        patch_size: Patch size (px) the split was designed for, or ``None``.
        meta: How the split was made (kind, seed, block size, fractions).
    """

    map: np.ndarray
    buffer_px: int = 0
    patch_size: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = np.asarray(self.map)
        if m.ndim != 2:
            raise InputError(f"a split map is 2-D (H, W); got shape {m.shape}.")
        if not np.isin(m, (UNUSED, 0, 1, 2)).all():
            raise InputError("split map values must be -1 (unused), 0, 1 or 2.")
        self.map = m.astype(np.int8, copy=False)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.map.shape[0]), int(self.map.shape[1]))

    def mask(self, split: str | int) -> np.ndarray:
        """Boolean ``(H, W)``: pixels of ``split`` (name or index)."""
        return self.map == _split_id(split)

    def fractions(self) -> dict[str, float]:
        """Share of the scene's pixels in each part and unused (sums to 1)."""
        n = self.map.size
        out = {s: float(np.count_nonzero(self.map == i)) / n for i, s in enumerate(SPLITS)}
        out["unused"] = float(np.count_nonzero(self.map == UNUSED)) / n
        return out

    def valid_origins(self, split: str | int, patch_size: int) -> np.ndarray:
        """Where a P×P window may start: boolean ``(H - P + 1, W - P + 1)``.

        True at ``(row_off, col_off)`` when the window starting there lies wholly inside
        ``split``. Empty when P exceeds the map.
        """
        p = int(patch_size)
        if p < 1:
            raise InputError(f"patch_size must be >= 1; got {patch_size}.")
        h, w = self.shape
        if p > h or p > w:
            return np.zeros((max(h - p + 1, 0), max(w - p + 1, 0)), dtype=bool)
        m = self.mask(split).astype(np.int64)
        s = np.zeros((h + 1, w + 1), dtype=np.int64)
        s[1:, 1:] = m.cumsum(0).cumsum(1)
        tot = s[p:, p:] - s[:-p, p:] - s[p:, :-p] + s[:-p, :-p]
        return tot == p * p

    def valid_centres(self, split: str | int, patch_size: int) -> np.ndarray:
        """``(N, 2)`` int64 ``(row, col)`` patch centres whose whole patch lies in ``split``.

        The centre of a window is its pixel ``(row_off + P // 2, col_off + P // 2)``.
        """
        r, c = np.nonzero(self.valid_origins(split, patch_size))
        half = int(patch_size) // 2
        return np.stack([r + half, c + half], axis=1).astype(np.int64)

    def windows(self, split: str | int, patch_size: int,
                stride: int | None = None) -> list[Window]:
        """Patch windows on a regular lattice that lie wholly inside ``split``.

        Args:
            split: ``"train"``, ``"val"``, ``"test"`` (or 0, 1, 2).
            patch_size: Window edge ``P`` (px).
            stride: Lattice step (px), default ``P`` (non-overlapping). Lattice positions are
                ``0, stride, 2·stride, ...`` plus the last position ``H - P`` (``W - P``) so
                that the scene's far edge is covered.

        Returns:
            ``rasterio.windows.Window`` objects (integer offsets, P×P), row-major order.
        """
        p = int(patch_size)
        st = p if stride is None else int(stride)
        if st < 1:
            raise InputError(f"stride must be >= 1; got {stride}.")
        ok = self.valid_origins(split, p)
        if ok.size == 0:
            return []
        rows = sorted(set(range(0, ok.shape[0], st)) | {ok.shape[0] - 1})
        cols = sorted(set(range(0, ok.shape[1], st)) | {ok.shape[1] - 1})
        sub = ok[np.ix_(rows, cols)]
        return [Window(cols[j], rows[i], p, p) for i, j in zip(*np.nonzero(sub), strict=True)]

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary: shape, fractions, buffer, patch size, meta."""
        return {"shape": list(self.shape), "fractions": self.fractions(),
                "buffer_px": self.buffer_px, "patch_size": self.patch_size, **self.meta}


def _apply_buffer(m: np.ndarray, buffer_px: int) -> np.ndarray:
    """Erode every part by ceil(buffer_px / 2) px where it borders another part."""
    r = math.ceil(buffer_px / 2)
    if r <= 0:
        return m
    out = m.copy()
    size = 2 * r + 1
    for k in (0, 1, 2):
        part = m == k
        if not part.any():
            continue
        # A pixel stays when no pixel of another part lies within Chebyshev distance r
        # (scene edges and unused pixels do not erode).
        other = (m != k) & (m != UNUSED)
        near_other = ndimage.maximum_filter(other.astype(np.uint8), size=size,
                                            mode="constant", cval=0).astype(bool)
        out[part & near_other] = UNUSED
    return out


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or min(int(v) for v in shape) < 1:
        raise InputError(f"shape must be (H, W) with positive sizes; got {tuple(shape)}.")
    return (int(shape[0]), int(shape[1]))


def _default_buffer(buffer_px: int | None, patch_size: int | None) -> int:
    if buffer_px is None:
        return int(patch_size) // 2 if patch_size else 0
    if int(buffer_px) < 0:
        raise InputError(f"buffer_px must be >= 0; got {buffer_px}.")
    return int(buffer_px)


def _check_patches(sm: SplitMap, needed: Sequence[int], patch_size: int | None,
                   what: str) -> None:
    if not patch_size:
        return
    empty = [SPLITS[k] for k in needed if not sm.valid_origins(k, patch_size).any()]
    if empty:
        raise InputError(
            f"{what}: no {patch_size}×{patch_size} patch fits wholly inside the {empty} part(s) "
            f"of the {sm.shape[0]}×{sm.shape[1]} scene (buffer {sm.buffer_px} px). Use a "
            f"smaller patch_size or buffer_px, larger fractions for those parts, or a larger "
            f"block_size.")


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    f = np.asarray(fractions, dtype=np.float64)
    raw = f * n
    cnt = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - cnt), kind="stable")[: n - cnt.sum()]:
        cnt[i] += 1
    pos = [i for i in range(3) if f[i] > 0]
    if n < len(pos):
        raise InputError(f"only {n} block(s) for {len(pos)} non-empty parts; use a smaller "
                         f"block_size.")
    for i in pos:
        if cnt[i] == 0:
            cnt[int(np.argmax(cnt))] -= 1
            cnt[i] += 1
    return cnt.tolist()


def block_split(shape: Sequence[int], *, block_size: int,
                fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0,
                patch_size: int | None = None, buffer_px: int | None = None,
                strategy: Literal["random", "stripes"] = "random",
                axis: Literal["rows", "cols"] = "cols",
                assignment: np.ndarray | None = None) -> SplitMap:
    """Spatially disjoint split into square blocks (or stripes) assigned to train/val/test.

    Args:
        shape: ``(H, W)`` of the scene.
        block_size: Block edge (px). The last row/column of blocks may be smaller.
        fractions: Shares of blocks for (train, val, test); non-negative, summing to 1. Block
            counts are rounded (largest remainder) and every part with a positive share gets at
            least one block.
        seed: Seed of the random block assignment.
        patch_size: Patch size (px) the split must serve; when given, every part with a
            positive share must hold at least one whole patch (else :class:`InputError`).
        buffer_px: Minimum number of unused pixels between parts (see the module
            docstring). Default ``patch_size // 2``, 0 without a patch size.
        strategy: ``"random"``: square blocks shuffled over the scene; ``"stripes"``:
            strips ``block_size`` wide across the whole scene (along ``axis``), shuffled.
        axis: For stripes: ``"cols"`` cuts the columns into vertical strips, ``"rows"`` the
            rows into horizontal strips.
        assignment: Explicit ``int (n_block_rows, n_block_cols)`` array of split indexes
            (0/1/2, -1 unused) per block instead of ``fractions``/``seed`` (stripes: shape
            ``(1, n)`` for cols, ``(n, 1)`` for rows).

    Returns:
        The :class:`SplitMap`.
    """
    h, w = _check_shape(shape)
    bs = int(block_size)
    if bs < 1:
        raise InputError(f"block_size must be >= 1 px; got {block_size}.")
    if strategy not in ("random", "stripes"):
        raise InputError(f"strategy must be 'random' or 'stripes'; got {strategy!r}.")
    if axis not in ("rows", "cols"):
        raise InputError(f"axis must be 'rows' or 'cols'; got {axis!r}.")
    nby, nbx = math.ceil(h / bs), math.ceil(w / bs)
    if strategy == "stripes":
        nby, nbx = (1, nbx) if axis == "cols" else (nby, 1)
    buf = _default_buffer(buffer_px, patch_size)
    if assignment is not None:
        blocks = np.asarray(assignment)
        if blocks.shape != (nby, nbx):
            raise InputError(f"assignment must have one entry per block, shape ({nby}, {nbx}); "
                             f"got {blocks.shape}.")
        if not np.isin(blocks, (UNUSED, 0, 1, 2)).all():
            raise InputError("assignment values must be 0 (train), 1 (val), 2 (test) or -1.")
        needed = sorted({int(v) for v in np.unique(blocks) if v >= 0})
        fr = None
    else:
        fr = [float(v) for v in fractions]
        if len(fr) != 3 or min(fr) < 0 or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
            raise InputError(f"fractions must be three non-negative shares (train, val, test) "
                             f"summing to 1; got {tuple(fractions)}.")
        cnt = _counts(nby * nbx, fr)
        order = np.random.default_rng(seed).permutation(nby * nbx)
        flat = np.empty(nby * nbx, dtype=np.int8)
        flat[order] = np.repeat(np.arange(3, dtype=np.int8), cnt)
        blocks = flat.reshape(nby, nbx)
        needed = [i for i in range(3) if fr[i] > 0]
    rows = np.minimum(np.arange(h) // bs, nby - 1)   # stripes: one block row/column
    cols = np.minimum(np.arange(w) // bs, nbx - 1)
    m = blocks[np.ix_(rows, cols)].astype(np.int8)
    sm = SplitMap(_apply_buffer(m, buf), buffer_px=buf, patch_size=patch_size,
                  meta={"kind": "blocks", "strategy": strategy, "axis": axis,
                        "block_size": bs, "seed": seed, "fractions": fr})
    _check_patches(sm, needed, patch_size, "block_split")
    return sm


def half_split(shape: Sequence[int], *, axis: Literal["rows", "cols"] = "cols",
               test_fraction: float = 0.4, val_fraction: float = 0.0,
               buffer_px: int | None = None, patch_size: int | None = None,
               order: Sequence[str] = SPLITS) -> SplitMap:
    """Cut the scene into contiguous strips: train | val | test (the simple disjoint case).

    Args:
        shape: ``(H, W)``.
        axis: ``"cols"``: strips side by side along the columns (left to right); ``"rows"``:
            strips stacked along the rows (top to bottom).
        test_fraction: Share of the axis length for testing, in (0, 1).
        val_fraction: Share for validation, in [0, 1); ``test + val < 1``.
        buffer_px: Minimum unused pixels between strips (default ``patch_size // 2``).
        patch_size: When given, every non-empty strip must hold one whole patch.
        order: Order of the strips along the axis, a permutation of
            ``("train", "val", "test")`` (default train first).

    Returns:
        The :class:`SplitMap`.
    """
    h, w = _check_shape(shape)
    if axis not in ("rows", "cols"):
        raise InputError(f"axis must be 'rows' or 'cols'; got {axis!r}.")
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1
            and test_fraction + val_fraction < 1):
        raise InputError(f"test_fraction ({test_fraction}) must be in (0, 1), val_fraction "
                         f"({val_fraction}) in [0, 1), and their sum below 1.")
    if sorted(order) != sorted(SPLITS):
        raise InputError(f"order must be a permutation of {list(SPLITS)}; got {list(order)}.")
    n = w if axis == "cols" else h
    share = {"train": 1 - test_fraction - val_fraction, "val": val_fraction,
             "test": test_fraction}
    line = np.empty(n, dtype=np.int8)
    start, acc = 0, 0.0
    for s in order:
        acc += share[s]
        stop = n if s == order[-1] else round(acc * n)
        line[start:stop] = SPLITS.index(s)
        start = stop
    m = np.broadcast_to(line[None, :] if axis == "cols" else line[:, None], (h, w)).copy()
    buf = _default_buffer(buffer_px, patch_size)
    sm = SplitMap(_apply_buffer(m, buf), buffer_px=buf, patch_size=patch_size,
                  meta={"kind": "half", "axis": axis, "test_fraction": test_fraction,
                        "val_fraction": val_fraction, "order": list(order)})
    needed = [SPLITS.index(s) for s in SPLITS if share[s] > 0]
    _check_patches(sm, needed, patch_size, "half_split")
    return sm


def make_split(shape: Sequence[int], *, kind: Literal["half", "blocks"] = "half",
               axis: Literal["rows", "cols"] = "cols", test_fraction: float = 0.35,
               val_fraction: float = 0.15, block_size: int = 128, seed: int = 0,
               patch_size: int | None = None, buffer_px: int | None = None) -> SplitMap:
    """The split a ``[split]`` config table describes (keys as in ``SplitConfig``).

    ``kind="half"`` → :func:`half_split` (train | val | test strips along ``axis``);
    ``kind="blocks"`` → :func:`block_split` with fractions
    ``(1 − test − val, val, test)``, ``block_size`` and ``seed``.
    """
    if kind == "half":
        return half_split(shape, axis=axis, test_fraction=test_fraction,
                          val_fraction=val_fraction, buffer_px=buffer_px, patch_size=patch_size)
    if kind == "blocks":
        fr = (1.0 - test_fraction - val_fraction, val_fraction, test_fraction)
        return block_split(shape, block_size=block_size, fractions=fr, seed=seed,
                           patch_size=patch_size, buffer_px=buffer_px)
    raise InputError(f"split kind {kind!r} is not 'half' or 'blocks'.")
