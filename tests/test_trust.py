"""What a user must be able to trust: recommendations never repeat the training items, a checkpoint knows
its data, a resumed run replaces nothing, duplicates are seen."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_diffrec.errors import CheckpointError
from recbole_diffrec.pipeline import evaluate, prepare, recommend, run

SMALL = {"epochs": 2, "show_progress": False, "steps": 5, "dims_dnn": [32], "eval_batch_users": 1000,
         "eval_step": 1}


def training_items(dataset_train, token):
    ds = dataset_train._dataset
    user = ds.token2id(ds.uid_field, token)
    rows = ds.inter_feat[ds.uid_field].numpy() == user
    return set(ds.id2token(ds.iid_field, ds.inter_feat[ds.iid_field].numpy()[rows]).tolist())


@pytest.mark.slow
@pytest.mark.parametrize("model, settings", [("BPR", {"epochs": 1, "show_progress": False}), ("DiffRec", SMALL)])
def test_recommendations_never_include_the_users_training_items(model, settings, workdir):
    """For RecBole's models too: the mask comes from the dataset, not from a model attribute."""
    checkpoint = run(model, config_dict=settings)["checkpoint"]
    _, (train, _, _), _, _ = prepare(model, config_dict=settings)
    users = ["1", "2", "13", "196", "405", "655"]  # 405 and 655 have hundreds of training items
    recs = recommend(checkpoint, users, k=100)
    for user in users:
        assert len(recs[user]) == 100 and len(set(recs[user])) == 100
        assert not training_items(train, user) & set(recs[user]), user
        assert "[PAD]" not in recs[user]
    # the largest k allowed is every unseen item: the whole catalogue minus the history, nothing else
    unseen = train._dataset.item_num - 1 - len(training_items(train, "405"))
    everything = recommend(checkpoint, ["405"], k=unseen)["405"]
    assert len(set(everything)) == unseen and not training_items(train, "405") & set(everything)


def test_a_checkpoint_records_its_data(workdir):
    result = run("DiffRec", config_dict={**SMALL, "epochs": 1})
    state = torch.load(result["checkpoint"], weights_only=True)
    data = state["data"]
    assert data["dataset"] == "ml-100k" and os.path.isabs(data["data_path"])
    assert data["rows"] == 100000 and len(data["user_tokens"]) == 944 and len(data["item_tokens"]) == 1683
    assert data["user_tokens"][0] == "[PAD]" and len(data["fingerprint"]) == 64


def _write_toy(folder, order=None, extra=(), repeat=()):
    """60 users x 12 distinct items of 80; `extra` rows appended, and the rows at indices `repeat` again."""
    rng = np.random.default_rng(0)
    rows = [(u, i, u * 1000 + n) for u in range(60) for n, i in enumerate(rng.choice(80, 12, replace=False))]
    rows += list(extra) + [(rows[j][0], rows[j][1], 10 ** 6 + j) for j in repeat]
    if order is not None:
        rows = [rows[j] for j in order(len(rows))]
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"u{u}\ti{i}\t{t}" for u, i, t in rows]
    (folder / "toy.inter").write_text("\n".join(lines) + "\n")
    return len(rows)


