"""Reliability diagrams: accuracy per confidence bin against the diagonal, before/after."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from glacierkit.errors import InputError
from glacierkit.io.writer import check_output_path
from glacierkit.metrics.calibration import ReliabilityBins
from glacierkit.viz.quicklook import save_png

log = logging.getLogger(__name__)


def _as_bins(b: ReliabilityBins | dict[str, Any], name: str) -> ReliabilityBins:
    if isinstance(b, ReliabilityBins):
        return b
    if isinstance(b, dict):
        return ReliabilityBins.from_dict(b)
    raise InputError(f"{name} must be ReliabilityBins (glacierkit.metrics.reliability_bins) or "
                     f"its to_dict(); got {type(b).__name__}.")


def _panel(ax, bins: ReliabilityBins, label: str, colour: str) -> None:
    edges = bins.edges
    width = np.diff(edges)
    filled = bins.counts > 0
    ax.bar(edges[:-1][filled], bins.accuracy[filled], width=width[filled], align="edge",
           color=colour, edgecolor="black", linewidth=0.5, alpha=0.85,
           label=f"{label} (ECE = {bins.ece:.3f})")
    # Gap between accuracy and mean confidence per bin.
    ax.bar(edges[:-1][filled], bins.confidence[filled] - bins.accuracy[filled],
           bottom=bins.accuracy[filled], width=width[filled], align="edge", fill=False,
           edgecolor="tab:red", hatch="//", linewidth=0.5, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (mean predicted probability per bin, 0–1)", fontsize=8)
    ax.set_ylabel("accuracy (share of pixels correct, 0–1)", fontsize=8)
    ax.set_title(f"{label} (n = {int(bins.counts.sum())})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)


def reliability_diagram(bins_before: ReliabilityBins | dict[str, Any],
                        bins_after: ReliabilityBins | dict[str, Any] | None = None, *,
                        path: str | os.PathLike[str], title: str | None = None,
                        labels: tuple[str, str] = ("before calibration", "after calibration"),
                        dpi: int = 110, overwrite: bool = False) -> Path:
    """Write a reliability diagram PNG: accuracy per confidence bin with the diagonal.

    One panel, or two side by side (before | after) when ``bins_after`` is given. Each panel
    shows the accuracy per non-empty bin (bars), the gap to the bin's mean confidence
    (hatched), the diagonal of perfect calibration and the ECE in the legend.

    Args:
        bins_before: Bins from :func:`glacierkit.metrics.reliability_bins` (or their
            ``to_dict()``).
        bins_after: Optional bins after calibration.
        path: Output ``.png``, written atomically.
        title: Figure title.
        labels: Panel labels (before, after).
        dpi: PNG resolution.
        overwrite: Replace an existing file.

    Returns:
        The PNG path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = _as_bins(bins_before, "bins_before")
    after = None if bins_after is None else _as_bins(bins_after, "bins_after")
    out = check_output_path(path, overwrite=overwrite)
    n = 1 if after is None else 2
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4.8), dpi=dpi, squeeze=False)
    try:
        _panel(axes[0, 0], before, labels[0], "tab:blue")
        if after is not None:
            _panel(axes[0, 1], after, labels[1], "tab:green")
        if title:
            fig.suptitle(title, fontsize=11)
        save_png(fig, out)
    finally:
        plt.close(fig)
    log.info("wrote reliability diagram %s", out)
    return out
