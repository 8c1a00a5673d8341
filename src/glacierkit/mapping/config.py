"""Configuration of ``glacierkit map train``: a commented TOML file.

The file names the scenes (source rasters per group, reference outlines, region), the source
layout, the spatial split, the model, the training schedule and strategy, calibration and
inference settings. :data:`TEMPLATE` is the commented template that ``glacierkit map train
--template-config`` prints; :func:`load_config` reads and validates a file.

Paths are relative to the config file's folder, absolute, or ``example:DATASET/FILE`` to take
a file from glacierkit's example data (``glacierkit data list``).

Torch-free: the config can be read and checked without the dl extra.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glacierkit._toml import read_config_toml, resolve_config_path
from glacierkit.errors import InputError

STRATEGIES = ("global", "regional", "finetune", "region_encoding", "coords_encoding")
ARCHS = ("glavitu", "resunet", "icemapper3d", "convlstm", "utae")
SERIES_ARCHS = ("icemapper3d", "convlstm", "utae")
CALIBRATIONS = ("auto", "temperature", "isotonic", "none")
SPLITS = ("half", "blocks")

TEMPLATE = """\
# glacierkit map train — configuration (TOML).
# Paths: relative to this file, absolute, or "example:DATASET/FILE" (glacierkit data list).

[output]
dir = "mapping-run"          # model.gkm, report.json, reliability.png, test predictions
                             # (map train -o/--out DIR replaces it)
overwrite = false            # refuse to replace an existing run folder's files (--overwrite)

[layout]
# Source groups and their channel names, in model input order. Omit a group to leave it out.
optical = ["red", "green", "blue", "nir"]   # any number of optical bands
# dem = true                 # DEM → elevation + slope (degrees)
# sar = ["vv", "vh"]         # SAR backscatter, linear power → dB
# coherence = true           # interferometric coherence, 0–1

# A Sentinel-1 (or any) time series is a group with a time axis, one file per date:
# [layout.s1]
# kind = "sar"               # backscatter → dB
# bands = ["vv"]             # raw bands per date
# scale = "power"            # what the files hold: "power" (γ⁰/σ⁰), "amplitude" or "db"
# time = true
# and in [[scenes.sources]]: s1 = "s1_folder/" (a folder, a glob or a CSV path,date[,pass]).
# Series models: [model] arch = "utae" (date-aware, any dates), "icemapper3d" or "convlstm"
# (a fixed number of dates: [series] dates_per_year).

# One [[scenes]] table per scene. Each source group maps to one file or a list of files whose
# bands, in order, give the group's channels. All sources of a scene must share one grid
# (or set align = true to resample them onto the first group's grid explicitly).
[[scenes]]
name = "everest"
region = "himalaya"          # used by the regional / encoding strategies
outlines = "example:geoutils_everest_exploradores/Everest_Landsat/15_rgi60_glacier_outlines.gpkg"
# labels = "labels.tif"      # or a label raster (0 off-glacier, 1 glacier, 255 ignore)
align = false
[scenes.sources]
optical = ["example:geoutils_everest_exploradores/Everest_Landsat/LE71400412000304SGS00_RGB.tif",
           "example:geoutils_everest_exploradores/Everest_Landsat/LE71400412000304SGS00_B4.tif"]

[split]
kind = "half"                # "half": train | val | test strips; "blocks": random blocks
axis = "cols"                # half: split along columns ("cols") or rows ("rows")
test_fraction = 0.35         # share of the scene kept for testing (never trained on)
val_fraction = 0.15          # share used for validation, early stopping and calibration
block_size = 128             # blocks: block edge, px
seed = 0

[model]
arch = "glavitu"             # "glavitu" (conv-transformer) or "resunet"
size = "tiny"                # "tiny" (CPU), "small", "base" (paper-sized, GPU)
dropout = 0.1

[train]
strategy = "global"          # global | regional | finetune | region_encoding | coords_encoding
patch_size = 64              # px, a multiple of the model's input multiple
samples_per_epoch = 512      # random patches per epoch
epochs = 8
batch_size = 16
lr = 0.001
weight_decay = 0.0001
focal_gamma = 2.0
seed = 0
accelerator = "auto"         # "auto" (CUDA when present), "cpu" or "cuda"
progress = true
deterministic = false        # true: deterministic kernels; --resume then repeats a CPU run

