"""What the check stage costs: a refusal before any output is lost, for a fraction of a stage.

Every `dvc repro` after an edit of params.yaml runs the `check` stage first. It is only worth
its place if it costs far less than the stages it protects. One run times, alternating so that
machine noise hits both alike:

- ``check``: ``python stages/check.py`` on the project's params.yaml (a fresh process, as DVC
  starts it);
- ``stage start``: a fresh process importing TensorFlow and Keras, which every training and
  explanation stage pays before its first epoch.

It prints the median of each and the ratio of the medians.

    python benchmarks/params_check.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "check": [sys.executable, "stages/check.py"],
    "stage start": [sys.executable, "-c", "import tensorflow, keras"],
}


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True,
                   env={"PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2",
                        "PATH": str(Path(sys.executable).parent)})
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    repeats = parser.parse_args(argv).repeats
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for repeat in range(repeats):
        # A B, then B A: neither command always runs on a warmer machine.
        order = list(COMMANDS) if repeat % 2 == 0 else list(reversed(COMMANDS))
        for name in order:
            times[name].append(seconds(COMMANDS[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:12s} median {median:6.2f} s over {repeats} runs "
              f"(min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    print(f"check / stage start = {medians['check'] / medians['stage start']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
