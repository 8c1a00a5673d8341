"""From glacier facies and glaciological tables to glacier mass balance.

Numpy/scipy/pandas/rasterio/geopandas only; never imports torch.

* :mod:`~glacierkit.massbalance.wgms`: WGMS ``mbdata`` / ``profile`` tables → tidy frames in
  m w.e. (units detected and stated, missing years listed, never filled).
* :mod:`~glacierkit.massbalance.hypsometry`: :class:`Hypsometry` (area per elevation band) from
  RGI tables, a DEM + outlines (exact pixel areas), or synthetic.
* :mod:`~glacierkit.massbalance.indicators`: ELA and AAR from balance profiles; AAR proxy and
  snowline altitude from a facies map + DEM (:func:`facies_indicators`).
* :mod:`~glacierkit.massbalance.match`: joining indicator tables to balances (id / RGI / name
  rules, unmatched ids reported).
* :mod:`~glacierkit.massbalance.regress`: OLS with 95 % CIs, global and glacier-specific fits,
  leave-one-year-out and leave-one-glacier-out cross-validation.
* :mod:`~glacierkit.massbalance.usgs`: the USGS ELA vs imagery snowline comparison table.
"""

from glacierkit.massbalance.hypsometry import (
    Hypsometry,
    hypsometry_from_dem,
    hypsometry_from_elevations,
    pixel_areas_m2,
    read_rgi_hypsometry,
)
from glacierkit.massbalance.indicators import (
    FACIES_CLASSES,
    FACIES_NODATA,
    ElaResult,
    aar_from_profile,
    ela_from_profile,
    facies_class_names,
    facies_indicators,
    profile_indicators,
)
from glacierkit.massbalance.match import (
    MATCHING_RULES,
    MatchResult,
    match_indicators,
    normalise_name,
    normalise_rgi,
)
from glacierkit.massbalance.regress import (
    CrossValidation,
    GlacierSpecificModel,
    GlobalModel,
    LinearFit,
    cross_validate,
    fit_glacier_specific,
    fit_global,
    fit_indicator,
    fit_linear,
)
from glacierkit.massbalance.usgs import read_snowline_comparison
from glacierkit.massbalance.wgms import (
    BALANCE_COLUMNS,
    MassBalanceTable,
    ProfileTable,
    detect_units,
    read_links,
    read_mass_balance,
    read_profiles,
)

__all__ = [
    "BALANCE_COLUMNS",
    "FACIES_CLASSES",
    "FACIES_NODATA",
    "MATCHING_RULES",
    "CrossValidation",
    "ElaResult",
    "GlacierSpecificModel",
    "GlobalModel",
    "Hypsometry",
    "LinearFit",
    "MassBalanceTable",
    "MatchResult",
    "ProfileTable",
    "aar_from_profile",
    "cross_validate",
    "detect_units",
    "ela_from_profile",
    "facies_class_names",
    "facies_indicators",
    "fit_glacier_specific",
    "fit_global",
    "fit_indicator",
    "fit_linear",
    "hypsometry_from_dem",
    "hypsometry_from_elevations",
    "match_indicators",
    "normalise_name",
    "normalise_rgi",
    "pixel_areas_m2",
    "profile_indicators",
    "read_links",
    "read_mass_balance",
    "read_profiles",
    "read_rgi_hypsometry",
    "read_snowline_comparison",
]
