"""Training domain in model files, the scene domain check, model tasks, uncalibrated labels."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from glacierkit.dl.domain import (
    channel_units,
    check_scene_domain,
    compare_domain,
    domain_from_channels,
)
from glacierkit.dl.sources import SourceLayout
from glacierkit.errors import DomainShiftError, ModelKindError

RGBN = SourceLayout.standard(("red", "green", "blue", "nir"))
EVEREST = "geoutils_everest_exploradores/Everest_Landsat/LE71400412000304SGS00"
SWISS = "snowicesen_swiss_s2_snow_series/RGI50-11.A10G05"


def _write(path: Path, data: np.ndarray, *, like: Path | None = None,
           nodata: float | None = None) -> Path:
    """``data`` (bands, H, W) on the grid of ``like`` (or a UTM test grid)."""
    if like is not None:
        with rasterio.open(like) as ds:
            crs, transform = ds.crs, ds.transform
    else:
        crs, transform = "EPSG:32645", Affine(30.0, 0, 500000.0, 0, -30.0, 3100000.0)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform,
                       nodata=nodata) as ds:
        ds.write(data)
    return path


def _dn_domain(rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    dn = rng.integers(20, 256, size=(4, 64, 64)).astype(np.uint8)
    info = {"optical": [{"dtype": "uint8", "units": "", "scale": 1.0}] * 4}
    return domain_from_channels(RGBN, [dn.astype(np.float32)], band_info=info), dn


# ---------------------------------------------------------------------------- unit level
def test_domain_record_units_and_percentiles() -> None:
    dom, dn = _dn_domain(np.random.default_rng(0))
    red = dom["channels"][0]
    assert red["units"] == "DN 0–255" and red["dtype"] == "uint8"
    assert red["p0_5"] == pytest.approx(np.percentile(dn[0], 0.5))
    assert red["p99_5"] == pytest.approx(np.percentile(dn[0], 99.5))
    assert red["valid_share"] == 1.0 and red["n"] == 64 * 64
    # units are inferred only where certain
    assert channel_units("optical", "red", dtype="float32") == "unknown"
    assert channel_units("optical", "red", dtype="uint16") == "unknown"
    assert channel_units("optical", "red", dtype="uint16", scale=1e-4) == "reflectance × 10 000"
    assert channel_units("optical", "red", dtype="float32", file_units="reflectance") \
        == "reflectance"
    assert channel_units("dem", "elevation") == "m"
    assert channel_units("sar", "vv_db") == "dB"


@pytest.mark.parametrize(("factor", "dtype", "refused", "cause"), [
    (1.0, "uint8", False, None),
    (257.0, "uint16", True, "257"),
    (1 / 255, "float32", True, "255"),
    (10_000.0, "uint16", True, "10 000"),
    (100.0, "float32", True, "100"),
])
def test_scale_factors(factor, dtype, refused, cause) -> None:
    rng = np.random.default_rng(1)
    dom, dn = _dn_domain(rng)
    scene = (dn.astype(np.float64) * factor).reshape(4, -1)
    info = {"optical": [{"dtype": dtype}] * 4}
    issues, record = compare_domain(dom, scene, RGBN, scene_band_info=info)
    assert bool(issues) is refused
    if refused:
        assert issues[0].rule == "scale" and cause in issues[0].cause
        assert "data type changed" in issues[0].cause or dtype == "uint8"
        assert record["red"]["verdict"] == "outside"


def test_sar_db_and_linear_mixups() -> None:
    rng = np.random.default_rng(2)
    lin = rng.gamma(2.0, 0.05, size=(2, 5000)).astype(np.float32)
    db = 10 * np.log10(lin)
    lin_model = SourceLayout.standard(None, sar=("vv", "vh"))
    db_model = SourceLayout.standard(None, sar=("vv", "vh"), sar_db_input=True)
    dom = domain_from_channels(lin_model, [db])  # channels are dB either way
    # dB files given to a model that converts linear power: everything floors at −60 dB
    floored = 10 * np.log10(np.maximum(db, 1e-6))
    issues, _ = compare_domain(dom, floored, lin_model)
    assert issues and "already in dB" in issues[0].cause
    # linear files given to a model that takes dB
    dom_db = domain_from_channels(db_model, [db])
    issues, _ = compare_domain(dom_db, lin, db_model)
    assert issues and issues[0].rule == "sar-sign" and "linear power" in issues[0].cause
    # the right input passes
    assert not compare_domain(dom, db, lin_model)[0]
    assert not compare_domain(dom_db, db, db_model)[0]


def test_missing_group_and_few_pixels_are_not_judged() -> None:
    dom, _ = _dn_domain(np.random.default_rng(3))
    nan = np.full((4, 50), np.nan)
    nan[:, :10] = 1e6
    issues, rec = compare_domain(dom, nan, RGBN)
    assert not issues and rec["red"]["verdict"] == "too few pixels"
    issues, rec = compare_domain(dom, np.full((4, 500), 1e6), RGBN, present=[False])
    assert not issues and rec["red"]["verdict"] == "not given"


def test_unknown_domain_is_not_checked(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        out = check_scene_domain(None, RGBN, {"optical": [(tmp_path / "x.tif", None)]})
    assert out["status"] == "unknown" and "no training domain" in caplog.text


# ---------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def everest(shared_data, tmp_path_factory) -> dict:
    """The Everest uint8 scene, its domain, and uint16 (× 257) / float (÷ 255) copies."""
    from glacierkit.dl.sources import open_scene

    d = tmp_path_factory.mktemp("everest")
    rgb, nir = (shared_data / f"{EVEREST}_RGB.tif", shared_data / f"{EVEREST}_B4.tif")
    stack = open_scene(RGBN, {"optical": [rgb, nir]})
    dom = domain_from_channels(RGBN, [stack.data], band_info=stack.meta["bands"])
    with rasterio.open(rgb) as ds:
        a = ds.read()
    with rasterio.open(nir) as ds:
        b = ds.read()
    out = {"domain": dom, "stack": stack, "dir": d, "uint8": [rgb, nir],
           "test_crop": [shared_data / f"{EVEREST}_RGB_test.tif",
                         shared_data / f"{EVEREST}_B4_test.tif"]}
    for name, f, dt in (("uint16", 257, np.uint16), ("float", 1 / 255, np.float32)):
        out[name] = [_write(d / f"rgb_{name}.tif", (a.astype(np.float64) * f).astype(dt),
                            like=rgb),
                     _write(d / f"nir_{name}.tif", (b.astype(np.float64) * f).astype(dt),
                            like=nir)]
    return out


def _groups(paths):
    return {"optical": [(p, None) for p in paths]}


@pytest.mark.realdata
def test_everest_domain_check(everest) -> None:
    dom = everest["domain"]
    assert [c["units"] for c in dom["channels"]] == ["DN 0–255"] * 4
    for ok in ("uint8", "test_crop"):
        assert check_scene_domain(dom, RGBN, _groups(everest[ok]))["status"] == "ok"
    with pytest.raises(DomainShiftError, match=r"channel 'red'.*257.*uint8 in training, uint16"):
        check_scene_domain(dom, RGBN, _groups(everest["uint16"]))
    with pytest.raises(DomainShiftError, match=r"channel 'red'.*factor of 255.*float32"):
        check_scene_domain(dom, RGBN, _groups(everest["float"]))


@pytest.mark.realdata
def test_swiss_s2_reflectance_vs_dn(shared_data, tmp_path) -> None:
    """Reflectance-trained (÷ 10 000) Sentinel-2 domain: DN refused, another date accepted."""
    from glacierkit.dl.sources import open_scene

    files = sorted(shared_data.glob(f"{SWISS}_*.tif"))
    assert len(files) >= 3
    lay = SourceLayout.standard(("b1", "b2", "b3"))
    train = open_scene(lay, {"optical": files[0]})
    dom = domain_from_channels(lay, [train.data / 10_000])
    with rasterio.open(files[2]) as ds:
        other = ds.read().astype(np.float32)
        other[other == ds.nodata] = np.nan
    refl = _write(tmp_path / "refl.tif", other / 10_000, like=files[2], nodata=np.nan)
    assert check_scene_domain(dom, lay, {"optical": [(refl, None)]})["status"] == "ok"
    with pytest.raises(DomainShiftError, match=r"10 000"):
        check_scene_domain(dom, lay, {"optical": [(files[2], None)]})


# ---------------------------------------------------------------------------- predict_scene
torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
from standins import StandIn  # noqa: E402

from glacierkit.dl.bundle import (  # noqa: E402
    bundle_from_model,
    load_bundle,
    register_arch,
    save_bundle,
)
from glacierkit.dl.export import export_onnx  # noqa: E402
from glacierkit.dl.predict import predict_scene  # noqa: E402
from glacierkit.dl.sources import NormStats  # noqa: E402

register_arch("standin", StandIn)


def _mapping_model(path: Path, norm: NormStats, domain: dict | None, *, task="mapping",
                   classes=("off_glacier", "glacier"), calibration=None) -> Path:
    torch.manual_seed(0)
    model = StandIn(group_channels=(4,)).eval()
    onnx = export_onnx(model, group_channels=(4,), cond_dim=0, example_size=(32, 32))
    b = bundle_from_model(model, layout=RGBN.to_dict(), norm=norm.to_dict(),
                          classes=list(classes), tile={"size": 256, "overlap": 32},
                          model_kwargs={"group_channels": [4], "n_classes": 2, "cond_dim": 0},
                          onnx_bytes=onnx, task=task, domain=domain, calibration=calibration)
    return save_bundle(path, b)


@pytest.mark.realdata
def test_predict_scene_refuses_uint16_and_float_everest(everest, tmp_path, caplog) -> None:
    norm = NormStats.fit([everest["stack"]])
    gkm = _mapping_model(tmp_path / "m.gkm", norm, everest["domain"])
    for bad in ("uint16", "float"):
        (tmp_path / bad).mkdir()
        with pytest.raises(DomainShiftError, match="--allow-domain-shift"):
            predict_scene(gkm, {"optical": everest[bad]}, tmp_path / bad, progress=False,
                          backend="onnx")
        assert not list((tmp_path / bad).iterdir())  # refused before any work
    (tmp_path / "same").mkdir()
    predict_scene(gkm, {"optical": everest["uint8"]}, tmp_path / "same", progress=False,
                  backend="onnx", outlines=False)
    (tmp_path / "forced").mkdir()
    with caplog.at_level(logging.WARNING, logger="glacierkit"):
        r = predict_scene(gkm, {"optical": everest["float"]}, tmp_path / "forced",
                          progress=False, backend="onnx", outlines=False,
                          allow_domain_shift=True)
    assert r.classes.exists() and "domain shift allowed" in caplog.text


def _tiny_scene(tmp_path: Path, factor: float = 1.0) -> dict:
    rng = np.random.default_rng(5)
    a = (rng.uniform(0.1, 0.9, size=(4, 48, 48)) * factor).astype(np.float32)
    return {"optical": [_write(tmp_path / f"scene_{factor:g}.tif", a)]}


def test_uncalibrated_confidence_is_labelled(tmp_path, caplog) -> None:
    scene = _tiny_scene(tmp_path)
    x = rasterio.open(scene["optical"][0]).read()
    norm = NormStats.fit([x])
    dom = domain_from_channels(RGBN, [x])
    gkm = _mapping_model(tmp_path / "m.gkm", norm, dom)
    (tmp_path / "o").mkdir()
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        r = predict_scene(gkm, scene, tmp_path / "o", progress=False, backend="onnx",
                          outlines=False)
    with rasterio.open(r.confidence) as ds:
        assert ds.tags()["CALIBRATION"] == "uncalibrated"
        assert "uncalibrated" in ds.tags()["CONFIDENCE"]
    assert "uncalibrated" in caplog.text
    gkm2 = _mapping_model(tmp_path / "c.gkm", norm, dom,
                          calibration={"kind": "temperature", "temperature": 2.0})
    (tmp_path / "c").mkdir()
    r = predict_scene(gkm2, scene, tmp_path / "c", progress=False, backend="onnx",
                      outlines=False)
    with rasterio.open(r.confidence) as ds:
        assert ds.tags()["CALIBRATION"] == "temperature"


def _strip(path: Path, dest: Path, keys=("task", "domain")) -> Path:
    """A copy of a model file whose metadata lacks ``keys`` (as files written before them)."""
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                for k in keys:
                    meta.pop(k, None)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return dest


def test_old_model_file_without_task_and_domain(tmp_path, caplog) -> None:
    scene = _tiny_scene(tmp_path)
    x = rasterio.open(scene["optical"][0]).read()
    gkm = _mapping_model(tmp_path / "m.gkm", NormStats.fit([x]), domain_from_channels(RGBN, [x]))
    new = load_bundle(gkm)
    assert new.task == "mapping" and new.domain["channels"][0]["channel"] == "red"
    old = load_bundle(_strip(gkm, tmp_path / "old.gkm"))
    assert old.domain is None and old.task == "mapping"  # map train's classes: certain
    other = _mapping_model(tmp_path / "o.gkm", NormStats.fit([x]), None, task=None,
                           classes=("rock", "ice"))
    assert load_bundle(_strip(other, tmp_path / "old2.gkm")).task is None  # not certain
    # an old file predicts without a domain check, a scale-shifted scene included
    big = _tiny_scene(tmp_path, 10_000.0)
    (tmp_path / "p").mkdir()
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        predict_scene(old, big, tmp_path / "p", progress=False, backend="onnx",
                      outlines=False)
    assert "records no training domain" in caplog.text
    (tmp_path / "q").mkdir()
    with pytest.raises(DomainShiftError):
        predict_scene(gkm, big, tmp_path / "q", progress=False, backend="onnx")


def test_predict_scene_refuses_other_task(tmp_path) -> None:
    scene = _tiny_scene(tmp_path)
    x = rasterio.open(scene["optical"][0]).read()
    gkm = _mapping_model(tmp_path / "f.gkm", NormStats.fit([x]), None, task="facies",
                         classes=("ice", "snow"))
    (tmp_path / "o").mkdir()
    with pytest.raises(ModelKindError, match=r"facies model.*use `glacierkit facies predict`"):
        predict_scene(gkm, scene, tmp_path / "o", progress=False)


# ---------------------------------------------------------------------------- facies
def _facies_model(path: Path, domain: dict, layout: SourceLayout) -> Path:
    from glacierkit.facies.models import PatchNet, patchnet_bundle

    net = PatchNet(n_classes=2, group_channels=(layout.n_channels,), accelerator="cpu",
                   overrides={"widths": [4, 4], "dilations": [1, 1], "kernel": 3})
    net.model = net.build().eval()
    net.norm = NormStats(mean=np.full(layout.n_channels, 0.5),
                         std=np.full(layout.n_channels, 0.2))
    b = patchnet_bundle(net, layout=layout, classes=["ice", "snow"], tile_size=64,
                        domain=domain)
    return save_bundle(path, b)


def test_facies_reflectance_model_refuses_dn(tmp_path, caplog) -> None:
    """A reflectance-trained facies model given DN × 10 000 (before: 100 % snow, no warning)."""
    from glacierkit.facies.apply import classify_scene

    lay = SourceLayout.standard(("blue", "green", "red"))
    rng = np.random.default_rng(7)
    refl = rng.uniform(0.2, 0.95, size=(3, 40, 40)).astype(np.float32)
    gkm = _facies_model(tmp_path / "f.gkm", domain_from_channels(lay, [refl]), lay)
    assert load_bundle(gkm).task == "facies"
    ok = _write(tmp_path / "refl.tif", refl)
    dn = _write(tmp_path / "dn.tif", np.round(refl * 10_000).astype(np.uint16))
    (tmp_path / "a").mkdir()
    res = classify_scene(gkm, {"optical": ok}, tmp_path / "a")
    report = json.loads(res.report.read_text())
    assert report["model"]["calibration"] == "uncalibrated"
    assert report["domain_check"]["status"] == "ok"
    with rasterio.open(res.confidence) as ds:
        assert ds.tags()["CALIBRATION"] == "uncalibrated"
    (tmp_path / "b").mkdir()
    with pytest.raises(DomainShiftError, match=r"channel 'blue'.*10 000"):
        classify_scene(gkm, {"optical": dn}, tmp_path / "b")
    assert not list((tmp_path / "b").iterdir())
    with caplog.at_level(logging.WARNING, logger="glacierkit"):
        classify_scene(gkm, {"optical": dn}, tmp_path / "b", allow_domain_shift=True)
    assert "domain shift allowed" in caplog.text


# ---------------------------------------------------------------------------- CLI
def test_cli_predict_commands_refuse_the_other_task(tmp_path, capsys) -> None:
    from glacierkit.cli.main import main

    lay = SourceLayout.standard(("red", "green", "blue", "nir"))
    x = np.random.default_rng(8).uniform(0.1, 0.9, (4, 40, 40)).astype(np.float32)
    scene = _write(tmp_path / "s.tif", x)
    facies = _facies_model(tmp_path / "facies.gkm", domain_from_channels(lay, [x]), lay)
    rc = main(["map", "predict", str(facies), f"optical={scene}", "-o", str(tmp_path / "o")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and "is a facies model" in err and "glacierkit facies predict" in err
    mapping = _mapping_model(tmp_path / "map.gkm", NormStats.fit([x]),
                             domain_from_channels(lay, [x]))
    rc = main(["facies", "predict", str(mapping), str(scene), "-o", str(tmp_path / "p")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and "is a mapping model" in err and "glacierkit map predict" in err
    big = _write(tmp_path / "big.tif", x * 10_000)
    rc = main(["map", "predict", str(mapping), f"optical={big}", "-o", str(tmp_path / "q")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and "--allow-domain-shift" in err
    rc = main(["map", "predict", str(mapping), f"optical={big}", "-o", str(tmp_path / "q"),
               "--allow-domain-shift"])
    assert rc == 0 and "uncalibrated" in capsys.readouterr().out


# ---------------------------------------------------------------------------- training paths
def test_mapping_training_domain_uses_the_training_part(tmp_path) -> None:
    from types import SimpleNamespace

    from glacierkit.dl.sources import open_scene
    from glacierkit.mapping.pipeline import PreparedScene, training_domain

    a = np.full((4, 40, 40), 200, dtype=np.uint8)
    a[:, :20] = 10  # the training part: the top half
    stack = open_scene(RGBN, {"optical": _write(tmp_path / "s.tif", a)})
    train = np.zeros((40, 40), bool)
    train[:20] = True
    scene = PreparedScene(stack, np.zeros((40, 40), np.uint8),
                          SimpleNamespace(mask=lambda name: train if name == "train" else ~train),
                          {"optical": [tmp_path / "s.tif"]})
    dom = training_domain([scene])
    red = dom["channels"][0]
    assert red["p99_5"] == 10 and red["n"] == 800  # nothing from the val/test pixels
    assert red["dtype"] == "uint8" and red["units"] == "DN 0–255"


def test_facies_training_records_domain(tmp_path) -> None:
    from glacierkit.facies.models import PatchNet, patchnet_bundle
    from glacierkit.facies.pipeline import FaciesDataset, training_domain

    lay = SourceLayout.standard(("blue", "green", "red"))
    rng = np.random.default_rng(9)
    X = rng.uniform(0.2, 0.9, size=(40, 3, 9, 9)).astype(np.float32)
    y = np.arange(40) % 2
    net = PatchNet(n_classes=2, group_channels=(3,), epochs=1, accelerator="cpu",
                   overrides={"widths": [4, 4], "dilations": [1, 1], "kernel": 3}).fit(X, y)
    b = patchnet_bundle(net, layout=lay, classes=["ice", "snow"], onnx=False)
    assert b.task == "facies" and b.domain is not None
    blue = b.domain["channels"][0]
    assert 0.2 <= blue["p0_5"] < blue["p50"] < blue["p99_5"] <= 0.9
    ds = FaciesDataset(X=X, y=y, classes=["ice", "snow"], points=None, layout=lay,
                       vocabulary=None, notes={},
                       band_info={"optical": [{"dtype": "uint16", "units": "",
                                               "scale": 1e-4}] * 3})
    dom = training_domain(ds, np.arange(10))
    assert dom["channels"][0]["units"] == "reflectance × 10 000"
    assert dom["channels"][0]["n"] == 10 * 81 and "10 training labels" in dom["source"]
