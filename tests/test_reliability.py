"""Resume after a kill, reuse of checkpoints, a non-finite loss, bad data."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from recbole_diffrec.pipeline import evaluate, load, prepare, recommend, run
from recbole_diffrec.settings import SettingError

SMALL = {"show_progress": False, "steps": 5, "dims_dnn": [64], "epochs": 6, "eval_step": 2, "stopping_step": 10,
         "eval_batch_users": 1000}


def _fit_and_test(trainer, train, valid, test):
    trainer.fit(train, valid, saved=True, show_progress=False)
    return trainer.evaluate(test, load_best_model=True)


@pytest.mark.slow
@pytest.mark.parametrize(("resume_every", "resumes_at", "ema_decay"), [(1, 3, 0.0), (2, 2, 0.0), (2, 2, 0.8)])
def test_kill_and_resume_gives_identical_metrics(workdir, monkeypatch, resume_every, resumes_at, ema_decay):
    settings = {**SMALL, "resume_every": resume_every, "ema_decay": ema_decay}
    _, (train, valid, test), _, trainer = prepare("DiffRec", config_dict=settings)
    uninterrupted = _fit_and_test(trainer, train, valid, test)

    _, (train, valid, test), _, trainer = prepare("DiffRec", config_dict=settings)
    original = trainer._train_epoch

    def killed_at_epoch_3(data, epoch_idx, *a, **k):
        if epoch_idx == 3:  # the run snapshots if one is due, then dies mid-epoch
            if trainer._snapshot_due(epoch_idx):
                trainer._save_last(data, epoch_idx)
            raise KeyboardInterrupt
        return original(data, epoch_idx, *a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "_train_epoch", killed_at_epoch_3)
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(train, valid, saved=True, show_progress=False)
    last = trainer.last_checkpoint_file

    _, (train, valid, test), _, resumed = prepare("DiffRec", config_dict=settings)
    resumed.resume_checkpoint(last)
    assert resumed.start_epoch == resumes_at
    assert dict(_fit_and_test(resumed, train, valid, test)) == dict(uninterrupted)


def test_a_finished_run_keeps_its_best_model_and_removes_its_resume_snapshot(workdir):
    _, (train, valid, _), _, trainer = prepare("DiffRec", config_dict={**SMALL, "resume_every": 1})
    written = []
    save_last = trainer._save_last
    trainer._save_last = lambda *a: (save_last(*a), written.append(trainer.last_checkpoint_file))
    trainer.fit(train, valid, saved=True, show_progress=False)
    assert len(written) == SMALL["epochs"]  # a snapshot before every epoch while it ran
    assert set(written) == {trainer.last_checkpoint_file} and not os.path.exists(trainer.last_checkpoint_file)
    assert [p.name for p in (workdir / "saved").glob("*.pth")] == [os.path.basename(trainer.saved_model_file)]


def test_resume_refuses_a_checkpoint_of_other_settings(workdir):
    _, (train, _, _), _, trainer = prepare("DiffRec", config_dict=SMALL)
    trainer._save_last(train, 1)
    last = trainer.last_checkpoint_file
    _, _, _, other = prepare("DiffRec", config_dict={**SMALL, "noise_scale": 0.01})
    with pytest.raises(SettingError, match=r"noise_scale=0\.01.*differs from the resumed checkpoint's 0\.005"):
        other.resume_checkpoint(last)
    # settings that do not shape the model or its training may change
    _, _, _, same = prepare("DiffRec", config_dict={**SMALL, "eval_batch_users": 300})
    same.resume_checkpoint(last)
    assert same.start_epoch == 1


@pytest.mark.slow
def test_a_checkpoint_keeps_its_settings_when_a_default_changes_later(workdir, tmp_path, monkeypatch):
    """A saved model is rebuilt with the values it was trained with, not with a later release's defaults."""
    import recbole_diffrec.config as config

    settings = {**SMALL, "epochs": 1, "n_cate": 1, "item_emb_source": "none"}
    result = run("LDiffRec", config_dict=settings)  # beta_fixed: the L-DiffRec default, False
    changed = tmp_path / "later-defaults.yaml"
    changed.write_text("beta_fixed: True\nnoise_scale: 0.01\n")
    declared = config.model_yamls
    monkeypatch.setattr(config, "model_yamls", lambda cls: [*declared(cls), changed])
    _, _, fresh, _ = prepare("LDiffRec", config_dict=settings)
    assert fresh.settings["beta_fixed"] is True and fresh.settings["noise_scale"] == 0.01  # the new defaults
    _, _, model, _ = load(result["checkpoint"])
    assert model.settings["beta_fixed"] is False and model.settings["noise_scale"] == 0.005
    assert float(model.diffusion.betas[0]) == pytest.approx(0.005 * 0.005, rel=1e-9)
    assert evaluate(result["checkpoint"])["test"] == pytest.approx(result["test_result"], abs=1e-12)


@pytest.mark.slow
def test_evaluate_and_recommend_from_checkpoint(workdir):
    result = run("DiffRec", config_dict={**SMALL, "epochs": 2})
    metrics = evaluate(result["checkpoint"])
    assert metrics["test"] == pytest.approx(result["test_result"], abs=1e-12)
    recs = recommend(result["checkpoint"], ["196", "186"], k=5)
    assert set(recs) == {"196", "186"} and all(len(v) == 5 for v in recs.values())
    # a user's training items are never recommended back
    _, (train, _, _), model, _ = prepare("DiffRec", config_dict={**SMALL, "epochs": 1})
    ds = train._dataset
    u = ds.token2id(ds.uid_field, "196")
    seen = set(ds.id2token(ds.iid_field, ds.inter_feat[ds.iid_field][ds.inter_feat[ds.uid_field] == u].numpy()))
    assert not seen & set(recs["196"])
    with pytest.raises(SettingError, match="users='no-such-user': not a user of dataset 'ml-100k'"):
        recommend(result["checkpoint"], ["no-such-user"])