[augment]
flips = true
rot90 = true
noise_std = 0.03             # Gaussian noise on normalised channels
gamma = [0.8, 1.25]          # random gamma on optical bands
group_dropout = 0.0          # probability of dropping each non-primary source group
# date_offset_std = 0.1      # series: one random offset per date (normalised units)
# date_jitter_days = 6.0     # series: dates moved by up to ± this many days
# date_dropout = 0.2         # series: probability of dropping each date (date-aware models)

# [series]                   # time series only: which dates the model gets
# direction = "descending"   # orbit pass kept: ascending | descending | all (mixed passes)
# dates_per_year = 15        # fixed dates per year (icemapper3d, convlstm); 0 = every date
# year = 2022                # the mapped year (default: every year of the files)
# season = [1, 12]           # months (or "MM-DD") within the year

[calibration]
method = "auto"              # auto (lower validation ECE wins) | temperature | isotonic | none
confidence = "max"           # "max" probability or "entropy" (1 − normalised entropy)

[inference]
tile_size = 256              # px
overlap = 64                 # px, at least the model's context
tta = false                  # 8-way flips × rot90 test-time augmentation
"""


@dataclass
class SceneConfig:
    """One training scene: sources per group, labels, region."""

    name: str
    sources: dict[str, list[Path]]
    outlines: Path | None = None
    labels: Path | None = None
    region: str | None = None
    align: bool = False


@dataclass
class SplitConfig:
    """[split]: how the scenes are cut into spatially disjoint train/val/test parts."""

    kind: str = "half"
    axis: str = "cols"
    test_fraction: float = 0.35
    val_fraction: float = 0.15
    block_size: int = 128
    seed: int = 0


@dataclass
class ModelConfig:
    """[model]: architecture, size, dropout and any width/depth overrides."""

    arch: str = "glavitu"
    size: str = "tiny"
    dropout: float = 0.1
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """[train]: strategy, patch sampling and the optimisation schedule."""

    strategy: str = "global"
    patch_size: int = 64
    samples_per_epoch: int = 512
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    focal_gamma: float = 2.0
    seed: int = 0
    accelerator: str = "auto"
    progress: bool = True
    max_steps: int | None = None
    finetune_epochs: int = 2
    p_unknown: float = 0.1
    deterministic: bool = False


@dataclass
class AugmentSection:
    """[augment]: flips/rot90, noise, gamma and source-group dropout."""

    flips: bool = True
    rot90: bool = True
    noise_std: float = 0.03
    gamma: tuple[float, float] = (0.8, 1.25)
    group_dropout: float = 0.0
    date_offset_std: float = 0.0
    date_jitter_days: float = 0.0
    date_dropout: float = 0.0


@dataclass
class SeriesSection:
    """[series]: which files of a time-series group a model gets (pass and dates)."""

    direction: str | None = None
    dates_per_year: int = 0
    year: int | None = None
    season: list[int | str] | None = None

    def selection(self) -> Any:
        """The :class:`glacierkit.series.select.SeriesSelection` of this section."""
        from glacierkit.series.select import SeriesSelection

        return SeriesSelection(direction=self.direction, dates_per_year=self.dates_per_year,
                               year=self.year,
                               season=None if self.season is None else tuple(self.season))


@dataclass
class CalibrationSection:
    """[calibration]: calibration map and confidence definition."""

    method: str = "auto"
    confidence: str = "max"


@dataclass
class InferenceSection:
    """[inference]: tile size and overlap (px), test-time augmentation."""

    tile_size: int = 256
    overlap: int = 64
    tta: bool = False


@dataclass
class MappingConfig:
    """A parsed, validated ``map train`` configuration."""

    out_dir: Path
    layout: dict[str, Any]
    scenes: list[SceneConfig]
    overwrite: bool = False
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSection = field(default_factory=TrainSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    series: SeriesSection = field(default_factory=SeriesSection)
    calibration: CalibrationSection = field(default_factory=CalibrationSection)
    inference: InferenceSection = field(default_factory=InferenceSection)
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (paths as strings), stored in the model file and report."""
        def conv(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [conv(x) for x in v]
            return v
        return conv(dataclasses.asdict(self))


def resolve_path(value: str | os.PathLike[str], base: Path, *, what: str = "path") -> Path:
    """Resolve a config path: ``example:DATASET/FILE``, absolute, or relative to ``base``.

    The same rules as ``facies train`` configs (:func:`glacierkit._toml.resolve_config_path`).
    """
    return resolve_config_path(value, base, what=what)


def _section(raw: dict[str, Any], name: str, cls: type, base: Path) -> Any:
    data = raw.get(name, {})
    if not isinstance(data, dict):
        raise InputError(f"[{name}] must be a table; got {type(data).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise InputError(f"unknown key(s) {sorted(unknown)} in [{name}]; valid keys: "
                         f"{sorted(known)}.")
    kw = dict(data)
    if "gamma" in kw:
        g = kw["gamma"]
        if not (isinstance(g, list | tuple) and len(g) == 2 and 0 < g[0] <= g[1]):
            raise InputError(f"[augment] gamma must be [low, high] with 0 < low <= high; "
                             f"got {g!r}.")
        kw["gamma"] = (float(g[0]), float(g[1]))
    return cls(**kw)


def _choice(value: str, options: tuple[str, ...], key: str) -> str:
    if value not in options:
        raise InputError(f"{key} = {value!r} is not one of {list(options)}.")
    return value


def _scene(raw: dict[str, Any], base: Path, i: int) -> SceneConfig:
    allowed = {"name", "sources", "outlines", "labels", "region", "align"}
    unknown = set(raw) - allowed
    if unknown:
        raise InputError(f"unknown key(s) {sorted(unknown)} in [[scenes]] #{i + 1}; valid "
                         f"keys: {sorted(allowed)}.")
    src = raw.get("sources")
    if not isinstance(src, dict) or not src:
        raise InputError(f"[[scenes]] #{i + 1} needs a [scenes.sources] table mapping source "
                         f"groups to files, e.g. optical = [\"rgb.tif\", \"nir.tif\"].")
    sources = {g: [resolve_path(p, base, what=f"[[scenes]] #{i + 1} source {g!r}")
                   for p in (v if isinstance(v, list) else [v])]
               for g, v in src.items()}
    if ("outlines" in raw) == ("labels" in raw):
        raise InputError(f"[[scenes]] #{i + 1} needs exactly one of 'outlines' (polygons) or "
                         f"'labels' (label raster).")
    return SceneConfig(
        name=str(raw.get("name", f"scene{i + 1}")), sources=sources,
        outlines=(resolve_path(raw["outlines"], base, what=f"[[scenes]] #{i + 1} outlines")
                  if "outlines" in raw else None),
        labels=(resolve_path(raw["labels"], base, what=f"[[scenes]] #{i + 1} labels")
                if "labels" in raw else None),
        region=str(raw["region"]) if raw.get("region") is not None else None,
        align=bool(raw.get("align", False)))


def parse_config(raw: dict[str, Any], *, base: Path, source: Path | None = None,
                 out_dir: str | os.PathLike[str] | None = None,
                 overwrite: bool | None = None) -> MappingConfig:
    """Validate a config dictionary (as read from TOML); paths resolved against ``base``.

    Args:
        raw: The parsed TOML.
        base: Folder that relative paths are taken from (the config file's folder).
        source: The config file, recorded in the result.
        out_dir: Run folder replacing ``[output] dir`` (``map train -o``); relative to the
            current directory. ``[output] dir`` may then be left out.
        overwrite: Replaces ``[output] overwrite`` when not None (``map train --overwrite``).
    """
    top = {"output", "layout", "scenes", "split", "model", "train", "augment", "series",
           "calibration", "inference"}
    unknown = set(raw) - top
    if unknown:
        raise InputError(f"unknown section(s) {sorted(unknown)}; valid: {sorted(top)}.")
    out = raw.get("output", {})
    if not isinstance(out, dict):
        raise InputError(f"[output] must be a table; got {type(out).__name__}.")
    unknown_out = set(out) - {"dir", "overwrite"}
    if unknown_out:
        raise InputError(f"unknown key(s) {sorted(unknown_out)} in [output]; valid keys: "
                         f"['dir', 'overwrite'].")
    if "dir" not in out and out_dir is None:
        raise InputError("[output] needs dir = \"...\" (the run folder), or give the run "
                         "folder with -o/--out.")
    layout = raw.get("layout")
    if not isinstance(layout, dict) or not layout:
        raise InputError("[layout] must name at least one source group, e.g. "
                         "optical = [\"red\", \"green\", \"blue\", \"nir\"].")
    scenes_raw = raw.get("scenes")
    if not isinstance(scenes_raw, list) or not scenes_raw:
        raise InputError("the config needs at least one [[scenes]] table.")
    scenes = [_scene(s, base, i) for i, s in enumerate(scenes_raw)]
    for s in scenes:
        extra = set(s.sources) - set(layout)
        if extra:
            raise InputError(f"scene {s.name!r} has sources for group(s) {sorted(extra)} that "
                             f"are not in [layout] ({sorted(layout)}).")
    model_raw = dict(raw.get("model", {}))
    overrides = {k: model_raw.pop(k) for k in list(model_raw)
                 if k not in {"arch", "size", "dropout"}}
    model = ModelConfig(**model_raw, overrides=overrides)
    cfg = MappingConfig(
        out_dir=(Path(os.path.expanduser(os.fspath(out_dir))) if out_dir is not None
                 else resolve_path(out["dir"], base, what="[output] dir")),
        overwrite=bool(out.get("overwrite", False)) if overwrite is None else overwrite,
        layout=dict(layout), scenes=scenes,
        split=_section(raw, "split", SplitConfig, base), model=model,
        train=_section(raw, "train", TrainSection, base),
        augment=_section(raw, "augment", AugmentSection, base),
        series=_section(raw, "series", SeriesSection, base),
        calibration=_section(raw, "calibration", CalibrationSection, base),
        inference=_section(raw, "inference", InferenceSection, base), source=source)
    _choice(cfg.split.kind, SPLITS, "[split] kind")
    _choice(cfg.split.axis, ("cols", "rows"), "[split] axis")
    _choice(cfg.model.arch, ARCHS, "[model] arch")
    _choice(cfg.train.strategy, STRATEGIES, "[train] strategy")
    _choice(cfg.calibration.method, CALIBRATIONS, "[calibration] method")
    _choice(cfg.calibration.confidence, ("max", "entropy"), "[calibration] confidence")
    if not 0 < cfg.split.test_fraction < 1 or not 0 < cfg.split.val_fraction < 1 or \
            cfg.split.test_fraction + cfg.split.val_fraction >= 1:
        raise InputError(f"[split] test_fraction ({cfg.split.test_fraction}) and val_fraction "
                         f"({cfg.split.val_fraction}) must be in (0, 1) and sum below 1.")
    if cfg.train.patch_size < 16 or cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise InputError("[train] needs patch_size >= 16, epochs >= 1 and batch_size >= 1.")
    if cfg.inference.overlap >= cfg.inference.tile_size:
        raise InputError(f"[inference] overlap ({cfg.inference.overlap} px) must be smaller "
                         f"than tile_size ({cfg.inference.tile_size} px).")
    timed = [k for k, v in cfg.layout.items() if isinstance(v, dict) and v.get("time")]
    if cfg.model.arch in SERIES_ARCHS:
        if not timed or len(timed) != len(cfg.layout):
            raise InputError(f"[model] arch = {cfg.model.arch!r} maps from a time series only: "
                             f"every [layout] group must be a series (time = true); got "
                             f"{sorted(cfg.layout)} with series {timed}.")
        if cfg.train.strategy != "global":
            raise InputError(f"[train] strategy {cfg.train.strategy!r} needs region "
                             f"conditioning, which the series models do not take; use "
                             f"strategy = \"global\".")
        fixed = cfg.model.arch in ("icemapper3d", "convlstm")
        if fixed and not cfg.series.dates_per_year:
            raise InputError(f"[model] arch = {cfg.model.arch!r} takes a fixed number of dates; "
                             f"set [series] dates_per_year (ICEmapper: 15) and year, or use "
                             f"arch = \"utae\" (date-aware, any dates).")
    elif timed:
        raise InputError(f"[layout] group(s) {timed} are time series but [model] arch = "
                         f"{cfg.model.arch!r} takes single-date inputs; use a series model "
                         f"({', '.join(SERIES_ARCHS)}).")
    cfg.series.selection()  # checks direction, dates_per_year, season
    if cfg.train.strategy in ("regional", "finetune", "region_encoding") and \
            any(s.region is None for s in scenes):
        raise InputError(f"strategy {cfg.train.strategy!r} needs region = \"...\" in every "
                         f"[[scenes]] table.")
    return cfg


def load_config(path: str | os.PathLike[str], *, out_dir: str | os.PathLike[str] | None = None,
                overwrite: bool | None = None) -> MappingConfig:
    """Read and validate a TOML config file (see :data:`TEMPLATE`).

    Args:
        path: The config file.
        out_dir: Run folder replacing ``[output] dir`` (``map train -o``).
        overwrite: Replaces ``[output] overwrite`` when not None (``map train --overwrite``).
    """
    p, raw = read_config_toml(path, command="map train")
    return parse_config(raw, base=p.resolve().parent, source=p, out_dir=out_dir,
                        overwrite=overwrite)
