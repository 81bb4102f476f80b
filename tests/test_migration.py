"""Settings renamed or given one meaning (settings.RENAMED, migrate_settings): a checkpoint written before
loads as the model that was trained; an old name given now is refused in one line that names the new one."""

import numpy as np
import pytest
import torch

from recbole_diffrec.pipeline import evaluate, run
from recbole_diffrec.saved_run import load
from recbole_diffrec.settings import SETTINGS_VERSION, SettingError, migrate_settings
from recbole_diffrec.training.checkpoint import save_checkpoint

DNR_TINY = {"show_progress": False, "epochs": 1, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "steps": 10,
            "inference_start": 4, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1,
            "train_precision": "float32"}
DIFFUREC_TINY = {"show_progress": False, "epochs": 1, "hidden_size": 32, "n_layers": 1, "n_heads": 2, "steps": 4,
                 "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 2048, "eval_step": 1, "train_precision": "float32"}


def _as_version_1(path, rewrite):
    """Rewrite a checkpoint as one written before settings_version existed; `rewrite` edits its settings."""
    state = torch.load(path, weights_only=True)
    assert state.pop("settings_version") == SETTINGS_VERSION
    for key in ("config", "external_config"):
        rewrite(state[key])
    old = str(path).replace(".pth", "-v1.pth")
    save_checkpoint(state, old)
    return old


def test_a_dnr_checkpoint_with_inference_step_loads_as_inference_start(workdir):
    result = run("DNR", config_dict=DNR_TINY)

    def rename(settings):
        settings["inference_step"] = settings.pop("inference_start")

    old = _as_version_1(result["checkpoint"], rename)
    _, _, model, _ = load(old)
    assert model.settings["inference_start"] == 4
    assert evaluate(old)["test"] == evaluate(result["checkpoint"])["test"]  # the same draws, the same step


def test_inference_step_given_to_dnr_now_is_refused_with_its_new_name(workdir):
    with pytest.raises(SettingError, match=r"^invalid setting inference_step=5: renamed inference_start \(the "
                                           r"same meaning\); set inference_start=5 instead$"):
        run("DNR", config_dict={**DNR_TINY, "inference_step": 5})
    config_file = workdir / "dnr.yaml"
    config_file.write_text("inference_step: 5\n")  # a config file would otherwise set it silently for nothing
    with pytest.raises(SettingError, match="renamed inference_start"):
        run("DNR", config_file_list=[str(config_file)], config_dict=DNR_TINY)


def test_a_diffurec_checkpoint_of_the_old_linear_schedule_keeps_its_betas(workdir):
    result = run("DiffuRec", config_dict={**DIFFUREC_TINY, "noise_schedule": "scaled-linear", "noise_scale": 0.1})

    def old_names(settings):
        if "noise_schedule" in settings:
            settings["noise_schedule"] = "linear"
        settings.pop("noise_min", None)
        settings.pop("noise_max", None)

    old = _as_version_1(result["checkpoint"], old_names)
    _, _, model, _ = load(old)
    assert model.settings["noise_schedule"] == "scaled-linear"
    k = 0.1 * 1000 / 4  # version 1: noise_scale x 1000 / T x [1e-4, 0.02], by hand
    want = [k * 0.0001 + (k * 0.02 - k * 0.0001) * i / 3 for i in range(4)]
    assert np.allclose(model.diffusion.betas.double().numpy(), want, rtol=1e-6)
    assert evaluate(old)["test"] == evaluate(result["checkpoint"])["test"]


def test_version_1_trunc_linear_ignored_the_scale_and_bounds():
    old = {"noise_schedule": "trunc-linear", "noise_scale": 0.005, "noise_min": 0.005, "noise_max": 0.01}
    assert migrate_settings("DiffRec", old, 1) == {"noise_schedule": "trunc-linear", "noise_scale": 1.0,
                                                   "noise_min": 0.0001, "noise_max": 0.02}
    off = {"noise_schedule": "trunc-linear", "noise_scale": 0.0, "noise_min": 0.005, "noise_max": 0.01}
    assert migrate_settings("DiffRec", off, 1) == off  # noise off stays off
    assert migrate_settings("DiffuRec", {"noise_schedule": "cosine", "noise_scale": 2.0}, 1) == {
        "noise_schedule": "cosine", "noise_scale": 2.0, "noise_min": 0.0001, "noise_max": 0.02}
    today = {"noise_schedule": "linear", "inference_step": 3}
    assert migrate_settings("DiffuRec", today, SETTINGS_VERSION) == today  # a current checkpoint is read as is
    assert migrate_settings("DiffRec", {"noise_schedule": "linear", "noise_scale": 0.1}, 1) == {
        "noise_schedule": "linear", "noise_scale": 0.1}
