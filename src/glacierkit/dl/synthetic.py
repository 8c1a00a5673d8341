"""A documented synthetic SAR backscatter and coherence generator.

glacierkit ships no real SAR scene, so the SAR and coherence source groups are exercised with
images simulated from a label map (and optionally a DEM). The model is deliberately simple
and first-order; it gives the groups the right *statistics* (class contrast, speckle, the
coherence estimator's bias and noise), not realistic radiometry.

**Backscatter.** Each class has a mean σ⁰ per polarisation (defaults, C-band, summer):

=============== ======== ======== ===========
class           VV (dB)  VH (dB)  coherence
=============== ======== ======== ===========
0 off-glacier   −8       −15      0.70
1 glacier       −14      −21      0.25
=============== ======== ======== ===========

Wet snow and melting ice absorb the microwave signal (liquid water: high dielectric loss) and
smooth ice reflects it away from the sensor, so glaciers are darker than rough rock and
moraine, which backscatter diffusely; cross-polarisation is ~7 dB below co-polarisation for
both. Pixels labelled 255 (ignore) or any class not configured use ``default_class`` (0).

The noise-free σ⁰ is multiplied by

1. an optional smooth log-normal *texture* (``texture_db`` standard deviation in dB,
   Gaussian-smoothed white noise of correlation ``texture_scale_px``), scaled so that its mean
   in linear power is exactly 1;
2. an optional *topographic* gain from the DEM: ``(cos θ_loc / cos θ) ** topo_exponent`` with
   ``cos θ_loc = (sin θ sin φ gx + sin θ cos φ gy + cos θ) / sqrt(1 + gx² + gy²)`` (θ the
   ellipsoid incidence angle, φ the look azimuth = horizontal direction from the sensor to the
   ground, clockwise from north; ``gx, gy`` the east/north elevation gradients). Slopes facing
   the sensor brighten, slopes facing away darken; ``cos θ_loc`` is floored at
   ``shadow_floor`` (radar shadow). DEM nodata: gain 1. Layover is not modelled;
3. multiplicative **speckle**: Gamma(L, 1/L) (mean 1, variance 1/L) for an L-look
   intensity image, independently per pixel and polarisation.

The configured dB values are therefore the class means **in linear power**
(``10·log10(mean(σ⁰))``) on flat ground. The mean of the dB values is lower by the
log-speckle bias ``10/ln 10 · (ψ(L) − ln L)`` (−0.57 dB for L = 4).

**Coherence.** Two complex single-look images with the class's true coherence γ are drawn
(``z1 = a·n1``, ``z2 = a·(γ n1 + sqrt(1−γ²) n2)``, ``n1, n2`` independent circular Gaussian,
``a² = σ⁰_VV``), and the coherence is *estimated* the way a processor does, with an
``N = coherence_window²``-look boxcar: ``|⟨z1 z2*⟩| / sqrt(⟨|z1|²⟩⟨|z2|²⟩)``. The estimate lies
in [0, 1] and has the estimator's real bias (upwards at low coherence: about +0.02 at
γ = 0.25 for 7×7 looks, and ≈ 0.13 instead of 0 for fully decorrelated pixels) and noise.

Torch-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from glacierkit.errors import InputError
from glacierkit.io.grid import Grid
from glacierkit.io.writer import check_output_path, write_raster


@dataclass(frozen=True)
class SarClass:
    """Radar signature of one class.

    Args:
        vv_db: Mean VV backscatter σ⁰ (dB, mean in linear power).
        vh_db: Mean VH backscatter σ⁰ (dB).
        coherence: True interferometric coherence (0–1).
    """

    vv_db: float
    vh_db: float
    coherence: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.coherence <= 1.0:
            raise InputError(f"coherence must be in [0, 1]; got {self.coherence}.")


DEFAULT_SAR_CLASSES: dict[int, SarClass] = {
    0: SarClass(vv_db=-8.0, vh_db=-15.0, coherence=0.70),   # rock, moraine, vegetation: stable
    1: SarClass(vv_db=-14.0, vh_db=-21.0, coherence=0.25),  # glacier: wet snow / moving ice
}


@dataclass(frozen=True)
class SarParams:
    """Parameters of :func:`synthetic_sar` (see the module docstring for the model).

    Args:
        classes: ``{label value: SarClass}``.
        default_class: Class used for labels not in ``classes`` (e.g. 255 ignore).
        looks: Equivalent number of looks L of the intensity images (Sentinel-1 GRD ≈ 4.4).
        coherence_window: Boxcar edge (px) of the coherence estimator (N = edge² looks).
        texture_db: Standard deviation (dB) of the smooth log-normal texture; 0 disables it.
        texture_scale_px: Gaussian correlation scale (px) of the texture.
        incidence_deg: Ellipsoid incidence angle θ (degrees).
        look_azimuth_deg: Horizontal direction from sensor to ground (degrees clockwise from
            north); 90 = the sensor is west of the scene looking east.
        topo_exponent: Exponent of the topographic gain (0 disables it).
        shadow_floor: Floor of cos θ_loc (radar shadow).
    """

    classes: Mapping[int, SarClass] = field(default_factory=lambda: dict(DEFAULT_SAR_CLASSES))
    default_class: int = 0
    looks: float = 4.0
    coherence_window: int = 7
    texture_db: float = 1.0
    texture_scale_px: float = 4.0
    incidence_deg: float = 35.0
    look_azimuth_deg: float = 90.0
    topo_exponent: float = 1.0
    shadow_floor: float = 0.05

    def __post_init__(self) -> None:
        if self.default_class not in self.classes:
            raise InputError(f"default_class={self.default_class} is not among the configured "
                             f"classes {sorted(self.classes)}.")
        if not self.looks >= 1:
            raise InputError(f"looks must be >= 1; got {self.looks}.")
        if self.coherence_window < 1:
            raise InputError(f"coherence_window must be >= 1 px; got {self.coherence_window}.")
        if not 0 <= self.incidence_deg < 90:
            raise InputError(f"incidence_deg must be in [0, 90); got {self.incidence_deg}.")
        if self.texture_db < 0 or self.texture_scale_px <= 0:
            raise InputError("texture_db must be >= 0 and texture_scale_px > 0.")
        if not 0 < self.shadow_floor <= 1:
            raise InputError(f"shadow_floor must be in (0, 1]; got {self.shadow_floor}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (written as GeoTIFF tags)."""
        d = asdict(self)
        d["classes"] = {str(k): asdict(v) for k, v in self.classes.items()}
        return d


