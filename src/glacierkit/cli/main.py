"""``glacierkit`` command: the typer app, logging set-up and error → exit-code policy.

Each command lives in its own module and registers itself on :data:`app`. Errors raised by the
library become one-line messages on stderr and a non-zero exit code (1 for failures, 2 for
usage errors); ``--verbose`` also shows the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.logging import RichHandler

from glacierkit import __version__

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    _register_commands()
    try:
        rv = app(args=args, prog_name="glacierkit", standalone_mode=False)
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except typer.TyperException as e:  # usage errors: bad/missing options, unknown command
        e.show(file=sys.stderr)  # type: ignore[attr-defined]
        return int(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as e:
        if verbose:
            traceback.print_exc()
        msg = " ".join(str(e).split()) or type(e).__name__
        err_console.print(f"[bold red]error[/]: {msg}", highlight=False, soft_wrap=True)
        return 1
    return int(rv) if isinstance(rv, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
