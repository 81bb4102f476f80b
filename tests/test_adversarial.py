"""Bad input, as a user or an adversary would give it: every case ends the command with one line
``<program>: error: ...`` and exit status 2, no traceback, and leaves the working folder as it was (nothing
written, nothing overwritten)."""

import os
import re
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from recbole_diffrec.cli import cli, main, tune_main
from recbole_diffrec.pipeline import run

FAST = ["--epochs=1", "--show_progress=False", "--steps=5", "--dims_dnn=[32]", "--eval_batch_users=1000"]


def snapshot(folder):
    """Every file under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(folder).rglob("*") if p.is_file()}


def refused(command, argv, capsys, folder, prog, needle):
    before = snapshot(folder)
    with pytest.raises(SystemExit) as exit_:
        command(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith(f"{prog}: error: "), err
    assert needle in lines[-1], lines[-1]
    assert snapshot(folder) == before, "the command wrote or changed files"
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A DiffRec and a BPR checkpoint on ml-100k, trained in their own folder."""
    folder = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        small = {"epochs": 1, "show_progress": False, "steps": 5, "dims_dnn": [32], "eval_batch_users": 1000}
        diffrec = run("DiffRec", config_dict=small)["checkpoint"]
        bpr = run("BPR", config_dict={"epochs": 1, "show_progress": False})["checkpoint"]
    finally:
        os.chdir(cwd)
    return {"DiffRec": str(folder / diffrec), "BPR": str(folder / bpr), "folder": folder}


def toy_dataset(root, name, header, rows):
    folder = root / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text("\n".join([header, *rows]) + "\n")
    return str(root / "data")


# ---- settings: 18 cases ------------------------------------------------------------------------------
SETTINGS = [
    (["--model=diffrec"], "did you mean DiffRec?"),
    (["--model=NoSuchModel"], "model='NoSuchModel': not a known model"),
    (["--noise_sclae=0.01"], "did you mean noise_scale?"),
    (["--learning_rate=0"], "learning_rate=0: must be > 0"),
    (["--epochs=-1"], "epochs=-1: must be >= 1"),
    (["--epochs=0"], "epochs=0: must be >= 1"),
    (["--train_batch_size=0"], "train_batch_size=0: must be >= 1"),
    (["--topk=[0]"], "topk must be a positive integer"),
    (["--topk=ten"], "topk"),
    (["--metrics=['Foo']"], "no metric named 'Foo'"),
    (["--valid_metric=Recall@50"], "valid_metric='Recall@50': its cut-off must be one of topk"),
    (["--valid_metric=AUC@10"], "valid_metric='AUC@10': must be one of the metrics computed"),
    (["--steps=0"], "steps=0: must be >= 1"),
    (["--noise_min=0.02"], "noise_min=0.02: must be below noise_max"),
    (["--dropout=1.5"], "dropout=1.5"),
    (["--train_precision=half"], "train_precision='half'"),
    (["--ema_decay=1.0"], "ema_decay=1.0: must be < 1"),
    (["--config_files=no-such.yaml"], "config_files='no-such.yaml': no such file"),
    (["--seed=-1"], "seed=-1: must be >= 0"),
    (["--seed=abc"], "seed='abc': must be an integer"),
    (["--weight_decay=-1"], "weight_decay=-1: must be >= 0"),
    (["--model=BPR", "--weight_decay=-1"], "weight_decay=-1: must be >= 0"),
    (["--nproc=2", "--dist_backend=bogus"], "dist_backend='bogus': must be one of"),
    (["--metrics=[]"], "metrics=[]: must name at least one"),
    (["--dataset=../etc"], "dataset='../etc': must be a name, not a path"),
    (["--eval_args={'split':{'RS':[0.8,0.1]}}"], "split RS takes three ratios"),
    (["--checkpoint_dir=/proc/no-such-folder"], "/proc/no-such-folder: No such file or directory"),
    (["--model=GiffCF", "--noise_decay=1e999"], "noise_decay=inf: must be a finite number"),
    (["--model=GiffCF", "--alpha=-1e999"], "alpha=-inf: must be a finite number"),
    (["--model=TDiffRec", "--w_min=1e999"], "w_min=inf: must be a finite number"),
]


