"""Named example datasets: real glacier data with licence, citation and pinned checksums.

Every dataset is a folder of real data produced outside glacierkit (satellite images, DEMs,
outlines, in-situ measurements, other tools' products). The registry (:data:`DATASETS`) records
for each one its licence, how to cite it, and every file with its size, full sha256 and, where
the file exists in the public source repository, a commit-pinned download URL.

Where a dataset is looked for, in this order (:func:`data_dirs`):

1. ``GLACIERKIT_DATA``: an environment variable naming a folder that contains dataset folders.
2. ``shared``: the ``shared/data`` folder beside the repository checkout (``../shared/data``
   seen from the folder holding ``pyproject.toml``, or from the current working directory).
3. ``cache``: the user cache (``pooch.os_cache("glacierkit")``, or ``GLACIERKIT_CACHE``), which
   is filled only on an explicit request: :func:`fetch`, ``path(name, download=True)`` or
   ``glacierkit data fetch NAME``.

A dataset is found in a place only when all its registered files are there with their registered
sizes (:func:`locate`; :func:`verify` checks the sha256 too). Plain look-ups never download.

Some files are *local only* (``ExampleFile.url is None``): derived for this project (e.g. the
Yahtse rock polygons clipped from a GMT file, the ITS_LIVE subset cut from a zarr cube) and in no
public repository. A cache fill cannot provide them; set ``GLACIERKIT_DATA`` to a folder that
has them. Download URLs are ``raw.githubusercontent.com`` links pinned to full commit ids; the
few files whose commit is known only by the abbreviated id that the data's ``PROVENANCE.md``
gives use a ``github.com/<repo>/raw/<id>/<path>`` link, which GitHub resolves. Every download is
checked against the registered sha256.

Example:
    >>> from glacierkit import examples
    >>> folder = examples.path("glaft_kaskawulsh")  # doctest: +SKIP
    >>> gps = examples.path("glaft_kaskawulsh", "gps")  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import pooch

from glacierkit._registry_data import FILES
from glacierkit.errors import DatasetNotFoundError, DownloadError, InputError

__all__ = [
    "DATASETS",
    "ENV_CACHE",
    "ENV_DATA",
    "SOURCES",
    "ExampleDataset",
    "ExampleFile",
    "cache_dir",
    "data_dirs",
    "fetch",
    "list_datasets",
    "locate",
    "path",
    "verify",
]

logger = logging.getLogger(__name__)

ENV_DATA = "GLACIERKIT_DATA"
"""Environment variable: a folder that contains the dataset folders (looked at first)."""

ENV_CACHE = "GLACIERKIT_CACHE"
"""Environment variable: the download cache folder (default ``pooch.os_cache("glacierkit")``)."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExampleFile:
    """One file of an example dataset.

    Attributes:
        path: Path relative to the dataset folder, with ``/`` separators.
        size: Size in bytes.
        sha256: Full sha256 hex digest of the file's bytes.
        url: Commit-pinned download URL in the public source repository, or ``None`` when the
            file is local only (derived for this project; it cannot be downloaded).
    """

    path: str
    size: int
    sha256: str
    url: str | None

    @property
    def local_only(self) -> bool:
        """Whether the file has no public download URL."""
        return self.url is None


@dataclass(frozen=True)
class ExampleDataset:
    """A named example dataset: one folder of real data and what is known about it.

    Attributes:
        name: Registry name (what :func:`path` and ``glacierkit data`` take).
        title: One-line title.
        folder: Folder name inside a data folder (see :func:`data_dirs`).
        licence: Licence of the files and of the data they derive from.
        citation: How to cite the source (paper, data set DOI, repository and commit).
        description: What the data are and what they exercise.
        files: Every registered file, with size, sha256 and download URL.
        source: The public repository the files come from (empty when none).
    """

    name: str
    title: str
    folder: str
    licence: str
    citation: str
    description: str
    files: tuple[ExampleFile, ...]
    source: str = ""

    @property
    def size_bytes(self) -> int:
        """Total size of the registered files in bytes."""
        return sum(f.size for f in self.files)

    @property
    def local_only(self) -> tuple[str, ...]:
        """Paths of the files that cannot be downloaded (no public URL)."""
        return tuple(f.path for f in self.files if f.url is None)

    @property
    def downloadable(self) -> bool:
        """Whether a cache fill can provide every file of the dataset."""
        return not self.local_only

    def file(self, relpath: str) -> ExampleFile:
        """Return the registered file at ``relpath`` (relative to the dataset folder).

        Args:
            relpath: Path relative to the dataset folder, ``/``-separated.

        Returns:
            The registered file.

        Raises:
            DatasetNotFoundError: ``relpath`` is not a registered file of this dataset.
        """
        for f in self.files:
            if f.path == relpath:
                return f
        raise DatasetNotFoundError(
            f"{relpath!r} is not a registered file of example dataset {self.name!r} "
            f"({len(self.files)} files, e.g. {', '.join(f.path for f in self.files[:5])})"
        )


