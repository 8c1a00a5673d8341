"""``glacierkit data list|fetch|path``: the named example datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from glacierkit import examples
from glacierkit.cli.main import app

data_app = typer.Typer(help="Example datasets: where they are, their licences and citations.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@data_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the example datasets: size, licence, citation and where each was found."""
    rows = []
    for ds in examples.list_datasets():
        found = examples.locate(ds.name)
        rows.append({
            "name": ds.name, "title": ds.title, "files": len(ds.files),
            "size_bytes": ds.size_bytes, "licence": ds.licence, "citation": ds.citation,
            "found": found[1] if found else None, "path": str(found[0]) if found else None,
            "downloadable_files": sum(f.url is not None for f in ds.files),
        })
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    con = Console()
    t = Table(title="glacierkit example datasets", title_justify="left")
    t.add_column("name", no_wrap=True, min_width=max((len(r["name"]) for r in rows), default=4))
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("files", justify="right")
    t.add_column("found in")
    roots: dict[str, str] = {}
    for r in rows:
        if r["found"]:
            parent = str(Path(r["path"]).parent)
            roots.setdefault(f"{r['found']}: {parent}", r["found"])
        where = r["found"] if r["found"] else "[yellow]not found[/]"
        t.add_row(f"[bold]{r['name']}[/]", _size(r["size_bytes"]), str(r["files"]), where)
    con.print(t)
    for line in roots:  # each dataset is the folder of its name in one of these
        con.print(f"{line}{os.sep}NAME", highlight=False, soft_wrap=True)
    for r in rows:
        con.print(f"\n[bold]{r['name']}[/] — {r['title']}", highlight=False)
        con.print(f"  licence:  {r['licence']}", highlight=False)
        con.print(f"  citation: {r['citation']}", highlight=False)
        con.print(f"  download: {r['downloadable_files']} of {r['files']} files have pinned "
                  f"URLs", highlight=False)


@data_app.command("fetch")
def fetch(name: str = typer.Argument(..., metavar="NAME",
                                     help="Dataset name (see `glacierkit data list`).")
          ) -> None:
    """Download a dataset into the user cache (pinned URLs, sha256-checked)."""
    typer.echo(str(examples.fetch(name, progress=True)))


@data_app.command("path")
def path(name: str = typer.Argument(..., metavar="NAME", help="Dataset name.")) -> None:
    """Print the folder of a dataset (never downloads)."""
    typer.echo(str(examples.path(name)))
