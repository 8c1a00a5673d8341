"""The model file (.gkm) and ONNX export: round trip, corrupt files, versions, export parity."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
from standins import StandIn  # noqa: E402

from glacierkit.dl.bundle import (  # noqa: E402
    FORMAT_VERSION,
    ModelBundle,
    load_bundle,
    register_arch,
    save_bundle,
)
from glacierkit.dl.export import check_onnx, export_onnx  # noqa: E402
from glacierkit.errors import (  # noqa: E402
    InputError,
    ModelFileError,
    OutputExistsError,
)

REPO = Path(__file__).resolve().parents[2]


register_arch("standin", StandIn)


def standin_bundle(model: StandIn, **kw) -> ModelBundle:
    layout = {"groups": [{"name": "optical", "kind": "optical",
                          "channels": ["red", "green", "blue", "nir"],
                          "bands": ["red", "green", "blue", "nir"]},
                         {"name": "dem", "kind": "dem", "channels": ["elevation", "slope"],
                          "bands": ["elevation"], "hillshade_azimuth": 315.0,
                          "hillshade_altitude": 45.0}]}
    norm = {"mean": [0.2, 0.2, 0.2, 0.3, 3000.0, 20.0], "std": [0.1, 0.1, 0.1, 0.1, 800.0, 10.0],
            "names": None}
    args = {"arch": "standin",
            "model_kwargs": {"group_channels": list(model.group_channels),
                             "n_classes": model.n_classes, "cond_dim": model.cond_dim},
            "layout": layout, "norm": norm, "classes": ["background", "glacier"],
            "tile": {"size": 64, "overlap": 16, "multiple": 4},
            "training": {"seed": 0, "metrics": {"iou": 0.5}}}
    args.update(kw)
    return ModelBundle(**args)


@pytest.fixture(scope="module")
def model() -> StandIn:
    torch.manual_seed(0)
    return StandIn().eval()


@pytest.fixture(scope="module")
def onnx_bytes(model) -> bytes:
    return export_onnx(model, group_channels=(4, 2), cond_dim=0, example_size=(32, 32))


@pytest.fixture
def gkm(tmp_path, model, onnx_bytes) -> Path:
    return save_bundle(tmp_path / "m.gkm", standin_bundle(model), state_dict=model.state_dict(),
                       onnx_bytes=onnx_bytes)


# ---------------------------------------------------------------------------- round trip
def test_round_trip(gkm, model, onnx_bytes):
    b = load_bundle(gkm)
    ref = standin_bundle(model)
    assert b.metadata() == {**ref.metadata(), "format_version": FORMAT_VERSION}
    assert b.path == gkm and b.has_onnx and b.onnx_bytes() == onnx_bytes
    rebuilt = b.build_torch_model("cpu")
    assert not rebuilt.training
    x = torch.randn(2, 6, 24, 40)
    present = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    with torch.no_grad():
        assert torch.equal(rebuilt(x, present), model(x, present))
    names = set(zipfile.ZipFile(gkm).namelist())
    assert names == {"metadata.json", "weights.pt", "model.onnx"}
    meta = json.loads(zipfile.ZipFile(gkm).read("metadata.json"))
    assert meta["format"] == "glacierkit-model" and meta["classes"] == ["background", "glacier"]


def test_in_memory_bundle_and_no_onnx(tmp_path, model):
    b = standin_bundle(model).with_weights(model.state_dict())
    assert not b.has_onnx
    p = save_bundle(tmp_path / "w.gkm", b)
    loaded = load_bundle(p)
    assert not loaded.has_onnx and loaded.onnx_bytes() is None
    assert set(loaded.state_dict()) == set(model.state_dict())
    with pytest.raises(ModelFileError, match="no weights"):
        save_bundle(tmp_path / "x.gkm", standin_bundle(model))
    assert not (tmp_path / "x.gkm").exists()


def test_overwrite_refused(gkm, model):
    before = gkm.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_bundle(gkm, standin_bundle(model), state_dict=model.state_dict())
    assert gkm.read_bytes() == before
    save_bundle(gkm, standin_bundle(model), state_dict=model.state_dict(), overwrite=True)
    assert not load_bundle(gkm).has_onnx
    assert [p.name for p in gkm.parent.iterdir()] == [gkm.name]  # no temporary left


# ---------------------------------------------------------------------------- broken files
@pytest.mark.parametrize("frac", [0.05, 0.5, 0.9, 0.999])
def test_truncated_file(gkm, tmp_path, frac):
    data = gkm.read_bytes()
    bad = tmp_path / "truncated.gkm"
    bad.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(ModelFileError, match=r"truncated\.gkm.*truncated"):
        load_bundle(bad)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "text.gkm"
    bad.write_text("hello")
    with pytest.raises(ModelFileError, match="not a glacierkit model file"):
        load_bundle(bad)


def test_corrupt_member_detected(gkm, tmp_path):
    data = bytearray(gkm.read_bytes())
    with zipfile.ZipFile(gkm) as zf:
        info = zf.getinfo("weights.pt")
    mid = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[mid] ^= 0xFF
    bad = tmp_path / "flipped.gkm"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"weights\.pt.*CRC"):
        load_bundle(bad)


def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return path


def test_zip_without_metadata(tmp_path):
    p = _zip(tmp_path / "nometa.gkm", {"weights.pt": b"x"})
    with pytest.raises(ModelFileError, match=r"no metadata\.json"):
        load_bundle(p)


def test_missing_weights(gkm, tmp_path):
    meta = zipfile.ZipFile(gkm).read("metadata.json")
    p = _zip(tmp_path / "noweights.gkm", {"metadata.json": meta})
    with pytest.raises(ModelFileError, match=r"no weights\.pt"):
        load_bundle(p)


@pytest.mark.parametrize(("version", "hint"), [(FORMAT_VERSION + 1, "upgrade glacierkit"),
                                               (0, "re-save it")])
def test_version_mismatch(gkm, tmp_path, version, hint):
    meta = json.loads(zipfile.ZipFile(gkm).read("metadata.json"))
    meta.update(format_version=version, glacierkit_version="9.9.9")
    p = _zip(tmp_path / "v.gkm", {"metadata.json": json.dumps(meta), "weights.pt": b"x"})
    with pytest.raises(ModelFileError) as e:
        load_bundle(p)
    msg = str(e.value)
    assert f"format version {version}" in msg and "glacierkit 9.9.9" in msg
    assert "reads format version(s) 1, 2" in msg and hint in msg.lower()


def test_format_1_file_loads_and_predicts_the_same(gkm, tmp_path, model):
    """A format-1 file (no ``inputs``/``series`` keys) loads; its inputs are derived."""
    z = zipfile.ZipFile(gkm)
    meta = json.loads(z.read("metadata.json"))
    meta["format_version"] = 1
    for key in ("inputs", "series"):
        meta.pop(key)
    p = _zip(tmp_path / "v1.gkm", {"metadata.json": json.dumps(meta),
                                   "weights.pt": z.read("weights.pt")})
    b = load_bundle(p)
    assert b.format_version == 1 and b.series is None
    assert [i["name"] for i in b.inputs] == ["x", "present"]
    assert b.inputs[0]["shape"] == ["B", 6, "H", "W"]
    x, present = torch.randn(1, 6, 32, 32), torch.ones(1, 2)
    with torch.inference_mode():
        assert torch.equal(b.build_torch_model("cpu")(x, present), model(x, present))


def test_wrong_format_and_missing_keys(gkm, tmp_path):
    meta = json.loads(zipfile.ZipFile(gkm).read("metadata.json"))
    p = _zip(tmp_path / "f.gkm", {"metadata.json": json.dumps({**meta, "format": "other"}),
                                  "weights.pt": b"x"})
    with pytest.raises(ModelFileError, match="not a glacierkit model file"):
        load_bundle(p)
    del meta["classes"]
    p = _zip(tmp_path / "k.gkm", {"metadata.json": json.dumps(meta), "weights.pt": b"x"})
    with pytest.raises(ModelFileError, match=r"lacks.*classes"):
        load_bundle(p)
    p = _zip(tmp_path / "j.gkm", {"metadata.json": "{not json", "weights.pt": b"x"})
    with pytest.raises(ModelFileError, match=r"metadata\.json"):
        load_bundle(p)


def test_weights_that_do_not_fit(tmp_path, model):
    other = StandIn(width=4)
    p = save_bundle(tmp_path / "mismatch.gkm", standin_bundle(model),
                    state_dict=other.state_dict())
    with pytest.raises(ModelFileError, match="do not fit"):
        load_bundle(p).build_torch_model()
    p2 = save_bundle(tmp_path / "arch.gkm", standin_bundle(model, arch="no-such-arch"),
                     state_dict=model.state_dict())
    with pytest.raises((ModelFileError, InputError), match="no-such-arch"):
        load_bundle(p2).build_torch_model()


def test_metadata_and_onnx_load_without_torch(gkm):
    """bundle.py and predict.py import no torch: metadata and the graph read with torch blocked."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import glacierkit.dl.predict, glacierkit.dl.export as _e\n"
        "raise SystemExit('export should need torch')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode != 0 and "export should need torch" not in r.stderr
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from glacierkit.dl.bundle import load_bundle\n"
        "import glacierkit.dl.predict\n"
        f"b = load_bundle({str(gkm)!r})\n"
        "assert b.arch == 'standin' and len(b.onnx_bytes()) > 1000\n"
        "import onnxruntime as ort\n"
        "s = ort.InferenceSession(b.onnx_bytes(), providers=['CPUExecutionProvider'])\n"
        "print([i.name for i in s.get_inputs()])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "['x', 'present']" in r.stdout


