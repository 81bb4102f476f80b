"""A model outside the pack (docs/extending.md): found through the entry points, its yaml read beside its
module, and covered by the checks and the device guard, with no edit to the project."""

import re
import subprocess
import sys

from conftest import REPO


def write_example(folder):
    """The files of docs/extending.md's example, each block whose first line is '# file: <path>'."""
    text = (REPO / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```\w*\n# file: (\S+)\n(.*?)```", text, flags=re.S)
    assert {path for path, _ in blocks} >= {"toydiff.py", "ToyDiff.yaml", "toydiff-0.1.dist-info/entry_points.txt"}
    for path, body in blocks:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)


def test_an_outside_model_runs_is_suggested_and_is_guarded(tmp_path):
    package = tmp_path / "outside"
    write_example(package)
    env = {"PYTHONPATH": str(package), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = [sys.executable, str(REPO / "run_recbole.py")]
    done = subprocess.run([*run, "--model=ToyDiff", "--epochs=1", "--show_progress=False"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert "test result" in out and "recall@10" in out
    assert "Linear(in_features=64, out_features=" in out  # ToyDiff.yaml's dims_dnn: [64]
    wrong = subprocess.run([*run, "--model=ToyDif"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().splitlines()[-1].startswith("run_recbole.py: error: ")
    assert "did you mean ToyDiff?" in wrong.stderr
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                str(REPO / "tests" / "test_device_guard.py")], cwd=REPO,
                               env={**env, "PYTHONPATH": f"{package}:{REPO}"}, capture_output=True, text=True,
                               timeout=300)
    assert "test_the_model_keeps_every_tensor_on_its_device[ToyDiff]" in collected.stdout, collected.stdout[-2000:]