@pytest.mark.parametrize("argv, needle", SETTINGS)
def test_bad_settings(argv, needle, workdir, capsys):
    other = any(a.startswith("--model=") and a not in ("--model=DiffRec", "--model=TDiffRec") for a in argv)
    refused(main, [*(FAST[:2] if other else FAST), *argv], capsys, workdir, "run_recbole.py", needle)


@pytest.mark.parametrize("argv, needle", [
    (["--nproc=0"], "--nproc=0: must be >= 1"),
    (["--nproc=-2"], "--nproc=-2: must be >= 1"),
    (["stray"], "unrecognised arguments: stray"),
    (["--learning_rate"], "unrecognised arguments: --learning_rate"),
])
def test_bad_command_lines(argv, needle, workdir, capsys):
    refused(main, [*FAST, *argv], capsys, workdir, "run_recbole.py", needle)


def test_a_bad_recbole_model_setting(workdir, capsys):
    refused(main, ["--model=BPR", "--epochs=1", "--train_batch_size=0"], capsys, workdir, "run_recbole.py",
            "train_batch_size=0")


# ---- data: 8 cases ---------------------------------------------------------------------------------
def test_a_dataset_that_does_not_exist_is_not_downloaded(workdir, capsys):
    # ml-1m is a name RecBole would download; here it must not
    refused(main, [*FAST, "--dataset=ml-1m", f"--data_path={workdir / 'nowhere'}"], capsys, workdir,
            "run_recbole.py", "dataset 'ml-1m': no folder")


def test_a_dataset_folder_without_its_file(workdir, capsys):
    (workdir / "data" / "empty").mkdir(parents=True)
    refused(main, [*FAST, "--dataset=empty", f"--data_path={workdir / 'data'}"], capsys, workdir,
            "run_recbole.py", "no file")


def test_a_file_with_no_rows(workdir, capsys):
    path = toy_dataset(workdir, "norows", "user_id:token\titem_id:token", [])
    refused(main, [*FAST, "--dataset=norows", f"--data_path={path}", "--load_col={'inter': ['user_id', 'item_id']}"],
            capsys, workdir, "run_recbole.py", "norows")


def test_a_column_that_does_not_parse(workdir, capsys):
    rows = [f"{u}\t{i}\t{'yesterday' if u == 3 and i == 4 else u * 10 + i}" for u in range(20) for i in range(8)]
    path = toy_dataset(workdir, "badtime", "user_id:token\titem_id:token\ttimestamp:float", rows)
    refused(main, [*FAST, "--dataset=badtime", f"--data_path={path}"], capsys, workdir, "run_recbole.py",
            "dataset 'badtime'")


def test_a_time_aware_model_without_a_time_field(workdir, capsys):
    refused(main, [*FAST, "--model=TDiffRec", "--load_col={'inter': ['user_id', 'item_id']}"], capsys, workdir,
            "run_recbole.py", "no time field")


def test_filters_that_leave_no_interactions(workdir, capsys):
    refused(main, [*FAST, "--user_inter_num_interval=[100000,inf)"], capsys, workdir, "run_recbole.py",
            "no interactions left after filtering")


def test_a_missing_item_embedding_file_is_refused_before_the_data_loads(workdir, capsys, monkeypatch):
    import recbole_diffrec.preparation as preparation

    monkeypatch.setattr(preparation, "create_dataset", lambda *a, **k: pytest.fail("data loaded before the check"))
    refused(main, [*FAST, "--model=LDiffRec", "--item_emb_source=file", "--item_emb_file=missing.npy",
                   "--dims_dnn=[32]"], capsys, workdir, "run_recbole.py", "item_emb_file='missing.npy'")


def test_users_only_in_the_test_split(workdir, capsys):
    folder = workdir / "data" / "cold"
    folder.mkdir(parents=True)
    for split, rows in (("train", [(u, i) for u in range(20) for i in range(u % 7, u % 7 + 6)]),
                        ("valid", [(u, (u + 3) % 13) for u in range(20)]),
                        ("test", [(u, (u + 5) % 13) for u in range(20)] + [(99, 1)])):
        (folder / f"cold.{split}.inter").write_text("\n".join(["user_id:token\titem_id:token"]
                                                                + [f"{u}\t{i}" for u, i in rows]) + "\n")
    refused(main, [*FAST, "--dataset=cold", f"--data_path={workdir / 'data'}",
                   "--benchmark_filename=['train','valid','test']", "--load_col={'inter': ['user_id', 'item_id']}"],
            capsys, workdir, "run_recbole.py", "have no training interactions")


