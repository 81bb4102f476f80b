"""The Python API: prepare a run, run it, and reuse a saved checkpoint (load, evaluate, recommend).

    from recbole_diffrec.pipeline import run, evaluate, recommend
    result = run("DiffRec", "ml-100k", config_dict={"epochs": 20})
    evaluate(result["checkpoint"])
    recommend(result["checkpoint"], ["196", "186"], k=10)

Without RecBole's ``quick_start`` module, which imports ray.
"""

import logging
from logging import getLogger

import torch
from recbole.data.interaction import Interaction
from recbole.utils import init_logger, init_seed, set_color

from recbole_diffrec.config import Config
from recbole_diffrec.data.loaders import create_dataset, data_preparation
from recbole_diffrec.registry import get_model, get_trainer, is_ours
from recbole_diffrec.settings import SettingError, declared_settings, may_change
from recbole_diffrec.training.checkpoint import changed_settings, from_plain, load_checkpoint

DEFAULT_DATASET = "ml-100k"  # bundled in the recbole wheel: runs with no network


def prepare(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, unchecked=()):
    """Config, dataset, loaders, model and trainer, ready to fit (settings checked before data loads;
    `unchecked`: see :class:`~recbole_diffrec.config.Config`)."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    unchecked=unchecked)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    model_class = config.model_class
    ours = is_ours(model_class)
    dataset_obj = create_dataset(config, model_class.validate_dataset if ours else None)
    logger.info(dataset_obj)
    train_data, valid_data, test_data = data_preparation(config, dataset_obj, ours)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_obj = model_class(config, train_data._dataset).to(config["device"])
    logger.info(model_obj)
    trainer = get_trainer(config, model_class)(config, model_obj)
    return config, (train_data, valid_data, test_data), model_obj, trainer


def run(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, saved=True,
        resume_file=None):
    """Train with early stopping on validation, then test the best model.

    Returns a dict: model, dataset, best_valid_score, best_valid_result, test_result, checkpoint, log_file.
    """
    config, (train_data, valid_data, test_data), _, trainer = prepare(model, dataset, config_file_list, config_dict)
    logger = getLogger()
    if resume_file:
        trainer.resume_checkpoint(resume_file)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    log_file = next((h.baseFilename for h in logging.getLogger().handlers if hasattr(h, "baseFilename")), None)
    best_valid_result = {k: float(v) for k, v in (best_valid_result or {}).items()}
    test_result = {k: float(v) for k, v in test_result.items()}
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": best_valid_score,
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "checkpoint": trainer.saved_model_file if saved else None,
        "log_file": log_file,
    }


def load(checkpoint, overrides=None):
    """(config, (train, valid, test), model, trainer) with the checkpoint's weights loaded."""
    state = load_checkpoint(checkpoint)
    name = state["model"]
    if not state.get("model_class", "recbole_diffrec.").startswith("recbole_diffrec."):
        name = "recbole." + name
    external = from_plain(state["external_config"])
    saved = from_plain(state["config"])
    dataset = saved["dataset"]
    # A model is rebuilt with the values it was trained with for every key its files declare (the trainer's
    # included), not with today's defaults: a default changed later (L-DiffRec's beta_fixed, say) must not
    # change a saved model. (Those values are plain data: numbers, strings, lists, None.)
    model_class = get_model(name)
    config_dict = {k: saved[k] for k in declared_settings(model_class) if k in saved}
    allowed = may_change(model_class, "evaluate")
    changed = changed_settings(overrides or {}, config_dict, allowed)
    if changed:
        key = changed[0]
        raise SettingError(key, overrides[key], f"the checkpoint was trained with {config_dict[key]!r}; a saved "
                           f"model may change only {', '.join(sorted(allowed))} (and RecBole's "
                           "evaluation settings such as topk or metrics)")
    config_dict.update({k: v for k, v in external.items() if k not in ("model", "dataset")})
    config_dict.update({"show_progress": False, **(overrides or {})})
    # The training run's own settings (some from its config files, which may hold other models' keys)
    # are not checked for unknown names again; the overrides given now are.
    config, loaders, model, trainer = prepare(name, dataset, None, config_dict, unchecked=set(external))
    trainer._load_model_state(state)
    trainer.saved_model_file = str(checkpoint)
    model.eval()
    return config, loaders, model, trainer


def evaluate(checkpoint, overrides=None):
    """Test (and validation) metrics of a saved checkpoint."""
    _, (_, valid, test), _, trainer = load(checkpoint, overrides)
    return {
        "valid": {k: float(v) for k, v in trainer.evaluate(valid, load_best_model=False).items()},
        "test": {k: float(v) for k, v in trainer.evaluate(test, load_best_model=False).items()},
    }


@torch.no_grad()
def recommend(checkpoint, user_tokens, k=10, overrides=None):
    """{user token: [item tokens]}: the top-k items not in the user's training history."""
    _, (train, _, _), model, _ = load(checkpoint, overrides)
    dataset = train._dataset
    uid, iid = dataset.uid_field, dataset.iid_field
    tokens = [str(t) for t in user_tokens]
    unknown = [t for t in tokens if t not in dataset.field2token_id[uid]]
    if unknown:
        raise ValueError(f"user tokens {unknown} are not in dataset {dataset.dataset_name!r}")
    users = torch.as_tensor(dataset.token2id(uid, tokens), device=model.device).reshape(-1)
    scores = model.full_sort_predict(Interaction({uid: users})).reshape(len(users), -1)
    seen = model.history.dense(users) > 0 if hasattr(model, "history") else torch.zeros_like(scores, dtype=bool)
    scores = scores.masked_fill(seen, float("-inf"))
    scores[:, 0] = float("-inf")
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return {t: dataset.id2token(iid, row).tolist() for t, row in zip(tokens, top)}
