"""glacierkit.dl.models: contract, missing groups, rebuild, MC dropout, ONNX, overfitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from glacierkit.dl.losses import FocalLoss, deep_supervision_loss  # noqa: E402
from glacierkit.dl.models import (  # noqa: E402
    ARCHS,
    SIZES,
    build_model,
    count_parameters,
    enable_mc_dropout,
    model_kwargs,
    onnx_dynamic_shapes,
)
from glacierkit.errors import InputError  # noqa: E402

GC = (4, 2, 2, 1)  # optical, dem, sar, coherence
C = sum(GC)


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(arch, cond_dim=0, **kw):
    torch.manual_seed(0)
    return build_model(arch, group_channels=GC, n_classes=3, cond_dim=cond_dim, **kw)


def _inputs(b=2, h=32, w=48, cond_dim=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, C, h, w, generator=g)
    present = torch.ones(b, len(GC))
    cond = torch.randn(b, cond_dim, generator=g) if cond_dim else None
    return x, present, cond


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("cond_dim", [0, 3])
def test_output_shapes_and_attributes(arch, cond_dim):
    m = _model(arch, cond_dim).eval()
    assert (m.arch, m.size, m.n_classes, m.group_channels, m.cond_dim) == (
        arch, "tiny", 3, GC, cond_dim)
    assert m.multiple == 16
    x, present, cond = _inputs(h=32, w=48, cond_dim=cond_dim)
    with torch.no_grad():
        out = m(x, present, cond)
        main, aux = m.forward_aux(x, present, cond)
    assert out.shape == (2, 3, 32, 48)
    assert len(aux) == 2
    assert all(a.shape == (2, 3, 32, 48) for a in aux)
    torch.testing.assert_close(main, out)
    assert torch.isfinite(out).all()
    assert not torch.allclose(aux[0], aux[1])


@pytest.mark.parametrize("arch", ARCHS)
def test_cond_changes_output(arch):
    m = _model(arch, cond_dim=3).eval()
    for p in m.modules():  # FiLM starts as the identity; perturb so cond matters
        if type(p).__name__ == "FiLM":
            torch.nn.init.normal_(p.mlp[-1].weight, std=0.1)
    x, present, cond = _inputs(cond_dim=3)
    with torch.no_grad():
        a = m(x, present, cond)
        b = m(x, present, cond + 1.0)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("arch", ARCHS)
def test_absent_group_is_ignored_and_output_finite(arch):
    m = _model(arch).eval()
    x, present, _ = _inputs()
    with torch.no_grad():
        full = m(x, present)
        p = present.clone()
        p[:, 2] = 0  # sar missing
        x_missing = x.clone()
        x_missing[:, 6:8] = 0
        missing = m(x_missing, p)
        # whatever sits in the absent group's channels is ignored
        x_garbage = x.clone()
        x_garbage[:, 6:8] = 1e3
        garbage = m(x_garbage, p)
        # all groups absent for one sample still gives finite logits
        p_none = present.clone()
        p_none[1] = 0
        none = m(x, p_none)
    assert torch.isfinite(missing).all() and torch.isfinite(none).all()
    assert not torch.allclose(full, missing, atol=1e-4)
    torch.testing.assert_close(garbage, missing)
    torch.testing.assert_close(none[0], full[0], rtol=1e-5, atol=1e-5)  # per-sample


def test_glavitu_single_group_is_renormalised():
    """With one group present the fusion weight is 1, whatever the other features are."""
    m = _model("glavitu").eval()
    x, _, _ = _inputs()
    p = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    with torch.no_grad():
        fused = m.fuse(x, p)
        expected = m.stems[0](x[:, :4]) + m.presence(p)[:, :, None, None]
    torch.testing.assert_close(fused, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_reaches_every_group(arch):
    m = _model(arch, cond_dim=2)
    x, present, cond = _inputs(cond_dim=2)
    main, aux = m.forward_aux(x, present, cond)
    (main.square().mean() + sum(a.square().mean() for a in aux)).backward()
    if arch == "glavitu":
        for g, stem in enumerate(m.stems):
            grads = [p.grad for p in stem.parameters()]
            assert all(gr is not None for gr in grads), f"stem {g} has no gradient"
            assert sum(gr.abs().sum() for gr in grads) > 0, f"stem {g} gets zero gradient"
        assert m.gates[0].weight.grad.abs().sum() > 0
    else:
        w = m.stem[0].weight.grad  # (w0, C, 3, 3)
        for g, sl in enumerate([slice(0, 4), slice(4, 6), slice(6, 8), slice(8, 9)]):
            assert w[:, sl].abs().sum() > 0, f"group {g} gets zero gradient"
    no_grad = [n for n, p in m.named_parameters() if p.grad is None]
    assert no_grad == []


@pytest.mark.parametrize("arch", ARCHS)
def test_input_errors_say_how_to_fix(arch):
    m = _model(arch, cond_dim=2).eval()
    x, present, cond = _inputs(cond_dim=2)
    with pytest.raises(InputError, match=r"pad the tile to a multiple of 16 px \(here 48×48\)"):
        m(torch.zeros(1, C, 40, 48), torch.ones(1, 4), torch.zeros(1, 2))
    with pytest.raises(InputError, match="expects 9 = sum of group_channels"):
        m(x[:, :8], present, cond)
    with pytest.raises(InputError, match=r"present must have shape \(B, G\) = \(2, 4\)"):
        m(x, present[:, :3], cond)
    with pytest.raises(InputError, match="cond is None"):
        m(x, present, None)
    with pytest.raises(InputError, match=r"cond must have shape"):
        m(x, present, cond[:, :1])
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        m(x[0], present, cond)
    with pytest.raises(InputError, match="cond=None"):
        _model(arch).eval()(x, present, cond)


def test_build_model_errors():
    with pytest.raises(InputError, match="unknown arch 'unet'"):
        build_model("unet", group_channels=GC, n_classes=2)
    with pytest.raises(InputError, match="unknown size 'huge'"):
        build_model("glavitu", group_channels=GC, n_classes=2, size="huge")
    with pytest.raises(InputError, match=r"unknown override.*bottleneck"):
        build_model("glavitu", group_channels=GC, n_classes=2, bottleneck=64)
    with pytest.raises(InputError, match="divisible by heads"):
        build_model("glavitu", group_channels=GC, n_classes=2, dim=100, heads=3)
    with pytest.raises(InputError, match="n_classes must be >= 2"):
        build_model("resunet", group_channels=GC, n_classes=1)
    with pytest.raises(InputError, match="group_channels"):
        build_model("resunet", group_channels=(4, 0), n_classes=2)


@pytest.mark.parametrize("arch", ARCHS)
def test_model_kwargs_rebuilds_same_model(arch):
    m = _model(arch, cond_dim=3, size="tiny", widths=(8, 16, 32, 48), dropout=0.2).eval()
    kw = json.loads(json.dumps(model_kwargs(m)))  # the model file stores JSON
    assert kw["arch"] == arch and kw["widths"] == [8, 16, 32, 48] and kw["dropout"] == 0.2
    m2 = build_model(**kw).eval()
    s1, s2 = m.state_dict(), m2.state_dict()
    assert list(s1) == list(s2)
    assert all(s1[k].shape == s2[k].shape for k in s1)
    m2.load_state_dict(s1)
    x, present, cond = _inputs(cond_dim=3)
    with torch.no_grad():
        torch.testing.assert_close(m(x, present, cond), m2(x, present, cond))
    assert model_kwargs(m2) == kw


def test_sizes_grow_and_overrides_apply():
    counts = {}
    for arch in ARCHS:
        counts[arch] = [count_parameters(build_model(arch, group_channels=GC, n_classes=2,
                                                     size=s)) for s in SIZES[arch]]
        assert counts[arch] == sorted(counts[arch]) and len(set(counts[arch])) == 3
    # tiny GlaViTU is well under the 1M-parameter mark, the paper-sized one ~10M
    assert counts["glavitu"][0] < 1_000_000
    assert 8_000_000 < counts["glavitu"][2] < 12_000_000
    m = build_model("glavitu", group_channels=GC, n_classes=2, n_blocks=3, dim=64, heads=2)
    assert len(m.blocks) == 3 and m.blocks[0].attn.heads == 2
    assert count_parameters(m, trainable_only=True) == count_parameters(m)


@pytest.mark.parametrize("arch", ARCHS)
def test_mc_dropout(arch):
    m = _model(arch, dropout=0.3)
    x, present, _ = _inputs()
    m.eval()
    with torch.no_grad():
        a, b = m(x, present), m(x, present)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert enable_mc_dropout(m) is m
    assert not m.training
    modes = {type(mod).__name__: mod.training for mod in m.modules()}
    assert modes["Dropout2d"] and not modes["GroupNorm"] and not modes["Conv2d"]
    with torch.no_grad():
        c, d = m(x, present), m(x, present)
    assert not torch.allclose(c, d)
    assert torch.isfinite(c).all()
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x, present), a, rtol=0, atol=0)
    with pytest.raises(InputError, match="no dropout"):
        enable_mc_dropout(_model("resunet", dropout=0.0))


def _onnx_roundtrip(m, tmp_path, cond_dim):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    m.eval()
    x, present, cond = _inputs(b=2, h=64, w=64, cond_dim=cond_dim)
    args = (x, present, cond) if cond_dim else (x, present)
    shapes = onnx_dynamic_shapes(m)
    if not cond_dim:
        del shapes["cond"]
    path = tmp_path / "model.onnx"
    torch.onnx.export(m, args, path, dynamo=True, dynamic_shapes=shapes, optimize=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # another batch size and tile size than at export, one group missing in one sample
    x2, present2, cond2 = _inputs(b=3, h=96, w=128, cond_dim=cond_dim, seed=5)
    present2[1, 2] = 0
    x2[1, 6:8] = 0
    feeds = {"x": x2.numpy(), "present": present2.numpy()}
    if cond_dim:
        feeds["cond"] = cond2.numpy()
    assert sorted(i.name for i in sess.get_inputs()) == sorted(feeds)
    (out,) = sess.run(None, feeds)
    with torch.no_grad():
        ref = m(x2, present2, cond2).numpy()
    assert out.shape == (3, 3, 96, 128)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


# torch's exporter warns from inside torch (a pytree FutureWarning; an axis-renaming note
# because x, present and cond share the batch dimension)
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
def test_onnx_dynamo_export_glavitu_dynamic_shapes(tmp_path):
    _onnx_roundtrip(_model("glavitu", cond_dim=3), tmp_path, 3)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*axis name.*:UserWarning")
@pytest.mark.parametrize(("arch", "cond_dim"), [("glavitu", 0), ("resunet", 2)])
def test_onnx_dynamo_export_more(tmp_path, arch, cond_dim):
    _onnx_roundtrip(_model(arch, cond_dim=cond_dim), tmp_path, cond_dim)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # inside F.group_norm
@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_legacy_export(tmp_path, arch):
    ort = pytest.importorskip("onnxruntime")
    m = _model(arch, cond_dim=2).eval()
    x, present, cond = _inputs(b=2, h=64, w=64, cond_dim=2)
    path = tmp_path / "legacy.onnx"
    axes = {"x": {0: "b", 2: "h", 3: "w"}, "present": {0: "b"}, "cond": {0: "b"}}
    torch.onnx.export(m, (x, present, cond), path, dynamo=False, opset_version=17,
                      input_names=["x", "present", "cond"], dynamic_axes=axes)
    x2, present2, cond2 = _inputs(b=3, h=96, w=128, cond_dim=2, seed=5)
    present2[1, 2] = 0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"x": x2.numpy(), "present": present2.numpy(),
                             "cond": cond2.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, m(x2, present2, cond2).numpy(), rtol=0, atol=1e-4)


def test_tiny_glavitu_overfits_one_batch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    target = torch.stack([
        ((yy - 30) ** 2 + (xx - 24) ** 2 < 18.0**2),  # a round "glacier"
        ((yy + xx) > 70) & (xx < 50),  # a tongue-shaped one
    ]).long()  # (2, 64, 64)
    # noisy enough that single pixels are ambiguous (~70 % by thresholding): spatial context
    x = 2.0 * torch.randn(2, C, 64, 64, generator=g)
    x[:, 0:4] += target[:, None].float()  # brighter in the optical channels
    x[:, 4] -= 0.5 * target.float()  # and slightly lower in the DEM
    m = build_model("glavitu", group_channels=GC, n_classes=2, size="tiny", dropout=0.0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    loss_fn = FocalLoss(gamma=0.0)
    m.train()  # dropout=0 and GroupNorm: training-mode logits equal evaluation-mode ones
    for step in range(150):
        main, aux = m.forward_aux(x)
        accuracy = (main.detach().argmax(1) == target).float().mean().item()
        if step == 0:
            assert accuracy < 0.8  # not solved before training
        if accuracy > 0.97:
            break
        loss, _ = deep_supervision_loss(main, aux, target, loss_fn)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        accuracy = (m(x).argmax(1) == target).float().mean().item()
    assert accuracy > 0.95, f"pixel accuracy {accuracy:.3f} after {step} steps"
