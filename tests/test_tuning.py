"""Tuning through RecBole's HyperTuning: the three algorithms, failed trials, .hyper keys."""

import json

import pytest
import yaml  # noqa: F401

from recbole_diffrec.cli import tune_main as main
from recbole_diffrec.registry import model_classes
from recbole_diffrec.settings import declared_settings, properties_dir

FIXED = ["--epochs=1", "--steps=5", "--dims_dnn=[64]", "--show_progress=False", "--eval_batch_users=1000"]


@pytest.fixture
def space(workdir):
    path = workdir / "space.hyper"
    # noise_min 0.02 >= noise_max 0.01 is invalid: that trial must fail and the search go on.
    path.write_text("noise_min choice [0.001,0.005,0.02]\nnoise_max choice [0.01]\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["exhaustive", "bayes"])
def test_three_trials_write_three_records(algo, space, workdir, capsys):
    out = workdir / f"{algo}.json"
    main(["--model=DiffRec", f"--params_file={space}", f"--algo={algo}", "--max_evals=3",
          f"--output_file={out}", *FIXED])
    assert ("1 of 3 checked settings of the search space are invalid and will be recorded as failed trials, "
            "e.g. invalid setting noise_min=0.02: must be below noise_max=0.01") in capsys.readouterr().out
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
def test_each_model_has_a_search_space_of_keys_it_declares(name):
    from recbole_diffrec.tuning import model_space

    space = model_space(model_classes()[name])
    assert space, f"{name} has no search space"
    unknown = set(space) - set(declared_settings(model_classes()[name]))
    assert not unknown, f"{name}'s search space tunes keys {unknown} that its yaml files do not declare"


def test_search_spaces_compose_like_the_yaml_files():
    """TDiffRec searches DiffRec's space plus the time weighting's; LTDiffRec L-DiffRec's plus it; each
    parameter is written in one file."""
    from recbole_diffrec.tuning import model_space

    spaces = {name: model_space(cls) for name, cls in model_classes().items()}
    weighting = {"w_min", "w_max"}
    assert set(spaces["TDiffRec"]) == set(spaces["DiffRec"]) | weighting
    assert set(spaces["LTDiffRec"]) == set(spaces["LDiffRec"]) | weighting
    assert weighting.isdisjoint(spaces["DiffRec"]) and weighting.isdisjoint(spaces["LDiffRec"])
    lines = [line.split()[0] for path in properties_dir().glob("*.hyper") for line in path.read_text().splitlines()
             if line.strip()]
    assert lines.count("w_min") == 1


@pytest.mark.slow
def test_trial_test_result_is_the_selected_epochs_and_leaves_no_checkpoints(workdir):
    from recbole_diffrec.tuning import objective_function

    settings = {"epochs": 6, "eval_step": 1, "stopping_step": 10, "steps": 5, "dims_dnn": [64],
                "show_progress": False, "eval_batch_users": 1000, "learning_rate": 0.01}
    kept = objective_function("DiffRec", "ml-100k", settings, keep_checkpoints=True)
    files = sorted((workdir / "saved").glob("*.pth"))
    best = [f for f in files if not f.name.endswith("-last.pth")]
    assert len(best) == 1
    from recbole_diffrec.pipeline import evaluate

    assert evaluate(best[0])["test"]["recall@10"] == pytest.approx(kept["test_result"]["recall@10"])
    for f in files:
        f.unlink()
    objective_function("DiffRec", "ml-100k", settings)
    assert not list((workdir / "saved").glob("*.pth"))


def test_a_space_with_no_valid_setting_is_refused_before_any_trial(space, workdir, capsys, monkeypatch):
    import recbole_diffrec.tuning as tuning

    monkeypatch.setattr(tuning, "objective_function", lambda *a, **k: pytest.fail("a trial ran"))
    out = workdir / "never.json"
    for bad, message in [("--steps=0", "invalid setting steps=0: must be >= 1"),
                         ("--noise_sclae=0.01", "invalid setting noise_sclae=0.01: not a setting of DiffRec")]:
        with pytest.raises(SystemExit) as exit_:
            main(["--model=DiffRec", f"--params_file={space}", f"--output_file={out}", *FIXED, bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("run_hyper.py: error: every setting of the search space is invalid (3 checked), "
                              f"e.g. {message}"), err
        assert not out.exists()


def test_an_existing_record_is_kept_unless_overwrite(space, workdir, capsys):
    out = workdir / "record.json"
    out.write_text('{"trials": ["an earlier search"]}')
    with pytest.raises(SystemExit) as exit_:
        main(["--model=DiffRec", f"--params_file={space}", f"--output_file={out}", *FIXED])
    assert exit_.value.code == 2 and "exists" in capsys.readouterr().err
    assert out.read_text() == '{"trials": ["an earlier search"]}'
    main(["--model=DiffRec", f"--params_file={space}", "--max_evals=1", f"--output_file={out}", "--overwrite",
          *FIXED])
    assert len(json.loads(out.read_text())["trials"]) == 1


def test_the_check_before_the_search_builds_every_point_of_a_finite_space(space, workdir):
    from recbole_diffrec.tuning import Tuner, invalid_points, sample_points

    tuner = Tuner(lambda *a: None, workdir / "x.json", params_file=str(space))
    points = sample_points(tuner.space)
    assert sorted(p["noise_min"] for p in points) == [0.001, 0.005, 0.02]  # every point of a finite space
    invalid = invalid_points("DiffRec", "ml-100k", None, {}, points)
    assert [p["noise_min"] for p, _ in invalid] == [0.02]
    assert invalid[0][1].key == "noise_min"


@pytest.mark.slow
def test_exhaustive_search_over_list_valued_choices(workdir):
    from recbole_diffrec.tuning import Tuner, sample_points, space_size

    path = workdir / "lists.hyper"
    path.write_text("dims_dnn choice [[64],[32,48]]\nlearning_rate choice [0.001,0.01]\nnoise_scale uniform 0.001,0.01\n")
    tuner = Tuner(lambda *a: None, workdir / "x.json", params_file=str(path))
    assert space_size(tuner.space) is None  # a continuous parameter: not finite
    path.write_text("dims_dnn choice [[64],[32,48]]\nlearning_rate choice [0.001,0.01]\n")
    tuner = Tuner(lambda *a: None, workdir / "x.json", params_file=str(path), max_evals=100)
    assert space_size(tuner.space) == 4 and tuner.max_evals == 4
    points = sample_points(tuner.space)
    assert sorted((tuple(p["dims_dnn"]), p["learning_rate"]) for p in points) == [
        ((32, 48), 0.001), ((32, 48), 0.01), ((64,), 0.001), ((64,), 0.01)]
    out = workdir / "lists.json"
    main(["--model=DiffRec", f"--params_file={path}", f"--output_file={out}", "--max_evals=2", "--epochs=1",
          "--steps=5", "--show_progress=False", "--eval_batch_users=1000"])
    trials = json.loads(out.read_text())["trials"]
    assert len(trials) == 2 and all(t["status"] == "ok" for t in trials)
    assert len({json.dumps(t["params"]) for t in trials}) == 2


def test_an_interrupted_trial_leaves_none_of_its_files(workdir, monkeypatch):
    """Ctrl-C during a trial: its log, tensorboard events and checkpoints go; the interrupt goes on up."""
    from recbole_diffrec.training.trainer import DiffusionTrainer
    from recbole_diffrec.tuning import objective_function

    def interrupted(self, *args, **kwargs):
        self._save_checkpoint(0)  # what a trial has written when the key is pressed
        raise KeyboardInterrupt

    monkeypatch.setattr(DiffusionTrainer, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        objective_function("DiffRec", "ml-100k", {"show_progress": False, "epochs": 1, "steps": 5, "dims_dnn": [32]})
    assert [p for p in workdir.rglob("*") if p.is_file()] == []
