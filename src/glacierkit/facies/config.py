"""TOML configuration of ``glacierkit facies train`` (commented template: :data:`TEMPLATE`).

Paths are relative to the config file's folder, absolute, or ``example:DATASET/FILE`` to take
a file from glacierkit's example data (``glacierkit data list``), as in ``map train`` configs
(:func:`glacierkit._toml.resolve_config_path`). Unknown sections or keys are errors (a typo
must not silently fall back to a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glacierkit._toml import read_config_toml, resolve_config_path
from glacierkit.errors import DatasetNotFoundError, InputError
from glacierkit.facies.vocab import label_table_from_mapping, read_label_table

__all__ = ["TEMPLATE", "FaciesConfig", "load_config", "parse_config"]

TEMPLATE = '''\
# glacierkit facies train — configuration (TOML).
# Paths: relative to this file, absolute, or "example:DATASET/FILE" (glacierkit data list).

[labels]
# Point labels: CSV (WKT "geometry" column, or x/y / lon/lat columns), GeoPackage, Shapefile
# (polygons are sampled to points every `polygon_spacing` CRS units).
path = "labels.csv"
# Vocabulary: a preset ("aberle": 1 snow, 2 shadowed snow → snow, 3 ice, 4 rock → debris,
# 5 water; "aberle_shadow": shadowed snow → shadow) or none (labels are facies names).
vocabulary = "aberle"
# Extra or overriding label → facies mappings (stated in every output): inline, or a CSV
# file with the columns label,facies (the file `facies clean --label-table` reads).
# table = { "rock" = "debris", "shadowed snow" = "shadow" }
# table = "label_table.csv"
# Column names (defaults: class/label, glacier/site_name/rgi_id, scene, date/image_date).
# label = "class"
# glacier = "site_name"
# date = "image_date"
# crs = "EPSG:4326"           # CRS of CSV coordinates
# polygon_spacing = 20.0      # for polygon files
# max_per_scene_class = 200   # keep at most this many labels per (scene, class), seeded
# Form (a), sampled spectra: the band columns to use (a model is then applicable to scenes
# whose optical bands are exactly these, in this order).
bands = ["B2", "B3", "B4", "B8", "B11"]

# Form (b), points + rasters: give scenes instead of `bands`; patches are cut around each
# point (its `scene` column must equal the scene name, or set `labels` per scene).
# [[scenes]]
# name = "gulkana_20210615"
# optical = ["scene.tif"]                   # bands in the order of optical_bands
# dem = "dem.tif"                           # optional: elevation, slope, hillshade channels
# labels = "gulkana_points.gpkg"            # optional: this scene's own labels
# [patches]
# size = 33                                 # px, odd, >= the network's receptive field
# optical_bands = ["blue", "green", "red", "nir", "swir1"]

[model]
# Final model: "cnn" (compact patch CNN; size "pixel" = per-pixel network for spectra) —
# written as model.gkm with an ONNX graph; the spectral baseline is always cross-validated too.
kind = "cnn"
size = "pixel"                # pixel | tiny (33 px receptive field) | small | base
baseline = "hgb"              # hgb (gradient boosting) | mlp | none
epochs = 8
batch_size = 256
lr = 0.003
focal_gamma = 1.0             # 0 = cross-entropy
label_smoothing = 0.05
weighting = "class_scene"     # none | class | class_scene (class × scene frequency)
accelerator = "auto"          # auto | cpu | cuda

[cv]
folds = 5                     # grouped by glacier (capped at the number of glaciers)
seed = 0

[clean]
enabled = true                # confident learning on the out-of-fold probabilities
keep_classes = ["water", "cloud", "shadow"]   # never pruned
# prune_classes = ["snow", "ice", "firn"]     # only these may be pruned (default: all others)
filter_by = "prune_by_noise_rate"
evaluate = false              # nested before/after evaluation (slower: inner CV per fold)

[calibration]
# auto: the lower ECE on held-out halves of the out-of-fold logits
method = "auto"               # auto | temperature | isotonic | none
'''

_SECTIONS = {
    "labels": {"path", "vocabulary", "table", "label", "glacier", "scene", "date", "crs",
               "polygon_spacing", "bands", "x", "y", "geometry", "max_per_scene_class"},
    "model": {"kind", "size", "baseline", "epochs", "batch_size", "lr", "focal_gamma",
              "label_smoothing", "weighting", "accelerator", "dropout", "augment", "overrides"},
    "cv": {"folds", "seed"},
    "clean": {"enabled", "keep_classes", "prune_classes", "filter_by", "evaluate",
              "frac_noise"},
    "calibration": {"method"},
    "patches": {"size", "optical_bands"},
    "scenes": {"name", "optical", "dem", "labels"},
}


@dataclass
class FaciesConfig:
    """Parsed ``facies train`` configuration (see :data:`TEMPLATE` for the meaning)."""

    labels: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, Any] = field(default_factory=dict)
    clean: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    patches: dict[str, Any] = field(default_factory=dict)
    scenes: list[dict[str, Any]] = field(default_factory=list)
    base: Path = Path(".")

    @property
    def form(self) -> str:
        """``"spectra"`` (form a) or ``"patches"`` (form b)."""
        return "patches" if self.scenes else "spectra"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in the report)."""
        return {"labels": self.labels, "model": self.model, "cv": self.cv, "clean": self.clean,
                "calibration": self.calibration, "patches": self.patches,
                "scenes": self.scenes}


