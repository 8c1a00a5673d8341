"""Peak memory and time of ``glacierkit velocity`` against the search range, with a budget.

On the real Landsat-8 pair of Yahtse Glacier (``../shared/data/carst_yahtse_landsat8_pair``,
1087 × 1698 px; chip 32 px, step 8 px, the pipeline's defaults otherwise, ``--no-quicklook``)
each search range (``--search``, px) runs ``glacierkit velocity`` in a **fresh subprocess**,
once with the default budget (half the available memory) and once with a small fixed budget
(``--small``, default 1GB). Per run: wall time, the peak RSS of that subprocess
(``ru_maxrss`` from ``os.wait4``), the RSS when matching started and the batch sizes (both
from ``report.json``, ``tracking.memory``), whether the peak stayed within RSS at start +
budget (the documented guarantee), and the valid share of the nodes.

Searches up to ±32 px run coarse to fine (small searches per level); ±64 px and more, where the
pyramid's coarsest window no longer fits the image, fall back to fewer levels, and ±400 px to
one exhaustive ±416 px search at full resolution (the case that ran out of memory before the
budget existed: 24 GB at 75 s with batches of 1024 nodes).

Usage::

    python benchmarks/velocity_memory.py
    python benchmarks/velocity_memory.py --search 16 400 --small 512MiB --json velocity_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "carst_yahtse_landsat8_pair"
REFERENCE = "LC80630182016200LGN00_B8_yahtse.TIF"
SECONDARY = "LC80630182016216LGN00_B8_yahtse.TIF"
SEARCHES = (16, 32, 64, 128, 200, 400)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GLACIERKIT_DATA", DATA.parent))
                   / DATA.name, help="folder of the Yahtse pair")
    p.add_argument("--search", type=int, nargs="+", default=list(SEARCHES),
                   help="search ranges (px)")
    p.add_argument("--small", default="1GB", help="the small fixed budget (--max-memory)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def run_once(data: Path, search: int, budget: str | None, out: Path) -> dict:
    """One ``glacierkit velocity`` run in a fresh subprocess; its time and peak RSS."""
    cmd = [sys.executable, "-c", "from glacierkit.cli.main import run; run()", "velocity",
           str(data / REFERENCE), str(data / SECONDARY), "-o", str(out), "--search", str(search),
           "--no-quicklook", "--overwrite"]
    if budget is not None:
        cmd += ["--max-memory", budget]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sink)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        sink.seek(0)
        err = sink.read().decode(errors="replace")
    row: dict = {"search_px": search, "budget": budget or "default", "seconds": round(seconds, 1),
                 "peak_rss_bytes": usage.ru_maxrss * 1024, "exit_code": proc.returncode}
    if row["exit_code"] != 0:
        row["error"] = err.strip().splitlines()[-1] if err.strip() else "?"
        return row
    report = json.loads((out / "report.json").read_text())
    mem = report["tracking"]["memory"]
    counts = report["status_counts"]
    total = sum(counts.values())
    row.update({
        "levels": report["tracking"]["levels"],
        "budget_bytes": mem["bytes"],
        "rss_at_start_bytes": mem["process_rss_at_start_bytes"],
        "within_budget": row["peak_rss_bytes"] <= mem["process_rss_at_start_bytes"] + mem["bytes"],
        "batches": [(s["search"], s["radius_px"], s["batch_size"], s["chunk"])
                    for s in mem["searches"]],
        "valid_share": round((counts["OK"] + counts["FILLED"]) / max(total, 1), 4),
    })
    return row


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not (args.data / REFERENCE).is_file():
        raise SystemExit(f"Yahtse pair not found in {args.data} (set GLACIERKIT_DATA)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for search in args.search:
            for budget in (None, args.small):
                row = run_once(args.data, search, budget, Path(tmp) / f"s{search}")
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{'search':>6} {'budget':>8} {'levels':>6} {'time s':>7} {'peak RSS MB':>11} "
          f"{'RSS@start MB':>12} {'within':>6} {'valid %':>7}  finest batch/chunk")
    for r in rows:
        if r["exit_code"]:
            print(f"{r['search_px']:>6} {r['budget']:>8}  failed: {r['error']}")
            continue
        fine = next(b for b in r["batches"] if b[0] == "full resolution")
        print(f"{r['search_px']:>6} {r['budget']:>8} {r['levels']:>6} {r['seconds']:>7.1f} "
              f"{r['peak_rss_bytes'] / 1e6:>11.0f} {r['rss_at_start_bytes'] / 1e6:>12.0f} "
              f"{'yes' if r['within_budget'] else 'NO':>6} {100 * r['valid_share']:>7.1f}  "
              f"±{fine[1]} px: {fine[2]}/{fine[3]}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "small_budget": args.small}, indent=1))


if __name__ == "__main__":
    main()
