"""Working memory of tiled inference: model activations per tile, tile buffers, batch size.

:func:`tiles_per_call` sizes the batch of tiles of one model call from a budget
(:mod:`glacierkit.memory`): per tile, the model's activation memory plus the tile's own
buffers in flight, on top of the blend strips of :func:`glacierkit.tiling.run_tiled`.

**Activations** come from the model file's ONNX graph (:func:`activation_bytes`): the graph's
tensor shapes are inferred for the actual tile (``onnx.shape_inference``), and the peak of the
tensors alive at once is found by walking the nodes in graph order, each tensor freed after
its last consumer. ONNX Runtime's arena rounds and keeps allocations, so the runtime needs more
than that peak: on the ResU-Net ("tiny") with 6 input channels, the live peak was 480–500 B per
tile pixel at 512–1024 px tiles and the process's RSS grew by 670–700 B per pixel in the first
call; :data:`RUNTIME_FACTOR` (2) covers this with a margin. The torch backend on the CPU frees
tensors as the ONNX graph does (inference mode). Files without a graph use
:data:`FALLBACK_BYTES_PER_PX` (logged).

This module imports ``onnx`` lazily and never imports torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from glacierkit.errors import MemoryBudgetError
from glacierkit.memory import Budget, format_bytes, items_per_batch

log = logging.getLogger(__name__)

#: Runtime memory per byte of the live-tensor peak (allocator rounding, arena, copies).
RUNTIME_FACTOR = 2.0

#: Activation bytes per tile pixel assumed when the model file has no ONNX graph: 8× the
#: runtime need measured for the tiny ResU-Net (≈ 700 B/px), for wider models.
FALLBACK_BYTES_PER_PX = 6000.0

#: Series models, per pixel and date, when the graph's shapes cannot be inferred (ONNX shape
#: inference stops at a Reshape of the series models): twice the measured ≈ 510 B of a tiny
#: U-TAE (2.0 GB above the baseline for one 512² × 15-date tile, ONNX Runtime without its
#: memory pattern; benchmarks/series_inference.py).
FALLBACK_BYTES_PER_PX_DATE = 1000.0


def activation_bytes(onnx_bytes: bytes, inputs: Mapping[str, Sequence[int]]) -> int:
    """Peak bytes of the intermediate tensors alive at once when running an ONNX graph.

    Args:
        onnx_bytes: The serialised ONNX model.
        inputs: Concrete shape of every graph input, e.g. ``{"x": (1, 6, 512, 512),
            "present": (1, 2)}``.

    Returns:
        The peak (bytes) over the nodes in graph order of the outputs produced so far and not
        yet consumed for the last time (weights and graph inputs not included).

    Raises:
        ValueError: A tensor shape could not be inferred.
    """
    import numpy as np
    import onnx
    from onnx import shape_inference

    model = onnx.load_from_string(onnx_bytes)
    for inp in model.graph.input:
        if inp.name not in inputs:
            continue
        dims = inp.type.tensor_type.shape.dim
        for d, v in zip(dims, inputs[inp.name], strict=True):
            d.Clear()
            d.dim_value = int(v)
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    size: dict[str, int] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if any(d < 0 for d in dims):
            raise ValueError(f"shape of {v.name!r} could not be inferred")
        item = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
        size[v.name] = int(np.prod(dims, dtype=np.int64)) * item
    last: dict[str, int] = {}
    for i, node in enumerate(inferred.graph.node):
        for name in node.input:
            last[name] = i
    live = peak = 0
    for i, node in enumerate(inferred.graph.node):
        live += sum(size.get(o, 0) for o in node.output)
        peak = max(peak, live)
        live -= sum(size.get(x, 0) for x in set(node.input) if last.get(x) == i)
    return peak


def model_bytes_per_tile(onnx_bytes: bytes | None, *, n_channels: int, n_groups: int,
                         cond_dim: int, tile_hw: tuple[int, int], n_dates: int | None = None
                         ) -> tuple[float, str]:
    """Runtime activation memory of one ``(h, w)`` tile (bytes) and how it was estimated.

    Single-date models take ``x`` ``(1, n_channels, h, w)`` and ``present``; with
    ``n_dates`` the model takes a series ``(1, n_dates, n_channels, h, w)`` with ``dates``
    and ``mask`` (the fallback then assumes the per-pixel bytes once per date).
    """
    h, w = tile_hw
    if onnx_bytes:
        if n_dates is not None:
            inputs: dict[str, tuple[int, ...]] = {
                "series": (1, n_dates, n_channels, h, w), "dates": (1, n_dates),
                "mask": (1, n_dates)}
        else:
            inputs = {"x": (1, n_channels, h, w), "present": (1, n_groups)}
        if cond_dim:
            inputs["cond"] = (1, cond_dim)
        try:
            return (RUNTIME_FACTOR * activation_bytes(onnx_bytes, inputs),
                    f"ONNX graph live-tensor peak × {RUNTIME_FACTOR:g}")
        except (ValueError, KeyError, TypeError) as err:
            log.info("could not infer the model's activation memory from its ONNX graph "
                     "(%s); assuming %.0f B per tile pixel", err, FALLBACK_BYTES_PER_PX)
    per = FALLBACK_BYTES_PER_PX if n_dates is None else FALLBACK_BYTES_PER_PX_DATE * n_dates
    return per * h * w, f"assumed {per:.0f} B per pixel"


def tiles_per_call(budget: Budget, *, model_bytes: float, tile_hw: tuple[int, int],
                   n_channels: int, n_classes: int, scene_width: int, tta: bool,
                   limit: int, threaded: bool) -> int:
    """Tiles per model call that keep tiled inference within ``budget``.

    Per tile in a call: the model's activations (``model_bytes``) and the stacked input;
    per tile in flight (``2 (batch + 1)`` with worker threads, else 1): the prepared input
    ``(C, h, w)`` float32 and its probabilities ``(K, h, w)`` with their softmax and
    test-time-augmentation copies, ``4 (2 C + 3 K)`` B per pixel. Fixed: the blend strips
    of the scene (``8 K × h × scene width`` bytes, float32 sums and weights).

    Args:
        budget: The memory budget.
        model_bytes: Activation memory of the model for one tile (bytes).
        tile_hw: Padded tile shape ``(h, w)`` (px).
        n_channels: Model input channels ``C``.
        n_classes: Classes ``K``.
        scene_width: Scene width (px).
        tta: Test-time augmentation (one more input and output copy per tile).
        limit: Largest batch wanted.
        threaded: Tiles are prepared in worker threads while the model runs.

    Returns:
        Tiles per model call, ``1 ≤ n ≤ limit``.

    Raises:
        MemoryBudgetError: Not even one tile fits; the message names ``--tile-size`` and
            ``--max-memory``.
    """
    h, w = tile_hw
    px = h * w
    buffers = 4.0 * px * (2 * n_channels + 3 * n_classes + (n_channels + n_classes if tta else 0))
    fixed = 8.0 * n_classes * h * scene_width
    # Threaded: 2 (n + 1) tiles in flight, each with its buffers.
    per_tile = model_bytes + 4.0 * px * n_channels + (2 * buffers if threaded else 0.0)
    fixed += 2 * buffers if threaded else buffers
    fix = ("Use smaller tiles (tile_size, --tile-size) or raise max_memory (--max-memory).")
    n = items_per_batch(per_tile, budget, fixed_bytes=fixed, limit=limit,
                        what=f"Inference on one {h} × {w} px tile (model about "
                             f"{format_bytes(model_bytes)}, blend strips "
                             f"{format_bytes(8.0 * n_classes * h * scene_width)})",
                        fix=fix)
    if n < 1:  # pragma: no cover - items_per_batch raises
        raise MemoryBudgetError(fix)
    return max(1, min(n, limit, math.floor(n)))
