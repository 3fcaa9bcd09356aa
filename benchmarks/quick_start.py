"""The README's two quick-start commands, timed where they run.

    python benchmarks/quick_start.py repro   # `make repro ARGS=--force`: every stage from scratch
    python benchmarks/quick_start.py test    # `make test`: the whole suite, as CI runs it

Runs the command in the current checkout (setup included when ``.venv`` is missing), streams its
output, and records wall time, the largest resident memory of any one process it started, and
the machine in ``benchmarks/results/quick_start.json``; ``quick_start.md`` is the table the
README quotes (``python docs/results_tables.py`` copies it there). Each command keeps the row of
its latest run, so the two can be timed on different days; the table says when.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COMMANDS = {"repro": ["make", "repro", "ARGS=--force"], "test": ["make", "test"]}


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_command(command: list[str]) -> dict:
    """Wall seconds, peak RSS (MB, the largest single process) and exit code of ``command``."""
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT)
    seconds = time.perf_counter() - started
    # ru_maxrss of the children is the largest of them (KiB on Linux), not their sum.
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"command": " ".join(command), "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_mb), "returncode": completed.returncode,
            "cpus": os.cpu_count(), "cpu": cpu_name(),
            "date": datetime.date.today().isoformat()}


def markdown(rows: dict[str, dict]) -> str:
    lines = ["| command | wall time | peak memory (one process) | machine | measured |",
             "|---|---|---|---|---|"]
    for name in COMMANDS:
        if name in rows:
            row = rows[name]
            minutes, seconds = divmod(round(row["seconds"]), 60)
            # A row timed by hand (the script's own run cut short) has no memory figure.
            memory = ("–" if row.get("peak_rss_mb") is None
                      else f"{row['peak_rss_mb'] / 1024:.1f} GB")
            lines.append(f"| `{row['command']}` | {minutes} min {seconds:02d} s | "
                         f"{memory} | {row['cpus']} cores, "
                         f"{row['cpu']} | {row['date']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=sorted(COMMANDS))
    which = parser.parse_args().which
    row = time_command(COMMANDS[which])
    if row["returncode"]:
        print(f"{row['command']} failed (exit {row['returncode']}); nothing recorded",
              file=sys.stderr)
        return row["returncode"]
    path = RESULTS / "quick_start.json"
    rows = json.loads(path.read_text()) if path.exists() else {}
    rows[which] = row
    path.write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "quick_start.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
