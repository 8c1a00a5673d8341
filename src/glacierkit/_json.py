"""JSON-ready values: one conversion for reports and ``--json`` outputs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(v: Any) -> Any:
    """``v`` with NaN/inf floats → ``None``, numpy scalars/arrays → Python, paths → strings.

    Dicts, lists and tuples are converted recursively (dict keys become strings); objects
    with a ``to_dict()`` method are converted through it.
    """
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "to_dict"):
        return jsonable(v.to_dict())
    return v
