"""Log messages a user reads: no object reprs or staging paths, no Lightning chatter,
one line per training epoch and per demo step."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

TEST_DL = Path(__file__).resolve().parents[1] / "test_dl"
# What a user must never read in an INFO line: object reprs, temporary or staging names.
NOT_FOR_USERS = re.compile(r"object at 0x|Executor\(|\.part\b|\.glacierkit-|staging|/tmp\w{8}/")


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


# --------------------------------------------------------------------------------- training
@pytest.fixture
def torch_one_thread():
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small CPU workloads stall with threads on a shared machine
    yield torch
    torch.set_num_threads(n)


def _toy_fit(torch, out: Path, **cfg_kw):
    """Two epochs of a tiny model on 8 contract-shaped 16×16 patches (+ 4 for validation)."""
    from glacierkit.dl.models import build_model
    from glacierkit.dl.train import TrainConfig, fit

    class Patches(torch.utils.data.Dataset):
        def __init__(self, n: int, seed: int) -> None:
            self.n, self.seed = n, seed

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> dict:
            rng = np.random.default_rng([self.seed, i])
            x = rng.normal(size=(3, 16, 16)).astype(np.float32)
            y = (x[0] > 0).astype(np.int64)
            return {"x": torch.from_numpy(x), "present": torch.ones(2),
                    "cond": torch.zeros(0), "y": torch.from_numpy(y), "scene": 0, "row": 0,
                    "col": 0}

    torch.manual_seed(0)
    model = build_model("resunet", group_channels=(2, 1), n_classes=2, cond_dim=0,
                        widths=(8, 8, 16), bottleneck=16)
    cfg = TrainConfig(**{"arch": "resunet", "epochs": 2, "batch_size": 4, "lr": 3e-3,
                         "accelerator": "cpu", "progress": True, **cfg_kw})
    return fit(model, Patches(8, 0), Patches(4, 1), cfg, out_dir=out)


class _Collect(logging.Handler):
    """Stands in for Lightning's own stderr handler on the ``lightning`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lightning_handler():
    h = _Collect()
    logging.getLogger("lightning").addHandler(h)
    yield h
    logging.getLogger("lightning").removeHandler(h)


