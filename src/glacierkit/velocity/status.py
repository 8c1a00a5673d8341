"""Per-node status codes of offset tracking.

Every node of an offset grid carries one ``uint8`` status. A node whose status is not
:attr:`Status.OK` (or :attr:`Status.FILLED`) has NaN offsets; quality values are kept where they
could be computed, so a caller can see *why* a node failed.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

STATUS_DTYPE = np.uint8


class Status(IntEnum):
    """Outcome of matching one node (stored as ``uint8``).

    Attributes:
        OK: Matched; offsets are valid.
        LOW_TEXTURE: The reference chip (or every candidate secondary chip) has (near) zero
            variance, so the correlation is undefined.
        NODATA: Too many nodata (NaN) pixels in the reference chip or in the matched
            secondary chip.
        EDGE: The correlation peak lies on the border of the searched range (also after the
            EDGE re-search with twice the radius, when enabled), or the chip or the search
            window extends beyond the image.
        LOW_QUALITY: A peak was found but its correlation, SNR or peak ratio is below the
            requested thresholds.
        FILTERED: Removed by a later outlier filter (set by filtering code, never by the
            matcher).
        FILLED: Value interpolated by a later gap-filling step (set by gap-filling code).
    """

    OK = 0
    LOW_TEXTURE = 1
    NODATA = 2
    EDGE = 3
    LOW_QUALITY = 4
    FILTERED = 5
    FILLED = 6
