"""What a checkpoint records of its data, and how the data now differs from it: the dataset's tokens and a
fingerprint of its interactions (:func:`data_record`), and the split's rows (:func:`split_record`), so that a
saved model is evaluated, served and resumed on its own data and split or refused."""

import hashlib
import os

import numpy as np

from recbole_diffrec.data.reading import column
from recbole_diffrec.errors import DataError


def data_record(dataset):
    """What a checkpoint records of the data it was trained on: the dataset's name and folder, its token
    mappings (RecBole numbers users and items by first appearance) and a fingerprint of the interactions
    as loaded (row order included: it decides the numbering and a random split)."""
    feat = dataset.inter_feat
    digest = hashlib.sha256()
    for field in (dataset.uid_field, dataset.iid_field, dataset.time_field):
        if field is not None and field in feat:
            digest.update(np.ascontiguousarray(column(feat, field)).tobytes())
    return {
        "dataset": dataset.dataset_name,
        "data_path": os.path.abspath(dataset.config["data_path"]),
        "rows": len(feat),
        "user_tokens": [str(t) for t in dataset.field2id_token[dataset.uid_field]],
        "item_tokens": [str(t) for t in dataset.field2id_token[dataset.iid_field]],
        "fingerprint": digest.hexdigest(),
    }


SPLITS = ("train", "valid", "test")


def split_dataset(loader):
    """The dataset a loader serves (None for a split RecBole made no loader for)."""
    return None if loader is None else getattr(loader, "_dataset", None)


def split_record(config, loaders):
    """What fixes a run's split: a digest of each split's (user, item, time) rows in order, the count of its
    rows, and the settings that decide it (the seed moves RecBole's random split, order RO)."""
    record = {"digests": {}, "rows": {}}
    for name, loader in zip(SPLITS, loaders):
        dataset = split_dataset(loader)
        digest = hashlib.sha256()
        rows = 0
        if dataset is not None:
            feat = dataset.inter_feat
            rows = len(feat)
            for field in (dataset.uid_field, dataset.iid_field, dataset.time_field):
                if field is not None and field in feat:
                    digest.update(np.ascontiguousarray(column(feat, field)).tobytes())
        record["digests"][name] = digest.hexdigest()
        record["rows"][name] = rows
    eval_args = config["eval_args"] or {}
    record["settings"] = {"seed": config["seed"], "order": str(eval_args.get("order")),
                          "split": str(eval_args.get("split")), "group_by": str(eval_args.get("group_by")),
                          "benchmark_filename": str(config["benchmark_filename"])}
    return record


def split_differences(saved, current):
    """How a run's split differs from a checkpoint's record of it (empty when it does not, or when the
    checkpoint predates split records)."""
    if not saved or not current or saved["digests"] == current["digests"]:
        return ""
    moved = [name for name in SPLITS if saved["digests"].get(name) != current["digests"].get(name)]
    causes = [f"{key} {current['settings'].get(key)} (trained with {value})"
              for key, value in saved.get("settings", {}).items() if current["settings"].get(key) != value]
    because = ("; it was split with other settings: " + ", ".join(causes)) if causes else \
        "; the split settings are the same, so the data's files changed (rows moved between splits)"
    counts = ", ".join(f"{n} {current['rows'][n]} rows now, {saved['rows'][n]} then" for n in moved)
    return (f"the {', '.join(moved)} interactions are not those the model was trained and selected with "
            f"({counts}){because}")


def empty_split_error(loaders, run):
    """A DataError for a validation or test split with no interactions, or fewer evaluation users than
    processes; None when both can be evaluated."""
    for name, loader in zip(SPLITS[1:], loaders[1:]):
        dataset = split_dataset(loader)
        if dataset is None or len(dataset.inter_feat) == 0:
            return DataError(f"the {name} split is empty (no user has an interaction left for it, e.g. every "
                             "user has too few interactions for eval_args' split); model selection and testing "
                             "need both: filter short histories out (user_inter_num_interval) or change eval_args")
        users = len(np.unique(column(dataset.inter_feat, dataset.uid_field)))
        if run is not None and run.distributed and users < run.world_size:
            return DataError(f"the {name} split has {users} users, fewer than the {run.world_size} processes "
                             "(nproc): every process evaluates a block of users; use fewer processes")
    return None


def data_differences(saved, current):
    """How the data now differs from a checkpoint's record of it (empty when it does not)."""
    if saved["fingerprint"] == current["fingerprint"] and saved["user_tokens"] == current["user_tokens"] \
            and saved["item_tokens"] == current["item_tokens"]:
        return split_differences(saved.get("splits"), current.get("splits"))
    if saved["dataset"] != current["dataset"]:
        return f"it was trained on dataset {saved['dataset']!r}, not {current['dataset']!r}"
    said = []
    if saved["rows"] != current["rows"]:
        said.append(f"{current['rows']} interactions now, {saved['rows']} then")
    for kind in ("user", "item"):
        before, now = set(saved[f"{kind}_tokens"]), set(current[f"{kind}_tokens"])
        if before != now:
            said.append(f"{len(now - before)} {kind}s added and {len(before - now)} removed")
    if not said:
        said.append("the same users, items and number of interactions, but the rows are in another order or "
                    "pair differently (RecBole numbers users and items by first appearance, so the model's ids "
                    "would point at other tokens)")
    return f"the data in {current['data_path']} changed since training: " + "; ".join(said)
