"""MkDocs hook: the command-line reference, generated from the commands themselves.

The page ``reference/cli.md`` holds the marker ``<!-- cli-reference -->``; at build time it is
replaced by one section per command (usage, description, arguments and options with their
types, defaults and help) read from the typer application, so the reference cannot drift
from the code.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"


def _app() -> Any:
    from typer.main import get_command

    from glacierkit.cli.main import _register_commands, app

    _register_commands()
    return get_command(app)


def _type_name(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    label = str(param.display_type(ctx)).strip("<>")
    if getattr(param, "multiple", False):
        label += ", repeatable"
    return label


def _default(param: Any) -> str:
    if param.required:
        return "required"
    d = param.default
    if d is None or d == () or d == []:
        return "—"
    if getattr(param, "is_flag", False):
        return "on" if d else "off"
    return f"`{d}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _is_group(cmd: Any) -> bool:
    # typer vendors its own click: duck-type instead of isinstance(click.Group).
    return hasattr(cmd, "list_commands")


def _section(cmd: Any, path: list[str], out: list[str]) -> None:
    name = " ".join(path)
    level = "#" * min(2 + len(path) - 1, 4)
    ctx = cmd.context_class(cmd, info_name=name)
    if len(path) > 1:
        out.append(f"{level} `{name}`\n")
    pieces = ["[OPTIONS]"]
    for p in cmd.params:
        if p.param_type_name == "argument":
            arg = p.display_name_raw.upper()
            pieces.append(arg if p.required else f"[{arg}]")
            if p.nargs != 1:
                pieces[-1] += "..."
    if _is_group(cmd):
        pieces.append("COMMAND [ARGS]...")
    pieces = " ".join(pieces)
    out.append(f"```text\n{name} {pieces}\n```\n")
    if cmd.help:
        out.append(cmd.help.strip() + "\n")
    rows = []
    for p in cmd.params:
        if getattr(p, "hidden", False) or p.name == "help":
            continue
        if p.param_type_name == "argument":
            label = f"`{p.display_name_raw.upper()}`"
        else:
            label = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        rows.append(f"| {label} | {_cell(_type_name(p, ctx))} | {_cell(_default(p))} | "
                    f"{_cell(getattr(p, 'help', '') or '')} |")
    if rows:
        out.append("| argument / option | type | default | meaning |\n|---|---|---|---|")
        out.extend(rows)
        out.append("")
    if _is_group(cmd):
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is not None and not getattr(sub, "hidden", False):
                _section(sub, [*path, sub_name], out)


def cli_reference_markdown() -> str:
    """The whole command-line reference as Markdown."""
    out: list[str] = []
    _section(_app(), ["glacierkit"], out)
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace the marker of the CLI reference page with the generated reference."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference_markdown())
    return markdown