@dataclass(eq=False)
class SyntheticSar:
    """Output of :func:`synthetic_sar`.

    Attributes:
        sar: ``(2, H, W)`` float32 VV, VH speckled backscatter, **linear power**.
        coherence: ``(1, H, W)`` float32 estimated coherence in [0, 1].
        sigma0: ``(2, H, W)`` float32 noise-free σ⁰ (linear; class mean × texture × topography).
        true_coherence: ``(H, W)`` float32 coherence γ the estimate was drawn from.
        params: The parameters used.
        seed: The seed used.
    """

    sar: np.ndarray
    coherence: np.ndarray
    sigma0: np.ndarray
    true_coherence: np.ndarray
    params: SarParams
    seed: int


def local_incidence_cos(dem: np.ndarray, pixel_size: tuple[float, float], *,
                        incidence_deg: float = 35.0,
                        look_azimuth_deg: float = 90.0) -> np.ndarray:
    """``cos θ_loc`` ``(H, W)`` of a north-up DEM (metres) for a sensor looking along φ.

    Args:
        dem: ``(H, W)`` elevation (m), NaN nodata.
        pixel_size: ``(x, y)`` pixel size (m).
        incidence_deg: Ellipsoid incidence θ (degrees).
        look_azimuth_deg: Sensor → ground horizontal direction φ (degrees from north).

    Returns:
        float64 ``(H, W)``; negative where the slope faces away steeper than 90° − θ (shadow).
    """
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise InputError(f"dem must be 2-D, at least 2×2; got shape {z.shape}.")
    xres, yres = pixel_size
    dz_drow, dz_dcol = np.gradient(z, yres, xres)
    gx, gy = dz_dcol, -dz_drow
    th, ph = math.radians(incidence_deg), math.radians(look_azimuth_deg)
    num = math.sin(th) * math.sin(ph) * gx + math.sin(th) * math.cos(ph) * gy + math.cos(th)
    return num / np.sqrt(1.0 + gx**2 + gy**2)


