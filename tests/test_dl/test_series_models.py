"""SAR time-series segmentation models: contract, masking, dates, T, training, ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from glacierkit.dl.models import count_parameters, enable_mc_dropout  # noqa: E402
from glacierkit.dl.models.convlstm import CONVLSTM_SIZES, ConvLSTMUNet  # noqa: E402
from glacierkit.dl.models.icemapper import ICEMAPPER3D_SIZES, ICEmapper3D  # noqa: E402
from glacierkit.dl.models.series_base import (  # noqa: E402
    SeriesSegmentationModel,
    series_dynamic_shapes,
)
from glacierkit.dl.models.utae import UTAE, UTAE_SIZES  # noqa: E402
from glacierkit.errors import InputError  # noqa: E402

GC = (1, 1)  # VV dB, coherence
S = sum(GC)
CLASSES = {"icemapper3d": ICEmapper3D, "convlstm": ConvLSTMUNet, "utae": UTAE}
SIZES = {"icemapper3d": ICEMAPPER3D_SIZES, "convlstm": CONVLSTM_SIZES, "utae": UTAE_SIZES}
ARCHS = tuple(CLASSES)
# a short fixed series keeps the CPU tests fast; the presets use 15 dates
FAST_T = {"icemapper3d": 5, "convlstm": 5, "utae": 5}

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(arch, **kw):
    torch.manual_seed(0)
    if arch != "utae":
        kw.setdefault("time_steps", FAST_T[arch])
    return CLASSES[arch](group_channels=GC, n_classes=3, size="tiny", **kw)


def _inputs(b=2, t=5, h=32, w=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    series = torch.randn(b, t, S, h, w, generator=g)
    # irregular ascending dates, days since 1 January (some before it)
    dates = torch.cumsum(5.0 + 20.0 * torch.rand(b, t, generator=g), dim=1) - 20.0
    mask = torch.ones(b, t)
    return series, dates, mask


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shapes_and_attributes(arch):
    m = _model(arch).eval()
    assert isinstance(m, SeriesSegmentationModel)
    assert (m.arch, m.size, m.n_classes, m.group_channels, m.cond_dim) == (arch, "tiny", 3,
                                                                           GC, 0)
    assert m.inputs == ("series", "dates", "mask")
    assert m.multiple == 8
    assert m.dropout_p == pytest.approx(0.1)
    assert m.date_aware is (arch == "utae")
    assert m.time_steps == (None if arch == "utae" else FAST_T[arch])
    json.dumps(m.config)  # JSON-serialisable
    assert set(m.config) == set(SIZES[arch]["tiny"])
    series, dates, mask = _inputs(h=32, w=48)
    with torch.no_grad():
        out = m(series, dates, mask)
        main, aux = m.forward_aux(series, dates, mask)
    assert out.shape == (2, 3, 32, 48)
    torch.testing.assert_close(main, out)
    assert len(aux) == 2 and all(a.shape == (2, 3, 32, 48) for a in aux)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_masked_dates_are_ignored(arch):
    m = _model(arch).eval()
    series, dates, mask = _inputs(b=2, t=5)
    mask[0, 2] = 0  # a dropped date in the middle
    mask[1, 3:] = 0  # padding at the end
    series[1, 3:] = 0
    other = series.clone()
    other[0, 2] = 3.0 * torch.randn_like(other[0, 2])
    other[1, 3:] = torch.randn_like(other[1, 3:])
    other_dates = dates.clone()
    other_dates[1, 3:] = 0.0  # padded dates often carry no date
    with torch.no_grad():
        a = m(series, dates, mask)
        b = m(other, other_dates, mask)
        c = m(series, dates, torch.ones_like(mask))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)  # the mask matters


@pytest.mark.parametrize("arch", ARCHS)
def test_sample_without_observed_dates_is_finite(arch):
    m = _model(arch).eval()
    series, dates, mask = _inputs()
    mask[1] = 0
    with torch.no_grad():
        out, aux = m.forward_aux(series, dates, mask)
    assert torch.isfinite(out).all() and all(torch.isfinite(a).all() for a in aux)


def test_utae_uses_the_dates_and_any_number_of_dates():
    m = _model("utae").eval()
    series, dates, mask = _inputs(t=5)
    shifted = dates.clone()
    shifted[:, 2] += 10.0
    with torch.no_grad():
        a = m(series, dates, mask)
        b = m(series, shifted, mask)
        for t in (1, 3, 9):
            s, d, k = _inputs(b=1, t=t, h=16, w=24, seed=t)
            assert m(s, d, k).shape == (1, 3, 16, 24)
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(InputError, match="dates"):
        m(series, None, mask)


@pytest.mark.parametrize("arch", ["icemapper3d", "convlstm"])
def test_order_models_need_their_number_of_dates_and_ignore_date_values(arch):
    m = _model(arch).eval()
    series, dates, mask = _inputs(t=5)
    with torch.no_grad():
        a = m(series, dates, mask)
        torch.testing.assert_close(m(series, dates + 100.0, mask), a, rtol=0, atol=0)
        torch.testing.assert_close(m(series, None, None), a, rtol=0, atol=0)
    for t in (4, 6):
        s, d, k = _inputs(t=t)
        with pytest.raises(InputError, match="time_steps"):
            m(s, d, k)


def test_icemapper_default_fifteen_dates():
    m = ICEmapper3D(group_channels=GC, n_classes=2).eval()
    assert m.time_steps == 15 and m.config["time_steps"] == 15
    series, dates, mask = _inputs(b=1, t=15, h=16, w=16)
    mask[0, 11:] = 0
    with torch.no_grad():
        assert m(series, dates, mask).shape == (1, 2, 16, 16)


@pytest.mark.parametrize("arch", ARCHS)
def test_invalid_inputs_raise_input_error(arch):
    m = _model(arch).eval()
    series, dates, mask = _inputs()
    bad = [
        ((series[0], dates, mask), "(B, T, S, H, W)"),
        ((series[:, :, :1], dates, mask), "channels per date"),
        ((series[..., :30], dates, mask), "multiple of 8"),
        ((series, dates[:, :4], mask), "dates must have shape"),
        ((series, dates, mask[:1]), "mask must have shape"),
        ((series, dates, 0.5 * mask), "mask must be 1"),
        ((series.long(), dates, mask), "floating point"),
    ]
    nan_dates = dates.clone()
    nan_dates[0, 1] = float("nan")
    bad.append(((series, nan_dates, mask), "NaN"))
    for args, match in bad:
        with pytest.raises(InputError, match=match.replace("(", r"\(").replace(")", r"\)")):
            m(*args)


@pytest.mark.parametrize("arch", ARCHS)
def test_invalid_construction_raises_input_error(arch):
    cls = CLASSES[arch]
    with pytest.raises(InputError, match="cond_dim must be 0"):
        cls(group_channels=GC, n_classes=2, cond_dim=3)
    with pytest.raises(InputError, match="unknown size"):
        cls(group_channels=GC, n_classes=2, size="huge")
    with pytest.raises(InputError, match="unknown hyper-parameter"):
        cls(group_channels=GC, n_classes=2, depth=3)
    with pytest.raises(InputError, match="n_classes"):
        cls(group_channels=GC, n_classes=1)
    with pytest.raises(InputError, match="dropout"):
        cls(group_channels=GC, n_classes=2, dropout=1.5)
    with pytest.raises(InputError, match="group_channels"):
        cls(group_channels=(), n_classes=2)
    if arch == "utae":
        with pytest.raises(InputError, match="divisible by n_head"):
            cls(group_channels=GC, n_classes=2, n_head=3)
    else:
        with pytest.raises(InputError, match="time_steps"):
            cls(group_channels=GC, n_classes=2, time_steps=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_config_rebuilds_the_same_model(arch):
    overrides = {"utae": {"n_head": 2, "d_model": 16},
                 "icemapper3d": {"widths": [8, 16], "bottleneck": 24, "time_steps": 4},
                 "convlstm": {"widths": [8, 16], "bottleneck": 24, "time_steps": 4}}[arch]
    m = CLASSES[arch](group_channels=GC, n_classes=2, size="tiny", dropout=0.2, **overrides)
    for k, v in overrides.items():
        assert m.config[k] == v
    kwargs = json.loads(json.dumps(m.config))
    again = CLASSES[arch](group_channels=list(m.group_channels), n_classes=m.n_classes,
                          size=m.size, dropout=m.dropout_p, **kwargs)
    again.load_state_dict(m.state_dict())
    t = m.time_steps or 3
    series, dates, mask = _inputs(b=1, t=t, h=m.multiple * 2, w=m.multiple * 2)
    m.eval()
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(series, dates, mask), m(series, dates, mask))


@pytest.mark.parametrize("arch", ARCHS)
def test_mc_dropout_varies_the_output(arch):
    m = _model(arch, dropout=0.3)
    series, dates, mask = _inputs()
    enable_mc_dropout(m)
    with torch.no_grad():
        a, b = m(series, dates, mask), m(series, dates, mask)
    assert not torch.allclose(a, b)


def _task(t, seed=0):
    """A round glacier, brighter in the observed dates, under heavy noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    target = torch.stack([(yy - 14) ** 2 + (xx - 18) ** 2 < 9.0**2,
                          (yy - 20) ** 2 + (xx - 10) ** 2 < 7.0**2]).long()  # (2, 32, 32)
    series = 1.5 * torch.randn(2, t, S, 32, 32, generator=g)
    series[:, :, 0] += target[:, None].float()
    series[:, :, 1] -= 0.5 * target[:, None].float()
    dates = 12.0 * torch.arange(t, dtype=torch.float32)[None].repeat(2, 1)
    mask = torch.ones(2, t)
    mask[1, -1] = 0
    return series * mask[:, :, None, None, None], dates, mask, target


