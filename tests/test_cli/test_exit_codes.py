"""Exit codes of ``glacierkit`` (see :mod:`glacierkit.cli.main`) and CLI wording of errors.

0 success, 1 input error, 2 usage error (found before any work), 70 internal error (a bug),
130 interrupted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from glacierkit import __version__
from glacierkit.cli import info as info_cli
from glacierkit.cli.main import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, main
from glacierkit.errors import (
    DatasetNotFoundError,
    GlacierkitError,
    GridMismatchError,
    InputError,
    OutputExistsError,
)
from glacierkit.io.grid import check_same_grid


def test_exit_code_values_are_distinct():
    assert (EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED) == (1, 2, 70, 130)


# ----------------------------------------------------------------------------- usage errors: 2
# Inputs that do not exist: a command that started work before checking its options would fail
# with exit code 1 (file not found) instead of 2.
_MISSING = "no_such_input.tif"
_USAGE = {
    "velocity --method": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--method", "foo"],
                          "--method"),
    "velocity --prefilter": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--prefilter",
                              "sobel"], "--prefilter"),
    "velocity --kind": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--kind", "radar"],
                        "--kind"),
    "velocity --units": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--units", "km/h"],
                         "--units"),
    "velocity --band": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--band", "0"],
                        "--band"),
    "velocity --chip": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--chip", "0"],
                        "--chip"),
    "velocity --step": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--step", "0"],
                        "--step"),
    "velocity --search": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--search", "-1"],
                          "--search"),
    "velocity --dt-days": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--dt-days", "0"],
                           "--dt-days"),
    "velocity --pixel-size": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--pixel-size",
                               "-15"], "--pixel-size"),
    "velocity --dates": (["velocity", _MISSING, _MISSING, "-o", "{out}", "--dates",
                          "2016-13-01", "2016-08-03"], "--dates"),
    "map predict --backend": (["map", "predict", "m.gkm", "optical=a.tif", "-o", "{out}",
                               "--backend", "xyz"], "--backend"),
    "map predict --tile-size": (["map", "predict", "m.gkm", "a.tif", "-o", "{out}",
                                 "--tile-size", "0"], "--tile-size"),
    "map predict --overlap": (["map", "predict", "m.gkm", "a.tif", "-o", "{out}",
                               "--overlap", "-1"], "--overlap"),
    "map predict --overlap >= --tile-size": (["map", "predict", "m.gkm", "a.tif", "-o", "{out}",
                                              "--tile-size", "64", "--overlap", "64"],
                                             "--overlap"),
    "map predict --mc-samples": (["map", "predict", "m.gkm", "a.tif", "-o", "{out}",
                                  "--mc-samples", "-2"], "--mc-samples"),
    "map predict --min-area-km2": (["map", "predict", "m.gkm", "a.tif", "-o", "{out}",
                                    "--min-area-km2", "-1"], "--min-area-km2"),
    "map baseline --method": (["map", "baseline", _MISSING, "--bands", "red", "-o", "{out}",
                               "--method", "otsu"], "--method"),
    "map baseline --bands count": (["map", "baseline", _MISSING, _MISSING, "--bands", "red",
                                    "-o", "{out}"], "--bands"),
    "map evaluate --resolution": (["map", "evaluate", _MISSING, _MISSING, "--resolution", "0"],
                                  "--resolution"),
    "facies predict --backend": (["facies", "predict", "m.gkm", _MISSING, "-o", "{out}",
                                  "--backend", "tensorrt"], "--backend"),
    "facies predict --majority": (["facies", "predict", "m.gkm", _MISSING, "-o", "{out}",
                                   "--majority", "4"], "--majority"),
    "facies clean --model": (["facies", "clean", "labels.csv", "--bands", "b1", "-o",
                              "{out}/kept.csv", "--model", "svm"], "--model"),
    "facies clean --folds": (["facies", "clean", "labels.csv", "--bands", "b1", "-o",
                              "{out}/kept.csv", "--folds", "1"], "--folds"),
    "facies train no config": (["facies", "train"], "CONFIG"),
    "massbalance fit --units": (["massbalance", "fit", "i.csv", "mb.csv", "--units", "km"],
                                "--units"),
    "massbalance fit --min-samples": (["massbalance", "fit", "i.csv", "mb.csv",
                                       "--min-samples", "1"], "--min-samples"),
    "massbalance indicators --units": (["massbalance", "indicators", "p.csv", "-o",
                                        "{out}/t.csv", "--units", "cm"], "--units"),
    "massbalance indicators --dem alone": (["massbalance", "indicators", "p.csv", "-o",
                                            "{out}/t.csv", "--dem", _MISSING], "--outlines"),
    "massbalance indicators no --links": (["massbalance", "indicators", "p.csv", "-o",
                                           "{out}/t.csv", "--rgi-hypsometry", "h.csv"],
                                          "--links"),
    "velocity-qa --units": (["velocity-qa", _MISSING, _MISSING, "--stable", _MISSING,
                             "--units", "km/h"], "--units"),
    "velocity-qa --gps-window": (["velocity-qa", _MISSING, _MISSING, "--stable", _MISSING,
                                  "--gps-window", "2"], "--gps-window"),
    "velocity-qa --sigma": (["velocity-qa", _MISSING, _MISSING, "--stable", _MISSING,
                             "--sigma", "0"], "--sigma"),
    "unknown command": (["velocty"], "velocty"),
    "unknown option": (["info", _MISSING, "--jsn"], "--jsn"),
    "missing argument": (["velocity", _MISSING], "SECONDARY"),
}


@pytest.mark.parametrize("case", list(_USAGE))
def test_usage_errors_exit_2_before_any_work(case, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative input names resolve to nothing here
    args, flag = _USAGE[case]
    out = tmp_path / "out"
    rc = main([a.replace("{out}", str(out)) for a in args])
    err = capsys.readouterr().err
    assert rc == EXIT_USAGE, err
    assert flag.lower() in err.lower(), err
    assert "Traceback" not in err and "internal error" not in err
    assert not out.exists()  # nothing was created


def test_valid_choices_are_accepted(tmp_path: Path, monkeypatch, capsys):
    # The choices are the library's: a valid value gets past the option check (and then fails
    # on the missing input, an input error).
    monkeypatch.chdir(tmp_path)
    for extra in (["--method", "oc"], ["--prefilter", "wallis"], ["--kind", "sar"],
                  ["--units", "m/day"]):
        rc = main(["velocity", _MISSING, _MISSING, "-o", str(tmp_path / "o"), "--dt-days", "16",
                   *extra])
        assert rc == EXIT_ERROR, (extra, capsys.readouterr().err)
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- input errors: 1
def test_glacierkit_error_exits_1_with_one_line(tmp_path: Path, capsys):
    assert main(["info", str(tmp_path / "missing.tif")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "does not exist" in err and "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("exc", [
    PermissionError(13, "Permission denied", "/data/scene.tif"),
    FileNotFoundError(2, "No such file or directory", "/data/scene.tif"),
    OSError(28, "No space left on device"),
    OutputExistsError("output /data/x.tif already exists."),
])
def test_os_errors_are_input_errors(exc, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(info_cli, "describe", fail)
    assert main(["info", "scene.tif"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "internal error" not in err
    assert str(exc).split(":")[0] in err


# ----------------------------------------------------------------------------- bugs: 70
def test_internal_error_is_reported_as_a_bug(monkeypatch, capsys):
    def bug(*args, **kwargs):
        return {}["missing key"]

    monkeypatch.setattr(info_cli, "describe", bug)
    assert main(["info", "scene.tif"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == "internal error: KeyError: 'missing key'"
    assert f"this is a bug in glacierkit {__version__}" in lines[1]
    assert "--verbose" in lines[1] and "report it" in lines[1]
    assert "Traceback" not in err and not err.startswith("error:")


def test_internal_error_verbose_shows_traceback(monkeypatch, capsys):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(info_cli, "describe", bug)
    assert main(["--verbose", "info", "scene.tif"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error: ZeroDivisionError: division by zero" in err


def test_builtin_value_error_is_a_bug_not_an_input_error(monkeypatch, capsys):
    # Library input checks raise glacierkit errors; a bare ValueError escaped a check.
    def bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(info_cli, "describe", bug)
    assert main(["info", "scene.tif"]) == EXIT_INTERNAL
    assert "internal error: ValueError" in capsys.readouterr().err


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(info_cli, "describe", interrupted)
    assert main(["info", "scene.tif"]) == EXIT_INTERRUPTED


def test_markup_like_text_in_messages_is_printed_verbatim(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise InputError("bands ['red', 'nir'] and [bold]x[/bold] expected")

    monkeypatch.setattr(info_cli, "describe", fail)
    assert main(["info", "scene.tif"]) == EXIT_ERROR
    assert "bands ['red', 'nir'] and [bold]x[/bold] expected" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CLI wording
def test_error_hint_python_and_cli_wording():
    e = GridMismatchError("grids differ.", hint="Fix: pass align='reference'.",
                          cli_hint="Fix: pass --align.")
    assert str(e) == "grids differ. Fix: pass align='reference'."
    assert e.cli_message() == "grids differ. Fix: pass --align."
    assert e.message == "grids differ." and isinstance(e, ValueError)
    assert InputError("plain").cli_message() == "plain" == str(InputError("plain"))
    assert InputError("m.", hint="Python fix.").cli_message() == "m. Python fix."
    assert InputError("m.", hint="Python fix.", cli_hint="").cli_message() == "m."
    nf = DatasetNotFoundError("x.tif does not exist.", cli_hint="check the path.")
    assert isinstance(nf, FileNotFoundError) and str(nf) == "x.tif does not exist."
    assert isinstance(nf, GlacierkitError)


def test_impossible_date_is_an_input_error_not_a_bug():
    from glacierkit.velocity.dates import parse_time

    with pytest.raises(InputError, match="not a valid date"):
        parse_time("2016-13-01")  # matches the date pattern, but there is no month 13


def test_vector_without_crs_gives_a_cli_fix_without_python_arguments(tmp_path: Path):
    import geopandas as gpd
    from shapely.geometry import box

    from glacierkit.errors import CRSError
    from glacierkit.io.vector import read_vector

    with pytest.warns(UserWarning, match="crs"):  # geopandas warns about writing no CRS
        gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(tmp_path / "p.shp")
    with pytest.raises(CRSError, match="crs=") as info:
        read_vector(tmp_path / "p.shp")
    cli = info.value.cli_message()
    assert "has no CRS" in cli and "crs=" not in cli and "--crs" not in cli  # no such flag


def test_existing_output_names_overwrite_in_each_wording(tmp_path: Path):
    from glacierkit.io.writer import check_output_path

    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(OutputExistsError) as info:
        check_output_path(tmp_path / "x.tif", overwrite=False)
    assert "overwrite=True" in str(info.value) and "--overwrite" not in str(info.value)
    cli = info.value.cli_message()
    assert "already exists" in cli and "--overwrite" in cli and "overwrite=True" not in cli


def _two_grids(tif_factory) -> tuple[Path, Path]:
    data = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    ref = tif_factory("ref.tif", data)
    sec = tif_factory("sec.tif", data, transform=Affine(15.0, 0, 500000.0, 0, -15.0, 6700000.0))
    return ref, sec


def test_velocity_grid_mismatch_names_the_align_flag(tif_factory, tmp_path: Path, capsys):
    ref, sec = _two_grids(tif_factory)
    out = tmp_path / "out"
    assert main(["velocity", str(ref), str(sec), "-o", str(out), "--dt-days", "16"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "not on the same grid" in err and "--align" in err
    assert "align='reference'" not in err and "align=" not in err
    # Python callers still get the Python spelling.
    from glacierkit.io.raster import read_grid

    with pytest.raises(GridMismatchError, match="align='reference'") as info:
        check_same_grid({"reference": read_grid(ref), "secondary": read_grid(sec)})
    assert "--align" not in str(info.value)


def test_map_predict_band_count_error_has_no_python_advice(tif_factory, tmp_path: Path,
                                                           capsys):
    torch = pytest.importorskip("torch")
    from glacierkit.dl.bundle import bundle_from_model, save_bundle
    from glacierkit.dl.sources import NormStats, SourceLayout

    layout = SourceLayout.standard(("red", "green", "blue", "nir"))
    x = np.random.default_rng(1).uniform(0, 1, (4, 32, 32)).astype(np.float32)
    net = torch.nn.Conv2d(4, 2, 3)
    gkm = save_bundle(tmp_path / "m.gkm", bundle_from_model(
        net, layout=layout.to_dict(), norm=NormStats.fit([x]).to_dict(),
        classes=["off_glacier", "glacier"], model_kwargs={"group_channels": [4], "n_classes": 2},
        task="mapping"))
    three = tif_factory("rgb.tif", x[:3])
    rc = main(["map", "predict", str(gkm), f"optical={three}", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == EXIT_ERROR, err
    assert "has 3 band(s)" in err and "expects 4 raw band(s)" in err
    assert "BandSource" not in err and "glacierkit.dl" not in err
    assert "optical=FILE" in err
