"""Help pages and result tables read well: no ``<bool>`` on flags, tables fit 80 columns."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from glacierkit.cli.main import _register_commands, app, main


def _command_paths() -> list[list[str]]:
    """Every command and group of the app, as argument lists (``[]`` is the app itself)."""
    _register_commands()
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def _help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def test_every_command_is_listed() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {"", "velocity", "map predict", "facies train", "massbalance fit", "demo"} <= names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "glacierkit")
def test_help_shows_no_type_on_flags(path: list[str], capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = _help(path, capsys)
    assert "--help" in text
    assert "<bool>" not in text, text


def test_help_still_shows_value_types(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = _help(["map", "predict"], capsys)
    line = next(ln for ln in text.splitlines() if "--tile-size" in ln)
    assert "<int" in line
    flag = next(ln for ln in text.splitlines() if "--overwrite" in ln)
    assert "<" not in flag
