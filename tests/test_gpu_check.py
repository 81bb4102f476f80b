"""The prepared GPU check cannot rot between loans: its dry run (the same steps, tiny, on the CPU) passes."""

import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_gpu_check_dry_run_writes_its_outputs(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu" / "check.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OUT": str(out), "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in (out / "tests.log").read_text()
    speed = (out / "speed.md").read_text()
    for row in ("recbole.DiffRec", "| DiffRec", "LDiffRec", "DiffuRec", "recbole.SASRec"):
        assert row in speed, speed
    rows = (out / "long-DiffuRec.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) >= 2
    assert (out / "state" / "DiffuRec-last.pth").stat().st_size < 64 * 2 ** 20
