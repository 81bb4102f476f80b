"""The Python API: prepare a run, run it, and reuse a saved checkpoint (load, evaluate, recommend).

    from recbole_diffrec.pipeline import run, evaluate, recommend
    result = run("DiffRec", "ml-100k", config_dict={"epochs": 20})
    evaluate(result["checkpoint"])
    recommend(result["checkpoint"], ["196", "186"], k=10)

Without RecBole's ``quick_start`` module, which imports ray.
"""

import contextlib
import hashlib
import logging
import os
from logging import getLogger

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import ModelType, init_logger, init_seed, set_color

from recbole_diffrec.config import Config
from recbole_diffrec.data.loaders import (
    create_dataset,
    data_differences,
    data_preparation,
    data_record,
)
from recbole_diffrec.errors import CheckpointError, UserError
from recbole_diffrec.registry import get_model, get_trainer, is_ours
from recbole_diffrec.settings import SettingError, declared_settings, may_change
from recbole_diffrec.training.checkpoint import (
    changed_settings,
    from_plain,
    load_checkpoint,
)

DEFAULT_DATASET = "ml-100k"  # bundled in the recbole wheel: runs with no network


def prepare(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, unchecked=(),
            resume_file=None, trained_on=None, check_data=None):
    """Config, dataset, loaders, model and trainer, ready to fit. Every check runs before training, and a
    user's error (:class:`~recbole_diffrec.errors.UserError`) leaves nothing behind: settings before the data
    loads, then the data, then, with `resume_file`, the checkpoint to continue (its model, settings and
    data), or with `trained_on` (a checkpoint's record of its data) that the data is still the same;
    `check_data(train, valid, test)` adds a check of the loaders before the model is built.
    `unchecked`: see :class:`~recbole_diffrec.config.Config`."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    unchecked=unchecked)
    with discarded_on_error(config):
        init_seed(config["seed"], config["reproducibility"])
        start_logging(config)
        logger = getLogger()
        model_class = config.model_class
        ours = is_ours(model_class)
        dataset_obj = create_dataset(config, model_class.validate_dataset if ours else None)
        logger.info(dataset_obj)
        check_cutoffs(config, dataset_obj)
        record = data_record(dataset_obj)
        if trained_on is not None:
            changed = data_differences(trained_on, record)
            if changed:
                raise CheckpointError(f"refusing to use the checkpoint: {changed}; evaluate it on the data it was "
                                      "trained on, or train a new model")
        # recbole-diffrec's per-user loaders serve its general models; its sequential ones take RecBole's
        train_data, valid_data, test_data = data_preparation(config, dataset_obj,
                                                             ours and model_class.type == ModelType.GENERAL)
        if check_data is not None:
            check_data(train_data, valid_data, test_data)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model_obj = model_class(config, train_data._dataset).to(config["device"])
        logger.info(model_obj)
        trainer = get_trainer(config, model_class)(config, model_obj)
        trainer.data_record = record
        if resume_file:
            trainer.resume_checkpoint(resume_file)
    return config, (train_data, valid_data, test_data), model_obj, trainer


def check_cutoffs(config, dataset):
    """Every top-k cut-off ranks at most the dataset's items (RecBole's padding item aside)."""
    topk = config["topk"]
    cutoffs = [topk] if isinstance(topk, int) else list(topk or [])
    items = dataset.item_num - 1
    if cutoffs and max(cutoffs) > items:
        raise SettingError("topk", topk, f"every cut-off must be at most {items}, the items of dataset "
                           f"{dataset.dataset_name!r}")


_RUN_HANDLERS = []  # the log handlers RecBole's init_logger added for the latest run of this process


def start_logging(config):
    """RecBole's logging for this run: its own log file and console output. RecBole's ``init_logger`` calls
    ``logging.basicConfig``, which does nothing once the root logger has a handler, so a second run in one
    process (a tuning trial, a notebook) would log into no file at all. The previous run's handlers are
    closed and removed first; handlers installed by others stay."""
    root = logging.getLogger()
    for handler in _RUN_HANDLERS:
        root.removeHandler(handler)
        handler.close()
    others = list(root.handlers)
    for handler in others:
        root.removeHandler(handler)
    try:
        init_logger(config)
    finally:
        _RUN_HANDLERS[:] = list(root.handlers)
        for handler in others:
            root.addHandler(handler)


def _files(folder):
    return {os.path.join(root, name) for root, _, names in os.walk(folder) for name in names}


@contextlib.contextmanager
def discarded_on_error(config):
    """On a user's error inside, remove what the run wrote: the files that appeared in RecBole's log folders
    and the checkpoint folder (its log file), and those folders where it made them. In a distributed run
    rank 0 alone cleans up (the ranks share the folders), and a file or folder already gone is no error."""
    folders = ("./log/", "./log_tensorboard/", config["checkpoint_dir"])  # RecBole's log folders are fixed
    cleans = not config["local_rank"]
    existed = {path: _files(path) if os.path.isdir(path) else None for path in folders}
    try:
        yield
    except UserError:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.FileHandler):
                handler.close()
                root.removeHandler(handler)
        for path, before in existed.items() if cleans else ():
            if not os.path.isdir(path):
                continue
            for new in _files(path) - (before or set()):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(new)
            for folder, _, _ in sorted(os.walk(path), reverse=True):  # deepest first; folders left empty go
                with contextlib.suppress(FileNotFoundError, OSError):
                    if not os.listdir(folder) and (before is None or
                                                   os.path.normpath(folder) != os.path.normpath(path)):
                        os.rmdir(folder)
        raise


def run(model="DiffRec", dataset=DEFAULT_DATASET, config_file_list=None, config_dict=None, saved=True,
        resume_file=None):
    """Train with early stopping on validation, then test the best model.

    Returns a dict: model, dataset, best_valid_score, best_valid_result, test_result, checkpoint, log_file.
    """
    config, (train_data, valid_data, test_data), _, trainer = prepare(model, dataset, config_file_list, config_dict,
                                                                      resume_file=resume_file)
    logger = getLogger()
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


def load(checkpoint, overrides=None, check_data=None):
    """(config, (train, valid, test), model, trainer) with the checkpoint's weights loaded; `check_data`: see
    :func:`prepare`."""
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
    negatives = config_dict.get("train_neg_sample_args")
    if isinstance(negatives, dict) and negatives.get("distribution") == "none":
        config_dict["train_neg_sample_args"] = None  # RecBole's rewrite of None, which it refuses as a setting
    allowed = may_change(model_class, "evaluate")
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
    config_dict.update({"show_progress": False, **(overrides or {})})
    if {"topk", "metrics"} & set(overrides or {}) and "valid_metric" not in (overrides or {}):
        config_dict["valid_metric"] = _valid_metric_for(config_dict, saved)
    # The training run's own settings (some from its config files, which may hold other models' keys)
    # are not checked for unknown names again; the overrides given now are.
    config, loaders, model, trainer = prepare(name, dataset, None, config_dict, unchecked=unchecked,
                                              trained_on=trained_on, check_data=check_data)
    try:
        trainer._load_model_state(state)
    except (RuntimeError, KeyError) as err:
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


def evaluate(checkpoint, overrides=None):
    """Test (and validation) metrics of a saved checkpoint."""
    _, (_, valid, test), _, trainer = load(checkpoint, overrides)
    return {
        "valid": {k: float(v) for k, v in trainer.evaluate(valid, load_best_model=False).items()},
        "test": {k: float(v) for k, v in trainer.evaluate(test, load_best_model=False).items()},
    }


@torch.no_grad()
def recommend(checkpoint, user_tokens, k=10, overrides=None):
    """{user token: [item tokens]}: the top-k items the user has not interacted with, for any model (the
    history comes from the dataset, not from the model). A general model scores from what it learned of the
    user and its training items are masked; a sequential model reads the user's whole known sequence (every
    split, in time order; its latest MAX_ITEM_LIST_LENGTH items) and predicts the item after it, and every
    item of that sequence is masked. `k` must lie in [1, items the user has not seen]; both are checked before
    the model is built."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SettingError("k", k, "must be an integer >= 1")
    if isinstance(user_tokens, (str, bytes, int, np.integer)):  # one user, not the characters of a token
        user_tokens = [user_tokens.decode() if isinstance(user_tokens, bytes) else user_tokens]
    tokens = [str(t) for t in user_tokens]
    if not tokens:
        raise SettingError("users", tokens, "name at least one user token")
    found = {}

    def check_request(train, valid, test):
        dataset = train._dataset
        known = dataset.field2token_id[dataset.uid_field]
        unknown = [t for t in tokens if t not in known or known[t] == 0]  # 0 is RecBole's padding
        if unknown:
            raise SettingError("users", unknown[0], f"not a user of dataset {dataset.dataset_name!r} "
                               f"({len(known) - 1} users, tokens as in its .inter file)")
        found["ids"] = ids = dataset.token2id(dataset.uid_field, tokens).reshape(-1)
        if isinstance(dataset, SequentialDataset):  # the dataset RecBole builds for sequential models
            found["sequences"] = sequences = known_sequences((train, valid, test), ids)
            empty = [t for t, sequence in zip(tokens, sequences) if not sequence]
            if empty:
                raise SettingError("users", empty[0], "has a single interaction: a sequential model needs a "
                                   "history to predict from")
            seen = np.zeros((len(ids), dataset.item_num), dtype=bool)
            for row, sequence in enumerate(sequences):
                seen[row, sequence] = True
            found["seen"] = seen
        else:
            found["seen"] = seen = training_history(train, ids)
        seen[:, 0] = True  # the padding item is never recommended
        unseen = (~seen).sum(1)
        if k > unseen.min():
            raise SettingError("k", k, f"must be at most {int(unseen.min())}, the items user "
                               f"{tokens[int(unseen.argmin())]} has not seen")

    _, (train, _, _), model, _ = load(checkpoint, overrides, check_data=check_request)
    dataset = train._dataset
    users = torch.as_tensor(found["ids"], device=model.device)
    request = {dataset.uid_field: users}
    if "sequences" in found:
        request.update(latest_items(found["sequences"], model.max_seq_length, dataset, model.device))
    # One user at a time, torch's generator seeded by the checkpoint's name and the user's token: a model that
    # draws noise at inference (DiffuRec, DNR, DiffRec with sampling_noise) gives a user the same list whoever
    # else is in the request.
    rows = []
    for row, token in enumerate(tokens):
        with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
            digest = hashlib.sha256(f"{os.path.basename(str(checkpoint))}\0{token}".encode()).digest()
            torch.manual_seed(int.from_bytes(digest[:8], "little") % 2 ** 63)
            one = {key: value[row:row + 1] for key, value in request.items()}
            rows.append(model.full_sort_predict(Interaction(one)).reshape(1, -1))
    scores = torch.cat(rows)
    scores = scores.masked_fill(torch.as_tensor(found["seen"], device=scores.device), float("-inf"))
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return {t: dataset.id2token(dataset.iid_field, row).tolist() for t, row in zip(tokens, top)}


