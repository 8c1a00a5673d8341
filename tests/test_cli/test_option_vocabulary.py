"""One option vocabulary across commands: -o/--out, --overwrite, example: paths in configs,
label tables, band names from band descriptions, area limits in km²."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glacierkit.cli.main import main
from glacierkit.errors import DatasetNotFoundError, InputError

# --------------------------------------------------------------------------------------------
# map train: -o/--out and --overwrite like facies train
# --------------------------------------------------------------------------------------------

_MAP_CONFIG = """
[output]
dir = "config-run"
[layout]
optical = ["red"]
[[scenes]]
name = "s"
outlines = "missing-outlines.gpkg"
[scenes.sources]
optical = "missing-scene.tif"
"""


def _map_config(tmp: Path, text: str = _MAP_CONFIG) -> Path:
    cfg = tmp / "map.toml"
    cfg.write_text(text)
    return cfg


def _earlier_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "report.json").write_text("{}")
    (folder / "model.gkm").write_bytes(b"earlier model")
    return folder


def test_map_train_out_overrides_the_config_dir(tmp_path: Path) -> None:
    from glacierkit.mapping.config import load_config

    cfg = _map_config(tmp_path)
    assert load_config(cfg).out_dir == tmp_path / "config-run"
    assert load_config(cfg, out_dir=tmp_path / "elsewhere").out_dir == tmp_path / "elsewhere"
    assert load_config(cfg).overwrite is False
    assert load_config(cfg, overwrite=True).overwrite is True
    # [output] dir may be left out when -o gives the run folder, not otherwise.
    no_dir = _map_config(tmp_path, _MAP_CONFIG.replace('dir = "config-run"', ""))
    assert load_config(no_dir, out_dir=tmp_path / "r").out_dir == tmp_path / "r"
    with pytest.raises(InputError, match="-o/--out"):
        load_config(no_dir)


def test_map_train_refuses_an_earlier_run_before_any_work(tmp_path: Path, capsys) -> None:
    cfg = _map_config(tmp_path)
    run = _earlier_run(tmp_path / "run")
    assert main(["map", "train", str(cfg), "-o", str(run)]) == 1
    err = capsys.readouterr().err
    assert "already holds" in err and "--overwrite" in err
    assert "missing-scene" not in err  # refused before the scenes are opened
    assert not (tmp_path / "config-run").exists()  # -o replaced the config's folder
    assert (run / "model.gkm").read_bytes() == b"earlier model"


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_map_train_overwrite_and_resume_go_past_the_check(tmp_path: Path, capsys,
                                                         flag: str) -> None:
    pytest.importorskip("torch")
    cfg = _map_config(tmp_path)
    run = _earlier_run(tmp_path / "run")
    assert main(["map", "train", str(cfg), "--out", str(run), flag]) == 1
    err = capsys.readouterr().err
    # The run gets as far as opening the scene (which does not exist here).
    assert "already holds" not in err and "missing-scene.tif" in err
    assert (run / "model.gkm").read_bytes() == b"earlier model"


# --------------------------------------------------------------------------------------------
# example:DATASET/FILE in both training configs, one resolver
# --------------------------------------------------------------------------------------------

_ABERLE = "example:aberle_snow_ice_training_points/Sentinel-2_SR_training_data.csv"


def _facies_config(tmp: Path, path: str) -> Path:
    cfg = tmp / "facies.toml"
    cfg.write_text(f'[labels]\npath = "{path}"\nbands = ["B2", "B3"]\n')
    return cfg


def test_facies_config_takes_example_paths(shared_data: Path, tmp_path: Path) -> None:
    from glacierkit.facies.config import load_config

    c = load_config(_facies_config(tmp_path, _ABERLE))
    assert Path(c.labels["path"]).samefile(
        shared_data / "aberle_snow_ice_training_points" / "Sentinel-2_SR_training_data.csv")


@pytest.mark.parametrize(("path", "error", "message"), [
    ("example:aberle_snow_ice_training_points", InputError, "example:DATASET/FILE"),
    ("example:no_such_dataset/x.csv", DatasetNotFoundError, "no_such_dataset"),
])
def test_map_and_facies_configs_report_bad_example_paths_alike(
        tmp_path: Path, path: str, error: type[Exception], message: str) -> None:
    from glacierkit.facies.config import load_config as load_facies
    from glacierkit.mapping.config import load_config as load_map

    with pytest.raises(error, match=message) as facies_err:
        load_facies(_facies_config(tmp_path, path))
    with pytest.raises(error, match=message) as map_err:
        load_map(_map_config(tmp_path, _MAP_CONFIG.replace("missing-scene.tif", path)))
    assert facies_err.value.args[0].split(": ", 1)[1] == map_err.value.args[0].split(": ", 1)[1]


def test_facies_config_relative_and_missing_paths(tmp_path: Path) -> None:
    from glacierkit.facies.config import load_config

    (tmp_path / "labels.csv").write_text("x\n")
    c = load_config(_facies_config(tmp_path, "labels.csv"))
    assert c.labels["path"] == str(tmp_path / "labels.csv")
    with pytest.raises(DatasetNotFoundError, match=r"label file .*nope\.csv does not exist"):
        load_config(_facies_config(tmp_path, "nope.csv"))


# --------------------------------------------------------------------------------------------
# facies clean --label-table (the file form of [labels] table)
# --------------------------------------------------------------------------------------------

_SPECTRA = {"snow": [0.9, 0.85, 0.1], "ice": [0.5, 0.4, 0.05], "rock": [0.2, 0.25, 0.3]}


def _labels_csv(path: Path, n_per: int = 30) -> Path:
    rng = np.random.default_rng(1)
    rows = [{"site_name": gl, "class": cls, "b1": v[0], "b2": v[1], "b3": v[2],
             "geometry": f"POINT ({-145 + rng.random():.5f} 63.3)"}
            for gl in ("A", "B", "C") for cls, mu in _SPECTRA.items() for _ in range(n_per)
            for v in [np.asarray(mu) + rng.normal(0, 0.03, 3)]]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_label_table_file_and_inline_table_agree(tmp_path: Path) -> None:
    from glacierkit.facies.config import parse_config
    from glacierkit.facies.vocab import read_label_table

    (tmp_path / "l.csv").write_text("x\n")
    (tmp_path / "t.csv").write_text("label,facies\nrock,debris\nShadowed snow,shadow\n")
    assert read_label_table(tmp_path / "t.csv") == {"rock": "debris",
                                                     "shadowed_snow": "shadow"}
    from_file = parse_config({"labels": {"path": "l.csv", "bands": ["a"],
                                         "table": "t.csv"}}, tmp_path)
    inline = parse_config({"labels": {"path": "l.csv", "bands": ["a"],
                                      "table": {"rock": "debris"}}}, tmp_path)
    assert from_file.labels["table"]["rock"] == inline.labels["table"]["rock"] == "debris"
    assert from_file.labels["table_file"] == str(tmp_path / "t.csv")


@pytest.mark.parametrize(("text", "message"), [
    ("from,to\nrock,debris\n", "header line 'label,facies'"),
    ("label,facies\nrock,\n", "row 2"),
    ("label,facies\nrock,debris\nrock,ice\n", "mapped twice"),
    ("label,facies\n", "no rows"),
])
def test_bad_label_tables_say_what_is_expected(tmp_path: Path, text: str, message: str) -> None:
    from glacierkit.facies.vocab import read_label_table

    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_label_table(tmp_path / "t.csv")


def test_facies_clean_label_table(tmp_path: Path, capsys) -> None:
    labels = _labels_csv(tmp_path / "labels.csv", n_per=15)
    base = ["facies", "clean", str(labels), "--bands", "b1,b2,b3", "--folds", "3",
            "--glacier", "site_name", "--model", "mlp"]
    # 'rock' is no facies: the error names the option that maps it.
    assert main([*base, "-o", str(tmp_path / "kept.csv")]) == 1
    assert "--label-table" in capsys.readouterr().err
    table = tmp_path / "table.csv"
    table.write_text("label,facies\nrock,debris\n")
    assert main([*base, "--label-table", str(table), "-o", str(tmp_path / "kept.csv"),
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert "rock → debris" in rep["vocabulary"]
    checked = pd.read_csv(tmp_path / "kept_checked.csv")
    assert set(checked["facies"]) == {"snow", "ice", "debris"}


# --------------------------------------------------------------------------------------------
# map baseline: band names from band descriptions; --min-area-km2 as map predict
# --------------------------------------------------------------------------------------------

def _scene(tif_factory, descriptions: dict[str, list[str | None]]) -> list[Path]:
    """Bright glacier blocks (20×20 and 4×4 px) and 1-px / 3×3-px speckles on dark ground.

    30 m pixels (0.0009 km²): 20×20 = 0.36 km² and 4×4 = 0.0144 km² are above the RGI's
    0.01 km², the three single pixels and the 3×3 clump (0.0081 km²) below it.
    """
    rng = np.random.default_rng(0)
    img = (50 + rng.normal(0, 3, (60, 60))).astype(np.float32)
    img[5:25, 5:25] = 200
    img[40:44, 40:44] = 200
    img[50:53, 5:8] = 200
    for r, c in ((35, 10), (10, 50), (55, 55)):
        img[r, c] = 200
    paths = []
    for name, descs in descriptions.items():
        p = tif_factory(name, np.stack([img] * len(descs)))
        import rasterio

        with rasterio.open(p, "r+") as ds:
            for i, d in enumerate(descs, start=1):
                if d is not None:
                    ds.set_band_description(i, d)
        paths.append(p)
    return paths


def test_map_baseline_names_bands_from_descriptions(tif_factory, tmp_path: Path, capsys) -> None:
    paths = _scene(tif_factory, {"rgb.tif": ["Red", "Green", "Blue"], "nir.tif": ["NIR"]})
    out = tmp_path / "out"
    assert main(["map", "baseline", *map(str, paths), "-o", str(out)]) == 0
    rep = json.loads((out / "baseline.json").read_text())
    assert rep["method"] == "brightness"
    assert rep["bands_used"] == ["blue", "green", "red", "nir"]
    # The names used are logged.
    log = " ".join(capsys.readouterr().err.split())
    assert "band names ['red', 'green', 'blue'] from the band descriptions" in log
    assert "band names ['nir'] from the band descriptions" in log


@pytest.mark.parametrize(("descriptions", "bad"), [
    (["Red", "Green", None], "band 3 has no description"),
    (["red", "green", "B4"], "band 3 is 'B4'"),  # B4: red or NIR depending on the sensor
    (["red", "green", "swir"], "band 3 is 'swir'"),  # swir1 or swir2?
])
def test_map_baseline_does_not_guess_band_names(tif_factory, tmp_path: Path, capsys,
                                                descriptions, bad: str) -> None:
    (path,) = _scene(tif_factory, {"scene.tif": descriptions})
    assert main(["map", "baseline", str(path), "-o", str(tmp_path / "out")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert str(path.name) in err and bad in err and "--bands" in err
    assert "band_names=" not in err
    assert not (tmp_path / "out" / "classes.tif").exists()
    # From Python the fix is spelled as the argument.
    from glacierkit.mapping.baseline import run_baseline

    with pytest.raises(InputError, match="band_names=") as info:
        run_baseline([path], None, tmp_path / "py")
    assert bad in str(info.value) and "--bands" not in str(info.value)


def test_map_baseline_bands_per_file_or_auto(tif_factory, tmp_path: Path) -> None:
    paths = _scene(tif_factory, {"rgb.tif": ["Red", "Green", "Blue"], "nir.tif": [None]})
    out = tmp_path / "out"
    assert main(["-q", "map", "baseline", *map(str, paths), "--bands", "auto",
                 "--bands", "nir", "-o", str(out)]) == 0
    assert json.loads((out / "baseline.json").read_text())["bands_used"] == [
        "blue", "green", "red", "nir"]
    # Given names win over descriptions; one --bands per file or none.
    assert main(["-q", "map", "baseline", *map(str, paths), "--bands", "nir,_,_",
                 "--bands", "red", "-o", str(tmp_path / "o2")]) == 0
    assert json.loads((tmp_path / "o2" / "baseline.json").read_text())["bands_used"] == [
        "red", "nir"]
    assert main(["map", "baseline", *map(str, paths), "--bands", "nir",
                 "-o", str(tmp_path / "o3")]) == 2


def test_map_baseline_min_area_km2_drops_small_outlines(tif_factory, tmp_path: Path) -> None:
    from glacierkit.io import open_raster, read_vector

    paths = _scene(tif_factory, {"rgb.tif": ["red", "green", "blue"]})
    out = tmp_path / "default"
    assert main(["-q", "map", "baseline", *map(str, paths), "-o", str(out)]) == 0
    rep = json.loads((out / "baseline.json").read_text())
    areas = sorted(read_vector(out / "outlines.gpkg")["area_km2"])
    assert areas == pytest.approx([0.0144, 0.36])
    assert rep["min_area_km2"] == 0.01 and rep["n_small_dropped"] == 4
    assert rep["small_dropped_km2"] == pytest.approx(3 * 0.0009 + 0.0081)
    assert rep["glacier_km2"] == pytest.approx(0.3744)
    # classes.tif keeps every glacier pixel; --min-area-px is the clump removal there.
    assert int((open_raster(out / "classes.tif").data[0] == 1).sum()) == 400 + 16 + 9 + 3
    keep = tmp_path / "keep"
    assert main(["-q", "map", "baseline", *map(str, paths), "-o", str(keep),
                 "--min-area-km2", "0"]) == 0
    assert len(read_vector(keep / "outlines.gpkg")) == 6
    assert main(["-q", "map", "baseline", *map(str, paths), "-o", str(tmp_path / "px"),
                 "--min-area-km2", "0", "--min-area-px", "10"]) == 0
    assert int((open_raster(tmp_path / "px" / "classes.tif").data[0] == 1).sum()) == 416


# --------------------------------------------------------------------------------------------
# The vocabulary of every command
# --------------------------------------------------------------------------------------------

def _commands() -> dict[str, object]:
    import typer

    from glacierkit.cli.main import _register_commands, app

    _register_commands()
    root = typer.main.get_command(app)
    found: dict[str, object] = {}

    def walk(cmd, path: str) -> None:
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found[path] = cmd

    walk(root, "")
    return found


#: Commands that write files: output folder/file as -o/--out, never replaced unless --overwrite.
WRITING = ("map train", "map predict", "map baseline", "facies train", "facies clean",
           "facies predict", "velocity", "massbalance indicators", "demo")


def _options(cmd) -> dict[str, list[str]]:
    return {p.name: list(p.opts) for p in cmd.params if p.param_type_name == "option"}


def test_every_writing_command_has_out_and_overwrite() -> None:
    cmds = _commands()
    assert set(WRITING) <= set(cmds)
    for name in WRITING:
        opts = [o for v in _options(cmds[name]).values() for o in v]
        assert {"-o", "--out", "--overwrite"} <= set(opts), name
    for name, cmd in cmds.items():
        opts = [o for v in _options(cmd).values() for o in v]
        assert not {"--output", "--output-dir", "--out-dir", "--force"} & set(opts), name
        if "--out" in opts:
            assert "-o" in opts and "--overwrite" in opts, name


def test_area_limits_are_in_km2_with_one_default() -> None:
    import inspect

    from glacierkit.dl.predict import predict_scene
    from glacierkit.io.vector import MIN_AREA_KM2
    from glacierkit.mapping.baseline import run_baseline

    cmds = _commands()
    for name, cmd in cmds.items():
        for p in cmd.params:
            for o in p.opts:
                if "area" in o:
                    assert o.endswith("-km2") or o == "--min-area-px", (name, o)
    for name in ("map predict", "map baseline"):
        (p,) = [p for p in cmds[name].params if "--min-area-km2" in p.opts]
        assert p.default == MIN_AREA_KM2 == 0.01, name
    for fn in (predict_scene, run_baseline):
        assert inspect.signature(fn).parameters["min_area_km2"].default == MIN_AREA_KM2


def test_facies_band_description_warning_names_the_file(tif_factory) -> None:
    from glacierkit.dl.sources import SourceLayout
    from glacierkit.facies.apply import _check_band_names

    layout = SourceLayout.standard(("B2", "B3", "B4"))
    (path,) = _scene(tif_factory, {"s2.tif": ["B4", "B3", "B2"]})
    (warning,) = _check_band_names(layout, {"optical": str(path)})
    assert warning.startswith(f"{path}: the band descriptions ['B4', 'B3', 'B2']")
    assert "another order" in warning and "gdal_translate -b" in warning
    (ok,) = _scene(tif_factory, {"ok.tif": ["b2", "B3", "b4"]})
    assert _check_band_names(layout, {"optical": str(ok)}) == []
