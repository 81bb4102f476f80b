"""Evaluating an exponential moving average of the weights (ema_decay)."""

import numpy as np
import pytest
import torch

from recbole_diffrec.pipeline import evaluate, prepare, run
from recbole_diffrec.settings import SettingError
from recbole_diffrec.training.averaging import WeightAverage
from recbole_diffrec.training.checkpoint import load_checkpoint, save_checkpoint

SMALL = {"show_progress": False, "steps": 5, "dims_dnn": [64], "epochs": 3, "eval_step": 1, "stopping_step": 10,
         "eval_batch_users": 1000, "ema_decay": 0.8}


def bias_corrected_average(weights, decay):
    """sum_i decay^(t-i) w_i / sum_i decay^(t-i), written out directly."""
    t = len(weights)
    factors = np.array([decay ** (t - 1 - i) for i in range(t)])
    return np.tensordot(factors, np.stack(weights), axes=1) / factors.sum()


def test_the_average_is_the_bias_corrected_exponential_average():
    rng = np.random.default_rng(0)
    param = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    average = WeightAverage([param], 0.9)
    seen = []
    average.swap()  # into the epoch: the model holds the optimizer's weights
    for _ in range(7):
        with torch.no_grad():
            param.copy_(torch.from_numpy(rng.normal(size=(3, 2))))
        seen.append(param.detach().numpy().copy())
        average.update()
        # after the first update the average is exactly the first weights: no pull towards the initial zeros
        np.testing.assert_allclose(average.held[0].numpy(), bias_corrected_average(seen, 0.9), rtol=1e-12)
    optimizer_weights = param.detach().clone()
    average.swap()  # out of the epoch: the model holds the average, the optimizer's weights are kept
    np.testing.assert_allclose(param.detach().numpy(), bias_corrected_average(seen, 0.9), rtol=1e-12)
    assert torch.equal(average.held[0], optimizer_weights)


def test_training_evaluates_and_saves_the_average_of_the_optimizer_weights(workdir):
    _, (train, valid, test), model, trainer = prepare("DiffRec", config_dict=SMALL)
    average = trainer.weight_average
    seen, update = [], average.update

    def record_then_update():
        seen.append([p.detach().double().numpy().copy() for p in average.params])
        update()

    average.update = record_then_update
    validations, valid_epoch = [], trainer._valid_epoch

    def record_validation(*args, **kwargs):
        validations.append((*valid_epoch(*args, **kwargs), {k: v.clone() for k, v in model.state_dict().items()}))
        return validations[-1][:2]

    trainer._valid_epoch = record_validation
    trainer.fit(train, valid, saved=True, show_progress=False)
    assert len(seen) == 3 * len(train)  # one update per optimizer step
    for param, history in zip(average.params, zip(*seen)):
        np.testing.assert_allclose(param.detach().numpy(), bias_corrected_average(list(history), 0.8),
                                   rtol=1e-5, atol=1e-6)
    # the optimizer's own last weights are kept beside, and differ from the average
    assert not np.allclose(average.held[0].numpy(), average.params[0].detach().numpy())
    best = load_checkpoint(trainer.saved_model_file)
    assert best["weight_average"]["steps"] == 3 * len(train) and "held" in best["weight_average"]
    # the average is what was validated: evaluating the model as it stands reproduces the last validation
    assert len(validations) == 3
    assert dict(trainer.evaluate(valid, load_best_model=False)) == dict(validations[-1][1])
    # and the best checkpoint holds the average validated best (an equal later score replaces it)
    scores = [score for score, _, _ in validations]
    best_epoch = max(i for i, score in enumerate(scores) if score == max(scores))
    assert best["epoch"] == best_epoch
    for name, tensor in validations[best_epoch][2].items():
        assert torch.equal(best["state_dict"][name], tensor)


def test_with_decay_0_nothing_is_averaged(workdir):
    _, (train, valid, _), model, trainer = prepare("DiffRec", config_dict={**SMALL, "ema_decay": 0.0})
    assert trainer.weight_average is None
    trainer.fit(train, valid, saved=True, show_progress=False)
    assert "weight_average" not in load_checkpoint(trainer.saved_model_file)


def test_a_checkpoint_of_an_averaged_run_evaluates_as_the_run_tested(workdir):
    result = run("DiffRec", config_dict=SMALL)
    assert evaluate(result["checkpoint"])["test"] == pytest.approx(result["test_result"], abs=1e-12)


@pytest.mark.parametrize(("value", "allowed"), [(1.0, "must be < 1"), (-0.1, "must be >= 0"),
                                                ("high", "must be a number")])
def test_a_bad_decay_is_refused_before_data_loads(workdir, value, allowed):
    with pytest.raises(SettingError, match=rf"ema_decay={value!r}: {allowed}"):
        prepare("DiffRec", dataset="no-such-dataset", config_dict={**SMALL, "ema_decay": value})


def test_resuming_a_run_saved_before_averaging_existed_with_averaging_is_refused(workdir, tmp_path):
    _, (train, _, _), _, trainer = prepare("DiffRec", config_dict={**SMALL, "ema_decay": 0.0})
    trainer._save_last(train, 1)
    old = load_checkpoint(trainer.last_checkpoint_file)
    del old["config"]["ema_decay"]  # as written by a release without the setting
    path = tmp_path / "old.pth"
    save_checkpoint(old, path)
    _, _, _, resumed = prepare("DiffRec", config_dict=SMALL)
    with pytest.raises(SettingError, match=r"ema_decay=0\.8: the resumed checkpoint .* without weight averaging"):
        resumed.resume_checkpoint(path)


def test_recboles_models_take_the_trainers_settings_too(workdir):
    """ema_decay and resume_every are the trainer's: a RecBole model (BPR) averages its weights, keeps
    the average in its checkpoint, and writes and then removes its resume snapshot."""
    import os

    settings = {"show_progress": False, "epochs": 3, "eval_step": 1, "stopping_step": 10, "ema_decay": 0.8,
                "resume_every": 1}
    _, (train, valid, test), model, trainer = prepare("BPR", config_dict=settings)
    assert trainer.weight_average is not None
    seen = []
    trainer.optimizer.register_step_post_hook(
        lambda *_: seen.append([p.detach().clone() for p in trainer.weight_average.params]))
    snapshots = []
    save_last = trainer._save_last
    trainer._save_last = lambda data, epoch: snapshots.append(epoch) or save_last(data, epoch)
    trainer.fit(train, valid, saved=True, show_progress=False)
    assert snapshots == [0, 1, 2]
    averaged = [bias_corrected_average([s[i].numpy() for s in seen], 0.8) for i in range(len(seen[-1]))]
    for p, want in zip(model.parameters(), averaged):  # between epochs the model holds the average
        np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-4, atol=1e-6)
    state = load_checkpoint(trainer.saved_model_file)
    assert "weight_average" in state
    assert not os.path.exists(trainer.last_checkpoint_file)  # written before each epoch, removed at the end
    with pytest.raises(SettingError, match="^invalid setting ema_decay=1.0: must be < 1$"):
        prepare("BPR", config_dict={**settings, "ema_decay": 1.0})


def test_recboles_models_train_in_bfloat16_on_the_cpu_only_when_asked(workdir):
    _, _, _, default = prepare("BPR", config_dict={"show_progress": False, "epochs": 1})
    assert not default.enable_amp  # auto: float32, as RecBole trains
    _, _, _, bf16 = prepare("BPR", config_dict={"show_progress": False, "epochs": 1, "train_precision": "bfloat16"})
    assert bf16.enable_amp
