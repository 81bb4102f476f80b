"""Tuning through RecBole's HyperTuning: the three algorithms, failed trials, .hyper keys."""

import json

import pytest
import yaml  # noqa: F401

from recbole_diffrec.config import declared_settings, model_classes, properties_dir
from recbole_diffrec.tuning import main

FIXED = ["--epochs=1", "--steps=5", "--dims_dnn=[64]", "--show_progress=False", "--eval_batch_users=1000"]


@pytest.fixture
def space(workdir):
    path = workdir / "space.hyper"
    # noise_min 0.02 >= noise_max 0.01 is invalid: that trial must fail and the search go on.
    path.write_text("noise_min choice [0.001,0.005,0.02]\nnoise_max choice [0.01]\n")
    return path


@pytest.mark.parametrize("algo", ["exhaustive", "bayes"])
def test_three_trials_write_three_records(algo, space, workdir):
    out = workdir / f"{algo}.json"
    main(["--model=DiffRec", f"--params_file={space}", f"--algo={algo}", "--max_evals=3",
          f"--output_file={out}", *FIXED])
    record = json.loads(out.read_text())
    assert len(record["trials"]) == 3
    if algo == "exhaustive":  # every point once: the invalid one among them
        failed = [t for t in record["trials"] if t["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["params"]["noise_min"] == 0.02
        assert "noise_min" in failed[0]["error"]
        assert {t["params"]["noise_min"] for t in record["trials"]} == {0.001, 0.005, 0.02}
    ok = [t for t in record["trials"] if t["status"] == "ok"]
    assert ok and all("recall@10" in t["test_result"] for t in ok)
    assert record["best_params"]["noise_min"] in (0.001, 0.005)


def test_random_search_runs(space, workdir):
    out = workdir / "random.json"
    main(["--model=DiffRec", f"--params_file={space}", "--algo=random", "--max_evals=1", f"--output_file={out}", *FIXED])
    assert len(json.loads(out.read_text())["trials"]) == 1


@pytest.mark.parametrize("name", sorted(model_classes()))
def test_hyper_file_keys_are_model_keys(name):
    path = properties_dir() / f"{name}.hyper"
    assert path.is_file(), f"{name} ships no .hyper file"
    keys = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    unknown = set(keys) - set(declared_settings(model_classes()[name]))
    assert not unknown, f"{path.name} tunes keys {unknown} that {name}'s yaml does not declare"


def test_trial_test_result_is_the_selected_epochs_and_leaves_no_checkpoints(workdir):
    from recbole_diffrec.tuning import objective_function

    settings = {"epochs": 6, "eval_step": 1, "stopping_step": 10, "steps": 5, "dims_dnn": [64],
                "show_progress": False, "eval_batch_users": 1000, "learning_rate": 0.01}
    kept = objective_function("DiffRec", "ml-100k", settings, keep_checkpoints=True)
    files = sorted((workdir / "saved").glob("*.pth"))
    best = [f for f in files if not f.name.endswith("-last.pth")]
    assert len(best) == 1
    from recbole_diffrec.serving import evaluate

    assert evaluate(best[0])["test"]["recall@10"] == pytest.approx(kept["test_result"]["recall@10"])
    for f in files:
        f.unlink()
    objective_function("DiffRec", "ml-100k", settings)
    assert not list((workdir / "saved").glob("*.pth"))