@pytest.mark.parametrize("arch", ARCHS)
def test_a_few_training_steps_decrease_the_loss(arch):
    m = _model(arch, dropout=0.0)
    series, dates, mask, target = _task(FAST_T[arch])
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    losses = []
    for _ in range(25):
        opt.zero_grad()
        main, aux = m.forward_aux(series, dates, mask)
        loss = torch.nn.functional.cross_entropy(main, target)
        loss = loss + 0.25 * sum(torch.nn.functional.cross_entropy(a, target) for a in aux)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.75 * losses[0]


def test_parameter_counts_of_the_presets():
    counts = {(arch, size): count_parameters(CLASSES[arch](group_channels=GC, n_classes=2,
                                                            size=size))
              for arch in ARCHS for size in ("tiny", "base")}
    assert 50_000 <= counts["utae", "tiny"] <= 150_000
    assert 1_000_000 <= counts["utae", "base"] <= 1_200_000  # U-TAE paper: ~1.1 M
    for arch in ("icemapper3d", "convlstm"):
        assert counts[arch, "tiny"] < 400_000
        assert 3_000_000 <= counts[arch, "base"] <= 6_000_000
    for arch in ARCHS:
        assert counts[arch, "tiny"] < counts[arch, "base"]


def test_series_dynamic_shapes():
    fixed = series_dynamic_shapes(_model("icemapper3d"))
    free = series_dynamic_shapes(_model("utae"))
    assert set(fixed) == set(free) == {"series", "dates", "mask"}
    assert sorted(fixed["series"]) == [0, 3, 4] and sorted(fixed["mask"]) == [0]
    assert sorted(free["series"]) == [0, 1, 3, 4] and sorted(free["dates"]) == [0, 1]