def test_training_logs_one_line_per_epoch_and_no_lightning_chatter(
        torch_one_thread, tmp_path, caplog, capfd, lightning_handler) -> None:
    caplog.set_level(logging.INFO)
    res = _toy_fit(torch_one_thread, tmp_path / "run")
    out, err = capfd.readouterr()
    text = "\n".join([caplog.text, out, err, *lightning_handler.messages])
    for chatter in ("💡", "Tip:", "litlogger", "litmodels", "`Trainer.fit` stopped",
                    "GPU available", "Trainable params"):
        assert chatter not in text
    assert lightning_handler.messages == []
    # stdout is for results: no progress bar there (stderr is not a terminal here either)
    assert out == ""
    ours = [r.getMessage() for r in caplog.records if r.name == "glacierkit.dl.train"]
    epochs = [m for m in ours if m.startswith("epoch ")]
    assert [m.split(":")[0] for m in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("train loss" in m and "val IoU" in m and m.endswith(" s)") for m in epochs)
    done = [m for m in ours if m.startswith("training done")]
    assert len(done) == 1 and "epochs = 2 reached" in done[0] and str(res.steps) in done[0]
    # Lightning's handler is back after training
    assert lightning_handler in logging.getLogger("lightning").handlers


def test_training_verbose_shows_lightning_messages_once(
        torch_one_thread, tmp_path, caplog, lightning_handler) -> None:
    caplog.set_level(logging.DEBUG)
    _toy_fit(torch_one_thread, tmp_path / "run")
    # through the application's handlers (here: caplog's on the root logger) only
    assert lightning_handler.messages == []
    stopped = [r for r in caplog.records if "`Trainer.fit` stopped" in r.getMessage()]
    assert len(stopped) == 1
    assert not any("💡" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ tiled runs and prediction
def test_tiled_run_logs_the_final_file_and_plain_progress(tmp_path, optical_scene, caplog,
                                                          monkeypatch):
    from glacierkit.tiling import run as tiling_run

    rgb, _ = optical_scene
    monkeypatch.setattr(tiling_run, "PROGRESS_LOG_INTERVAL_S", 0.0)
    caplog.set_level(logging.INFO)
    out = tmp_path / "out.tif"
    res = tiling_run.run_tiled(rgb, out, lambda arrays, tile: arrays[0].astype(np.float32),
                               tile_size=48, overlap=8,
                               progress=True)  # stderr is not a terminal here
    lines = _info_lines(caplog)
    assert not [m for m in lines if NOT_FOR_USERS.search(m)], lines
    start = next(m for m in lines if m.startswith("tiled run:"))
    assert "48×48 px, overlap 8×8 px" in start and "serial" in start and str(out) in start
    assert any(m.startswith(f"wrote {out} ") for m in lines)
    # one plain progress line per tile but the last (the interval is 0 s here)
    progress = [m for m in lines if m.startswith("tiles → out.tif: ")]
    assert len(progress) == res.tiles - 1
    assert progress[0].startswith(f"tiles → out.tif: 1/{res.tiles} (")


def test_prediction_logs_final_product_paths(torch_one_thread, tmp_path, optical_scene, caplog):
    pytest.importorskip("onnxruntime")
    from glacierkit.dl.predict import predict_scene

    if str(TEST_DL) not in sys.path:
        sys.path.insert(0, str(TEST_DL))
    from standins import save_optical_standin

    rgb, nir = optical_scene
    gkm = save_optical_standin(tmp_path / "model.gkm", rgb, nir)
    caplog.set_level(logging.INFO)
    res = predict_scene(gkm, {"optical": [rgb, nir]}, tmp_path / "pred", backend="torch",
                        progress=True)
    lines = _info_lines(caplog)
    assert not [m for m in lines if NOT_FOR_USERS.search(m)], lines
    text = "\n".join(lines)
    assert set(res.paths) >= {"classes", "confidence", "outlines"}
    for p in res.paths.values():
        assert str(p) in text, (p, lines)


# ------------------------------------------------------------------------------------ demo
def _quick_steps(fail: bool = False):
    from glacierkit.demo import DemoStep

    def write(name: str):
        def run(out: Path):
            p = out / f"{name}.txt"
            p.write_text(name)
            return [p], {"answer": 42}, []
        return run

    def boom(out: Path):
        raise RuntimeError("step broke")

    return [DemoStep("first", "The first step", write("first")),
            DemoStep("second", "The second step", boom if fail else write("second"))]


def test_demo_logs_start_and_finish_of_every_step(tmp_path, caplog):
    from glacierkit.demo import run_demo

    caplog.set_level(logging.INFO)
    run_demo(tmp_path / "demo", steps=_quick_steps())
    lines = [r.getMessage() for r in caplog.records if r.name == "glacierkit.demo"]
    assert lines[0] == "demo step 1/2 first: The first step"
    assert re.fullmatch(r"demo step 1/2 first done in \d+\.\d s \(1 file\(s\)\)", lines[1])
    assert lines[2] == "demo step 2/2 second: The second step"
    assert re.fullmatch(r"demo step 2/2 second done in \d+\.\d s \(1 file\(s\)\)", lines[3])
    assert lines[4].startswith("demo done: 2 step(s) in ")
    assert lines[4].endswith(str(tmp_path / "demo" / "index.html"))


def test_demo_logs_the_step_that_failed(tmp_path, caplog):
    from glacierkit.demo import run_demo

    caplog.set_level(logging.INFO)
    with pytest.raises(RuntimeError, match="step broke"):
        run_demo(tmp_path / "demo", steps=_quick_steps(fail=True))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("demo step 2/2 second failed after ")


def test_demo_command_table_and_json(tmp_path, monkeypatch, capsys):
    import json

    from glacierkit import demo
    from glacierkit.cli.main import main

    monkeypatch.setattr(demo, "default_steps", _quick_steps)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["-q", "demo", "--out", "d1"]) == 0
    out = capsys.readouterr().out
    assert "The second step" in out and "time s" in out
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    assert main(["-q", "demo", "--out", "d2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in r["steps"]] == ["first", "second"]
    assert r["steps"][0]["numbers"] == {"answer": 42} and r["steps"][0]["seconds"] >= 0


# -------------------------------------------------------------------------------- velocity
def test_velocity_logs_its_stages_and_prints_json(tmp_path, caplog, capsys):
    import json

    from scipy import ndimage

    from glacierkit.cli.main import main
    from glacierkit.io import Grid, write_raster
    from glacierkit.velocity.pipeline import TrackingParams, run_velocity

    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.normal(size=(160, 160)), 2).astype(np.float32)
    grid = Grid(crs=32607, transform=Affine(15, 0, 470000, 0, -15, 6680000), shape=(128, 128))
    ref = write_raster(tmp_path / "ref.tif", img[16:144, 16:144], grid)
    sec = write_raster(tmp_path / "sec.tif", np.roll(img, (1, -2), (0, 1))[16:144, 16:144],
                       grid)
    caplog.set_level(logging.INFO)
    res = run_velocity(ref, sec, tmp_path / "v", dt_days=10, quicklook=False,
                       params=TrackingParams(chip_size_px=32, search_px=6, step_px=16))
    lines = _info_lines(caplog)
    assert not [m for m in lines if NOT_FOR_USERS.search(m)], lines
    start = next(m for m in lines if m.startswith("velocity: tracking ref.tif"))
    assert "128×128 px, chips of 32 px, search ±6 px, every 16 px" in start
    assert any(re.fullmatch(r"velocity: \d+ nodes tracked in \d+\.\d s", m) for m in lines)
    assert lines[-1].startswith("velocity: done in ")
    for p in res.outputs:
        assert any(str(p) in m for m in lines), p

    capsys.readouterr()
    assert main(["-q", "velocity", str(ref), str(sec), "-o", str(tmp_path / "w"), "--chip",
                 "32", "--search", "6", "--step", "16", "--dt-days", "10", "--no-quicklook",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["report"]["time"]["dt_days"] == 10 and r["report"]["units"]["velocity"] == "m/yr"
    assert {Path(p).name for p in r["outputs"]} >= {"velocity.tif", "report.json"}


def test_facies_patch_cnn_logs_one_line_per_fit(torch_one_thread, caplog):
    from glacierkit.facies.models import PatchNet

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 96)
    spectra = (rng.normal(0, 0.3, (96, 4)) + np.linspace(-2, 2, 3)[y][:, None]).astype(
        np.float32)
    caplog.set_level(logging.INFO)
    PatchNet(n_classes=3, group_channels=(4,), size="pixel", epochs=3, batch_size=32,
             overrides={"widths": [8, 8], "dilations": [1, 1]},
             accelerator="cpu").fit(spectra, y)
    lines = _info_lines(caplog)
    assert not [m for m in lines if NOT_FOR_USERS.search(m) or "glacierkit-facies" in m], lines
    assert not [m for m in lines if m.startswith(("epoch ", "training "))], lines
    ours = [m for m in lines if m.startswith("patch CNN")]
    assert len(ours) == 1 and "96 samples: 3 epoch(s), final train loss " in ours[0]
    assert logging.getLogger("glacierkit.dl.train").level == logging.NOTSET  # restored
