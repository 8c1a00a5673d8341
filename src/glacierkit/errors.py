"""glacierkit's exception family.

Every error subclasses a builtin so callers can catch it generically (``ValueError``,
``FileNotFoundError``, ...) or specifically. Messages say which argument was wrong, what it
was, what was expected, and how to fix it. The CLI turns these into one-line messages and a
non-zero exit code; the library never prints or exits.

A fix that is spelled differently in Python and on the command line is given separately:
``hint`` (appended to the message, for Python callers: ``pass align='reference' ...``) and
``cli_hint`` (used instead of ``hint`` by the ``glacierkit`` command: ``pass --align ...``)::

    raise GridMismatchError("rasters are not on the same grid ...",
                            hint="Fix: pass align='reference' ...",
                            cli_hint="Fix: pass --align ...")
"""

from __future__ import annotations


class GlacierkitError(Exception):
    """Base class of every glacierkit error (mixed into builtin-derived classes below).

    Args:
        *args: The message (what was wrong, what was expected), as for any exception.
        hint: How to fix it from Python; appended to ``str(error)``.
        cli_hint: How to fix it with the ``glacierkit`` command, replacing ``hint`` there
            (:meth:`cli_message`); ``""`` drops a Python-only ``hint`` without a replacement.
    """

    def __init__(self, *args: object, hint: str | None = None,
                 cli_hint: str | None = None) -> None:
        super().__init__(*args)
        self.hint = hint
        self.cli_hint = cli_hint

    @property
    def message(self) -> str:
        """The message without the fix (``hint`` / ``cli_hint``)."""
        return super().__str__()

    def __str__(self) -> str:
        msg, hint = self.message, getattr(self, "hint", None)
        return f"{msg} {hint}" if hint else msg

    def cli_message(self) -> str:
        """The message with the command-line fix (``cli_hint``) instead of the Python one."""
        msg, hint = self.message, getattr(self, "hint", None)
        cli_hint = getattr(self, "cli_hint", None)
        fix = hint if cli_hint is None else cli_hint
        return f"{msg} {fix}" if fix else msg


class InputError(GlacierkitError, ValueError):
    """An argument has an invalid value (wrong range, shape, type of content)."""


class CRSError(GlacierkitError, ValueError):
    """A coordinate reference system is missing, unknown or unsuitable."""


class GridMismatchError(GlacierkitError, ValueError):
    """Several rasters given to one function are not on the same grid.

    Raised instead of silently reprojecting or resampling; the message shows both grids and
    how to align them (``align=`` or :func:`glacierkit.io.reproject.align`).
    """


class NodataError(GlacierkitError, ValueError):
    """Nodata is inconsistent with the data (e.g. NaNs present but no nodata declared)."""


class WindowError(GlacierkitError, ValueError):
    """A window is empty, zero-sized or lies outside the raster."""


class TilingError(GlacierkitError, ValueError):
    """Tiling parameters are invalid (tile size, overlap, padding)."""


class RasterReadError(GlacierkitError, OSError):
    """A raster file exists but cannot be read (corrupt, truncated, unsupported)."""


class VectorReadError(GlacierkitError, OSError):
    """A vector file exists but cannot be read (corrupt, unsupported, empty)."""


class OutputExistsError(GlacierkitError, FileExistsError):
    """An output file exists and ``overwrite`` was not requested."""


class DatasetNotFoundError(GlacierkitError, FileNotFoundError):
    """An input file or a named example dataset cannot be found."""


class DownloadError(GlacierkitError, OSError):
    """A pinned download failed or its checksum did not match."""


class DependencyNotFoundError(GlacierkitError, ImportError):
    """An optional dependency is missing; the message gives the install command."""


class ModelFileError(GlacierkitError, ValueError):
    """A model file (``.gkm``) is corrupt, incomplete or of an unsupported format version.

    Also raised when its weights do not fit its architecture.
    """


class MemoryBudgetError(GlacierkitError, MemoryError):
    """Work does not fit the memory budget (``max_memory`` / ``--max-memory``).

    Raised before the work starts; the message names the parameters that shrink the work
    (e.g. the search range, chip or tile size) and the budget needed.
    """


class DomainShiftError(InputError):
    """A scene's values lie far outside the range a model was trained on.

    The message names the channel, the training range, the scene's range and the likely
    cause (a scale factor, a dtype change, dB vs linear power); the check can be overridden
    with ``allow_domain_shift=True`` (``--allow-domain-shift``).
    """


class ModelKindError(InputError):
    """A model file of one task (e.g. facies) was given to a command of another (mapping).

    The message names the model's task and the command that applies it.
    """
