"""Memory budget of tiled inference: activation estimate, tiles per call, refusals."""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402
from standins import BrightStandIn  # noqa: E402
from test_predict import LAYOUT, _norm, _scene_arrays, _write  # noqa: E402

from glacierkit.cli.main import main  # noqa: E402
from glacierkit.dl import predict as predict_mod  # noqa: E402
from glacierkit.dl.bundle import bundle_from_model, save_bundle  # noqa: E402
from glacierkit.dl.export import export_onnx  # noqa: E402
from glacierkit.dl.memory import (  # noqa: E402
    RUNTIME_FACTOR,
    activation_bytes,
    model_bytes_per_tile,
    tiles_per_call,
)
from glacierkit.dl.predict import predict_scene  # noqa: E402
from glacierkit.errors import MemoryBudgetError  # noqa: E402
from glacierkit.memory import Budget  # noqa: E402


def _graph() -> bytes:
    """x (1, 6, H, W) → 3×3 conv to 8 channels → ReLU → 1×1 conv to 2 channels."""
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [8, 6, 3, 3], np.zeros(432).tolist())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [2, 8, 1, 1], np.zeros(16).tolist())
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6, "h", "w"]),
         helper.make_tensor_value_info("present", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2, "h", "w"])],
        initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_activation_bytes__live_tensor_peak_of_a_graph():
    # a (8 ch) and b (8 ch) are alive together, then a is freed before the output (2 ch).
    for h, w in ((64, 64), (128, 96)):
        assert activation_bytes(_graph(), {"x": (1, 6, h, w), "present": (1, 2)}) == 64 * h * w
    est, how = model_bytes_per_tile(_graph(), n_channels=6, n_groups=2, cond_dim=0,
                                    tile_hw=(64, 64))
    assert est == RUNTIME_FACTOR * 64 * 64 * 64 and "ONNX" in how
    est, how = model_bytes_per_tile(None, n_channels=6, n_groups=2, cond_dim=0,
                                    tile_hw=(64, 64))
    assert est > 0 and "assumed" in how


def test_tiles_per_call__within_budget_and_refusal():
    kw = {"tile_hw": (512, 512), "n_channels": 6, "n_classes": 2, "scene_width": 10000,
          "tta": False}
    model = 700.0 * 512 * 512
    big = tiles_per_call(Budget(10**10, "test"), model_bytes=model, limit=4, threaded=True, **kw)
    assert big == 4
    one = tiles_per_call(Budget(4 * 10**8, "test"), model_bytes=model, limit=4, threaded=True,
                         **kw)
    assert one == 1
    with pytest.raises(MemoryBudgetError) as err:
        tiles_per_call(Budget(10**8, "max_memory='100MB'"), model_bytes=model, limit=1,
                       threaded=False, **kw)
    msg = str(err.value)
    assert "--tile-size" in msg and "--max-memory" in msg and "512 × 512 px" in msg
    assert isinstance(err.value, MemoryError)


@pytest.fixture(scope="module")
def standin_scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("memscene")
    opt, dem = _scene_arrays()
    torch.manual_seed(0)
    model = BrightStandIn().eval()
    bundle = bundle_from_model(
        model, layout=LAYOUT.to_dict(), norm=_norm(opt, dem).to_dict(),
        classes=["background", "glacier"], tile={"size": 64, "overlap": 16},
        training={"group_dropout": 0.0},
        model_kwargs={"group_channels": [4, 2], "n_classes": 2, "cond_dim": 0},
        onnx_bytes=export_onnx(model, group_channels=(4, 2), cond_dim=0,
                               example_size=(32, 32)))
    return {"model": save_bundle(d / "standin.gkm", bundle),
            "sources": {"optical": _write(d / "opt.tif", opt),
                        "dem": _write(d / "dem.tif", dem)}}


def test_predict_scene__refuses_a_tile_that_cannot_fit(standin_scene, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_mod, "run_tiled",
                        lambda *a, **k: pytest.fail("tiles ran although one cannot fit"))
    with pytest.raises(MemoryBudgetError, match="--tile-size"):
        predict_scene(standin_scene["model"], standin_scene["sources"], tmp_path / "o",
                      backend="onnx", progress=False, max_memory="50kB", check_domain=False)


def test_predict_scene__budget_lowers_the_batch(standin_scene, tmp_path, caplog):
    kw = {"backend": "onnx", "progress": False, "check_domain": False, "outlines": False,
          "write_probabilities": True}
    free = predict_scene(standin_scene["model"], standin_scene["sources"], tmp_path / "a",
                         batch_size=4, **kw)
    # Enough for one 64 px tile of this model (about 2.5 MB with the blend strips) but not
    # for two (each more tile adds its activations and buffers, about 1.4 MB).
    with caplog.at_level(logging.INFO, logger="glacierkit.dl.predict"):
        tight = predict_scene(standin_scene["model"], standin_scene["sources"], tmp_path / "b",
                              batch_size=4, max_memory=3_000_000, **kw)
    assert any("1 tile(s) per model call" in m for m in caplog.messages), caplog.messages
    import rasterio

    with rasterio.open(free.probabilities) as a, rasterio.open(tight.probabilities) as b:
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-6)


def test_map_predict_cli__max_memory(standin_scene, tmp_path, capsys):
    src = standin_scene["sources"]
    rc = main(["map", "predict", str(standin_scene["model"]), f"optical={src['optical']}",
               f"dem={src['dem']}", "-o", str(tmp_path / "o"), "--max-memory", "50kB",
               "--allow-domain-shift"])
    err = capsys.readouterr().err
    assert rc == 1 and "--tile-size" in err and "--max-memory" in err, err
