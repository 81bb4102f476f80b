"""A saved run that restores itself: a checkpoint file turned back into the config, loaders, model and trainer
it was trained with (the settings its files declared, the data it recorded), with only the settings a saved
model may change ("may change on evaluate" in its yaml, and RecBole's evaluation settings) open to change."""

import os
from logging import getLogger

from recbole_diffrec.errors import CheckpointError
from recbole_diffrec import ownership
from recbole_diffrec.preparation import discard_run, prepare
from recbole_diffrec.registry import get_model
from recbole_diffrec.settings import SettingError, declared_settings, may_change, migrate_settings
from recbole_diffrec.training.checkpoint import (
    changed_settings,
    from_plain,
    load_checkpoint,
)


# RecBole's settings that decide the data a model is trained on (its fields and filters; the split is checked
# by its digest, so eval_args may change where it leaves the split alone, e.g. its mode)
DATA_KEYS = ("USER_ID_FIELD", "ITEM_ID_FIELD", "TIME_FIELD", "RATING_FIELD", "load_col", "benchmark_filename",
             "user_inter_num_interval", "item_inter_num_interval", "val_interval", "field_separator")


def load(checkpoint, overrides=None, check_data=None):
    """(config, (train, valid, test), model, trainer) with the checkpoint's weights loaded; `check_data`: see
    :func:`prepare`."""
    state = load_checkpoint(checkpoint)
    name = state["model"]
    if not state.get("model_class", "recbole_diffrec.").startswith("recbole_diffrec."):
        name = "recbole." + name
    version = state.get("settings_version", 1)  # names and meanings of settings change (settings.RENAMED)
    external = migrate_settings(state["model"], from_plain(state["external_config"]), version)
    saved = migrate_settings(state["model"], from_plain(state["config"]), version)
    dataset = saved["dataset"]
    # A model is rebuilt with the values it was trained with for every key its files declare (the trainer's
    # included), not with today's defaults: a default changed later (L-DiffRec's beta_fixed, say) must not
    # change a saved model. (Those values are plain data: numbers, strings, lists, None.)
    model_class = get_model(name)
    config_dict = {k: saved[k] for k in declared_settings(model_class) if k in saved}
    negatives = config_dict.get("train_neg_sample_args")
    if isinstance(negatives, dict) and negatives.get("distribution") == "none":
        config_dict["train_neg_sample_args"] = None  # RecBole's rewrite of None, which it refuses as a setting
    allowed = may_change(model_class, "evaluate")
    for key in DATA_KEYS:  # what decides which interactions the model saw: never an evaluation setting
        if key in (overrides or {}) and key in saved and from_plain(overrides[key]) != saved[key]:
            raise SettingError(key, overrides[key], f"the checkpoint was trained with {saved[key]!r}; the fields, "
                               "filters and split of its data are fixed by the checkpoint")
    changed = changed_settings(overrides or {}, config_dict, allowed)
    if changed:
        key = changed[0]
        raise SettingError(key, overrides[key], f"the checkpoint was trained with {config_dict[key]!r}; a saved "
                           f"model may change only {', '.join(sorted(allowed))} (and RecBole's "
                           "evaluation settings such as topk or metrics)")
    config_dict.update({k: v for k, v in external.items() if k not in ("model", "dataset")})
    trained_on = state.get("data")
    if trained_on is not None:  # the data's folder as an absolute path: any working folder finds it
        config_dict["data_path"] = os.path.dirname(trained_on["data_path"])
        unchecked = set(external) | {"data_path"}
    else:
        getLogger().warning(f"{checkpoint} predates data records: whether the data changed since training is not checked")
        unchecked = set(external)
    # caches the model derives from its split (GiffCF's graph, L-DiffRec's embeddings) go beside the
    # checkpoint, not into a saved/ folder of whatever folder the command runs in
    config_dict["checkpoint_dir"] = os.path.dirname(os.path.abspath(str(checkpoint)))
    unchecked = set(unchecked) | {"checkpoint_dir"}
    config_dict.update({"show_progress": False, **(overrides or {})})
    if {"topk", "metrics"} & set(overrides or {}) and "valid_metric" not in (overrides or {}):
        config_dict["valid_metric"] = _valid_metric_for(config_dict, saved)
    # The training run's own settings (some from its config files, which may hold other models' keys)
    # are not checked for unknown names again; the overrides given now are.
    with ownership.tracking() as created:
        config, loaders, model, trainer = prepare(name, dataset, None, config_dict, unchecked=unchecked,
                                                  trained_on=trained_on, check_data=check_data)
    try:
        trainer._load_model_state(state)
    except (RuntimeError, KeyError) as err:
        discard_run(created, trainer.run.writes_files)  # its log and tensorboard files: the load failed
        raise CheckpointError(f"checkpoint {checkpoint} does not fit a {name} built from its settings "
                              f"({' '.join(str(err).split())[:300]})") from None
    trainer.saved_model_file = str(checkpoint)
    model.eval()
    return config, loaders, model, trainer


def _valid_metric_for(config_dict, saved):
    """A validation metric that the evaluation's own topk and metrics compute (an evaluation selects
    nothing, but RecBole's settings must agree): the training run's, at the first cut-off if its own is gone."""
    topk = config_dict.get("topk", saved.get("topk"))
    topk = [topk] if isinstance(topk, int) else list(topk or [10])
    metrics = config_dict.get("metrics", saved.get("metrics")) or ["Recall"]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    name, _, k = str(saved.get("valid_metric", "")).partition("@")
    if name.lower() not in {m.lower() for m in metrics}:
        name = metrics[0]
    return f"{name}@{k if k.isdigit() and int(k) in topk else topk[0]}"