# ---------------------------------------------------------------------------- export
def test_export_dynamic_shapes_and_parity(model, onnx_bytes):
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    assert [i.name for i in proto.graph.input] == ["x", "present"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    rng = np.random.default_rng(1)
    # Export traced at 32×32, batch 2; run at batch 3 and a non-square size.
    inputs = {"x": rng.standard_normal((3, 6, 44, 72)).astype(np.float32),
              "present": np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float32)}
    diff = check_onnx(model, onnx_bytes, inputs, 1e-4)
    assert 0 <= diff <= 1e-4


def test_export_conditioned_model_and_silence(capfd):
    torch.manual_seed(1)
    m = StandIn(cond_dim=3).train()  # training mode must be restored after export
    data = export_onnx(m, group_channels=(4, 2), cond_dim=3, example_size=(30, 30))
    assert m.training
    out, err = capfd.readouterr()
    assert out == "" and "torch.onnx" not in err  # the exporter's messages are kept quiet
    m.eval()
    rng = np.random.default_rng(2)
    inputs = {"x": rng.standard_normal((1, 6, 20, 36)).astype(np.float32),
              "present": np.ones((1, 2), np.float32),
              "cond": rng.standard_normal((1, 3)).astype(np.float32)}
    assert check_onnx(m, data, inputs, 1e-4) <= 1e-4
    with pytest.raises(ModelFileError, match="disagrees"):
        check_onnx(StandIn(cond_dim=3).eval(), data, inputs, 1e-4)


def test_export_rejects_bad_arguments(model):
    with pytest.raises(InputError, match="group_channels"):
        export_onnx(model, group_channels=(), cond_dim=0)
    with pytest.raises(InputError, match="cond_dim"):
        export_onnx(model, group_channels=(4, 2), cond_dim=-1)
