"""The Python API: prepare a run, run it, and reuse a saved checkpoint (load, evaluate, recommend).

    from recbole_diffrec.pipeline import run, evaluate, recommend
    result = run("DiffRec", "ml-100k", config_dict={"epochs": 20})
    evaluate(result["checkpoint"])
    recommend(result["checkpoint"], ["196", "186"], k=10)

Without RecBole's ``quick_start`` module, which imports ray. Preparing a run lives in
:mod:`recbole_diffrec.preparation`, restoring a saved one in :mod:`recbole_diffrec.saved_run`.
"""

import hashlib
import logging
import os
from logging import getLogger

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import set_color

from recbole_diffrec.errors import NonFiniteScores
from recbole_diffrec.data.sequences import known_sequences, latest_items, training_history
from recbole_diffrec.preparation import DEFAULT_DATASET, prepare
from recbole_diffrec.saved_run import load
from recbole_diffrec.settings import SettingError

__all__ = ["DEFAULT_DATASET", "prepare", "run", "load", "evaluate", "recommend", "known_sequences", "latest_items",
           "training_history"]


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
    if bool(torch.isnan(scores).any() | torch.isposinf(scores).any()):
        raise NonFiniteScores(f"{type(model).__name__} scored items NaN or +inf for these users: its weights or "
                              "settings give no ranking, so nothing is recommended")
    scores = scores.masked_fill(torch.as_tensor(found["seen"], device=scores.device), float("-inf"))
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return {t: dataset.id2token(dataset.iid_field, row).tolist() for t, row in zip(tokens, top)}
