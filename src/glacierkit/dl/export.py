"""ONNX export of a segmentation model, and a numerical check against torch.

:func:`export_onnx` turns a model obeying the model contract (``model(x, present, cond)``,
see ``docs/design/dl.md``) into a serialised ONNX graph with

* inputs ``x`` ``(B, C, H, W)`` float32, ``present`` ``(B, G)`` float32 and, when
  ``cond_dim > 0``, ``cond`` ``(B, cond_dim)`` float32;
* output ``logits`` ``(B, n_classes, H, W)`` float32;
* dynamic batch, height and width (``H``, ``W`` multiples of ``model.multiple`` at run time).

It uses the ``torch.export``-based exporter (``dynamo=True``); only if that fails does it fall
back to the legacy TorchScript exporter (logged with the reason, its deprecation warning
silenced). The exporter's progress messages and internal warnings are kept off stdout/stderr
and logged at debug level. :func:`check_onnx` runs the graph with ONNX Runtime next to the
torch model and returns the largest absolute difference of the logits.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from glacierkit.errors import InputError, ModelFileError

log = logging.getLogger(__name__)

INPUT_NAMES = ("x", "present", "cond")
OUTPUT_NAME = "logits"


class _Wrapper(nn.Module):
    """``forward(x, present) -> logits`` for an unconditioned model (for export)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self.model(x, present, None)


class _CondWrapper(_Wrapper):
    """``forward(x, present, cond) -> logits`` for a conditioned model (for export)."""

    def forward(self, x: torch.Tensor, present: torch.Tensor,  # type: ignore[override]
                cond: torch.Tensor) -> torch.Tensor:
        return self.model(x, present, cond)


class _SeriesWrapper(_Wrapper):
    """``forward(series, dates, mask) -> logits`` for a time-series model (for export)."""

    def forward(self, series: torch.Tensor, dates: torch.Tensor,  # type: ignore[override]
                mask: torch.Tensor) -> torch.Tensor:
        return self.model(series=series, dates=dates, mask=mask)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Silence the exporter: stdout captured, warnings recorded, torch.onnx loggers raised."""
    buf = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                              "torch.fx.experimental.symbolic_shapes",
                                              "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(buf), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield buf
        for w in caught:
            log.debug("ONNX exporter warning: %s: %s", w.category.__name__, w.message)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if buf.getvalue().strip():
            log.debug("ONNX exporter output:\n%s", buf.getvalue().strip())


def _example_inputs(group_channels: Sequence[int], cond_dim: int, size: tuple[int, int],
                    multiple: int) -> tuple[torch.Tensor, ...]:
    h, w = (-(-int(s) // multiple) * multiple for s in size)
    gen = torch.Generator().manual_seed(0)
    # Batch 2: torch.export specialises dimensions of size 0 and 1.
    x = torch.randn(2, int(sum(group_channels)), h, w, generator=gen)
    present = torch.ones(2, len(group_channels))
    if cond_dim > 0:
        return x, present, torch.randn(2, cond_dim, generator=gen)
    return x, present


def _series_example(model: nn.Module, size: tuple[int, int], multiple: int
                    ) -> tuple[torch.Tensor, ...]:
    h, w = (-(-int(s) // multiple) * multiple for s in size)
    t = int(getattr(model, "time_steps", None) or 6)
    gen = torch.Generator().manual_seed(0)
    s = int(sum(model.group_channels))
    series = torch.randn(2, t, s, h, w, generator=gen)
    dates = torch.sort(torch.rand(2, t, generator=gen) * 365.0, dim=1).values
    mask = torch.ones(2, t)
    return series, dates, mask


def _dynamo_export(wrapper: nn.Module, args: tuple[torch.Tensor, ...], names: list[str],
                   opset: int | None, multiple: int) -> bytes:
    from glacierkit.dl.models import onnx_dynamic_shapes

    model = wrapper.model
    if multiple > 1 or names[0] == "series":
        # H and W as dynamic multiples of the model's stride lets the exporter prove that the
        # down- and up-sampled shapes agree.
        dyn = onnx_dynamic_shapes(model, with_cond="cond" in names)
        dyn = {k: v for k, v in dyn.items() if k in names}
    else:
        from torch.export import Dim

        batch = Dim("batch", min=1, max=4096)
        h, w = Dim("height", min=1, max=65536), Dim("width", min=1, max=65536)
        dyn = {"x": {0: batch, 2: h, 3: w}, "present": {0: batch}}
        if "cond" in names:
            dyn["cond"] = {0: batch}
    with _quiet():
        prog = torch.onnx.export(wrapper, args, dynamo=True, dynamic_shapes=dyn,
                                 input_names=names, output_names=[OUTPUT_NAME],
                                 opset_version=opset, optimize=True, verbose=False,
                                 external_data=False)
    if prog is None:  # pragma: no cover - the dynamo exporter always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    return prog.model_proto.SerializeToString()


def _legacy_export(wrapper: nn.Module, args: tuple[torch.Tensor, ...], names: list[str],
                   opset: int | None) -> bytes:
    if names[0] == "series":
        t = {} if getattr(wrapper.model, "time_steps", None) else {1: "dates"}
        axes: dict[str, dict[int, str]] = {
            "series": {0: "batch", **t, 3: "height", 4: "width"}, "dates": {0: "batch", **t},
            "mask": {0: "batch", **t}, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    else:
        axes = {"x": {0: "batch", 2: "height", 3: "width"}, "present": {0: "batch"},
                OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    if "cond" in names:
        axes["cond"] = {0: "batch"}
    buf = io.BytesIO()
    with _quiet():
        torch.onnx.export(wrapper, args, buf, dynamo=False, input_names=names,
                          output_names=[OUTPUT_NAME], dynamic_axes=axes,
                          opset_version=opset or 17, verbose=False)
    return buf.getvalue()


def _check_dynamic(onnx_bytes: bytes, names: list[str], fixed_t: bool = False) -> None:
    """Raise unless batch, height, width (and T) of the first input are dynamic."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    inputs = {i.name: i for i in proto.graph.input}
    got = [i.name for i in proto.graph.input]
    if got != names:
        raise RuntimeError(f"exported inputs are {got}, expected {names}")
    first = names[0]
    dims = inputs[first].type.tensor_type.shape.dim
    axes = (0, 2, 3) if first == "x" else (0, 3, 4) if fixed_t else (0, 1, 3, 4)
    static = [ax for ax in axes if dims[ax].HasField("dim_value")]
    if static:
        raise RuntimeError(f"axes {static} of input {first} were exported with fixed sizes")


