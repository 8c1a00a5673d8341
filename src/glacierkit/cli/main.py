"""``glacierkit`` command: the typer app, logging set-up and error → exit-code policy.

Each command lives in its own module and registers itself on :data:`app`. Errors become
messages on stderr and an exit code; ``--verbose`` also shows the traceback:

* 0 — success.
* 1 (:data:`EXIT_ERROR`) — an input error: a glacierkit error
  (:class:`~glacierkit.errors.GlacierkitError`: bad file content, grids that differ, an output
  that exists, ...) or an operating-system error on a user's file (missing, unreadable, no
  permission, disk full) or out of memory. One line ``error: ...`` that says what to change;
  where the fix is spelled differently on the command line, the CLI's words are used
  (:meth:`~glacierkit.errors.GlacierkitError.cli_message`).
* 2 (:data:`EXIT_USAGE`) — a usage error, found before any work: unknown command or option, a
  missing argument, a value outside an option's choices or range (``--method foo``,
  ``--band 0``). Commands check their options with typer choices/ranges or raise
  :class:`typer.BadParameter` (:func:`require`).
* 70 (:data:`EXIT_INTERNAL`, ``EX_SOFTWARE`` of ``sysexits.h``) — any other exception: a bug in
  glacierkit. ``internal error: <type>: <message>`` and a line asking for a report with the
  traceback (``--verbose``).
* 130 (:data:`EXIT_INTERRUPTED`) — interrupted (Ctrl-C).
* 143 (:data:`EXIT_TERMINATED`, 128 + SIGTERM) — terminated (``kill``). Both print one line,
  ``interrupted: nothing was written to OUT`` (``terminated: ...``), when the command was
  writing a product set (:mod:`glacierkit.io.products`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from glacierkit import __version__
from glacierkit.errors import GlacierkitError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="glacierkit",
    help="Satellite imagery to glacier knowledge: velocity, outlines, change and facies, "
    "as georeferenced files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err_console = Console(stderr=True)


def _hide_flag_types() -> None:
    """Show no value type for flags in the rich ``--help``: ``--overwrite``, not ``<bool>``.

    typer 0.29's :meth:`typer.core.TyperOption.display_type_rich` labels every option with its
    type, flags included, although a flag takes no value (its plain-text help already skips
    them). typer creates its option objects itself, so a subclass cannot be passed in: this
    wraps the method once, at import, to return ``None`` for flags and counters and defer to
    typer for everything else. A typer without the method is left alone.
    """
    from typer.core import TyperOption

    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_glacierkit_hides_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None
        return original(self, ctx)

    display_type_rich._glacierkit_hides_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glacierkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Log progress details and show tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only log errors."),
) -> None:
    """Satellite imagery to glacier knowledge."""
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True,
                        handlers=[RichHandler(console=err_console, show_path=verbose,
                                              rich_tracebacks=False)])
    for noisy in ("rasterio", "fiona", "pyogrio", "matplotlib", "PIL", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def require(ok: bool, flag: str, message: str) -> None:
    """Raise a usage error (exit code 2) about the option ``flag`` unless ``ok``.

    Args:
        ok: Whether the option's value is acceptable.
        flag: The option as typed, e.g. ``"--dt-days"``.
        message: What was wrong and what is expected, e.g. ``"must be > 0; got -3."``.
    """
    if not ok:
        raise typer.BadParameter(message, param_hint=f"'{flag}'")


def _bug_report_target() -> str:
    """Where to report a bug: the package's issue tracker / repository URL when declared."""
    try:
        from importlib.metadata import metadata

        urls = metadata("glacierkit").get_all("Project-URL") or []
    except Exception:  # metadata is optional here: never mask the error being reported
        urls = []
    found = dict(u.split(",", 1) for u in urls if "," in u)
    found = {k.strip().lower(): v.strip() for k, v in found.items()}
    for key in ("issues", "bug tracker", "tracker", "repository", "source", "homepage"):
        if key in found:
            return f"report it at {found[key]}"
    return "report it to the glacierkit developers"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _register_commands() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from glacierkit.cli import (  # noqa: F401
        data,
        demo,
        facies,
        info,
        map,
        massbalance,
        velocity,
        velocity_qa,
    )


