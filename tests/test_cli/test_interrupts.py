"""Ctrl-C / SIGTERM while a command works: no product is left, one message, exit 130 / 143.

Interrupts are raised at several points (before the work, between two products, during the
COG conversion, during the final renames) with ``monkeypatch``; one test sends a real SIGINT to
a ``glacierkit velocity`` subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from scipy import ndimage

from glacierkit.cli.main import main
from glacierkit.io import Grid, write_raster
from glacierkit.io.writer import STAGING_PREFIX

RES = 15.0
GRID = Grid(crs=32607, transform=Affine(RES, 0, 470000, 0, -RES, 6680000), shape=(128, 128))
REPO = Path(__file__).resolve().parents[2]


def _texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) * 100 + 1000


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """A textured image and a copy moved by (2, -3) px, as GeoTIFFs (synthetic)."""
    d = tmp_path_factory.mktemp("pair")
    img = _texture((GRID.height + 8, GRID.width + 8))
    ref = img[4:-4, 4:-4]
    sec = np.roll(img, (2, -3), axis=(0, 1))[4:-4, 4:-4]
    return (write_raster(d / "ref.tif", ref.astype(np.float32), GRID),
            write_raster(d / "sec.tif", sec.astype(np.float32), GRID))


def _velocity_args(pair: tuple[Path, Path], out: Path) -> list[str]:
    ref, sec = pair
    return ["velocity", str(ref), str(sec), "-o", str(out), "--chip", "16", "--search", "6",
            "--step", "16", "--dt-days", "16"]


def _assert_clean(out: Path, capsys, *, existed: set[str] | None = None,
                  code: int = 130, rc: int, word: str = "interrupted") -> None:
    err = capsys.readouterr().err
    assert rc == code, err
    assert f"{word}: nothing was written to {out}" in " ".join(err.split())
    if existed is None:
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    else:
        assert {p.name for p in out.iterdir()} == existed
    assert not any(p.name.startswith(STAGING_PREFIX) for p in out.parent.rglob("*"))


def _raise_on_call(n: int, real=None):
    """A stand-in that raises KeyboardInterrupt on its ``n``-th call (calls ``real`` before)."""
    calls = {"n": 0}

    def fn(*a, **k):
        calls["n"] += 1
        if calls["n"] >= n:
            raise KeyboardInterrupt
        return real(*a, **k)

    return fn


def _interrupt_rename_of(name: str, exc: type[BaseException] = KeyboardInterrupt):
    """``os.replace`` that raises when a staged product ``name`` is moved into place."""
    real = os.replace

    def fake(src, dst):
        if Path(dst).name == name and STAGING_PREFIX in str(src) and ".previous" not in str(src):
            raise exc
        return real(src, dst)

    return fake


# ---------------------------------------------------------------------------- velocity
def test_velocity_completes(pair, tmp_path: Path):
    out = tmp_path / "ok"
    assert main(_velocity_args(pair, out)) == 0
    assert {p.name for p in out.iterdir()} == {"velocity.tif", "displacement.tif",
                                                "quality.tif", "quicklook.png", "report.json"}


@pytest.mark.parametrize("where", ["before_tracking", "between_products", "cog_conversion",
                                   "quicklook", "publish_rename"])
def test_velocity_interrupted(pair, tmp_path: Path, monkeypatch, capsys, where: str):
    import glacierkit.velocity.outputs as outputs
    import glacierkit.velocity.pipeline as pipeline

    if where == "before_tracking":
        monkeypatch.setattr(pipeline, "track_pair", _raise_on_call(1))
    elif where == "between_products":
        monkeypatch.setattr(outputs, "write_raster", _raise_on_call(2, outputs.write_raster))
    elif where == "cog_conversion":
        monkeypatch.setattr(rasterio.shutil, "copy", _raise_on_call(3, rasterio.shutil.copy))
    elif where == "quicklook":
        monkeypatch.setattr(pipeline, "write_quicklook", _raise_on_call(1))
    else:
        monkeypatch.setattr(os, "replace", _interrupt_rename_of("quality.tif"))
    out = tmp_path / "new" / "out"
    rc = main(_velocity_args(pair, out))
    _assert_clean(out, capsys, rc=rc)
    assert not (tmp_path / "new").exists()  # folders created for the run are removed


def test_velocity_interrupt_keeps_an_existing_folder_as_it_was(pair, tmp_path: Path,
                                                               monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(os, "replace", _interrupt_rename_of("report.json"))
    rc = main(_velocity_args(pair, tmp_path))
    _assert_clean(tmp_path, capsys, rc=rc, existed={"notes.txt"})


def test_velocity_sigint_during_publish_is_held_and_rolled_back(pair, tmp_path: Path,
                                                                monkeypatch, capsys):
    real = os.replace
    sent: list[int] = []

    def replace_then_signal(src, dst):
        real(src, dst)
        if not sent and Path(dst).name == "velocity.tif" and STAGING_PREFIX in str(src):
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # held back until the renames are undone

    monkeypatch.setattr(os, "replace", replace_then_signal)
    out = tmp_path / "o"
    rc = main(_velocity_args(pair, out))
    assert sent
    _assert_clean(out, capsys, rc=rc)


def test_velocity_sigterm_exits_143(pair, tmp_path: Path, monkeypatch, capsys):
    import glacierkit.velocity.pipeline as pipeline

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the CLI's handler raises here
        raise AssertionError("SIGTERM was not turned into an exception")

    monkeypatch.setattr(pipeline, "track_pair", terminated)
    out = tmp_path / "o"
    rc = main(_velocity_args(pair, out))
    _assert_clean(out, capsys, rc=rc, code=143, word="terminated")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command


def test_velocity_overwrite_failure_during_publish_restores_old_set(pair, tmp_path: Path,
                                                                    monkeypatch, capsys):
    out = tmp_path / "o"
    assert main(_velocity_args(pair, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(os, "replace", _interrupt_rename_of("report.json"))
    rc = main([*_velocity_args(pair, out), "--overwrite", "--step", "8"])
    assert rc == 130
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before


def test_velocity_empty_result_warns_and_reports(tmp_path: Path, caplog):
    """Unrelated images: every node fails the strict quality limits; the report says so."""
    import json

    from glacierkit.velocity.pipeline import TrackingParams, run_velocity

    a = write_raster(tmp_path / "a.tif", _texture(GRID.shape, 1).astype(np.float32), GRID)
    b = write_raster(tmp_path / "b.tif", _texture(GRID.shape, 2).astype(np.float32), GRID)
    params = TrackingParams(chip_size_px=16, search_px=6, step_px=16, min_peak_corr=0.99)
    res = run_velocity(a, b, tmp_path / "o", params=params, dt_days=16, quicklook=False,
                       filters=None)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["valid_share"] == 0.0 == res.report["valid_share"]
    assert len(report["warnings"]) == 1 and "0 of" in report["warnings"][0]
    assert any(r.levelname == "WARNING" and "valid velocity" in r.getMessage()
               for r in caplog.records)
    # A normal pair has no warning.
    ok = run_velocity(a, a, tmp_path / "p", params=params, dt_days=16, quicklook=False)
    assert ok.report["warnings"] == [] and ok.report["valid_share"] > 0.5


@pytest.mark.slow
def test_velocity_subprocess_sigint(tmp_path: Path):
    """A real SIGINT to ``glacierkit velocity`` in its writing stage: exit 130, one message,
    nothing written."""
    out = tmp_path / "o"
    big = Grid(crs=32607, transform=GRID.transform, shape=(512, 512))
    img = _texture((520, 520), 3)
    r = write_raster(tmp_path / "r.tif", img[4:-4, 4:-4].astype(np.float32), big)
    s = write_raster(tmp_path / "s.tif", np.roll(img, 2, 0)[4:-4, 4:-4].astype(np.float32), big)
    cmd = [sys.executable, "-c", "from glacierkit.cli.main import run; run()", "velocity",
           str(r), str(s), "-o", str(out), "--chip", "32", "--search", "8", "--step", "4",
           "--dt-days", "16"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    try:
        # "filter chain" is logged after the tracking, right before the products are written.
        while not any("filter chain" in x for x in lines):
            line = proc.stderr.readline()
            assert line, f"the command ended early: {''.join(lines)}"
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err = " ".join((err + "".join(lines)).split())
    assert proc.returncode == 130, err
    assert f"interrupted: nothing was written to {out}" in err
    assert not out.exists()


# ---------------------------------------------------------------------------- map baseline
@pytest.fixture
def baseline_scene(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    red = rng.uniform(0.05, 0.2, GRID.shape)
    red[30:90, 30:90] = 0.8  # bright ice
    swir = np.full(GRID.shape, 0.1)
    return write_raster(tmp_path / "scene.tif", np.stack([red, swir]).astype(np.float32), GRID)


@pytest.mark.parametrize("where", ["classes_cog", "outlines", "publish_rename"])
def test_map_baseline_interrupted(baseline_scene: Path, tmp_path: Path, monkeypatch, capsys,
                                  where: str):
    import glacierkit.io.vector as vector

    if where == "classes_cog":
        monkeypatch.setattr(rasterio.shutil, "copy", _raise_on_call(1))
    elif where == "outlines":
        monkeypatch.setattr(vector, "write_outlines", _raise_on_call(1))
    else:
        monkeypatch.setattr(os, "replace", _interrupt_rename_of("baseline.json"))
    out = tmp_path / "out"
    rc = main(["map", "baseline", str(baseline_scene), "--bands", "red,swir1", "-o", str(out)])
    _assert_clean(out, capsys, rc=rc)


def test_map_baseline_without_glacier_warns(baseline_scene: Path, tmp_path: Path, capsys):
    import json

    out = tmp_path / "out"
    assert main(["map", "baseline", str(baseline_scene), "--bands", "red,swir1", "-o",
                 str(out), "--threshold", "100"]) == 0
    info = json.loads((out / "baseline.json").read_text())
    assert info["n_glacier_px"] == 0 and info["n_outlines"] == 0
    assert len(info["warnings"]) == 1 and "no glacier pixel" in info["warnings"][0]
    err = " ".join(capsys.readouterr().err.split())
    assert "WARNING no glacier pixel" in err
    assert main(["map", "baseline", str(baseline_scene), "--bands", "red,swir1", "-o",
                 str(tmp_path / "ok")]) == 0
    ok = json.loads((tmp_path / "ok" / "baseline.json").read_text())
    assert ok["warnings"] == [] and ok["n_outlines"] >= 1


# ---------------------------------------------------------------------------- map / facies predict
def _standin_bundle(path: Path, layout, classes: list[str], *, task: str | None,
                    arrays: list[np.ndarray]) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(REPO / "tests" / "test_dl"))
    try:
        from standins import StandIn
    finally:
        sys.path.remove(str(REPO / "tests" / "test_dl"))
    from glacierkit.dl.bundle import bundle_from_model, register_arch, save_bundle
    from glacierkit.dl.export import export_onnx
    from glacierkit.dl.sources import NormStats, prepare_channels

    register_arch("standin", StandIn)
    torch.manual_seed(0)
    gc = layout.group_channels
    model = StandIn(group_channels=gc, n_classes=len(classes)).eval()
    x = prepare_channels(layout, arrays, pixel_size=(RES, RES))
    norm = NormStats.fit([x], names=layout.names)
    onnx_bytes = export_onnx(model, group_channels=gc, cond_dim=0, example_size=(32, 32))
    training = {"group_dropout": 0.0, **({"task": task} if task else {})}
    bundle = bundle_from_model(
        model, layout=layout.to_dict(), norm=norm.to_dict(), classes=classes,
        tile={"size": 64, "overlap": 16}, training=training,
        model_kwargs={"group_channels": list(gc), "n_classes": len(classes), "cond_dim": 0},
        onnx_bytes=onnx_bytes, task=task)
    return save_bundle(path, bundle) or path


@pytest.fixture(scope="module")
def mapping_model(tmp_path_factory) -> dict:
    from glacierkit.dl.sources import SourceLayout

    d = tmp_path_factory.mktemp("mapmodel")
    rng = np.random.default_rng(0)
    opt = rng.uniform(0.1, 0.6, (4, *GRID.shape)).astype(np.float32)
    layout = SourceLayout.standard(("red", "green", "blue", "nir"))
    scene = write_raster(d / "opt.tif", opt, GRID)
    gkm = _standin_bundle(d / "m.gkm", layout, ["background", "glacier"], task="mapping",
                          arrays=[opt])
    return {"model": gkm, "scene": scene}


def _map_predict_args(m: dict, out: Path) -> list[str]:
    return ["map", "predict", str(m["model"]), str(m["scene"]), "-o", str(out), "--backend",
            "onnx", "--min-area-km2", "0"]


@pytest.mark.parametrize("where", ["cog_conversion", "outlines", "publish_rename"])
def test_map_predict_interrupted(mapping_model: dict, tmp_path: Path, monkeypatch, capsys,
                                 where: str):
    import glacierkit.io.vector as vector

    if where == "cog_conversion":
        monkeypatch.setattr(rasterio.shutil, "copy", _raise_on_call(2, rasterio.shutil.copy))
    elif where == "outlines":
        monkeypatch.setattr(vector, "write_outlines", _raise_on_call(1))
    else:
        monkeypatch.setattr(os, "replace", _interrupt_rename_of("outlines.gpkg"))
    out = tmp_path / "out"
    rc = main(_map_predict_args(mapping_model, out))
    _assert_clean(out, capsys, rc=rc)


def test_predict_scene_creates_the_output_folder(mapping_model: dict, tmp_path: Path):
    from glacierkit.dl.predict import predict_scene

    out = tmp_path / "a" / "b"
    res = predict_scene(mapping_model["model"], {"optical": mapping_model["scene"]}, out,
                        backend="onnx", progress=False, min_area_km2=0)
    assert res.classes.exists() and res.classes.parent == out
    assert {p.name for p in out.iterdir()} == {"classes.tif", "confidence.tif", "outlines.gpkg",
                                               "report.json"}
    assert sum(res.class_counts.values()) == GRID.height * GRID.width
    assert res.predicted_share == 1.0


def test_map_predict_empty_result_warns(mapping_model: dict, tmp_path: Path, caplog):
    from glacierkit.dl.predict import predict_result_json, predict_scene

    nan = write_raster(tmp_path / "nan.tif", np.full((4, *GRID.shape), np.nan, np.float32),
                       GRID)
    res = predict_scene(mapping_model["model"], {"optical": nan}, tmp_path / "o",
                        backend="onnx", progress=False)
    assert res.predicted_share == 0.0 and res.n_outlines == 0
    assert len(res.warnings) == 1 and "no pixel was predicted" in res.warnings[0]
    assert '"warnings"' in predict_result_json(res)
    assert any(r.levelname == "WARNING" and "no pixel was predicted" in r.getMessage()
               for r in caplog.records)


@pytest.fixture(scope="module")
def facies_model(tmp_path_factory) -> dict:
    import geopandas as gpd
    import shapely

    from glacierkit.dl.sources import SourceGroup, SourceLayout

    d = tmp_path_factory.mktemp("faciesmodel")
    rng = np.random.default_rng(1)
    img = rng.uniform(0.2, 0.9, (3, *GRID.shape)).astype(np.float32)
    layout = SourceLayout((SourceGroup("optical", "optical", ("blue", "green", "red")),))
    scene = write_raster(d / "scene.tif", img, GRID)
    gkm = _standin_bundle(d / "f.gkm", layout, ["ice", "snow"], task="facies", arrays=[img])
    x0, y0 = GRID.transform.c, GRID.transform.f
    box = shapely.box(x0 + 10 * RES, y0 - 60 * RES, x0 + 60 * RES, y0 - 10 * RES)
    outl = d / "outlines.gpkg"
    gpd.GeoDataFrame({"rgi_id": ["A"]}, geometry=[box], crs="EPSG:32607").to_file(outl)
    empty = d / "empty.gpkg"
    gpd.GeoDataFrame({"rgi_id": []}, geometry=[], crs="EPSG:32607").to_file(empty)
    return {"model": gkm, "scene": scene, "outlines": outl, "empty": empty, "dir": d}


@pytest.mark.parametrize("where", ["prediction", "facies_cog", "publish_rename"])
def test_facies_predict_interrupted(facies_model: dict, tmp_path: Path, monkeypatch, capsys,
                                    where: str):
    import glacierkit.dl.predict as predict

    if where == "prediction":
        monkeypatch.setattr(predict, "run_tiled", _raise_on_call(1))
    elif where == "facies_cog":
        # Calls 1-2: the prediction's classes and confidence; 3: facies.tif.
        monkeypatch.setattr(rasterio.shutil, "copy", _raise_on_call(3, rasterio.shutil.copy))
    else:
        monkeypatch.setattr(os, "replace", _interrupt_rename_of("areas.csv"))
    out = tmp_path / "out"
    rc = main(["facies", "predict", str(facies_model["model"]), str(facies_model["scene"]),
               "--outlines", str(facies_model["outlines"]), "-o", str(out), "--backend",
               "onnx"])
    _assert_clean(out, capsys, rc=rc)


def test_facies_predict_empty_outlines_refused_up_front(facies_model: dict, tmp_path: Path,
                                                        capsys):
    out = tmp_path / "out"
    rc = main(["facies", "predict", str(facies_model["model"]), str(facies_model["scene"]),
               "--outlines", str(facies_model["empty"]), "-o", str(out), "--backend", "onnx"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and "holds no features" in err
    assert not out.exists()


def test_facies_nothing_classified_warns(facies_model: dict, tmp_path: Path, caplog):
    import json

    from glacierkit.facies.apply import classify_scene

    img = rasterio.open(facies_model["scene"]).read()
    img[:, 5:70, 5:70] = np.nan  # nodata under the whole glacier
    holes = write_raster(tmp_path / "holes.tif", img, GRID)
    res = classify_scene(facies_model["model"], {"optical": holes}, tmp_path / "o",
                         outlines=facies_model["outlines"], backend="onnx")
    report = json.loads(res.report.read_text())
    assert report["observed_px"] == 0 and report["observed_share"] == 0.0
    assert len(report["warnings"]) == 1 and "no glacier pixel" in report["warnings"][0]
    assert any(r.levelname == "WARNING" and "no glacier pixel" in r.getMessage()
               for r in caplog.records)