def export_onnx(model: nn.Module, *, group_channels: Sequence[int] | None = None,
                cond_dim: int | None = None, example_size: tuple[int, int] = (64, 64),
                opset: int | None = None) -> bytes:
    """Export ``model`` to ONNX with named inputs and dynamic batch, height and width.

    Args:
        model: A model obeying the model contract (``docs/design/dl.md``): single-date
            models ``model(x, present, cond)`` with ``x`` ``(B, sum(group_channels), H, W)``,
            ``present`` ``(B, G)``, ``cond`` ``(B, cond_dim)`` or ``None``; series models
            ``model(series, dates, mask)`` with ``series`` ``(B, T, C, H, W)``, ``dates``
            and ``mask`` ``(B, T)``; both return logits ``(B, K, H, W)``. Its ``multiple``
            attribute (default 1) sets the granularity of ``H`` and ``W``; a series model's
            ``time_steps`` (``None``: any) fixes ``T`` or leaves it dynamic. Exported in
            eval mode; its training/eval mode is restored afterwards.
        group_channels: Channels per source group (sets ``C`` and ``G``); default the
            model's ``group_channels``.
        cond_dim: Length of the conditioning vector; 0 for no ``cond`` input; default the
            model's ``cond_dim``.
        example_size: ``(H, W)`` of the example input used for tracing, rounded up to a
            multiple of ``model.multiple``. The graph accepts other sizes.
        opset: ONNX opset; default: the exporter's default.

    Returns:
        The serialised ONNX model (``bytes``): inputs named as
        :func:`glacierkit.dl.models.input_names` says, output ``logits``.

    Raises:
        InputError: invalid ``group_channels`` / ``cond_dim`` / ``example_size``.
        ModelFileError: neither exporter could produce a graph with dynamic shapes.
    """
    from glacierkit.dl.models import input_names

    if group_channels is None:
        group_channels = getattr(model, "group_channels", ())
    if cond_dim is None:
        cond_dim = int(getattr(model, "cond_dim", 0))
    gc = [int(c) for c in group_channels]
    if not gc or any(c < 1 for c in gc):
        raise InputError(f"group_channels must be positive channel counts; got "
                         f"{list(group_channels)}.")
    if int(cond_dim) < 0:
        raise InputError(f"cond_dim must be >= 0; got {cond_dim}.")
    if len(example_size) != 2 or min(example_size) < 1:
        raise InputError(f"example_size must be (H, W) > 0; got {example_size}.")
    multiple = int(getattr(model, "multiple", 1) or 1)
    was_training = model.training
    series = input_names(model)[0] == "series"
    if series:
        args = _series_example(model, tuple(example_size), multiple)  # type: ignore[arg-type]
        names = ["series", "dates", "mask"]
        wrapper: nn.Module = _SeriesWrapper(model).eval()
    else:
        args = _example_inputs(gc, int(cond_dim), tuple(example_size),  # type: ignore[arg-type]
                               multiple)
        names = list(INPUT_NAMES[:len(args)])
        wrapper = (_CondWrapper(model) if int(cond_dim) > 0 else _Wrapper(model)).eval()
    fixed_t = series and getattr(model, "time_steps", None) is not None
    try:
        try:
            data = _dynamo_export(wrapper, args, names, opset, multiple)
            _check_dynamic(data, names, fixed_t)
            return data
        except Exception as e:
            log.warning("torch.export-based ONNX export failed (%s: %s); falling back to the "
                        "legacy TorchScript exporter.", type(e).__name__, str(e)[:500])
            try:
                data = _legacy_export(wrapper, args, names, opset)
                _check_dynamic(data, names, fixed_t)
                return data
            except Exception as e2:
                raise ModelFileError(
                    f"cannot export {type(model).__name__} to ONNX: the torch.export-based "
                    f"exporter failed ({type(e).__name__}: {str(e)[:300]}) and so did the "
                    f"legacy one ({type(e2).__name__}: {str(e2)[:300]}). Use the torch backend "
                    f"(predict_scene(..., backend='torch')) for this model.") from e2
    finally:
        model.train(was_training)


