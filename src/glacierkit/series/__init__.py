"""Image time series (e.g. Sentinel-1 backscatter): dates, stacks, date selection, baselines.

Modules: :mod:`~glacierkit.series.dates` (acquisition dates from file names, orbit pass from
the time), :mod:`~.stack` (:func:`open_series`, :class:`SeriesStack`: checked, windowed reads),
:mod:`~.select` (which dates a model gets: a fixed number per year, or all in a period),
:mod:`~.baseline` (the Nagler–Rott backscatter-ratio wet-snow / glacier baseline).

Torch-free: nothing here imports torch.
"""

from glacierkit.series.baseline import SarRatioResult, run_sar_ratio, sar_ratio
from glacierkit.series.dates import parse_acquisition, pass_direction
from glacierkit.series.select import (
    SeriesSelection,
    in_season,
    open_selected,
    select_all,
    select_per_year,
)
from glacierkit.series.stack import (
    SCALES,
    SeriesFile,
    SeriesStack,
    guess_scale_hint,
    open_series,
    to_db,
)

__all__ = [
    "SCALES",
    "SarRatioResult",
    "SeriesFile",
    "SeriesSelection",
    "SeriesStack",
    "guess_scale_hint",
    "in_season",
    "open_selected",
    "open_series",
    "parse_acquisition",
    "pass_direction",
    "run_sar_ratio",
    "sar_ratio",
    "select_all",
    "select_per_year",
    "to_db",
]
