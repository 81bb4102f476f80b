"""Short end-to-end runs through RecBole on the bundled ml-100k."""

import subprocess
import sys

import pytest

from recbole_diffrec.cli import main
from recbole_diffrec.pipeline import run

pytestmark = pytest.mark.slow  # end-to-end: whole runs, subprocesses

QUICK = {"show_progress": False, "epochs": 12, "eval_step": 4, "stopping_step": 3}


@pytest.fixture(scope="module")
def pop_result(tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("pop"))
    try:
        return run("Pop", config_dict={"show_progress": False})
    finally:
        os.chdir(cwd)


def test_diffrec_beats_popularity(workdir, pop_result):
    result = run("DiffRec", config_dict=QUICK)
    ours, pop = result["test_result"], pop_result["test_result"]
    assert ours["ndcg@10"] > pop["ndcg@10"] * 1.1, (ours, pop)
    assert ours["recall@10"] > pop["recall@10"] * 1.1, (ours, pop)
    assert (workdir / result["checkpoint"]).exists()


def test_tdiffrec_runs_on_timestamps_and_beats_popularity(workdir, pop_result):
    result = run("TDiffRec", config_dict=QUICK)
    assert result["test_result"]["ndcg@10"] > pop_result["test_result"]["ndcg@10"]


def test_recbole_bpr_runs_through_our_command(workdir, capsys):
    result = main(["--model=BPR", "--epochs=2", "--show_progress=False"])
    assert result["model"] == "BPR" and result["test_result"]["recall@10"] > 0
    out = capsys.readouterr().out
    assert "test: recall@10" in out and "checkpoint:" in out


def test_recbole_builtin_diffrec_reachable(workdir):
    from recbole.model.general_recommender.diffrec import DiffRec as Builtin

    result = run("recbole.DiffRec", config_dict={"show_progress": False, "epochs": 1, "eval_batch_size": 400000})
    assert result["model"] == "DiffRec" and result["test_result"]["recall@10"] >= 0
    assert Builtin is not None


def test_help_lists_our_models():
    proc = subprocess.run([sys.executable, "-m", "recbole_diffrec", "--help"], capture_output=True,
                          text=True, check=True)
    out = proc.stdout
    assert "RuntimeWarning" not in proc.stderr  # python -m recbole_diffrec, not a module the package imported
    assert "DiffRec" in out and "TDiffRec" in out and "recbole.DiffRec" in out


def test_invalid_setting_ends_the_command_with_one_line_and_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recbole_diffrec", "--model=DiffRec",
                           "--inference_steps=41"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "recbole-diffrec [run]: error: invalid setting inference_steps=41: must be <= steps=40")
    assert not any(tmp_path.iterdir()), "nothing is written before the settings are checked"