class _Wrapper(torch.nn.Module):
    """The model with all three inputs required, as the exported graph takes them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, series, dates, mask):
        return self.model(series, dates, mask)


def _onnx_check(m, tmp_path, export_t, run_ts):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    m.eval()
    path = tmp_path / f"{m.arch}.onnx"
    torch.onnx.export(_Wrapper(m).eval(), _inputs(b=2, t=export_t), path, dynamo=True,
                      input_names=["series", "dates", "mask"], output_names=["logits"],
                      dynamic_shapes=series_dynamic_shapes(m), optimize=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["series", "dates", "mask"]
    for t in run_ts:
        # another batch and tile size than at export; padding and a dropped date
        series, dates, mask = _inputs(b=3, t=t, h=48, w=64, seed=t)
        mask[1, -2:] = 0
        series[1, -2:] = 0
        mask[2, 1] = 0
        feeds = {"series": series.numpy(), "dates": dates.numpy(), "mask": mask.numpy()}
        (out,) = sess.run(None, feeds)
        with torch.no_grad():
            ref = m(series, dates, mask).numpy()
        assert out.shape == (3, 3, 48, 64)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


# torch's exporter warns from inside torch (pytree FutureWarning; shared-axis renaming)
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
def test_onnx_utae_dynamic_number_of_dates(tmp_path):
    _onnx_check(_model("utae"), tmp_path, export_t=6, run_ts=(4, 9))


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
@pytest.mark.parametrize(("arch", "config"), [
    ("icemapper3d", {"time_steps": 15}),  # ceil-mode pooling over time: 15 → 8 → 4 → 2
    # the ConvLSTM graph is unrolled over dates and layers (export time grows with both)
    ("convlstm", {"time_steps": 3, "widths": (8, 16), "bottleneck": 16}),
])
def test_onnx_fixed_number_of_dates(tmp_path, arch, config):
    m = _model(arch, **config)
    _onnx_check(m, tmp_path, export_t=m.time_steps, run_ts=(m.time_steps,))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
def test_onnx_convlstm_fifteen_dates(tmp_path):
    m = ConvLSTMUNet(group_channels=GC, n_classes=3, size="tiny")
    assert m.time_steps == 15
    _onnx_check(m, tmp_path, export_t=15, run_ts=(15,))
