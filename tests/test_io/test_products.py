"""ProductSet: a command's files are published all together or not at all."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from glacierkit.errors import InputError, OutputExistsError
from glacierkit.io import Grid, write_raster
from glacierkit.io.products import ProductSet, interrupted_output, reports_output
from glacierkit.io.writer import STAGING_PREFIX

NAMES = ("a.tif", "b.txt", "report.json")
GRID = Grid(crs=32607, transform=Affine(30, 0, 500000, 0, -30, 6700000), shape=(20, 24))


def _stage_all(ps: ProductSet, tag: str = "new") -> None:
    write_raster(ps.path("a.tif"), np.ones(GRID.shape, np.float32), GRID)
    ps.path("b.txt").write_text(tag)
    ps.path("report.json").write_text(f'{{"run": "{tag}"}}')


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _old_set(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in NAMES:
        (folder / n).write_text(f"old {n}")


def test_publishes_the_set_report_last_and_cleans_up(tmp_path: Path, monkeypatch, caplog):
    out = tmp_path / "new" / "out"
    order: list[str] = []
    real = os.replace

    def spy(src, dst):
        order.append(Path(dst).name)
        real(src, dst)

    ps = ProductSet(out, NAMES)
    assert not out.exists()  # checks create nothing
    with caplog.at_level(logging.DEBUG, logger="glacierkit"), ps:
        _stage_all(ps)
        assert _listing(out) == [ps.staging.name] and ps.staging.name.startswith(STAGING_PREFIX)
        monkeypatch.setattr(os, "replace", spy)
    assert ps.published
    assert _listing(out) == sorted(NAMES)
    assert order[-1] == "report.json" and [o for o in order if o in NAMES] == list(NAMES)
    assert (out / "b.txt").read_text() == "new"
    # Products get normal permissions, not mkstemp's 0o600.
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "a.tif").stat().st_mode & 0o777 == 0o666 & ~umask
    # Only final paths are logged at INFO; staging paths at DEBUG at most.
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any(str(out / "a.tif") in m for m in info)
    assert not any(STAGING_PREFIX in m for m in info)


def test_refuses_existing_products_up_front(tmp_path: Path):
    _old_set(tmp_path)
    with pytest.raises(OutputExistsError, match="overwrite"):
        ProductSet(tmp_path, NAMES)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="not a folder"):
        ProductSet(tmp_path / "file", NAMES)
    with pytest.raises(InputError):
        ProductSet(tmp_path, ["sub/a.tif"])
    with pytest.raises(InputError):
        ProductSet(tmp_path, ["a.tif", "a.tif"])


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_inside_leaves_nothing_and_removes_created_folders(tmp_path: Path, exc):
    out = tmp_path / "x" / "y"
    ps = ProductSet(out, NAMES)
    with pytest.raises(type(exc)) as info, ps:
        ps.path("a.tif").write_text("partial")
        raise exc
    assert not (tmp_path / "x").exists()
    assert not ps.published
    if isinstance(exc, KeyboardInterrupt):
        note = interrupted_output(info.value)
        assert note is not None and note.folder == out and not note.published


def test_failure_inside_keeps_an_existing_folder_as_it_was(tmp_path: Path):
    (tmp_path / "other.txt").write_text("mine")
    ps = ProductSet(tmp_path, NAMES)
    with pytest.raises(KeyboardInterrupt), ps:
        _stage_all(ps)
        raise KeyboardInterrupt
    assert _listing(tmp_path) == ["other.txt"]


def test_missing_product_publishes_nothing(tmp_path: Path):
    ps = ProductSet(tmp_path / "o", NAMES)
    with pytest.raises(RuntimeError, match="were not written"), ps:
        ps.path("a.tif").write_text("x")
    assert not (tmp_path / "o").exists()


def _fail_on(monkeypatch, name: str, exc: BaseException) -> None:
    """Make the rename of the staged ``name`` onto its target raise ``exc`` (once)."""
    real = os.replace
    state = {"done": False}

    def fake(src, dst):
        if (not state["done"] and Path(dst).name == name
                and STAGING_PREFIX in str(src) and ".previous" not in str(src)):
            state["done"] = True
            raise exc
        real(src, dst)

    monkeypatch.setattr(os, "replace", fake)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_during_publish_rolls_back(tmp_path: Path, monkeypatch, exc):
    out = tmp_path / "o"
    ps = ProductSet(out, NAMES)
    with pytest.raises(type(exc)), ps:
        _stage_all(ps)
        _fail_on(monkeypatch, "report.json", exc)
    assert not out.exists()
    assert not ps.published


def test_overwrite_failure_during_publish_restores_the_old_set(tmp_path: Path, monkeypatch):
    _old_set(tmp_path)
    ps = ProductSet(tmp_path, NAMES, overwrite=True)
    with pytest.raises(OSError, match="disk full"), ps:
        _stage_all(ps)
        _fail_on(monkeypatch, "report.json", OSError("disk full"))
    assert _listing(tmp_path) == sorted(NAMES)
    for n in NAMES:
        assert (tmp_path / n).read_text() == f"old {n}"


def test_overwrite_success_replaces_the_set(tmp_path: Path):
    _old_set(tmp_path)
    ps = ProductSet(tmp_path, NAMES, overwrite=True)
    with ps:
        _stage_all(ps)
    assert _listing(tmp_path) == sorted(NAMES)
    assert (tmp_path / "b.txt").read_text() == "new"


def _signal_during_rename(monkeypatch, name: str, signum: int) -> None:
    """Send ``signum`` to this process while ``name`` is being renamed into place."""
    real = os.replace
    sent: list[int] = []

    def fake(src, dst):
        real(src, dst)
        if not sent and Path(dst).name == name and STAGING_PREFIX in str(src):
            sent.append(signum)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(os, "replace", fake)


def test_sigint_during_publish_is_held_then_rolls_back(tmp_path: Path, monkeypatch):
    _old_set(tmp_path)
    ps = ProductSet(tmp_path, NAMES, overwrite=True)
    with pytest.raises(KeyboardInterrupt) as info, ps:
        _stage_all(ps)
        _signal_during_rename(monkeypatch, "a.tif", signal.SIGINT)
    for n in NAMES:
        assert (tmp_path / n).read_text() == f"old {n}"
    assert _listing(tmp_path) == sorted(NAMES)
    note = interrupted_output(info.value)
    assert note is not None and note.folder == tmp_path and not note.published
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_held_signal_whose_handler_returns_still_publishes(tmp_path: Path, monkeypatch):
    seen: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    try:
        ps = ProductSet(tmp_path / "o", NAMES)
        with ps:
            _stage_all(ps)
            _signal_during_rename(monkeypatch, "b.txt", signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert seen and seen[0] == signal.SIGTERM
    assert ps.published and _listing(tmp_path / "o") == sorted(NAMES)


def test_interrupt_during_cog_conversion_leaves_no_temporary_file(tmp_path: Path,
                                                                   monkeypatch):
    import rasterio.shutil

    def interrupted_copy(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rasterio.shutil, "copy", interrupted_copy)
    with pytest.raises(KeyboardInterrupt):
        write_raster(tmp_path / "v.tif", np.ones(GRID.shape, np.float32), GRID)
    assert _listing(tmp_path) == []


def test_reports_output_names_the_folder(tmp_path: Path):
    @reports_output("out")
    def command(x: int, out: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        command(1, out=tmp_path / "o")
    note = interrupted_output(info.value)
    assert note is not None and note.folder == tmp_path / "o" and not note.published

    @reports_output("out")
    def outer(out: Path) -> None:
        # A nested set writing into another folder: the outer folder is what the user asked.
        ps = ProductSet(out / "inner", ["a.txt"])
        with ps:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        outer(tmp_path / "p")
    note = interrupted_output(info.value)
    assert note is not None and note.folder == tmp_path / "p"
    assert interrupted_output(RuntimeError()) is None