def synthetic_sar(labels: np.ndarray, *, dem: np.ndarray | None = None,
                  pixel_size: tuple[float, float] = (30.0, 30.0), seed: int = 0,
                  params: SarParams | None = None) -> SyntheticSar:
    """Simulate VV/VH backscatter and coherence for a label map.

    Args:
        labels: ``(H, W)`` integer classes (0 off-glacier, 1 glacier by default; 255 and
            unknown values use ``params.default_class``).
        dem: Optional ``(H, W)`` elevation (m) on the same grid, for the topographic gain.
        pixel_size: ``(x, y)`` pixel size in metres (DEM gradients).
        seed: Random seed; the same inputs and seed give identical outputs.
        params: Model parameters (defaults: table in the module docstring).

    Returns:
        A :class:`SyntheticSar`.
    """
    p = params or SarParams()
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.size == 0:
        raise InputError(f"labels must be a non-empty 2-D array (H, W); got shape {lab.shape}.")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be integers; got {lab.dtype}.")
    h, w = lab.shape
    rng = np.random.default_rng(seed)
    keys = sorted(p.classes)
    cls = np.full(lab.shape, p.default_class, dtype=np.int64)
    for k in keys:
        cls[lab == k] = k
    lut_idx = np.searchsorted(np.array(keys), cls)
    vv = np.array([10 ** (p.classes[k].vv_db / 10) for k in keys])[lut_idx]
    vh = np.array([10 ** (p.classes[k].vh_db / 10) for k in keys])[lut_idx]
    gamma = np.array([p.classes[k].coherence for k in keys])[lut_idx]
    gain = np.ones(lab.shape)
    if p.texture_db > 0:
        noise = ndimage.gaussian_filter(rng.standard_normal(lab.shape), p.texture_scale_px,
                                        mode="reflect")
        noise /= max(float(noise.std()), 1e-12)
        s = p.texture_db * math.log(10) / 10          # std of ln(gain)
        gain *= np.exp(s * noise - s * s / 2)           # E[gain] = 1
    else:
        rng.standard_normal(lab.shape)                  # keep the stream aligned
    if dem is not None:
        d = np.asarray(dem, dtype=np.float64)
        if d.shape != lab.shape:
            raise InputError(f"dem shape {d.shape} differs from labels shape {lab.shape}.")
        if p.topo_exponent:
            cl = local_incidence_cos(d, pixel_size, incidence_deg=p.incidence_deg,
                                     look_azimuth_deg=p.look_azimuth_deg)
            topo = (np.maximum(cl, p.shadow_floor) / math.cos(math.radians(p.incidence_deg))
                    ) ** p.topo_exponent
            gain *= np.where(np.isfinite(topo), topo, 1.0)
    sigma0 = np.stack([vv * gain, vh * gain])
    speckle = rng.gamma(shape=p.looks, scale=1.0 / p.looks, size=(2, h, w))
    sar = (sigma0 * speckle).astype(np.float32)
    # Coherence: two correlated circular-Gaussian SLCs, boxcar estimate.
    n = (rng.standard_normal((2, 2, h, w)) / math.sqrt(2)).astype(np.float64)
    n1 = n[0, 0] + 1j * n[0, 1]
    n2 = n[1, 0] + 1j * n[1, 1]
    amp = np.sqrt(sigma0[0])
    z1 = amp * n1
    z2 = amp * (gamma * n1 + np.sqrt(1 - gamma**2) * n2)
    k = int(p.coherence_window)
    cross = z1 * np.conj(z2)
    num_re = ndimage.uniform_filter(cross.real, k, mode="reflect")
    num_im = ndimage.uniform_filter(cross.imag, k, mode="reflect")
    p1 = ndimage.uniform_filter(np.abs(z1) ** 2, k, mode="reflect")
    p2 = ndimage.uniform_filter(np.abs(z2) ** 2, k, mode="reflect")
    coh = np.hypot(num_re, num_im) / np.sqrt(np.maximum(p1 * p2, 1e-30))
    coh = np.clip(coh, 0.0, 1.0).astype(np.float32)[None]
    return SyntheticSar(sar=sar, coherence=coh, sigma0=sigma0.astype(np.float32),
                        true_coherence=gamma.astype(np.float32), params=p, seed=seed)


def write_synthetic_sar(out_dir: str | os.PathLike[str], labels: np.ndarray, grid: Grid, *,
                        dem: np.ndarray | None = None, seed: int = 0,
                        params: SarParams | None = None, prefix: str = "synthetic",
                        overwrite: bool = False) -> dict[str, Path]:
    """Simulate SAR and coherence on ``grid`` and write them as GeoTIFFs.

    Files (Cloud-Optimized GeoTIFF via :func:`glacierkit.io.write_raster`):
    ``{prefix}_sar.tif`` (2 bands ``vv``, ``vh``, float32 linear power) and
    ``{prefix}_coherence.tif`` (1 band ``coherence``, 0–1). Both carry the generator
    parameters and seed as tags (``SYNTHETIC=1``).

    Args:
        out_dir: Existing folder.
        labels: ``(H, W)`` classes on ``grid``.
        grid: The scene grid (``grid.shape == labels.shape``).
        dem: Optional ``(H, W)`` DEM (m) on ``grid``.
        seed, params: As for :func:`synthetic_sar`.
        prefix: File name prefix.
        overwrite: Replace existing files.

    Returns:
        ``{"sar": path, "coherence": path}``.
    """
    from glacierkit.dl.sources import pixel_size_m

    if np.shape(labels) != grid.shape:
        raise InputError(f"labels shape {np.shape(labels)} differs from the grid shape "
                         f"{grid.shape}.")
    out = Path(out_dir)
    paths = {"sar": out / f"{prefix}_sar.tif", "coherence": out / f"{prefix}_coherence.tif"}
    for pth in paths.values():
        check_output_path(pth, overwrite=overwrite)
    res = synthetic_sar(labels, dem=dem, pixel_size=pixel_size_m(grid), seed=seed,
                        params=params)
    tags = {"SYNTHETIC": "1", "generator": "glacierkit.dl.synthetic", "seed": seed,
            "params": res.params.to_dict()}
    write_raster(paths["sar"], res.sar, grid, band_names=["vv", "vh"],
                 units="linear power", tags=tags, overwrite=overwrite)
    write_raster(paths["coherence"], res.coherence, grid, band_names=["coherence"], units="",
                 tags=tags, overwrite=overwrite)
    return paths
