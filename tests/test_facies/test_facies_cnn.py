"""The facies patch CNN (FaciesCNN) and its trainer (PatchNet): dense = patch-centre logits,
learning a trivially separable set, the per-pixel variant, receptive-field checks, and the
model file (torch weights and ONNX graph) round trip."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from glacierkit.dl.models import build_model, model_kwargs  # noqa: E402
from glacierkit.dl.models.facies_cnn import (  # noqa: E402
    FACIES_CNN_SIZES,
    center_logits,
    receptive_field,
)
from glacierkit.errors import InputError  # noqa: E402
from glacierkit.facies.models import PatchNet, patchnet_bundle, sample_weights  # noqa: E402

SMALL = {"widths": [8, 8], "dilations": [1, 2], "kernel": 3}   # receptive field 7 px


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op torch thread (shared 2-core machines; see tests/test_dl/conftest.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _random_bn(model):
    """Non-trivial BatchNorm statistics, so that eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(0)
    for bn in model.norms:
        bn.running_mean.copy_(torch.rand(bn.num_features, generator=g) * 2 - 1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.bias.data.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
    return model.eval()


def _patches(seed=0, n=161, size=9, channels=2, k=3):
    """Patches whose every pixel carries its class (−2, 0, 2 ± 0.3 in channel 0; negated in
    channel 1): trivially separable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(0, 0.3, (n, channels, size, size)) + np.linspace(-2, 2, k)[y][:, None, None,
                                                                                   None]
    X[:, 1] *= -1
    return X.astype(np.float32), y


# ------------------------------------------------------------------------------ the network
def test_receptive_field_and_presets():
    assert receptive_field(3, (1, 2, 4, 8, 1)) == 33
    assert receptive_field(1, (1, 1, 1)) == 1
    for size, rf in (("tiny", 33), ("small", 33), ("base", 35), ("pixel", 1)):
        m = build_model("facies_cnn", group_channels=(4,), n_classes=3, size=size)
        assert m.receptive_field == rf, size
    assert set(FACIES_CNN_SIZES) == {"tiny", "small", "base", "pixel"}
    m = build_model("facies_cnn", group_channels=(4,), n_classes=3, **SMALL)
    assert m.receptive_field == 7
    kw = model_kwargs(m)
    assert kw["arch"] == "facies_cnn" and kw["widths"] == [8, 8] and kw["dilations"] == [1, 2]


def test_dense_prediction_equals_patch_centre():
    # 8 input channels = the first width: the residual also runs on layer 1
    m = _random_bn(build_model("facies_cnn", group_channels=(5, 3), n_classes=4,
                               widths=[8, 8, 8], dilations=[1, 2, 3], kernel=3))
    rf = m.receptive_field
    assert rf == 13
    h = rf // 2
    x = torch.randn(2, 8, 24, 30, generator=torch.Generator().manual_seed(1))
    present = torch.ones(2, 2)
    with torch.no_grad():
        dense = m(x, present)
        assert dense.shape == (2, 4, 24, 30)
        for r, c in ((h, h), (11, 17), (24 - h - 1, 30 - h - 1)):   # interior pixels
            patch = x[:, :, r - h:r + h + 1, c - h:c + h + 1]
            centre = center_logits(m, patch)
            torch.testing.assert_close(centre, dense[:, :, r, c], rtol=0, atol=1e-5)
        # a larger patch is cropped to the receptive field around its centre
        r, c = 11, 17
        big = x[:, :, r - h - 2:r + h + 3, c - h - 2:c + h + 3]
        assert big.shape[-2:] == (rf + 4, rf + 4)
        torch.testing.assert_close(center_logits(m, big), dense[:, :, r, c], rtol=0,
                                   atol=1e-5)
        # closer to the edge than rf // 2 the dense pass zero-pads inner layers, which a
        # zero-padded input patch does not reproduce: the documented limit of the equality
        edge = center_logits(m, torch.nn.functional.pad(x, (h, h, h, h))[:, :, :rf, :rf])
        assert (edge - dense[:, :, 0, 0]).abs().max() > 1e-3
        assert m.valid_padding is False                         # restored after the call
        # an absent group is zeroed
        off = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        x0 = x.clone()
        x0[:, 5:] = 0
        torch.testing.assert_close(m(x, off), m(x0, present), rtol=0, atol=1e-6)


def test_center_logits_and_build_bad_input():
    m = build_model("facies_cnn", group_channels=(2,), n_classes=3, **SMALL).eval()
    with pytest.raises(InputError, match="receptive field"):
        center_logits(m, torch.zeros(1, 2, 5, 5))
    with pytest.raises(InputError, match="centred"):
        center_logits(m, torch.zeros(1, 2, 8, 8))
    with pytest.raises(InputError, match="square"):
        center_logits(m, torch.zeros(1, 2, 9, 7))
    with pytest.raises(InputError, match="no conditioning"):
        build_model("facies_cnn", group_channels=(2,), n_classes=3, cond_dim=2)
    with pytest.raises(InputError, match="one dilation per layer"):
        build_model("facies_cnn", group_channels=(2,), n_classes=3, widths=[8, 8],
                    dilations=[1])
    with pytest.raises(InputError, match="odd"):
        build_model("facies_cnn", group_channels=(2,), n_classes=3, kernel=2)
    with pytest.raises(InputError, match="unknown override"):
        build_model("facies_cnn", group_channels=(2,), n_classes=3, depth=2)


# ------------------------------------------------------------------------------ PatchNet
def test_patchnet_learns_separable_patches():
    # 161 = 5 × 32 + 1: the last batch would hold one patch, whose 1 × 1 output BatchNorm
    # cannot train on; the dataset draws one extra sample instead.
    X, y = _patches(n=161)
    net = PatchNet(n_classes=3, group_channels=(2,), epochs=3, batch_size=32, lr=1e-2,
                   overrides=SMALL, accelerator="cpu")
    net.fit(X, y, sample_weights(y, mode="class"))
    assert len(net.history) == 3
    assert net.model.receptive_field == 7 and not net.model.training
    logits = net.predict_logits(X)
    assert logits.shape == (161, 3) and logits.dtype == np.float32
    acc = (logits.argmax(1) == y).mean()
    assert acc > 0.9, acc
    # larger patches are cropped to the receptive field: same logits
    Xb = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=99.0)
    np.testing.assert_allclose(net.predict_logits(Xb), logits, atol=1e-5)
    # normalisation fitted on the training patches
    assert np.asarray(net.norm.mean).shape == (2,)


def test_pixel_patchnet_on_spectra():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 130)
    F = (rng.normal(0, 0.3, (130, 4)) + np.linspace(-2, 2, 3)[y][:, None]).astype(np.float32)
    net = PatchNet(n_classes=3, group_channels=(4,), size="pixel", epochs=3, batch_size=32,
                   lr=1e-2, overrides={"widths": [16, 16], "dilations": [1, 1]},
                   accelerator="cpu")
    net.fit(F, y)
    assert net.model.receptive_field == 1
    logits = net.predict_logits(F)
    assert (logits.argmax(1) == y).mean() > 0.9
    # patches around the same centre pixels give the same logits (rf 1: centre only)
    P = np.repeat(np.repeat(F[:, :, None, None], 3, axis=2), 3, axis=3)
    P[:, :, 0, :] = 50.0
    np.testing.assert_allclose(net.predict_logits(P), logits, atol=1e-5)


def test_patchnet_bad_input():
    X, y = _patches(n=20, size=5)
    net = PatchNet(n_classes=3, group_channels=(2,), epochs=1, overrides=SMALL,
                   accelerator="cpu")
    with pytest.raises(InputError, match=r"5 px are smaller than the network's receptive "
                                         r"field \(7 px\)"):
        net.fit(X, y)
    with pytest.raises(InputError, match="smaller than the network's receptive field"):
        PatchNet(n_classes=3, group_channels=(4,), size="tiny", epochs=1).fit(
            np.zeros((8, 4), np.float32), np.arange(8) % 3)
    with pytest.raises(InputError, match="3 channels"):
        net.fit(np.zeros((4, 3, 7, 7), np.float32), np.arange(4) % 3)
    with pytest.raises(InputError, match="spectra or"):
        net.fit(np.zeros((4, 2, 7), np.float32), np.arange(4) % 3)
    with pytest.raises(InputError, match="square"):   # would be cropped off-centre
        net.fit(np.zeros((4, 2, 9, 7), np.float32), np.arange(4) % 3)
    with pytest.raises(InputError, match="at least 2 labelled samples"):
        net.fit(np.zeros((4, 2, 7, 7), np.float32), np.arange(3) % 3)
    with pytest.raises(InputError, match="fit the network"):
        net.predict_logits(np.zeros((1, 2, 7, 7), np.float32))


# ------------------------------------------------------------------------------ model file
def test_patchnet_bundle_round_trip_and_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from glacierkit.dl.bundle import load_bundle, save_bundle
    from glacierkit.dl.sources import SourceGroup, SourceLayout
    from glacierkit.facies.vocab import Vocabulary

    X, y = _patches(n=64, channels=4)
    net = PatchNet(n_classes=3, group_channels=(3, 1), epochs=1, batch_size=32, lr=1e-2,
                   overrides=SMALL, accelerator="cpu").fit(X, y)
    layout = SourceLayout((SourceGroup("optical", "optical", ("red", "green", "blue")),
                           SourceGroup("index", "other", ("ndsi",))))
    vocab = Vocabulary.from_preset("aberle", classes=("ice", "snow", "debris", "water"))
    with pytest.raises(InputError, match="channels"):
        patchnet_bundle(net, layout=SourceLayout.standard(("red", "nir")),
                        classes=["ice", "snow", "debris"])
    with pytest.raises(InputError, match="train the network"):
        patchnet_bundle(PatchNet(n_classes=3, group_channels=(3, 1)), layout=layout,
                        classes=["ice", "snow", "debris"])
    bundle = patchnet_bundle(net, layout=layout, classes=["ice", "snow", "debris"],
                             vocabulary=vocab.to_dict(), training={"folds": 3})
    assert bundle.tile["overlap"] == 8 and bundle.tile["multiple"] == 1
    path = save_bundle(tmp_path / "facies.gkm", bundle)
    loaded = load_bundle(path)
    assert loaded.classes == ["ice", "snow", "debris"]
    assert loaded.training["task"] == "facies"
    assert loaded.training["receptive_field_px"] == 7 and loaded.training["folds"] == 3
    assert loaded.training["vocabulary"]["preset"] == "aberle"
    assert loaded.arch == "facies_cnn" and loaded.has_onnx
    np.testing.assert_allclose(loaded.norm["mean"], np.asarray(net.norm.mean))

    rebuilt = loaded.build_torch_model()
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (2, 4, 13, 17)).astype(np.float32)
    present = np.ones((2, 2), np.float32)
    with torch.no_grad():
        ref = net.model(torch.from_numpy(x), torch.from_numpy(present)).numpy()
        again = rebuilt(torch.from_numpy(x), torch.from_numpy(present)).numpy()
    np.testing.assert_array_equal(again, ref)
    sess = ort.InferenceSession(loaded.onnx_bytes(), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x", "present"]
    out = sess.run(None, {"x": x, "present": present})[0]
    assert out.shape == (2, 3, 13, 17)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