def known_sequences(splits, user_ids):
    """Sequential datasets: each user's whole sequence of item ids in time order, rebuilt from the splits'
    rows (RecBole's rows are (latest history, next item) pairs): the history of the user's first row, then
    every row's next item. A user with no row (a single interaction) has an empty sequence."""
    rows = []
    for loader in splits:
        feat = loader._dataset.inter_feat
        data = loader._dataset
        rows.append((feat[data.uid_field].numpy(), feat[data.iid_field].numpy(),
                     feat[getattr(data, f"{data.iid_field}_list_field")].numpy(),
                     feat[data.item_list_length_field].numpy()))
    sequences = []
    for user in np.asarray(user_ids).tolist():
        targets, first = [], None
        for users, items, lists, lengths in rows:  # the splits in time order: train, valid, test
            mine = np.flatnonzero(users == user)
            if len(mine) and first is None:
                first = lists[mine[0], :lengths[mine[0]]].tolist()
            targets += items[mine].tolist()
        sequences.append((first or []) + targets)
    return sequences


def latest_items(sequences, max_length, dataset, device):
    """The item-list fields of a sequential model's input: each sequence's latest max_length items, padded
    on the right as RecBole pads them."""
    lists = torch.zeros(len(sequences), max_length, dtype=torch.long)
    lengths = torch.zeros(len(sequences), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        latest = sequence[-max_length:]
        lists[row, :len(latest)] = torch.as_tensor(latest, dtype=torch.long)
        lengths[row] = len(latest)
    return {getattr(dataset, f"{dataset.iid_field}_list_field"): lists.to(device),
            dataset.item_list_length_field: lengths.to(device)}


def training_history(train, user_ids):
    """Boolean (len(user_ids), items) mask of each user's items in the training split."""
    dataset = train._dataset
    feat = dataset.inter_feat
    users, items = feat[dataset.uid_field].numpy(), feat[dataset.iid_field].numpy()
    unique, inverse = np.unique(np.asarray(user_ids), return_inverse=True)
    lookup = np.full(dataset.user_num, -1)
    lookup[unique] = np.arange(len(unique))
    rows = lookup[users]
    keep = rows >= 0
    mask = np.zeros((len(unique), dataset.item_num), dtype=bool)
    mask[rows[keep], items[keep]] = True
    return mask[inverse.reshape(-1)]
