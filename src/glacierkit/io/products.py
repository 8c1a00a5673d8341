"""All-or-nothing product sets: a command's files appear together, or not at all.

Every product file is written atomically (:mod:`glacierkit.io.writer`), but a command writes
several (``velocity.tif``, ``quality.tif``, ``report.json``, ...). :class:`ProductSet` makes
the *set* atomic as far as a user can tell::

    products = ProductSet(out_dir, ["velocity.tif", "quality.tif", "report.json"])
    # ^ refuses existing products (unless overwrite) before any work is done
    with products:
        write_raster(products.path("velocity.tif"), ...)   # into a hidden staging folder
        write_raster(products.path("quality.tif"), ...)
        write_report(products.path("report.json"), ...)
    # leaving the block without an exception publishes the set (report last)

* The staging folder (``.glacierkit-staging-*``) lies *inside* the output folder, so that the
  final moves are renames on one filesystem. The output folder is created when the first
  product is staged, and removed again (if it is then empty) when it did not exist before and
  nothing was published.
* Publishing renames every product onto its target in the order given (list the report
  last). SIGINT and SIGTERM are held back during the renames: a signal that arrives before
  the whole set is in place rolls the renames back, then the signal is delivered. With
  ``overwrite``, existing products are first moved aside into the staging folder, restored if
  the set cannot be completed, and deleted only once the whole new set is in place.
* On any exception or interrupt inside the ``with`` block the staging folder is deleted and
  nothing new is left in the output folder.
* A :class:`KeyboardInterrupt` (SIGINT, or the CLI's SIGTERM) that leaves a product set, or a
  function decorated with :func:`reports_output`, carries the output folder and whether the
  set was published (:func:`interrupted_output`); the CLI uses it for its message.

Only INFO-level "wrote" messages with the final paths are logged; the writers log their
staging paths at DEBUG level (:func:`glacierkit.io.writer.written_log_level`).

Torch-free.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

from glacierkit.errors import InputError, OutputExistsError
from glacierkit.io.writer import (
    STAGING_PREFIX,
    check_output_path,
    set_product_mode,
    written_log_level,
)

log = logging.getLogger(__name__)

__all__ = ["InterruptedOutput", "ProductSet", "forget_interrupted_output", "interrupted_output",
           "last_interrupted_output", "reports_output"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                 if s is not None)
_NOTE = "glacierkit_output"
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class InterruptedOutput:
    """Where an interrupted command was writing.

    Attributes:
        folder: The command's output folder.
        published: True if the product set had been published completely before the interrupt
            arrived; False if nothing new was left in ``folder``.
    """

    folder: Path
    published: bool


def interrupted_output(exc: BaseException) -> InterruptedOutput | None:
    """The output folder an interrupt left, if a product set or decorated function noted it."""
    note = getattr(exc, _NOTE, None)
    return note if isinstance(note, InterruptedOutput) else None


#: The last note made (the outermost product set or decorated call notes last), for callers
#: that only see an interrupt's exit code (typer turns KeyboardInterrupt into exit code 130).
_last_note: InterruptedOutput | None = None


def last_interrupted_output() -> InterruptedOutput | None:
    """The note of the last interrupt that left a product set or decorated function."""
    return _last_note


def forget_interrupted_output() -> None:
    """Clear :func:`last_interrupted_output` (the CLI does before each command)."""
    global _last_note
    _last_note = None


def _note(exc: BaseException | None, folder: Path, published: bool) -> None:
    global _last_note
    if isinstance(exc, KeyboardInterrupt):
        _last_note = InterruptedOutput(folder, published)
        try:
            setattr(exc, _NOTE, _last_note)
        except AttributeError:  # pragma: no cover - exceptions without a __dict__
            pass


def reports_output(param: str = "out_dir") -> Callable[[_F], _F]:
    """Decorator: an interrupt escaping the function names the output folder ``param``.

    For functions that write their products through a :class:`ProductSet` and nothing else
    into their output folder: an interrupt before the set is published then left nothing new
    there, and the CLI can say so. An interrupt already noted for the same folder (by the
    product set, which knows whether it was published) keeps its note; a note for another
    folder (a nested call writing into a staging folder) is replaced.
    """
    def decorate(fn: _F) -> _F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt as e:
                try:
                    folder: Path | None = Path(sig.bind(*args, **kwargs).arguments[param])
                except (TypeError, KeyError):  # pragma: no cover - no such argument
                    folder = None
                note = interrupted_output(e)
                if folder is not None and (note is None or note.folder != folder):
                    _note(e, folder, False)
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def _held_signals() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM back inside the block; deliver them to the old handlers after it.

    Yields the list of signals received so far (the block may look at it to roll back). Only
    possible in the main thread (Python runs signal handlers there); elsewhere nothing is held.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if old.get(signum) not in (signal.SIG_IGN, None):
            received.append(signum)

    old: dict[int, Any] = {}
    try:
        for s in _SIGNALS:
            old[s] = signal.signal(s, hold)
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in dict.fromkeys(received):
            _deliver(s, old.get(s, signal.SIG_DFL))


def _deliver(signum: int, handler: Any) -> None:
    """Run the handler that a held-back signal would have reached."""
    if callable(handler):
        handler(signum, None)  # e.g. signal.default_int_handler raises KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
    # SIG_IGN (or None: a handler not installed from Python): the signal is dropped, as it
    # would have been.


class ProductSet:
    """A command's output files, staged in a hidden folder and published all at once.

    Args:
        out_dir: The output folder (created when the first product is staged).
        names: File names of the products (no folders), in publishing order: put the report
            last, so that a folder with a report holds the complete set.
        overwrite: Replace existing products. Default False: an existing product raises
            :class:`~glacierkit.errors.OutputExistsError` here, before any work is done.

    Raises:
        InputError: ``names`` is empty, repeats a name or holds a path.
        OutputExistsError: ``out_dir`` is a file, or a product exists and ``overwrite`` is
            False.
    """

    def __init__(self, out_dir: str | os.PathLike[str], names: Sequence[str], *,
                 overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.names = tuple(str(n) for n in names)
        self.overwrite = bool(overwrite)
        if not self.names:
            raise InputError("a product set needs at least one product name.")
        if len(set(self.names)) != len(self.names):
            raise InputError(f"product names repeat: {list(self.names)}.")
        bad = [n for n in self.names if Path(n).name != n or n in (".", "..")
               or n.startswith(STAGING_PREFIX)]
        if bad:
            raise InputError(f"product names must be plain file names; got {bad}.")
        self._staging: Path | None = None
        self._created: Path | None = None  # topmost folder created for the set
        self._published = False
        self._keep_staging = False
        self._active = False
        self.check()

    # ------------------------------------------------------------------ public
    @property
    def targets(self) -> dict[str, Path]:
        """``{name: final path}`` of every product."""
        return {n: self.out_dir / n for n in self.names}

    @property
    def published(self) -> bool:
        """True once the whole set is in place."""
        return self._published

    def check(self) -> None:
        """Refuse an output folder that is a file, and existing products unless ``overwrite``.

        Creates nothing.
        """
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise OutputExistsError(f"output folder {self.out_dir} exists and is not a folder; "
                                    f"choose another output folder.")
        if self.out_dir.is_dir():
            for target in self.targets.values():
                check_output_path(target, overwrite=self.overwrite)
                if target.is_dir():
                    raise OutputExistsError(f"{target} is a folder, where the product file "
                                            f"{target.name} goes; move it away or choose "
                                            f"another output folder.")

    @property
    def staging(self) -> Path:
        """The hidden staging folder (created on first use, with the output folder if needed).

        Scratch files that are not products may go here too; it is deleted when the set
        closes.
        """
        if not self._active:
            raise RuntimeError("ProductSet.staging used outside its 'with' block.")
        if self._staging is None:
            if not self.out_dir.exists():
                top = self.out_dir
                while not top.parent.exists() and top.parent != top:
                    top = top.parent
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self._created = top
            self._staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out_dir))
        return self._staging

    def path(self, name: str) -> Path:
        """The staging path to write product ``name`` to (published when the set closes)."""
        if name not in self.names:
            raise InputError(f"{name!r} is not one of this product set's files "
                             f"{list(self.names)}.")
        return self.staging / name

    # ------------------------------------------------------------------ context protocol
    def __enter__(self) -> ProductSet:
        if self._active or self._published:
            raise RuntimeError("a ProductSet is used once, in one 'with' block.")
        self.check()  # files may have appeared while the command worked
        self._active = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            try:
                if exc is None:
                    self._publish()
            finally:
                self._active = False
                self._cleanup()
        except BaseException as e:
            _note(e, self.out_dir, self._published)
            raise
        _note(exc, self.out_dir, self._published)

    # ------------------------------------------------------------------ internals
    def _publish(self) -> None:
        staging = self.staging
        missing = [n for n in self.names if not (staging / n).exists()]
        if missing:
            raise RuntimeError(f"product(s) {missing} of {self.out_dir} were not written; "
                               f"nothing was published.")
        while not self._published:
            # A signal held back during the renames rolls them back and is then delivered; if
            # its handler does not raise (the program goes on), publishing starts again.
            self.check()
            self._rename_all(staging)
        for name in self.names:
            target = self.out_dir / name
            log.log(written_log_level(target), "wrote %s", target)

    def _rename_all(self, staging: Path) -> None:
        """Move every product into place, or none (signals held back meanwhile)."""
        aside = staging / ".previous"
        placed: list[tuple[str, Path | None, bool]] = []  # (name, old file moved aside, new in)
        with _held_signals() as received:
            try:
                for name in self.names:
                    target = self.out_dir / name
                    old: Path | None = None
                    if os.path.lexists(target):
                        aside.mkdir(exist_ok=True)
                        old = aside / name
                    placed.append((name, old, False))
                    if old is not None:
                        os.replace(target, old)
                    set_product_mode(staging / name)
                    os.replace(staging / name, target)
                    placed[-1] = (name, old, True)
                if received:
                    raise _Rollback
            except BaseException as e:
                self._roll_back(placed)
                if isinstance(e, _Rollback):
                    return  # the held-back signal is delivered when the block ends
                raise
            self._published = True

    def _roll_back(self, placed: list[tuple[str, Path | None, bool]]) -> None:
        """Undo the renames of :meth:`_publish` (newest first); restore moved-aside products."""
        assert self._staging is not None
        for name, old, new_in in reversed(placed):
            target = self.out_dir / name
            try:
                if new_in:
                    os.replace(target, self._staging / name)
                if old is not None and os.path.lexists(old):
                    os.replace(old, target)
            except OSError as err:
                self._keep_staging = True
                log.error("could not restore %s (%s); the previous file is kept in %s",
                          target, err, old.parent if old is not None else self._staging)

    def _cleanup(self) -> None:
        with _held_signals():
            if self._staging is not None and not self._keep_staging:
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None
            if self._created is not None and not self._published:
                folder = self.out_dir
                while True:
                    try:
                        folder.rmdir()  # only empty folders: never anything else's content
                    except OSError:
                        break
                    if folder == self._created:
                        break
                    folder = folder.parent
                self._created = None


class _Rollback(Exception):
    """Internal: a signal arrived during publishing; the renames are undone."""
