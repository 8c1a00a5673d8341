"""Glacier surface velocity by offset tracking (array level; never imports torch).

* :mod:`~glacierkit.velocity.prefilter` — pre-filters (none, Gaussian high-pass, Wallis,
  orientation).
* :mod:`~glacierkit.velocity.kernels` — matching on a node grid: :func:`match`, its
  :class:`MatchResult` and the sign convention of every offset in this package.
* :mod:`~glacierkit.velocity.status` — per-node :class:`Status` codes.
"""

from __future__ import annotations

from glacierkit.velocity.kernels import MatchResult, match, node_grid
from glacierkit.velocity.prefilter import (
    apply_prefilter,
    gaussian_highpass,
    no_filter,
    orientation,
    wallis,
)
from glacierkit.velocity.status import Status

__all__ = [
    "MatchResult",
    "Status",
    "apply_prefilter",
    "gaussian_highpass",
    "match",
    "no_filter",
    "node_grid",
    "orientation",
    "wallis",
]
