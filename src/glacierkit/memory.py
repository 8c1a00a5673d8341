"""Memory budgets for batched kernels (offset tracking, tiled inference).

A budget bounds the **working memory** of a batched computation: the memory it allocates on
top of what the process already holds when the computation starts (the input images, a
loaded model). The kernels size their batches from a per-item memory model so that the
batch's arrays and temporaries stay within the budget, and refuse up front (with
:class:`~glacierkit.errors.MemoryBudgetError`, naming the parameters to change) work of
which not even one item fits.

Budgets are written as a number of bytes (``int`` or a numeric string) or with a unit:
SI ``kB``, ``MB``, ``GB``, ``TB`` (powers of 1000) or IEC ``KiB``, ``MiB``, ``GiB``, ``TiB``
(powers of 1024), e.g. ``"4GB"``, ``"512MiB"``, ``"2.5 GB"``. A bare prefix (``"4G"``) is
refused rather than guessed.

The default budget is :data:`DEFAULT_FRACTION` (50 %) of the memory the operating system
reports as *available* (``psutil.virtual_memory().available``: free memory plus caches it can
drop without swapping) when the budget is resolved. Half, because the budget only covers the
batched working set: the process's other allocations, allocator slack (freed memory that is
not handed back at once) and other processes on the machine need the rest; a default near
100 % would let a single run push the machine into swapping or the OOM killer, while the
batched kernels gain little from batches larger than a few hundred MB. Available rather than
total memory, so that a busy machine gets a smaller default.

This module never imports torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from glacierkit.errors import InputError, MemoryBudgetError

#: Share of the available memory used when no budget is given (see the module docstring).
DEFAULT_FRACTION = 0.5

_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Budget:
    """A resolved memory budget.

    Attributes:
        bytes: The budget (bytes).
        source: How it was set, e.g. ``"max_memory='4GB'"`` or
            ``"default: 50 % of 23.1 GB available"``.
    """

    bytes: int
    source: str

    def as_dict(self) -> dict[str, object]:
        """``{"bytes", "human", "source"}`` for reports."""
        return {"bytes": self.bytes, "human": format_bytes(self.bytes), "source": self.source}


def parse_memory(value: str | int | float, *, name: str = "max_memory") -> int:
    """Parse a memory size into bytes.

    Args:
        value: Bytes as a number (``int``, a whole ``float`` or a numeric string), or a string
            with a unit: ``kB``/``MB``/``GB``/``TB`` (powers of 1000) or
            ``KiB``/``MiB``/``GiB``/``TiB`` (powers of 1024), case-insensitive, optional space
            (``"4GB"``, ``"512MiB"``, ``"2.5 GB"``).
        name: Parameter name used in error messages.

    Returns:
        The size in bytes (rounded down), > 0.

    Raises:
        InputError: Not a number with a known unit, or not positive.
    """
    if isinstance(value, bool):
        raise InputError(f"{name} must be a memory size such as '4GB' or '512MiB'; got "
                         f"{value!r}.")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        m = _PATTERN.match(value)
        if m is None or m.group(2).lower() not in _UNITS:
            raise InputError(
                f"{name} must be a memory size: a number of bytes or a number with one of the "
                "units kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of "
                f"1024), e.g. '4GB', '512MiB', '2.5 GB'; got {value!r}.")
        number, unit = float(m.group(1)), m.group(2).lower()
    else:
        raise InputError(f"{name} must be a memory size such as '4GB' (str) or a number of "
                         f"bytes (int); got {type(value).__name__} {value!r}.")
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise InputError(f"{name} must be a positive memory size (at least 1 byte, e.g. "
                         f"'4GB'); got {value!r}.")
    return int(size)


def available_memory() -> int:
    """Memory the operating system can give without swapping now (bytes; psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


def default_budget(fraction: float = DEFAULT_FRACTION) -> Budget:
    """``fraction`` of :func:`available_memory` (see the module docstring for the choice)."""
    avail = available_memory()
    return Budget(max(1, int(fraction * avail)),
                  f"default: {100 * fraction:.0f} % of {format_bytes(avail)} available")


def resolve_budget(max_memory: str | int | float | Budget | None, *,
                   name: str = "max_memory") -> Budget:
    """The budget for ``max_memory``: parsed, or the default when ``None``.

    Args:
        max_memory: A memory size (see :func:`parse_memory`), a :class:`Budget`, or ``None``
            for :func:`default_budget`.
        name: Parameter name used in error messages.

    Returns:
        The resolved budget.
    """
    if max_memory is None:
        return default_budget()
    if isinstance(max_memory, Budget):
        return max_memory
    return Budget(parse_memory(max_memory, name=name), f"{name}={max_memory!r}")


def format_bytes(n: float) -> str:
    """``n`` bytes as a short SI string, e.g. ``"2.85 GB"``, ``"640 kB"``."""
    for unit, size in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def items_per_batch(bytes_per_item: float, budget: int | Budget, *, fixed_bytes: float = 0,
                    limit: int | None = None, what: str = "item", fix: str = "") -> int:
    """How many items of a batch fit a budget: ``⌊(budget − fixed) / per item⌋``.

    Args:
        bytes_per_item: Working memory per item of the batch (bytes).
        budget: The budget (bytes, or a :class:`Budget`).
        fixed_bytes: Working memory that does not scale with the batch (bytes).
        limit: Upper bound on the result (e.g. a requested batch size, the number of items).
        what: What one item is, for the error message (e.g. ``"one node searched ±416 px"``).
        fix: What to change, for the error message (e.g. ``"reduce --search"``).

    Returns:
        Items per batch, ``1 ≤ n ≤ limit``.

    Raises:
        MemoryBudgetError: Not even one item fits; the message gives the memory needed, the
            budget and ``fix``.
    """
    total = budget.bytes if isinstance(budget, Budget) else int(budget)
    need = fixed_bytes + bytes_per_item
    if bytes_per_item <= 0:
        n = limit if limit is not None else 1
    else:
        n = int((total - fixed_bytes) // bytes_per_item)
    if n < 1:
        source = f" ({budget.source})" if isinstance(budget, Budget) else ""
        raise MemoryBudgetError(
            f"{what} needs about {format_bytes(need)} of working memory, more than the memory "
            f"budget of {format_bytes(total)}{source}. {fix}".rstrip())
    return max(1, min(n, limit)) if limit is not None else n