def _ort_session(onnx_bytes: bytes, threads: int | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, sess_options=opts,
                                providers=["CPUExecutionProvider"])


def check_onnx(model: nn.Module, onnx_bytes: bytes, inputs: Mapping[str, np.ndarray],
               atol: float = 1e-4) -> float:
    """Run the ONNX graph (ONNX Runtime, CPU) and the torch model on the same inputs.

    Args:
        model: The torch model (run in eval mode on CPU, without gradients; its mode and
            device are left as they were).
        onnx_bytes: The exported graph.
        inputs: The model's inputs as float32 arrays: ``{"x": (B, C, H, W), "present":
            (B, G)[, "cond": (B, D)]}`` or ``{"series": (B, T, C, H, W), "dates": (B, T),
            "mask": (B, T)}``.
        atol: Largest acceptable absolute difference of the logits.

    Returns:
        The largest absolute difference between the two outputs (logits).

    Raises:
        ModelFileError: the outputs differ in shape or by more than ``atol``.
    """
    from glacierkit.dl.models import call_model, model_inputs

    feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
    model_inputs(model, feeds)  # the inputs the model takes are all there
    sess = _ort_session(onnx_bytes)
    wanted = [i.name for i in sess.get_inputs()]
    missing = [n for n in wanted if n not in feeds]
    if missing:
        raise InputError(f"the ONNX graph needs inputs {wanted}; missing {missing}.")
    out = sess.run([OUTPUT_NAME], {n: feeds[n] for n in wanted})[0]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    try:
        with torch.inference_mode():
            t = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
            ref = call_model(model, model_inputs(model, t)).float().cpu().numpy()
    finally:
        model.train(was_training)
    if ref.shape != out.shape:
        raise ModelFileError(f"ONNX output shape {out.shape} differs from torch's {ref.shape}.")
    diff = float(np.max(np.abs(ref - out))) if ref.size else 0.0
    if not diff <= atol:
        raise ModelFileError(f"the ONNX graph disagrees with the torch model: max |Δlogit| = "
                             f"{diff:.3g} > atol {atol:g} at input shape "
                             f"{tuple(next(iter(feeds.values())).shape)}. Re-export "
                             f"(another opset) or use the torch backend.")
    return diff
