"""A run ended by a user's error removes exactly what it made (recbole_diffrec.ownership), never another run's
files or a folder that was there before."""

import os
from pathlib import Path

import pytest

from recbole_diffrec import ownership
from recbole_diffrec.cli import main
from recbole_diffrec.errors import SettingError
from recbole_diffrec.preparation import prepare

FAST = {"epochs": 1, "show_progress": False, "steps": 5, "dims_dnn": [32], "eval_batch_users": 1000}


def files_under(folder):
    return {str(p.relative_to(folder)) for p in Path(folder).rglob("*")}


def test_discard_removes_the_files_and_the_folders_made_and_nothing_else(tmp_path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "theirs.txt").write_text("x")
    with ownership.tracking() as made:
        ownership.makedirs(str(tmp_path / "kept" / "new" / "deeper"))
        ownership.makedirs(str(tmp_path / "kept"))  # existed: not made
        mine = tmp_path / "kept" / "new" / "deeper" / "mine.txt"
        mine.write_text("y")
        ownership.note_file(str(mine))
        (tmp_path / "kept" / "new" / "theirs-too.txt").write_text("z")  # appeared meanwhile, not reported
    assert made.dirs == [str(tmp_path / "kept" / "new"), str(tmp_path / "kept" / "new" / "deeper")]
    ownership.discard(made)
    assert files_under(tmp_path) == {"kept", "kept/theirs.txt", "kept/new", "kept/new/theirs-too.txt"}


def test_tracking_blocks_nest_and_see_only_what_is_made_inside(tmp_path):
    with ownership.tracking() as outer:
        ownership.makedirs(str(tmp_path / "a"))
        with ownership.tracking() as inner:
            ownership.makedirs(str(tmp_path / "a" / "b"))
    assert outer.dirs == [str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    assert inner.dirs == [str(tmp_path / "a" / "b")]
    ownership.makedirs(str(tmp_path / "c"))  # outside any block: reported to no one
    assert (tmp_path / "c").is_dir() and len(outer.dirs) == 2


def test_a_failed_run_keeps_a_concurrent_runs_files(workdir):
    """Files another run writes into the same log, tensorboard and checkpoint folders while this run loads
    its data stay when this run fails; this run's own log file goes."""
    theirs = [workdir / "log" / "DiffRec" / "other-run.log", workdir / "log_tensorboard" / "other" / "events",
              workdir / "saved" / "DiffRec-other.pth", workdir / "saved" / "graph-ml-100k-x.npz"]

    def meanwhile(*_):
        for path in theirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("another run's")
        raise SettingError("topk", 5, "refused for the test")

    with pytest.raises(SettingError):
        prepare("DiffRec", config_dict=FAST, check_data=meanwhile)
    assert all(path.read_text() == "another run's" for path in theirs)
    left = files_under(workdir)
    assert not [f for f in left if f.endswith(".log") and "other-run" not in f], left
    assert not [f for f in left if "tfevents" in f], left


def test_a_failed_run_in_the_working_folder_removes_no_folder_it_did_not_make(workdir, capsys):
    """--checkpoint_dir=. : empty folders of the working folder (a git repository's refs/tags) stay."""
    for empty in (".git/refs/tags", "empty", "log/old"):
        (workdir / empty).mkdir(parents=True)
    before = files_under(workdir)
    with pytest.raises(SystemExit) as exit_:
        main(["--model=DiffRec", "--checkpoint_dir=.", "--topk=[100000]", "--valid_metric=Recall@100000", "--epochs=1", "--show_progress=False"])
    assert exit_.value.code == 2
    assert "every cut-off must be at most" in capsys.readouterr().err
    assert files_under(workdir) == before


def test_a_failed_run_removes_what_it_made(workdir, capsys):
    with pytest.raises(SystemExit):
        main(["--model=DiffRec", "--topk=[100000]", "--valid_metric=Recall@100000", "--epochs=1", "--show_progress=False"])
    assert files_under(workdir) == set()
    assert not os.path.exists(workdir / "log")
