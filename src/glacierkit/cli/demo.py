"""``glacierkit demo [--out DIR]``: run every pipeline on the real example data."""

from __future__ import annotations

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
) -> None:
    """Run the demo on the real example data and write a browsable folder."""
    results = run_demo(out, overwrite=overwrite)
    t = Table("step", "seconds", "outputs", title=f"glacierkit demo → {out}/index.html")
    for r in results:
        t.add_row(r.title, f"{r.seconds:.1f}", ", ".join(p.name for p in r.outputs))
    Console().print(t)