# ---- checkpoints: 8 cases --------------------------------------------------------------------------
def test_a_missing_checkpoint(workdir, capsys):
    refused(cli, ["evaluate", "nothing-here.pth"], capsys, workdir, "recbole-diffrec evaluate", "no such file")


def test_an_empty_checkpoint(workdir, capsys):
    (workdir / "empty.pth").write_bytes(b"")
    refused(cli, ["evaluate", "empty.pth"], capsys, workdir, "recbole-diffrec evaluate", "is empty")


def test_a_truncated_checkpoint(workdir, capsys, trained):
    data = Path(trained["DiffRec"]).read_bytes()
    (workdir / "cut.pth").write_bytes(data[: len(data) // 2])
    refused(cli, ["evaluate", "cut.pth"], capsys, workdir, "recbole-diffrec evaluate", "truncated or not a checkpoint")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_tampered_checkpoint_runs_no_code(workdir, capsys, trained):
    state = torch.load(trained["DiffRec"], weights_only=True)
    state["other_parameter"] = _Payload()
    torch.save(state, workdir / "tampered.pth", pickle_protocol=pickle.HIGHEST_PROTOCOL)
    refused(cli, ["evaluate", "tampered.pth"], capsys, workdir, "recbole-diffrec evaluate", "refusing to load")
    assert not (workdir / "PWNED").exists()


def test_a_torch_file_that_is_not_a_checkpoint(workdir, capsys):
    torch.save({"weights": torch.zeros(3)}, workdir / "plain.pth")
    refused(cli, ["evaluate", "plain.pth"], capsys, workdir, "recbole-diffrec evaluate",
            "is not a recbole-diffrec checkpoint")


def test_resuming_a_checkpoint_of_another_model(workdir, capsys, trained):
    shutil.copy(trained["BPR"], workdir / "bpr.pth")
    refused(main, [*FAST, "--resume=bpr.pth"], capsys, workdir, "run_recbole.py", "is of model 'BPR', not 'DiffRec'")


def test_resuming_with_settings_that_shape_another_model(workdir, capsys, trained):
    shutil.copy(trained["DiffRec"], workdir / "diffrec.pth")
    refused(main, ["--epochs=1", "--show_progress=False", "--steps=5", "--dims_dnn=[64]", "--resume=diffrec.pth"],
            capsys, workdir, "run_recbole.py", "dims_dnn=[64]: differs from the resumed checkpoint's [32]")


def test_resuming_on_other_data(workdir, capsys, trained):
    """A dataset of another shape, and the same dataset with its rows reordered: both refused."""
    shutil.copy(trained["DiffRec"], workdir / "diffrec.pth")
    rows = [f"{u}\t{i}\t{u * 100 + i}" for u in range(1, 60) for i in range(1, 30) if (u * 7 + i) % 3 == 0]
    path = toy_dataset(workdir, "other", "user_id:token\titem_id:token\ttimestamp:float", rows)
    refused(main, [*FAST, "--dataset=other", f"--data_path={path}", "--resume=diffrec.pth"], capsys, workdir,
            "run_recbole.py", "refusing to resume")


# ---- serving: 8 cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["DiffRec", "BPR"])
@pytest.mark.parametrize("argv, needle", [
    (["--k", "0"], "k=0: must be an integer >= 1"),
    (["--k", "-3"], "k=-3"),
    (["--k", "100000"], "k=100000: must be at most"),
    (["--users", "[PAD]"], "users='[PAD]': not a user"),
    (["--users", "no-such-user"], "users='no-such-user': not a user"),
])
def test_bad_recommend_arguments(model, argv, needle, workdir, capsys, trained):
    args = {"--users": ["196"], "--k": ["5"]}
    for flag, value in zip(argv[::2], argv[1::2]):
        args[flag] = [value]
    flat = [item for flag, values in args.items() for item in (flag, *values)]
    refused(cli, ["recommend", trained[model], *flat], capsys, workdir, "recbole-diffrec recommend", needle)


def test_evaluate_refuses_a_setting_that_shapes_the_weights(workdir, capsys, trained):
    refused(cli, ["evaluate", trained["DiffRec"], "--dims_dnn=[64]"], capsys, workdir, "recbole-diffrec evaluate",
            "the checkpoint was trained with [32]")


def test_evaluate_refuses_an_unknown_setting(workdir, capsys, trained):
    refused(cli, ["evaluate", trained["DiffRec"], "--inference_stpes=2"], capsys, workdir,
            "recbole-diffrec evaluate", "did you mean inference_steps?")


# ---- tuning and conversion: 5 cases ----------------------------------------------------------------
def test_tune_a_missing_space(workdir, capsys):
    refused(tune_main, ["--params_file=none.hyper", *FAST], capsys, workdir, "run_hyper.py", "no such file")


def test_tune_a_model_that_does_not_exist(workdir, capsys):
    refused(tune_main, ["--model=diffrec", *FAST], capsys, workdir, "run_hyper.py", "did you mean DiffRec?")


def test_tune_with_no_evaluations(workdir, capsys):
    refused(tune_main, ["--max_evals=0", *FAST], capsys, workdir, "run_hyper.py", "--max_evals=0")


def test_tune_a_space_whose_every_point_is_invalid(workdir, capsys):
    (workdir / "bad.hyper").write_text("noise_min choice [0.5,0.6]\n")
    refused(tune_main, ["--params_file=bad.hyper", *FAST], capsys, workdir, "run_hyper.py",
            "every setting of the search space is invalid")


def test_convert_a_folder_that_does_not_exist(workdir, capsys):
    refused(cli, ["convert", "no-such-folder"], capsys, workdir, "recbole-diffrec convert", "no such folder or file")


def test_the_real_command_prints_one_line_and_debug_shows_the_traceback(workdir):
    import subprocess
    import sys

    command = [sys.executable, "-m", "recbole_diffrec", "evaluate", "missing.pth"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["recbole-diffrec evaluate: error: checkpoint missing.pth: no such file"]
    proc = subprocess.run([*command, "--debug"], capture_output=True, text=True, cwd=workdir)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "CheckpointError" in proc.stderr


# ---- trust, second pass: silent wrong answers made loud ----------------------------------------------------
ML100K_TIMES = ["user_id:token\titem_id:token\ttimestamp:float", "1\t1\t10", "1\t2\t20", "2\t1\t30", "2\t3\tnan",
                "3\t2\t50", "3\t3\t60"]


@pytest.mark.parametrize("model", ["TDiffRec", "DiffRec", "SASRec", "DNR"])
def test_a_missing_timestamp_is_refused_not_filled_with_the_mean(model, workdir, capsys):
    path = toy_dataset(workdir, "nantime", ML100K_TIMES[0], ML100K_TIMES[1:])
    line = refused(main, [f"--model={model}", "--dataset=nantime", f"--data_path={path}",
                          "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--train_neg_sample_args=None",
                          *FAST[:2]], capsys, workdir, "run_recbole.py", "1 rows have no valid 'timestamp'")
    assert "first at line 5" in line and "column mean" in line


def test_a_missing_item_is_refused_not_filled_with_padding(workdir, capsys):
    path = toy_dataset(workdir, "noitem", "user_id:token\titem_id:token", ["1\t1", "1\t", "2\t2"])
    refused(main, ["--model=DiffRec", "--dataset=noitem", f"--data_path={path}", *FAST], capsys, workdir,
            "run_recbole.py", "rows have no valid 'item_id' (first at line 3")


def test_a_misspelt_setting_of_a_recbole_model_is_refused(workdir, capsys):
    refused(main, ["--model=BPR", "--learning_rat=0.5"], capsys, workdir, "run_recbole.py",
            "did you mean learning_rate?")


def test_a_setting_a_recbole_model_reads_without_declaring_it_is_accepted():
    from recbole_diffrec.config import recbole_read_keys
    from recbole_diffrec.registry import get_model

    keys = recbole_read_keys(get_model("LightGCN"))
    assert {"require_pow", "n_layers", "learning_rate", "eval_args"} <= keys
    assert "learning_rat" not in keys and "w_min" not in keys  # w_min: RecBole's DiffRec reads it, LightGCN not


def test_a_misspelt_key_in_a_hyper_file_is_refused_before_any_trial(workdir, capsys):
    (workdir / "typo.hyper").write_text("learning_rat choice [0.1,0.5]\n")
    refused(tune_main, ["--model=BPR", "--params_file=typo.hyper"], capsys, workdir, "run_hyper.py",
            "did you mean learning_rate?")


@pytest.mark.parametrize("text,needle", [("", "no parameters"), ("  \n\t\n", "no parameters"),
                                         ("learning_rate choice []\n", "choice has no values")])
def test_an_empty_hyper_file_or_choice(text, needle, workdir, capsys):
    (workdir / "space.hyper").write_text(text)
    refused(tune_main, ["--model=BPR", "--params_file=space.hyper"], capsys, workdir, "run_hyper.py", needle)


@pytest.mark.parametrize("content,needle", [
    (b"1 5 6\n2 7 8\n1 9 10\n", "user 1 already has a sequence on line 1"),
    (b"1 5 6\n01 7 8\n", "user '01' has a leading zero"),
    (b"1 5 007\n", "item '007' has a leading zero"),
    (b"1 5 99999999999999999999\n", "larger than 9223372036854775807"),
    ("1 5 \u00b2\n".encode(), "item '\u00b2' is not a non-negative integer"),
    (b"1 5 \xff6\n", "not UTF-8 text (byte 0xff at column 5)"),
])
def test_convert_refuses_what_it_would_merge_or_misread(content, needle, workdir, capsys):
    (workdir / "seq.txt").write_bytes(content)
    refused(cli, ["convert", "seq.txt", "--out", "data"], capsys, workdir, "recbole-diffrec convert", needle)


def test_convert_accepts_a_byte_order_mark(workdir):
    from recbole_diffrec.data.convert import load_sequences

    (workdir / "seq.txt").write_bytes(b"\xef\xbb\xbf1 5 6\n2 7\n")
    users, items, positions = load_sequences(workdir / "seq.txt")
    assert users.tolist() == [1, 1, 2] and items.tolist() == [5, 6, 7] and positions.tolist() == [0, 1, 0]


def test_convert_to_an_out_that_is_a_file(workdir, capsys):
    (workdir / "seq.txt").write_text("1 5 6\n")
    (workdir / "taken").write_text("mine\n")
    refused(cli, ["convert", "seq.txt", "--out", "taken"], capsys, workdir, "recbole-diffrec convert",
            "it is a file, not a folder")
    assert (workdir / "taken").read_text() == "mine\n"


def test_a_byte_order_mark_before_an_inter_header_is_read(workdir):
    rows = ["user_id:token\titem_id:token"] + [f"{u}\t{i}" for u in range(1, 30) for i in range(1, 12) if (u + i) % 3]
    folder = workdir / "data" / "bom"
    folder.mkdir(parents=True)
    (folder / "bom.inter").write_bytes(b"\xef\xbb\xbf" + ("\n".join(rows) + "\n").encode())
    result = run("DiffRec", "bom", config_dict={"data_path": str(workdir / "data"), "epochs": 1, "show_progress": False,
                                                "steps": 5, "dims_dnn": [16]})
    assert result["test_result"]


@pytest.mark.parametrize("model", ["DNR", "DiffuRec"])
@pytest.mark.parametrize("length", [0, -3])
def test_an_empty_history_length_is_refused_before_the_data_loads(model, length, workdir, capsys):
    refused(main, [f"--model={model}", f"--MAX_ITEM_LIST_LENGTH={length}"], capsys, workdir, "run_recbole.py",
            f"invalid setting MAX_ITEM_LIST_LENGTH={length}: must be >= 1")


@pytest.mark.parametrize("argv,needle", [
    (["--model=DNR", "--noise_schedule=linear", "--noise_scale=100"], "invalid setting noise_scale=100"),
    (["--model=DiffuRec", "--noise_schedule=scaled-linear", "--steps=16"], "every beta must lie in (0, 1)"),
    # DiffuRec's code's "linear" is scaled-linear here: plain linear (DiffRec's) is not one of its schedules
    (["--model=DiffuRec", "--noise_schedule=linear"], "invalid setting noise_schedule='linear': must be one of"),
])
def test_the_sequential_models_check_their_noise_schedule(argv, needle, workdir, capsys):
    refused(main, argv, capsys, workdir, "run_recbole.py", needle)


def test_a_diverging_run_ends_with_the_trainers_stop(workdir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--model=DiffRec", "--learning_rate=1e30", *FAST])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    # nan or inf, as this CPU's kernels round the overflow: the behaviour is the stop, not the spelling
    assert re.match(r"run_recbole\.py: error: training loss is (nan|[+-]?inf) at epoch 0, batch \d+", last), last
    snapshot_file = last.split(") is ")[1].split(". Hint")[0]
    assert os.path.isfile(snapshot_file), "the snapshot it names is kept for --resume"


def test_evaluate_takes_an_unquoted_metric_list_and_refuses_a_cutoff_past_the_catalogue(workdir, capsys, trained):
    refused(cli, ["evaluate", trained["DiffRec"], "--topk=[5000]"], capsys, workdir, "recbole-diffrec evaluate",
            "every cut-off must be at most 1682")
    from recbole_diffrec.cli import convert_values

    assert convert_values({"metrics": "[Recall,NDCG]", "topk": "[5, 10]"}) == {"metrics": ["Recall", "NDCG"],
                                                                               "topk": [5, 10]}


def test_an_item_embedding_file_of_another_catalogue_is_refused(workdir, capsys):
    import numpy as np

    np.save(workdir / "emb.npy", np.random.default_rng(0).standard_normal((1238, 8)).astype(np.float32))
    refused(main, ["--model=LDiffRec", "--item_emb_source=file", f"--item_emb_file={workdir / 'emb.npy'}", *FAST[:2]],
            capsys, workdir, "run_recbole.py", "has 1238 rows but dataset 'ml-100k' has 1682 items")


def test_equal_timestamps_warn_that_row_order_decides(workdir, caplog):
    rows = [f"{u}\t{i}\t5" for u in range(1, 30) for i in range(1, 12) if (u + i) % 3]
    path = toy_dataset(workdir, "flat", "user_id:token\titem_id:token\ttimestamp:float", rows)
    import logging

    with caplog.at_level(logging.WARNING):
        run("TDiffRec", "flat", config_dict={"data_path": path, "epochs": 1, "show_progress": False, "steps": 5,
                                             "dims_dnn": [16],
                                             "load_col": {"inter": ["user_id", "item_id", "timestamp"]}})
    assert any("the recency weights then follow the order of the rows" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("model", ["BPR", "DiffRec", "SASRec"])
@pytest.mark.parametrize("per_user, needle", [(1, "split is empty"), (2, "the valid split is empty")])
def test_an_empty_split_is_refused_before_training(model, per_user, needle, workdir, capsys):
    """Leave-one-out over users with one or two interactions leaves a split empty: refused in one line, not
    trained and then crashed at the test."""
    rows = [f"u{u}\ti{(u + k) % 17}\t{k}" for u in range(100) for k in range(per_user)]
    data = toy_dataset(workdir, "short", "user_id:token\titem_id:token\ttimestamp:float", rows)
    config = workdir / "short.yaml"
    config.write_text(f"data_path: {data}\nload_col: {{inter: [user_id, item_id, timestamp]}}\n"
                      "eval_args: {split: {LS: valid_and_test}, order: TO, mode: full, group_by: user}\n"
                      + ("train_neg_sample_args: ~\n" if model == "SASRec" else ""))
    refused(main, [f"--model={model}", "--dataset=short", f"--config_files={config}", "--epochs=1",
                   "--show_progress=False"], capsys, workdir, "run_recbole.py", needle)


def _edited(trained, workdir, edit):
    state = torch.load(trained["DiffRec"], weights_only=True)
    edit(state)
    torch.save(state, workdir / "edited.pth")
    return "edited.pth"


@pytest.mark.parametrize("content, needle", [
    (os.urandom(4096), "junk.pth"),
    (bytes(range(256)) * 8, "junk.pth"),
    (b"PK\x03\x04" + os.urandom(200), "cannot be read"),
    (b"model: DiffRec\nnot a checkpoint at all\n", "junk.pth"),
])
def test_files_that_are_not_checkpoints(content, needle, workdir, capsys):
    (workdir / "junk.pth").write_bytes(content)
    for command, prog in ((["evaluate", "junk.pth"], "recbole-diffrec evaluate"),
                          (["recommend", "junk.pth", "--users", "1"], "recbole-diffrec recommend")):
        refused(cli, command, capsys, workdir, prog, needle)
    refused(main, [*FAST, "--resume=junk.pth"], capsys, workdir, "run_recbole.py", needle)


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.update(settings_version="two"), "settings_version 'two' is not a version number"),
    (lambda s: s.update(settings_version=99), "newer recbole-diffrec (settings_version 99"),
    (lambda s: s.pop("config"), "it has no 'config'"),
    (lambda s: s.update(config=["not", "a", "dict"]), "its 'config' is a list, not a dict"),
    (lambda s: s.update(state_dict=None), "its 'state_dict' is a NoneType"),
    (lambda s: s.update(data={"dataset": "ml-100k"}), "record of the training data is incomplete"),
])
def test_an_edited_checkpoint_is_one_line(edit, needle, workdir, capsys, trained):
    name = _edited(trained, workdir, edit)
    refused(cli, ["evaluate", name], capsys, workdir, "recbole-diffrec evaluate", needle)
    refused(main, [*FAST, f"--resume={name}"], capsys, workdir, "run_recbole.py", needle)


@pytest.mark.parametrize("model, key", [("DiffRec", "dropout"), ("DiffRec", "learning_rate"), ("DiffRec", "noise_scale"),
                                        ("GiffCF", "alpha"), ("GiffCF", "ideal_weight"), ("GiffCF", "noise_decay"),
                                        ("TDiffRec", "w_min"), ("DiffRec", "ema_decay"), ("BPR", "weight_decay")])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_number_from_python_is_refused_before_the_data(model, key, value, workdir):
    from recbole_diffrec.pipeline import prepare
    from recbole_diffrec.settings import SettingError

    with pytest.raises(SettingError, match=f"{key}=(nan|inf): must be a finite number"):
        prepare(model, "no-such-dataset", config_dict={key: value})  # the data would be refused after


def test_a_misspelt_key_in_a_config_file_is_refused_with_a_hint(workdir, capsys):
    (workdir / "typo.yaml").write_text("alpah: 3.0\n")
    refused(main, ["--model=GiffCF", "--config_files=typo.yaml", "--epochs=1"], capsys, workdir, "run_recbole.py",
            "alpah=3.0: in config file typo.yaml: not a setting of GiffCF")
    last = capsys.readouterr().err
    (workdir / "shared.yaml").write_text("reg_weight: 250.0\nnoise_scale: 0.01\n")  # EASE's key and DiffRec's
    from recbole_diffrec.config import Config

    assert Config("DiffRec", "ml-100k", [str(workdir / "shared.yaml")])["noise_scale"] == 0.01
    assert last == ""


def test_output_folders_that_cannot_be_written_are_refused_before_the_data(workdir, capsys):
    (workdir / "a-file").write_text("x")
    refused(main, [*FAST, "--checkpoint_dir=a-file/sub"], capsys, workdir, "run_recbole.py",
            "checkpoint_dir='a-file/sub': cannot hold this run's files")
    space = workdir / "space.hyper"
    space.write_text("noise_min choice [0.001,0.005]\n")
    refused(tune_main, ["--model=DiffRec", f"--params_file={space}", "--output_file=a-file/x.json", *FAST],
            capsys, workdir, "run_hyper.py", "cannot write the record there")
    if os.geteuid() != 0:  # root writes anywhere
        locked = workdir / "locked"
        locked.mkdir(mode=0o500)
        refused(main, [*FAST, f"--checkpoint_dir={locked}"], capsys, workdir, "run_recbole.py", "is not writable")


@pytest.mark.parametrize("model", ["DiffRec", "BPR"])
@pytest.mark.parametrize("setting, needle", [("--learning_rate=0.01", "learning_rate=0.01: differs"),
                                             ("--weight_decay=0.1", "weight_decay=0.1: differs"),
                                             ("--train_batch_size=7", "train_batch_size=7: differs")])
def test_resuming_with_another_optimisation_setting_is_refused(model, setting, needle, workdir, capsys, trained):
    """The optimizer state resumes with the checkpoint's values: a new one would only be shown in the log."""
    shutil.copy(trained[model], workdir / "ck.pth")
    base = FAST if model == "DiffRec" else FAST[:2]
    refused(main, [f"--model={model}", *base, setting, "--resume=ck.pth"], capsys, workdir, "run_recbole.py", needle)


def test_a_time_field_declared_as_a_token_is_refused(workdir, capsys):
    rows = [f"{u}\t{i}\t{u * 100 + i}" for u in range(1, 30) for i in range(1, 12)]
    data = toy_dataset(workdir, "tok", "user_id:token\titem_id:token\ttimestamp:token", rows)
    refused(main, [*FAST, "--dataset=tok", f"--data_path={data}", "--load_col={'inter': ['user_id','item_id','timestamp']}"],
            capsys, workdir, "run_recbole.py", "is declared timestamp:token")


def test_a_row_with_more_fields_than_the_header_is_refused_with_its_line(workdir, capsys):
    rows = [f"{u}\t{i}\t{u * 100 + i}" for u in range(1, 30) for i in range(1, 12)]
    rows[4] = "1\tit\t242\t881250949"
    data = toy_dataset(workdir, "wide", "user_id:token\titem_id:token\ttimestamp:float", rows)
    refused(main, [*FAST, "--dataset=wide", f"--data_path={data}", "--load_col={'inter': ['user_id','item_id','timestamp']}"],
            capsys, workdir, "run_recbole.py", "wide.inter, line 6: 4 fields where the header has 3")


def test_a_data_path_given_for_ml_100k_is_read_or_refused(workdir, capsys):
    """RecBole reads its bundled copy for the name ml-100k whatever data_path says; the pack reads the folder given."""
    (workdir / "own").mkdir()
    refused(main, [*FAST, "--dataset=ml-100k", "--data_path=own"], capsys, workdir, "run_recbole.py",
            f"no folder {workdir / 'own' / 'ml-100k'}")


def test_a_parameter_given_twice_in_a_hyper_file_is_refused(workdir, capsys):
    space = workdir / "twice.hyper"
    space.write_text("noise_min choice [0.001]\nlearning_rate choice [0.001]\nnoise_min choice [0.005]\n")
    refused(tune_main, ["--model=DiffRec", f"--params_file={space}", *FAST], capsys, workdir, "run_hyper.py",
            "twice.hyper:3: noise_min is given again (first at line 1)")


def test_evaluate_from_another_folder_writes_nothing_there(workdir, trained, capsys):
    before = snapshot(workdir)
    assert cli(["evaluate", trained["DiffRec"]]) in (None, 0)
    assert snapshot(workdir) == before or all(p.startswith(("log", "log_tensorboard")) for p in
                                              set(snapshot(workdir)) - set(before))
    assert not (workdir / "saved").exists()


@pytest.mark.parametrize("header, needle", [
    ("user_id:token\titem_id:float\ttimestamp:float", "column 'item_id:float': users and items are tokens"),
    ("user_id\titem_id\ttimestamp", "column 'user_id' has no type"),
    ("user_id:token\titem_id:token\ttimestamp:time", "has type 'time', not one of"),
])
def test_a_header_recbole_would_misread_is_refused_with_the_column(header, needle, workdir, capsys):
    rows = [f"{u}\t{i}\t{u * 100 + i}" for u in range(1, 30) for i in range(1, 12)]
    data = toy_dataset(workdir, "hdr", header, rows)
    refused(main, [*FAST, "--dataset=hdr", f"--data_path={data}", "--load_col={'inter': ['user_id','item_id','timestamp']}"],
            capsys, workdir, "run_recbole.py", needle)


def test_evaluate_refuses_a_setting_that_changes_the_data_by_its_name(workdir, capsys, trained):
    refused(cli, ["evaluate", trained["DiffRec"], "--TIME_FIELD=rating"], capsys, workdir, "recbole-diffrec evaluate",
            "TIME_FIELD='rating': the checkpoint was trained with 'timestamp'")


def test_ctrl_c_ends_in_one_line(workdir, capsys, monkeypatch):
    import recbole_diffrec.cli as cli_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "run", interrupted)
    with pytest.raises(SystemExit) as exit_:
        main(FAST)
    err = capsys.readouterr().err
    assert exit_.value.code == 130 and "Traceback" not in err
    assert err.strip().splitlines() == ["run_recbole.py: interrupted; a training run keeps its resume snapshot (--resume)"]


def test_recboles_read_only_array_warning_stays_off_the_console(workdir):
    import subprocess
    import sys

    code = ("from recbole_diffrec.pipeline import prepare; prepare('DiffRec', config_dict={'show_progress': False, "
            "'epochs': 1, 'steps': 5, 'dims_dnn': [32]})")
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NumPy array is not writable" not in done.stderr