# --------------------------------------------------------------------------------------------
# The registry. File tables (sizes, sha256, source commit and path) live in _registry_data.py.
# --------------------------------------------------------------------------------------------

SOURCES: dict[str, str] = {
    "carst_yahtse_landsat8_pair": "whyjz/CARST",
    "carst_vavilov_velocity": "whyjz/CARST",
    "glaft_kaskawulsh": "whyjz/GLAFT",
    "itslive_datacube_subset_se_tibet": "e-marshall/itslive",
    "oggm_sample_data": "OGGM/oggm-sample-data",
    "aberle_snow_ice_training_points": "RaineyAbe/glacier-snow-cover-mapping",
    "snowicesen_swiss_s2_snow_polygons": "lgeibel/snowicesen",
    "geoutils_everest_exploradores": "GlacioHack/geoutils-data",
    "giv_perito_moreno_s2_series": "MaxVWDV/glacier-image-velocimetry",
    "polar_glacier_change_samples": "cuibinge/Glacier-Dataset",
    "s1_rtc_tsho_rolpa_series": "npsar-nasa/npSAR-dl",
}
"""Public GitHub repository (``owner/name``) that each dataset's files come from."""

_RGI6 = (
    "RGI Consortium (2017): Randolph Glacier Inventory – A Dataset of Global Glacier Outlines: "
    "Version 6.0. Global Land Ice Measurements from Space, Colorado, USA. "
    "https://doi.org/10.7265/N5-RGI-60"
)
_ITSLIVE = (
    "Gardner, A. S., Fahnestock, M. A., and Scambos, T. A.: MEaSUREs ITS_LIVE Landsat "
    "Image-Pair Glacier and Ice Sheet Surface Velocities, Version 1. NASA National Snow and "
    "Ice Data Center DAAC. https://doi.org/10.5067/IMR9D3PEI28U"
)
_CARST = "CARST – Cryosphere And Remote Sensing Toolkit, https://github.com/whyjz/CARST"

