"""The check-stage benchmark runs and prints both medians and their ratio."""

import re
import subprocess
import sys

from support.project import ROOT

SCRIPT = ROOT / "benchmarks" / "params_check.py"


def test_one_repeat_prints_both_medians_and_the_ratio():
    completed = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1"], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert [line.split(" median")[0].strip() for line in lines[:2]] == ["check", "stage start"]
    (ratio,) = re.fullmatch(r"check / stage start = (\d+\.\d{3})", lines[2]).groups()
    assert float(ratio) > 0