def test_a_checkpoint_evaluates_from_any_folder_and_refuses_changed_data(workdir, tmp_path):
    """Relative paths in the training run's config resolve where it ran; reordered rows (the same content,
    other ids and another random split) are refused, never answered differently."""
    train_dir = workdir / "project"
    _write_toy(train_dir / "data" / "toy")
    config = train_dir / "toy.yaml"
    config.write_text("data_path: data/\nload_col: {inter: [user_id, item_id, timestamp]}\n"
                      "eval_args: {split: {RS: [0.8, 0.1, 0.1]}, group_by: user, order: RO, mode: full}\n")
    os.chdir(train_dir)
    result = run("DiffRec", "toy", [str(config)], SMALL)
    checkpoint = str(train_dir / result["checkpoint"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    assert evaluate(checkpoint)["test"] == pytest.approx(result["test_result"], abs=1e-12)
    _write_toy(train_dir / "data" / "toy", order=lambda n: np.random.default_rng(1).permutation(n))
    with pytest.raises(CheckpointError, match="rows are in another order"):
        evaluate(checkpoint)
    with pytest.raises(CheckpointError, match="changed since training"):
        recommend(checkpoint, ["u1"], k=3)
    _write_toy(train_dir / "data" / "toy", extra=[(1, 79, 5)])
    with pytest.raises(CheckpointError, match="721 interactions now, 720 then"):
        evaluate(checkpoint)
    _write_toy(train_dir / "data" / "toy")  # the same file again: the same answers
    assert evaluate(checkpoint)["test"] == pytest.approx(result["test_result"], abs=1e-12)


def test_duplicates_are_counted_and_dropped_for_our_models_kept_for_recboles(workdir, caplog):
    n = _write_toy(workdir / "data" / "toy", repeat=[36, 36, 84])  # 3 rows that repeat a (user, item) pair
    settings = {**SMALL, "data_path": str(workdir / "data"), "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}

    def rows(model, extra):
        _, (train, valid, test), _, _ = prepare(model, "toy", None, {**settings, **extra})
        return sum(len(part.dataset.inter_feat) for part in (train, valid, test))

    assert rows("DiffRec", {}) == n - 3
    assert "dropped 3 duplicate (user, item) rows" in caplog.text
    caplog.clear()
    assert rows("DiffRec", {"duplicate_interactions": "keep"}) == n
    assert "3 duplicate (user, item) rows kept" in caplog.text
    caplog.clear()
    bpr = {"data_path": str(workdir / "data"), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
           "show_progress": False}
    _, splits, _, _ = prepare("BPR", "toy", None, {**bpr, "epochs": 1})
    assert sum(len(part.dataset.inter_feat) for part in splits) == n  # RecBole's models: RecBole's behaviour, with the count logged
    assert "3 duplicate (user, item) rows kept" in caplog.text


def test_duplicate_rows_keeps_the_first_of_each_pair():
    from recbole_diffrec.data.reading import duplicate_rows

    users = np.array([1, 2, 1, 3, 1, 2])
    items = np.array([5, 5, 5, 4, 6, 5])
    assert duplicate_rows(users, items).tolist() == [False, False, True, False, False, True]


@pytest.mark.slow
def test_resume_writes_new_files_and_never_replaces_a_checkpoint(workdir):
    settings = {**SMALL, "epochs": 3, "resume_every": 1}
    first = run("DiffRec", config_dict=settings)
    best = Path(first["checkpoint"])
    before = (best.read_bytes(), best.stat().st_mtime_ns)
    log = Path(first["log_file"]).read_text()  # the log names each snapshot as it is written
    snapshot = f"{os.path.splitext(first['checkpoint'])[0]}-last.pth"
    assert f"resume snapshot before epoch 2: {snapshot}" in log and f"--resume={snapshot}" in log
    second = run("DiffRec", config_dict={**settings, "epochs": 5}, resume_file=str(best))
    assert second["checkpoint"] != first["checkpoint"] and Path(second["checkpoint"]).is_file()
    assert (best.read_bytes(), best.stat().st_mtime_ns) == before
    # resuming a finished run's best model twice gives the same result: the first resume changed nothing
    third = run("DiffRec", config_dict={**settings, "epochs": 5}, resume_file=str(best))
    assert third["test_result"] == pytest.approx(second["test_result"], abs=1e-12)


def test_resuming_a_copy_on_other_data_is_refused(workdir):
    result = run("DiffRec", config_dict={**SMALL, "epochs": 1})
    shutil.copy(result["checkpoint"], workdir / "copy.pth")
    _write_toy(workdir / "data" / "toy")
    settings = {**SMALL, "data_path": str(workdir / "data"), "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    with pytest.raises(CheckpointError, match="refusing to resume"):
        prepare("DiffRec", "toy", None, settings, resume_file=str(workdir / "copy.pth"))


def test_a_sequential_model_serves_a_user_the_same_list_whoever_else_is_asked_about(workdir):
    """DNR draws noise at inference; the noise of a recommendation is drawn per user (seeded by the checkpoint
    and the user's token), so a user's list does not depend on the other users of the request. A single
    token is one user (not its characters), and a sequential checkpoint takes other cut-offs and metrics."""
    from recbole_diffrec.pipeline import evaluate, recommend, run

    settings = {"show_progress": False, "epochs": 1, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "steps": 10,
                "inference_start": 4, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1,
                "train_precision": "float32"}
    checkpoint = run("DNR", config_dict=settings)["checkpoint"]
    alone = recommend(checkpoint, ["196"], k=10)
    assert recommend(checkpoint, "196", k=10) == alone  # "196" is one user, not users 1, 9 and 6
    crowd = recommend(checkpoint, ["405", "196", "1", "2", "3"], k=10)
    assert crowd["196"] == alone["196"]
    assert recommend(checkpoint, ["405"], k=10)["405"] == crowd["405"]
    again = evaluate(checkpoint, {"topk": [5], "metrics": ["Hit", "MRR"]})
    assert set(again["test"]) == {"hit@5", "mrr@5"}


# ---- a checkpoint pins its split -----------------------------------------------------------------------------
def _toy_config(folder, eval_args):
    config = folder / "toy.yaml"
    config.write_text("data_path: data/\nload_col: {inter: [user_id, item_id, timestamp]}\n"
                      f"eval_args: {eval_args}\n")
    return [str(config)]


def test_a_checkpoint_refuses_a_seed_that_moves_its_random_split(workdir):
    """With order RO the split follows the seed: evaluate, recommend and resume with another seed would
    score the model on its own training pairs, so they are refused, naming the seed."""
    _write_toy(workdir / "data" / "toy")
    config = _toy_config(workdir, "{split: {RS: [0.8, 0.1, 0.1]}, group_by: user, order: RO, mode: full}")
    result = run("DiffRec", "toy", config, {**SMALL, "epochs": 1})
    checkpoint = result["checkpoint"]
    assert torch.load(checkpoint, weights_only=True)["data"]["splits"]["rows"] == {"train": 600, "valid": 60,
                                                                                      "test": 60}
    for call in (lambda: evaluate(checkpoint, {"seed": 7}), lambda: recommend(checkpoint, ["u1"], 3, {"seed": 7})):
        with pytest.raises(CheckpointError, match=r"train, valid, test interactions are not those .* seed 7 "
                                                  r"\(trained with 2020\)"):
            call()
    snapshot = next(Path("saved").glob("*.pth"))  # the best model doubles as a resumable checkpoint
    with pytest.raises(CheckpointError, match="refusing to resume .* seed 7"):
        prepare("DiffRec", "toy", config, {**SMALL, "seed": 7}, resume_file=str(snapshot))
    assert evaluate(checkpoint)["test"] == pytest.approx(result["test_result"], abs=1e-12)


def test_a_seed_that_leaves_the_split_alone_is_accepted(workdir):
    """A time-ordered split does not depend on the seed: another seed evaluates the same test rows."""
    _write_toy(workdir / "data" / "toy")
    config = _toy_config(workdir, "{split: {RS: [0.8, 0.1, 0.1]}, group_by: user, order: TO, mode: full}")
    checkpoint = run("DiffRec", "toy", config, {**SMALL, "epochs": 1})["checkpoint"]
    assert set(evaluate(checkpoint, {"seed": 7})["test"]) == {"recall@10", "mrr@10", "ndcg@10", "hit@10",
                                                              "precision@10"}


def test_rows_moved_between_benchmark_files_are_refused(workdir):
    """The same rows in all, some moved from the training file to the top of the validation file: every
    file-level fingerprint of the whole data would agree; the split's digests do not."""
    folder = workdir / "data" / "toy"
    folder.mkdir(parents=True)
    header = "user_id:token\titem_id:token\ttimestamp:float"
    rows = [f"u{u}\ti{(u * 7 + n) % 40}\t{n}" for u in range(30) for n in range(8)]
    parts = {"train": [r for r in rows if int(r.split("\t")[2]) < 6],
             "valid": [r for r in rows if int(r.split("\t")[2]) == 6],
             "test": [r for r in rows if int(r.split("\t")[2]) == 7]}

    def write(parts):
        for name, part in parts.items():
            (folder / f"toy.{name}.inter").write_text("\n".join([header, *part]) + "\n")

    write(parts)
    config = workdir / "toy.yaml"
    config.write_text("data_path: data/\nbenchmark_filename: [train, valid, test]\n"
                      "load_col: {inter: [user_id, item_id, timestamp]}\neval_args: {order: TO, mode: full}\n")
    checkpoint = run("DiffRec", "toy", [str(config)], {**SMALL, "epochs": 1})["checkpoint"]
    moved = parts["train"][-3:]
    write({"train": parts["train"][:-3], "valid": moved + parts["valid"], "test": parts["test"]})
    with pytest.raises(CheckpointError, match=r"train, valid interactions are not those .*train 177 rows now, "
                                              r"180 then.*rows moved between splits"):
        evaluate(checkpoint)


# ---- no silent answers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, settings", [("DiffRec", SMALL), ("BPR", {"epochs": 2, "show_progress": False})])
def test_non_finite_scores_are_an_error_and_never_a_saved_best(model, settings, workdir, monkeypatch):
    from recbole_diffrec.errors import NonFiniteScores
    from recbole_diffrec.registry import get_model

    cls = get_model(model)
    original = cls.full_sort_predict
    result = run(model, config_dict=settings)
    monkeypatch.setattr(cls, "full_sort_predict", lambda self, i: original(self, i) * float("nan"))
    with pytest.raises(NonFiniteScores, match="NaN or \\+inf at evaluation"):
        evaluate(result["checkpoint"])
    with pytest.raises(NonFiniteScores):
        recommend(result["checkpoint"], ["196"], k=5)
    for path in Path("saved").glob("*"):
        path.unlink()
    with pytest.raises(NonFiniteScores):
        run(model, config_dict=settings)
    assert not [p for p in Path("saved").glob("*.pth") if not p.name.endswith("-last.pth")], "a NaN model saved as best"