def _path(base: Path, p: Any, what: str) -> str:
    return str(resolve_config_path(p, base, what=what, must_exist=True))


def parse_config(data: dict[str, Any], base: str | Path = ".") -> FaciesConfig:
    """Validate a config mapping (as read from TOML); paths resolved against ``base``."""
    base = Path(base)
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise InputError(f"unknown config section(s) {sorted(unknown)}; valid: "
                         f"{sorted(_SECTIONS)}.")
    for sec, keys in _SECTIONS.items():
        items = data.get(sec, [] if sec == "scenes" else {})
        for d in (items if isinstance(items, list) else [items]):
            if not isinstance(d, dict):
                raise InputError(f"[{sec}] must be a table.")
            bad = set(d) - keys
            if bad:
                raise InputError(f"unknown key(s) {sorted(bad)} in [{sec}]; valid: "
                                 f"{sorted(keys)}.")
    labels = dict(data.get("labels") or {})
    scenes = [dict(s) for s in data.get("scenes") or []]
    if ("path" not in labels and not all("labels" in s for s in scenes)) or (
            "path" not in labels and not scenes):
        raise InputError("[labels] path is required (or a `labels` file per [[scenes]] entry).")
    if "path" in labels:
        labels["path"] = _path(base, labels["path"], "label file")
    if isinstance(labels.get("table"), str):
        labels["table_file"] = _path(base, labels["table"], "[labels] table file")
        labels["table"] = read_label_table(labels["table_file"])
    elif "table" in labels:
        labels["table"] = label_table_from_mapping(labels["table"], "[labels] table")
    if scenes and "bands" in labels:
        raise InputError("give either [labels] bands (form a: sampled spectra) or [[scenes]] "
                         "(form b: patches from rasters), not both.")
    if not scenes and not labels.get("bands"):
        raise InputError("form (a) needs [labels] bands = [...] (the band columns); for form "
                         "(b) give [[scenes]] with rasters.")
    for i, s in enumerate(scenes):
        if "name" not in s or "optical" not in s:
            raise InputError(f"[[scenes]] entry {i} needs `name` and `optical`.")
        opt = s["optical"] if isinstance(s["optical"], list) else [s["optical"]]
        s["optical"] = [_path(base, p, f"scene {s['name']} optical raster") for p in opt]
        if "dem" in s:
            s["dem"] = _path(base, s["dem"], f"scene {s['name']} DEM")
        if "labels" in s:
            s["labels"] = _path(base, s["labels"], f"scene {s['name']} labels")
    patches = dict(data.get("patches") or {})
    if scenes and not patches.get("optical_bands"):
        raise InputError("form (b) needs [patches] optical_bands = [...] naming the optical "
                         "raster bands in order (stored in the model file).")
    model = {"kind": "cnn", "size": "pixel" if not scenes else "tiny", "baseline": "hgb",
             "epochs": 8, "batch_size": 256, "lr": 3e-3, "focal_gamma": 1.0,
             "label_smoothing": 0.05, "weighting": "class_scene", "accelerator": "auto",
             **dict(data.get("model") or {})}
    if model["kind"] != "cnn":
        raise InputError(f"[model] kind must be 'cnn' (the model file holds the network; the "
                         f"spectral baselines are reported through `baseline`); got "
                         f"{model['kind']!r}.")
    if model["baseline"] not in ("hgb", "mlp", "none"):
        raise InputError(f"[model] baseline must be 'hgb', 'mlp' or 'none'; got "
                         f"{model['baseline']!r}.")
    if model["weighting"] not in ("none", "class", "class_scene"):
        raise InputError(f"[model] weighting must be none, class or class_scene; got "
                         f"{model['weighting']!r}.")
    cv = {"folds": 5, "seed": 0, **dict(data.get("cv") or {})}
    if int(cv["folds"]) < 2:
        raise InputError(f"[cv] folds must be >= 2; got {cv['folds']}.")
    clean = {"enabled": True, "keep_classes": ["water", "cloud", "shadow"],
             "prune_classes": None, "filter_by": "prune_by_noise_rate", "evaluate": False,
             "frac_noise": 1.0, **dict(data.get("clean") or {})}
    calibration = {"method": "auto", **dict(data.get("calibration") or {})}
    return FaciesConfig(labels=labels, model=model, cv=cv, clean=clean,
                        calibration=calibration, patches={"size": 33, **patches},
                        scenes=scenes, base=base)


def load_config(path: str | Path) -> FaciesConfig:
    """Read and validate a TOML config file."""
    p, data = read_config_toml(path, command="facies train", missing=DatasetNotFoundError)
    return parse_config(data, p.parent)