# name: (title, licence, citation, description)
_META: dict[str, tuple[str, str, str, str]] = {
    "carst_yahtse_landsat8_pair": (
        "Yahtse Glacier (Alaska): Landsat-8 panchromatic pair, SRTM DEM, rock polygons",
        "CARST repository: MIT. Landsat-8 (USGS) and SRTM (NASA/USGS): public domain, "
        "credits in CARST_original_README.txt. Rock polygons derived from CARST's GMT outline "
        "file (MIT).",
        f"{_CARST} (commit 9db3cdef19cfbbff6d6649f5d5d8d39cea13ea71, "
        "pixeltrack/Landsat8_example/; reference offsets from commit "
        "c6f3223e1b5be8814b0d6f45cf95c6380e5c2cf4). Landsat-8 OLI data courtesy of the U.S. "
        "Geological Survey, distributed by the Land Processes DAAC (USGS/EROS). USGS (2008): "
        "Shuttle Radar Topography Mission, 1 Arc Second, Filled 2.0, Global Land Cover "
        "Facility, University of Maryland, College Park, Maryland, February 2000.",
        "Two Landsat-8 OLI band-8 scenes (15 m, 1698×1087 px, EPSG:32607) of Yahtse Glacier, "
        "St. Elias Mountains, 2016-07-18 and 2016-08-03 (16-day pair; scene 2 partly cloudy), "
        "their MTL metadata, an SRTM DEM (50 m), 42 off-ice rock polygons (derived, local "
        "only), CARST's parameter file and its reference offset grids for the same pair "
        "(units undocumented). Exercises offset tracking, stable-ground correction, DEM "
        "regression and cloud robustness.",
    ),
    "carst_vavilov_velocity": (
        "Vavilov Ice Cap (Severnaya Zemlya): Landsat-8 velocity rasters, bedrock polygon, DEM",
        "CARST repository: MIT. Inputs were Landsat-8 (USGS, public domain). DEM: CARST demo "
        "DEM, source undocumented.",
        f"{_CARST} (velocity rasters: commit 18e323f74985030af4fbca3450baa399bf78b07d, "
        "examples/featuretrack/Demo_Data/; bedrock polygon and stable-ground log: "
        "pixeltrack/Demo_Data/; DEM: dhdt/Demo_DEMs/). Landsat-8 data courtesy of the U.S. "
        "Geological Survey.",
        "CARST feature-tracking output for the Landsat-8 pair 2018-04-01 / 2018-04-17 (150 m, "
        "285×196 px, EPSG:32646, m/day): raw vx, vy, SNR and errors, corrected vx, vy and "
        "magnitude; the bedrock (stable-ground) polygon; CARST's stable-ground statistics "
        "(median vx/vy −1.025/0.322 m/day over 876 points); grids of the input crops; a 90 m "
        "DEM. Exercises stable-ground bias and error statistics, SNR filtering, post-processing.",
    ),
    "glaft_kaskawulsh": (
        "Kaskawulsh Glacier (Yukon): velocity map, stable-terrain and on-ice polygons, GPS",
        "MIT (GLAFT_LICENSE.txt). Velocity maps derived from Landsat-8 (USGS, public domain).",
        "Zheng, W., et al. (2023): GLAcier Feature Tracking testkit (GLAFT): a statistically "
        "and physically based framework for evaluating glacier velocity products derived from "
        "optical satellite image feature tracking. The Cryosphere, 17, 4063–4078. "
        "https://doi.org/10.5194/tc-17-4063-2023. Data: https://github.com/whyjz/GLAFT "
        "(commits 749b3301739c3d2f66ee90dc91c099811e6abfa6 and "
        "d1535d689e7cd02bfbad1c1c3f78d53c61221b3a).",
        "CARST velocity (vx, vy; m/day, 60 m, 926×602 px, EPSG:32607) from a Landsat-8 pair "
        "2018-03-04 → 2018-04-05; 9 stable-terrain polygons; the Kaskawulsh outline shrunk by "
        "600 m (on-ice area); 32 GPS velocity files of 2018 (3 stations). Exercises velocity "
        "quality metrics and validation against GPS.",
    ),
    "itslive_datacube_subset_se_tibet": (
        "SE Tibet: 1,697 ITS_LIVE image-pair velocity maps, 1986–2024, 37×40 px at 120 m",
        "NASA MEaSUREs ITS_LIVE: open data without restrictions; cite the data set.",
        f"{_ITSLIVE}. Subset made for glacierkit from the datacube "
        "ITS_LIVE_vel_EPSG32646_G0120_X750000_Y3350000.zarr, as stored in "
        "https://github.com/e-marshall/itslive (commit e6cd29c4fd1022542e05d4eee419ef284e243e04, "
        "data/glacier_itslive_rechunk.zarr).",
        "NetCDF of the 1,697 image pairs with 5–100 day separation and ≥20 % valid pixels: vx, "
        "vy, v, v_error (m/yr), dates, satellites (Sentinel-1, Sentinel-2, Landsat 4–9), "
        "EPSG:32646, Parlung area (≈95.9° E, 29.9° N). Derived for this project: local only. "
        "Exercises velocity time series, multi-sensor comparison, error-weighted aggregation.",
    ),
    "oggm_sample_data": (
        "OGGM sample data: WGMS mass-balance tables, RGI outlines + DEMs, ITS_LIVE crop",
        "BSD-3-Clause (OGGM sample data, README.rst). Third-party content keeps its terms: WGMS "
        "Fluctuations of Glaciers data (free, citation required), RGI 6.0 outlines (CC BY 4.0), "
        "SRTM (public domain), ITS_LIVE (open), South Glacier data (cite the sources in "
        "benchmarks/south_glacier/CITATION.txt), CRU TS 4.01 (cite Harris et al.).",
        "OGGM Contributors: OGGM sample data, https://github.com/OGGM/oggm-sample-data "
        "(commit 99651428d84b68735c87001da70983fa369abd59). Mass balance: WGMS (2021): "
        "Fluctuations of Glaciers Database. World Glacier Monitoring Service, Zurich, "
        "Switzerland. https://doi.org/10.5904/wgms-fog-2021-05. Outlines: "
        f"{_RGI6}. South Glacier: Wilson et al. (2013); Wheler, B. A., et al. (2014), Arctic, "
        "Antarctic, and Alpine Research, 46, 379–393, https://doi.org/10.1657/1938-4246-46.2.379; "
        "Flowers, G. E., et al. (2011), The Cryosphere, 5, 299–313, "
        "https://doi.org/10.5194/tc-5-299-2011. Velocity: Gardner et al., NASA MEaSUREs "
        "ITS_LIVE. Climate: Harris et al., CRU TS 4.01.",
        "wgms/: glacier-wide mass balance of 290 glaciers (6,564 glacier-years; mbdata/), "
        "elevation-band profiles of 170 glaciers (mb_profiles/) and the WGMS–RGI link table; "
        "benchmarks/south_glacier/: DEM, gridded mass balance, outline, CRU series; shop/: "
        "ITS_LIVE velocity crop over Columbia Glacier (EPSG:3413); test-files/: Hintereisferner "
        "and Columbia outlines and DEMs; test-workflow/: Ötztal SRTM and 20 RGI outlines. "
        "Exercises mass-balance regression, outline metrics and several CRSs.",
    ),
    "aberle_snow_ice_training_points": (
        "Labelled Sentinel-2 and Landsat-8/9 pixels: snow, shadowed snow, ice, rock, water",
        "MIT (LICENSE_glacier-snow-cover-mapping.md). Pixel values from Copernicus Sentinel-2 "
        "(free and open) and USGS Landsat (public domain).",
        "Aberle, R., Enderlin, E., Marshall, H.-P., O'Neel, S., and Flores, A.: "
        "glacier-snow-cover-mapping – snow cover, snowlines and ELAs from PlanetScope, Landsat "
        "8/9 and Sentinel-2 imagery, Boise State University. "
        "https://github.com/RaineyAbe/glacier-snow-cover-mapping (commit "
        "1a553490d96ba64f0fa1923f75e459871dfac38b; classified map from commit "
        "1de84479da4a69bf273ed6d8e1d90ea0854569f4).",
        "11,728 labelled Sentinel-2 SR pixels and 8,161 labelled Landsat-8/9 SR pixels (classes "
        "1 snow, 2 shadowed snow, 3 ice, 4 rock, 5 water) from Gulkana, Wolverine, South "
        "Cascade and Sperry glaciers; independent manually classified validation points; a "
        "USGS ELA comparison; one classified Sentinel-2 map of White Glacier (2023-08-14). "
        "Exercises facies classification, label-noise pruning and macro F1.",
    ),
    "snowicesen_swiss_s2_snow_polygons": (
        "Swiss Alps: Sentinel-2 glacier crops with hand-digitised snow polygons",
        "GPL-3.0 (LICENSE_snowicesen_GPL3.txt). Imagery derived from Copernicus Sentinel-2 "
        "(free and open).",
        "Geibel, L. (2019): SnowIceSen, MSc thesis, ETH Zürich. "
        "https://github.com/lgeibel/snowicesen (commit "
        "f2f5d23cd8594599a1db8c8787903aa8715b45ed). Contains modified Copernicus Sentinel-2 "
        "data.",
        "Four Sentinel-2 RGB crops (10 m, uint16 reflectance×10,000, local transverse Mercator) "
        "of Swiss glaciers, each with hand-digitised snow-cover polygons: Silvrettagletscher "
        "(A10G05) 2017-05-17 and 2017-08-15, A51D10 and B7211 2015-09-08; SnowIceSen's snow map "
        "and snow-line altitude for the May scene. Exercises snow/ice segmentation against "
        "human labels and seasonal change.",
    ),
    "geoutils_everest_exploradores": (
        "Everest Landsat-7 crop with 86 RGI outlines; Exploradores ASTER DEM with 47 outlines",
        "geoutils-data repository: BSD-3-Clause (geoutils-data_LICENSE.txt). Landsat: USGS, "
        "public domain. RGI 6.0 outlines: CC BY 4.0. ASTER L1A: NASA/METI (see "
        "geoutils-data_README.md).",
        "GlacioHack: geoutils-data, test and example data for GeoUtils and xDEM. "
        "https://github.com/GlacioHack/geoutils-data (commit "
        f"bd45050f82f552fc2a1c977993f20b0c13eeb05b). Outlines: {_RGI6}. Landsat-7 ETM+ data "
        "courtesy of the U.S. Geological Survey; ASTER L1A data: NASA/METI.",
        "Everest_Landsat/: Landsat-7 ETM+ band 4 (NIR) and RGB composite, 2000-10-30, 30 m, "
        "EPSG:32645, with 86 RGI 6.0 outlines (incl. debris-covered tongues) and smaller test "
        "crops; Exploradores_ASTER/: ASTER DEM of 2012-03-18 (30 m, EPSG:32718) with 47 RGI 6.0 "
        "outlines. Exercises glacier mapping against expert outlines, outline metrics, "
        "debris-covered ice.",
    ),
    "giv_perito_moreno_s2_series": (
        "Perito Moreno Glacier: 23 colour images, Jan–Mar 2020, with a glacier mask",
        "Repository licence GPL-3.0 (LICENSE_GIV_GPL3.txt). Imagery appears to be Copernicus "
        "Sentinel-2 (free and open).",
        "Van Wyk de Vries, M. and Wickert, A. D. (2021): Glacier Image Velocimetry: an "
        "open-source toolbox for easy and rapid calculation of high-resolution glacier velocity "
        "fields. The Cryosphere, 15, 2115–2132. https://doi.org/10.5194/tc-15-2115-2021. Data: "
        "https://github.com/MaxVWDV/glacier-image-velocimetry (commit "
        "4e20fefc880f7edb4984c1e1a031217d97d44a59, Perito_Moreno/).",
        "23 JPEG RGB images YYYYMMDD.jpg (2020-01-01 … 2020-03-28, 1731×1231 px, likely "
        "Sentinel-2, not georeferenced, about 10 m/px; some cloudy) and a glacier mask on the "
        "same pixel grid. Exercises time-series offset tracking on a fast glacier, plain image "
        "input and cloud screening.",
    ),
    "polar_glacier_change_samples": (
        "Polar Glacier Bitemporal dataset: Greenland and Svalbard preview pairs (Landsat-8)",
        "No licence stated in the source repository; used here only as test and demo input, "
        "with attribution. Imagery: Landsat-8 (USGS, public domain).",
        "VPGCD-Net: A Visual Prompt Driven Network for Glacier Change Detection in Remote "
        "Sensing Imagery. IEEE Geoscience and Remote Sensing Letters (2025). "
        "https://doi.org/10.1109/LGRS.2025.3581221. Dataset: Polar Glacier Bitemporal Remote "
        "Sensing Dataset, https://github.com/cuibinge/Glacier-Dataset (commit "
        "233af7ad32abdb923c21b1c2d29c52a39db46f26, samples/).",
        "Two bitemporal RGB preview pairs (PNG, about 480×650 px, no georeferencing, no "
        "labels) of the SE coast of Greenland and of Svalbard; the full dataset has 683 pairs "
        "of 256×256 patches. Exercises change-detection inference on real imagery and plain "
        "image input.",
    ),
    "s1_rtc_tsho_rolpa_series": (
        "Tsho Rolpa (Nepal): 66 Sentinel-1 RTC γ⁰ VV dates, 2015–2025, on one 20 m grid",
        "No licence stated: the source repository has no LICENSE file and its README names "
        "none, so its clipping is unlicensed; used here only as test and demo input, with "
        "attribution (ask the authors before redistributing, or regenerate the same clips "
        "from ASF HyP3: the product names are in the file names). Pixel data: ASF HyP3 RTC "
        "products from Copernicus Sentinel-1 data (free and open, also commercially, with "
        "attribution). MANIFEST.tsv and original_paths.tsv were written for glacierkit.",
        "npSAR-dl (NASA Space Apps Challenge 2025 project), "
        "https://github.com/npsar-nasa/npSAR-dl (data files as of commit "
        "f3fd1c946047cc1e39d112c8fc21db17707a2553, Training_Dataset/Backup/tshoRolpa/ and "
        "Training_Dataset/tshoRolpa/; snapshot 3b7dabf25048620b998ea9e34d42d2cc1e049af9). "
        "Contains modified Copernicus Sentinel data 2015–2025, processed by ASF DAAC HyP3 "
        "(GAMMA).",
        "66 ASF HyP3 RTC20 clips (Sentinel-1A IW, VV, γ⁰ linear power, float32, nodata 0 = "
        "layover/shadow; EPSG:32645, 144×135 px at 20 m, about 2.9 × 2.7 km) of the Tsho Rolpa "
        "glacial lake and the debris-covered Trakarding Glacier tongue: one July scene per "
        "year 2015–2020 and 12 per year 2021–2025 (January–September); 23 descending "
        "(≈00:11 UTC) and 43 ascending (≈12:13–12:22 UTC, several relative orbits) passes; "
        "the AOI polygon; a manifest (sha256) and the map from file names to the source "
        "paths. No labels. Exercises time-series stacks, date parsing, pass separation, "
        "dB conversion and SAR change-detection baselines.",
    ),
}