#: Exit code after SIGTERM (128 + 15, the shell's convention for a process ended by SIGTERM).
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the CLI's signal handler.

    It unwinds like Ctrl-C (so products are not left half written, see
    :class:`glacierkit.io.products.ProductSet`) and the CLI exits with code 143.
    """


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[list[int]]:
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only).

    Yields the list of SIGTERMs received: typer turns every KeyboardInterrupt into exit code
    130, so this is how :func:`main` tells SIGTERM from Ctrl-C afterwards.
    """
    received: list[int] = []

    def terminate(signum: int, frame: object) -> None:
        received.append(signum)
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    old = signal.signal(signal.SIGTERM, terminate)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, old)


def _interrupted(exc: BaseException | None, *, terminated: bool = False) -> int:
    """Message and exit code for Ctrl-C (130) or SIGTERM (143).

    Says what happened to the command's output folder when the library noted it
    (:func:`glacierkit.io.products.interrupted_output`).
    """
    from glacierkit.io.products import interrupted_output, last_interrupted_output

    word, code = (("terminated", EXIT_TERMINATED)
                  if terminated or isinstance(exc, Terminated)
                  else ("interrupted", EXIT_INTERRUPTED))
    note = (interrupted_output(exc) if exc is not None else None) or last_interrupted_output()
    if note is None:
        msg = word
    elif note.published:
        msg = f"{word} after the products were written completely to {note.folder}"
    else:
        msg = f"{word}: nothing was written to {note.folder}"
    err_console.print(msg, highlight=False, soft_wrap=True, markup=False)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Ctrl-C exits with 130 and SIGTERM with 143 (:data:`EXIT_TERMINATED`); both print one line
    that names the output folder when the command was writing products (nothing is left
    half-written there).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    _register_commands()
    from glacierkit.io.products import forget_interrupted_output

    forget_interrupted_output()
    terminated: list[int] = []
    try:
        with _sigterm_as_interrupt() as terminated:
            rv = app(args=args, prog_name="glacierkit", standalone_mode=False)
    except typer.Exit as e:
        if isinstance(e.__cause__, KeyboardInterrupt):
            return _interrupted(e.__cause__, terminated=bool(terminated))
        return int(e.exit_code or 0)
    except typer.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):
            return _interrupted(e.__cause__, terminated=bool(terminated))
        err_console.print("aborted")
        return 130
    except typer.TyperException as e:  # usage errors: bad/missing options, unknown command
        e.show(file=sys.stderr)  # type: ignore[attr-defined]
        return int(getattr(e, "exit_code", 2))
    except KeyboardInterrupt as e:
        return _interrupted(e, terminated=bool(terminated))
    except (GlacierkitError, OSError, MemoryError) as e:  # input errors: the user can fix them
        if verbose:
            traceback.print_exc()
        if isinstance(e, GlacierkitError):
            msg = e.cli_message()
        elif isinstance(e, MemoryError):
            msg = f"out of memory ({e or 'MemoryError'}); process a smaller area or free memory."
        else:
            msg = str(e)
        msg = _one_line(msg) or type(e).__name__
        err_console.print(f"[bold red]error[/]: {escape(msg)}", highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except Exception as e:  # anything else is a bug in glacierkit
        if verbose:
            traceback.print_exc()
        err_console.print(f"[bold red]internal error[/]: {type(e).__name__}: "
                          f"{escape(_one_line(str(e)))}", highlight=False, soft_wrap=True)
        err_console.print(escape(f"this is a bug in glacierkit {__version__}; rerun with "
                                 f"--verbose for the traceback and {_bug_report_target()}."),
                          highlight=False, soft_wrap=True)
        return EXIT_INTERNAL
    if rv == EXIT_INTERRUPTED and not isinstance(rv, bool):
        # typer (non-standalone) returns 130 for a KeyboardInterrupt instead of raising it.
        return _interrupted(None, terminated=bool(terminated))
    return int(rv) if isinstance(rv, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
