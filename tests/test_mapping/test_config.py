"""The ``map train`` TOML config: template parses, paths resolve, bad configs say why."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from glacierkit.errors import InputError
from glacierkit.mapping.config import TEMPLATE, load_config, parse_config


def _template() -> dict:
    return tomllib.loads(TEMPLATE)


def test_template_parses_and_resolves_example_paths(shared_data: Path, tmp_path: Path) -> None:
    p = tmp_path / "cfg.toml"
    p.write_text(TEMPLATE)
    cfg = load_config(p)
    assert cfg.out_dir == tmp_path / "mapping-run"
    assert cfg.model.arch == "glavitu" and cfg.train.strategy == "global"
    (scene,) = cfg.scenes
    assert [f.name for f in scene.sources["optical"]] == [
        "LE71400412000304SGS00_RGB.tif", "LE71400412000304SGS00_B4.tif"]
    assert all(f.is_file() for f in scene.sources["optical"])
    assert scene.outlines is not None and scene.outlines.is_file()
    assert cfg.augment.gamma == (0.8, 1.25)
    d = cfg.to_dict()
    assert d["scenes"][0]["sources"]["optical"][0].endswith("_RGB.tif")


def test_relative_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    raw = _template()
    raw["scenes"] = [{"name": "a", "outlines": "o.gpkg", "sources": {"optical": "img.tif"}}]
    cfg = parse_config(raw, base=tmp_path)
    assert cfg.scenes[0].sources["optical"] == [tmp_path / "img.tif"]
    assert cfg.scenes[0].outlines == tmp_path / "o.gpkg"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["model"].update(arch="unet3000"), "arch"),
    (lambda r: r["train"].update(strategy="everything"), "strategy"),
    (lambda r: r["train"].update(learning_rate=1.0), "unknown key"),
    (lambda r: r.update(extra={}), "unknown section"),
    (lambda r: r["split"].update(test_fraction=0.7, val_fraction=0.4), "sum below 1"),
    (lambda r: r["inference"].update(overlap=300), "overlap"),
    (lambda r: r["scenes"][0].pop("outlines"), "exactly one of"),
    (lambda r: r["scenes"][0]["sources"].update(sar="s1.tif"), "not in [layout]"),
    (lambda r: r["train"].update(strategy="regional") or r["scenes"][0].pop("region"),
     "region"),
    (lambda r: r["augment"].update(gamma=[1.5, 0.5]), "gamma"),
])
def test_bad_configs_raise_with_the_reason(edit, message: str, tmp_path: Path) -> None:
    raw = _template()
    raw["scenes"][0]["sources"]["optical"] = ["a.tif"]
    raw["scenes"][0]["outlines"] = "o.gpkg"
    edit(raw)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw, base=tmp_path)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="template-config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[output\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(bad)