def _url(repo: str, commit: str | None, original: str | None) -> str | None:
    """Commit-pinned raw URL of ``original`` in ``repo``, or ``None`` for local-only files."""
    if commit is None or original is None:
        return None
    quoted = quote(original, safe="/")
    if len(commit) == 40:
        return f"https://raw.githubusercontent.com/{repo}/{commit}/{quoted}"
    # Abbreviated commit id (all that PROVENANCE.md gives): github.com resolves it.
    return f"https://github.com/{repo}/raw/{commit}/{quoted}"


def _build() -> dict[str, ExampleDataset]:
    out: dict[str, ExampleDataset] = {}
    for name, (title, licence, citation, description) in _META.items():
        repo = SOURCES[name]
        files = tuple(
            ExampleFile(path=p, size=size, sha256=sha, url=_url(repo, commit, orig))
            for p, size, sha, commit, orig in FILES[name]
        )
        out[name] = ExampleDataset(
            name=name, title=title, folder=name, licence=licence, citation=citation,
            description=description, files=files, source=f"https://github.com/{repo}",
        )
    return out


DATASETS: dict[str, ExampleDataset] = _build()
"""Every registered example dataset, by name."""


def list_datasets() -> list[ExampleDataset]:
    """Return every registered example dataset, in registry order.

    Returns:
        The datasets of :data:`DATASETS`.
    """
    return list(DATASETS.values())