def test_nan_loss_stops_with_epoch_batch_and_hint(workdir, monkeypatch):
    _, (train, valid, _), model, trainer = prepare("DiffRec", config_dict=SMALL)
    real = model.calculate_loss
    calls = {"n": 0}

    def poisoned(interaction):
        calls["n"] += 1
        loss = real(interaction)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(model, "calculate_loss", poisoned)
    # resume_every 5: the one snapshot so far is the state before epoch 0 (its "epoch" field, the last
    # finished epoch, reads -1)
    with pytest.raises(FloatingPointError,
                       match=r"epoch 1, batch 1.*last good checkpoint \(the state before epoch 0\).*Hint"):
        trainer.fit(train, valid, saved=True, show_progress=False)
    state = torch.load(trainer.last_checkpoint_file, weights_only=True)  # kept, and from before the NaN
    assert state["epoch"] == -1 and all(torch.isfinite(v).all() for v in state["state_dict"].values()
                                       if v.is_floating_point())


def test_tdiffrec_refuses_dataset_without_time_field(workdir):
    with pytest.raises(ValueError, match="no time field.*TIME_FIELD"):
        prepare("TDiffRec", config_dict={**SMALL, "load_col": {"inter": ["user_id", "item_id"]}})


def test_no_interactions_after_filtering_is_refused(workdir):
    with pytest.raises(ValueError, match="no interactions"):
        prepare("DiffRec", config_dict={**SMALL, "user_inter_num_interval": "[100000,inf)"})


def test_tdiffrec_refuses_non_finite_timestamps(workdir):
    folder = workdir / "data" / "toy"
    folder.mkdir(parents=True)
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rng = np.random.default_rng(0)
    for n in range(300):
        rows.append(f"{n % 30}\t{rng.integers(0, 40)}\t{'inf' if n == 17 else n}")
    (folder / "toy.inter").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="1 rows have no valid 'timestamp' \\(first at line 19"):
        prepare("TDiffRec", "toy", None, {**SMALL, "data_path": str(workdir / "data"),
                                          "load_col": {"inter": ["user_id", "item_id", "timestamp"]}})


def test_users_only_in_test_are_refused(workdir):
    folder = workdir / "data" / "cold"
    folder.mkdir(parents=True)
    for split, rows in (("train", [(u, i) for u in range(20) for i in range(u % 7, u % 7 + 6)]),
                        ("valid", [(u, (u + 3) % 13) for u in range(20)]),
                        ("test", [(u, (u + 5) % 13) for u in range(20)] + [(99, 1)])):
        lines = ["user_id:token\titem_id:token"] + [f"{u}\t{i}" for u, i in rows]
        (folder / f"cold.{split}.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"1 users of the test split have no training interactions.*'99'"):
        prepare("DiffRec", "cold", None, {**SMALL, "data_path": str(workdir / "data"),
                                          "benchmark_filename": ["train", "valid", "test"],
                                          "load_col": {"inter": ["user_id", "item_id"]}})


@pytest.mark.slow
def test_evaluation_may_change_how_the_model_runs_not_its_weights(workdir):
    result = run("DiffRec", config_dict={**SMALL, "epochs": 2})  # steps 5
    checkpoint = result["checkpoint"]
    # a strided chain over all 5 steps is the full chain: the same metrics as the training run's
    assert evaluate(checkpoint, {"inference_steps": 5})["test"] == pytest.approx(result["test_result"], abs=1e-12)
    _, _, model, _ = load(checkpoint, {"inference_steps": 1})
    assert model.settings["inference_steps"] == 1 and model.settings["dims_dnn"] == [64]
    with pytest.raises(SettingError, match=r"^invalid setting dims_dnn=\[32\]: the checkpoint was trained with \[64\]"):
        evaluate(checkpoint, {"dims_dnn": [32]})
    assert evaluate(checkpoint, {"dims_dnn": [64]})["test"] == pytest.approx(result["test_result"], abs=1e-12)

    command = [sys.executable, "-m", "recbole_diffrec", "evaluate", checkpoint]
    proc = subprocess.run([*command, "--inference_steps=1", "--topk=[5]"], capture_output=True, text=True,
                          cwd=workdir, check=True)
    metrics = json.loads(proc.stdout)
    assert set(metrics["test"]) == {"recall@5", "mrr@5", "ndcg@5", "hit@5", "precision@5"}
    proc = subprocess.run([*command, "--dims_dnn=[32]"], capture_output=True, text=True, cwd=workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "recbole-diffrec evaluate: error: invalid setting dims_dnn=[32]: the checkpoint was trained with [64]")


def test_a_checkpoint_trained_with_a_shared_config_file_evaluates(workdir):
    # The training run's config file holds a key DiffRec does not declare (one file for several models):
    # evaluation rebuilds that run's settings without the unknown-setting check, and checks only what is
    # given now.
    shared = workdir / "shared.yaml"
    shared.write_text("reg_weight: 0.001\n")
    result = run("DiffRec", config_file_list=[str(shared)], config_dict={**SMALL, "epochs": 1})
    shared.unlink()  # evaluation needs only the checkpoint
    assert evaluate(result["checkpoint"])["test"] == pytest.approx(result["test_result"], abs=1e-12)
    with pytest.raises(SettingError, match=r"^invalid setting inference_step=1: .*did you mean inference_steps\?$"):
        evaluate(result["checkpoint"], {"inference_step": 1})
