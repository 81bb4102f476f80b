"""A missing or broken RecBole ends the first command in one line, with the command that fixes it."""

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_diffrec import environment

REPO = Path(__file__).resolve().parent.parent


def test_a_working_recbole_passes():
    assert environment.recbole_problem() is None


def test_no_recbole(monkeypatch):
    def version(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    problem = environment.recbole_problem()
    assert problem.startswith("RecBole is not installed; fix: pip install <recbole-diffrec's folder> && "
                              "pip install --no-deps recbole==1.2.1")


def test_another_recbole_version(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.1.1")
    assert environment.recbole_problem().startswith("recbole-diffrec needs RecBole 1.2.1, found 1.1.1; fix: pip install")


def test_a_recbole_whose_requirements_are_missing(monkeypatch):
    real = importlib.import_module

    def import_module(name, *args):
        if name == "recbole.trainer":
            raise ModuleNotFoundError("No module named 'colorlog'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    problem = environment.recbole_problem()
    assert "cannot be imported (No module named 'colorlog')" in problem and "fix: pip install" in problem


@pytest.mark.parametrize("script", ["run_recbole.py", "run_hyper.py"])
def test_the_first_command_says_so_in_one_line(script, tmp_path):
    """run_recbole.py in an environment without RecBole (its metadata hidden): one line, status 2."""
    code = ("import importlib.metadata as m, runpy, sys\n"
            "real = m.version\n"
            "def version(name):\n"
            "    if name == 'recbole':\n"
            "        raise m.PackageNotFoundError(name)\n"
            "    return real(name)\n"
            "m.version = version\n"
            f"sys.argv = [{script!r}]\n"
            f"runpy.run_path({str(REPO / script)!r}, run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"{script}: error: RecBole is not installed; fix: {environment.FIX}"]
    assert not list(tmp_path.iterdir())