def _get(name: str) -> ExampleDataset:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetNotFoundError(
            f"unknown example dataset {name!r}.{hint} Known datasets: {', '.join(DATASETS)} "
            "(see glacierkit.examples.list_datasets() or `glacierkit data list`)."
        ) from None


# --------------------------------------------------------------------------------------------
# Where datasets are looked for
# --------------------------------------------------------------------------------------------


def _shared_data_dirs() -> list[Path]:
    """Existing ``shared/data`` folders beside the repository checkout, most specific first."""
    candidates: list[Path] = []
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            candidates.append(parent.parent / "shared" / "data")
            break
    try:
        candidates.append(Path.cwd().parent / "shared" / "data")
    except OSError:  # the working directory was removed
        pass
    found: list[Path] = []
    for cand in candidates:
        if cand.is_dir():
            resolved = cand.resolve()
            if resolved not in found:
                found.append(resolved)
    return found


def cache_dir() -> Path:
    """Return the download cache folder (it may not exist yet).

    Returns:
        ``$GLACIERKIT_CACHE`` when set, else ``pooch.os_cache("glacierkit")``.
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path(pooch.os_cache("glacierkit"))


def data_dirs() -> list[tuple[str, Path]]:
    """Return the folders searched for dataset folders, in priority order.

    Returns:
        ``(source, folder)`` pairs: ``("GLACIERKIT_DATA", ...)`` when the variable is set (even
        if the folder does not exist), then ``("shared", ...)`` for each existing
        ``shared/data`` beside the checkout, then ``("cache", cache_dir())``.
    """
    dirs: list[tuple[str, Path]] = []
    env = os.environ.get(ENV_DATA)
    if env:
        dirs.append((ENV_DATA, Path(env).expanduser()))
    dirs.extend(("shared", d) for d in _shared_data_dirs())
    dirs.append(("cache", cache_dir()))
    return dirs


@dataclass(frozen=True)
class _Probe:
    source: str
    folder: Path
    problem: str | None  # None: complete


def _missing(ds: ExampleDataset, folder: Path) -> list[str]:
    """List the registered files absent from ``folder`` or of the wrong size."""
    bad = []
    for f in ds.files:
        try:
            ok = (folder / f.path).stat().st_size == f.size
        except OSError:
            ok = False
        if not ok:
            bad.append(f.path)
    return bad


def _probes(ds: ExampleDataset) -> Iterator[_Probe]:
    for source, base in data_dirs():
        folder = base / ds.folder
        if not folder.is_dir():
            yield _Probe(source, folder, "no such folder")
            continue
        bad = _missing(ds, folder)
        if bad:
            problem = (
                f"incomplete: {len(bad)} of {len(ds.files)} files missing or of the wrong size, "
                f"e.g. {', '.join(bad[:3])}"
            )
            logger.debug("example dataset %r in %s (%s) is %s", ds.name, folder, source, problem)
            yield _Probe(source, folder, problem)
            continue
        yield _Probe(source, folder, None)


def locate(name: str) -> tuple[Path, str] | None:
    """Find a dataset's folder without downloading anything.

    A folder counts only when every registered file is in it with its registered size (no
    hashing; see :func:`verify`).

    Args:
        name: Dataset name (see :func:`list_datasets`).

    Returns:
        ``(folder, source)`` with source ``"GLACIERKIT_DATA"``, ``"shared"`` or ``"cache"``, or
        ``None`` when no searched place holds the complete dataset.

    Raises:
        DatasetNotFoundError: ``name`` is not a registered dataset.
    """
    ds = _get(name)
    for probe in _probes(ds):
        if probe.problem is None:
            return probe.folder, probe.source
    return None


def _not_found(ds: ExampleDataset, probes: list[_Probe]) -> DatasetNotFoundError:
    looked = "\n".join(f"  - {p.source}: {p.folder} ({p.problem})" for p in probes)
    if ds.downloadable:
        fix = (
            f"Fix: set {ENV_DATA} to a folder that contains '{ds.folder}/' (e.g. the project's "
            f"shared/data), or download it into the cache with "
            f"glacierkit.examples.path({ds.name!r}, download=True) or "
            f"`glacierkit data fetch {ds.name}`."
        )
    else:
        fix = (
            f"Fix: set {ENV_DATA} to a folder that contains '{ds.folder}/' (e.g. the project's "
            f"shared/data). Downloading (path(..., download=True) or `glacierkit data fetch "
            f"{ds.name}`) cannot complete it: {len(ds.local_only)} of its {len(ds.files)} files "
            f"are local only ({', '.join(ds.local_only[:4])})."
        )
    return DatasetNotFoundError(
        f"example dataset {ds.name!r} ({ds.title}) was not found; looked for folder "
        f"'{ds.folder}' with its {len(ds.files)} registered files in:\n{looked}\n{fix}"
    )


def _relpath(file: str | os.PathLike[str]) -> str:
    rel = PurePosixPath(Path(file).as_posix())
    if rel.is_absolute() or Path(file).is_absolute() or ".." in rel.parts or not rel.parts:
        raise InputError(
            f"file must be a path relative to the dataset folder without '..', got {file!r}"
        )
    return rel.as_posix()


def path(name: str, file: str | os.PathLike[str] | None = None, *, download: bool = False) -> Path:
    """Return the folder of a dataset, or a file or sub-folder inside it.

    Looks in :func:`data_dirs` order and never downloads unless ``download=True``.

    Args:
        name: Dataset name (see :func:`list_datasets`).
        file: Optional path relative to the dataset folder (a registered file or a sub-folder
            such as ``"gps"``).
        download: When the dataset is found nowhere, fill the cache with :func:`fetch`.

    Returns:
        The dataset folder, or ``folder / file``.

    Raises:
        DatasetNotFoundError: Unknown name; dataset not found (the message lists every place
            looked and how to fix it); or ``file`` is not in the dataset folder.
        DownloadError: ``download=True`` and the cache fill failed.
        InputError: ``file`` is absolute or contains ``..``.
    """
    ds = _get(name)
    rel = None if file is None else _relpath(file)
    probes = []
    folder = None
    for probe in _probes(ds):
        probes.append(probe)
        if probe.problem is None:
            folder = probe.folder
            break
    if folder is None:
        if not download:
            raise _not_found(ds, probes)
        folder = fetch(name)
    if rel is None:
        return folder
    target = folder / rel
    if not target.exists():
        raise DatasetNotFoundError(
            f"{rel!r} is not in example dataset {ds.name!r} (folder {folder}); registered "
            f"files include {', '.join(f.path for f in ds.files[:6])}"
            + (" ..." if len(ds.files) > 6 else "")
        )
    return target


# --------------------------------------------------------------------------------------------
# Checksums and downloads
# --------------------------------------------------------------------------------------------


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _intact(p: Path, f: ExampleFile) -> bool:
    """Whether ``p`` exists with the registered size and sha256."""
    try:
        if p.stat().st_size != f.size:
            return False
    except OSError:
        return False
    return _sha256(p) == f.sha256


def verify(name: str) -> dict[str, bool]:
    """Check the full sha256 of every registered file of a located dataset.

    Args:
        name: Dataset name (see :func:`list_datasets`).

    Returns:
        ``{relative path: True if size and sha256 match}`` for every registered file.

    Raises:
        DatasetNotFoundError: Unknown name, or the dataset is found nowhere.
    """
    ds = _get(name)
    found = locate(name)
    if found is None:
        raise _not_found(ds, list(_probes(ds)))
    folder = found[0]
    result = {f.path: _intact(folder / f.path, f) for f in ds.files}
    bad = [p for p, ok in result.items() if not ok]
    if bad:
        logger.warning("example dataset %r in %s: %d file(s) fail the sha256 check: %s",
                       name, folder, len(bad), ", ".join(bad[:5]))
    return result


def _download(ds: ExampleDataset, f: ExampleFile, dest: Path, progress: bool) -> None:
    """Fetch one file with pooch into ``dest`` and check its sha256 (errors: DownloadError)."""
    url = f.url
    if url is None:  # callers skip local-only files; kept for safety
        raise DownloadError(_local_only_message(ds, [f.path], dest.parent))
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s/%s from %s", ds.name, f.path, url)
    try:
        got = Path(
            pooch.retrieve(
                url, known_hash=f"sha256:{f.sha256}", fname=dest.name, path=dest.parent,
                progressbar=progress,
            )
        )
    except Exception as exc:  # pooch: ValueError on checksum mismatch; requests: network errors
        raise DownloadError(
            f"could not download {f.path!r} of example dataset {ds.name!r} from {f.url}: {exc} "
            f"(expected sha256 {f.sha256}). Check the network connection and retry with "
            f"`glacierkit data fetch {ds.name}`, or set {ENV_DATA} to a folder that already "
            f"contains '{ds.folder}/'."
        ) from exc
    if got != dest and got.is_file():
        os.replace(got, dest)
    if not _intact(dest, f):
        actual = _sha256(dest) if dest.is_file() else "no file"
        dest.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {f.path!r} of example dataset {ds.name!r} downloaded from "
            f"{f.url}: expected sha256 {f.sha256} ({f.size} bytes), got {actual}. The file was "
            f"removed from the cache; retry, or set {ENV_DATA} to a folder that contains "
            f"'{ds.folder}/'."
        )


def fetch(name: str, *, progress: bool = False) -> Path:
    """Download a dataset into the cache (pinned URLs, sha256-checked) and return its folder.

    Files already in the cache with the right sha256 are not downloaded again. Only this
    function (also reached through ``path(name, download=True)``) downloads.

    Args:
        name: Dataset name (see :func:`list_datasets`).
        progress: Show a progress bar per file (needs ``tqdm``; without it, downloads proceed
            without a bar).

    Returns:
        The dataset folder in the cache (``cache_dir() / folder``).

    Raises:
        DatasetNotFoundError: ``name`` is not a registered dataset.
        DownloadError: A download failed or did not match its sha256, or the dataset has
            local-only files that the cache does not hold (the message names them and says to
            set ``GLACIERKIT_DATA``).
    """
    ds = _get(name)
    target = cache_dir() / ds.folder
    local_only = [f for f in ds.files if f.url is None]
    if len(local_only) == len(ds.files):
        raise DownloadError(_local_only_message(ds, [f.path for f in local_only], target))
    if progress and importlib.util.find_spec("tqdm") is None:
        logger.warning("progress bars need the 'tqdm' package; downloading without them")
        progress = False
    fetched = 0
    for f in ds.files:
        if f.url is None:
            continue
        dest = target / f.path
        if _intact(dest, f):
            logger.debug("cached: %s", dest)
            continue
        _download(ds, f, dest, progress)
        fetched += 1
    logger.info("example dataset %r: %d file(s) downloaded into %s", name, fetched, target)
    absent = [f.path for f in local_only if not _intact(target / f.path, f)]
    if absent:
        raise DownloadError(_local_only_message(ds, absent, target))
    return target


def _local_only_message(ds: ExampleDataset, absent: list[str], target: Path) -> str:
    listed = ", ".join(absent[:6]) + (" ..." if len(absent) > 6 else "")
    done = (
        f" The downloadable files are in {target}."
        if len(ds.local_only) < len(ds.files) else ""
    )
    return (
        f"example dataset {ds.name!r} cannot be completed by download: {len(absent)} file(s) "
        f"are local only (derived for glacierkit, in no public repository): {listed}.{done} "
        f"Set {ENV_DATA} to a folder that contains '{ds.folder}/' with these files (e.g. the "
        f"project's shared/data)."
    )
