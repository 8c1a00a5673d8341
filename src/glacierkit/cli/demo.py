"""``glacierkit demo [--out DIR]``: run every pipeline on the real example data."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from glacierkit.cli.main import app
from glacierkit.demo import run_demo


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o",
                             help="Output folder (browse index.html inside)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace a previous demo in the same folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the steps (seconds, output "
                                 "files, key numbers) as one JSON object."),
) -> None:
    """Run the demo on the real example data and write a browsable folder.

    Each step logs a line when it starts and when it ends (with its time in seconds).
    """
    results = run_demo(out, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps({"index": str(out / "index.html"), "steps": [
            {"name": r.name, "title": r.title, "seconds": round(r.seconds, 2),
             "outputs": [str(p) for p in r.outputs], "numbers": r.numbers}
            for r in results]}, default=str))
        return
    t = Table("step", "time s", "files", "title", title="glacierkit demo", title_justify="left")
    for r in results:
        t.add_row(r.name, f"{r.seconds:.1f}", str(len(r.outputs)), r.title)
    con = Console()
    con.print(t)
    con.print("open in a browser:")
    con.print(str(out / "index.html"), highlight=False, soft_wrap=True)
