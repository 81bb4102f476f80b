"""Data preparation: RecBole's datasets and loaders, with a per-user training loader and cached full-sort
evaluation batches for recbole-diffrec's models."""

import contextlib
import hashlib
import os
from logging import getLogger

import numpy as np
import pandas as pd
import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import (
    AbstractDataLoader,
    FullSortEvalDataLoader,
    UserDataLoader,
)
from recbole.data.interaction import Interaction
from recbole.data.dataset import Dataset as RecBoleDataset
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import FeatureSource, FeatureType

from recbole_diffrec.data.artifacts import attach_artifacts
from recbole_diffrec.errors import DataError, UserError
from recbole_diffrec.run_context import ConfigView, RunContext
from recbole_diffrec.settings import SettingsReader


class TrainingUserLoader(UserDataLoader):
    """Yields batches of user ids: each user with training interactions once per epoch, shuffled
    (the paper's epoch). The model builds the batch's rows on its device from these ids."""

    def __init__(self, config, dataset, sampler, shuffle=True):
        self.logger = getLogger()
        self.uid_field = dataset.uid_field
        users = np.unique(dataset.inter_feat[dataset.uid_field].numpy())
        self.user_list = Interaction({self.uid_field: torch.from_numpy(users)})
        self.sample_size = len(self.user_list)
        AbstractDataLoader.__init__(self, config, dataset, sampler, shuffle=shuffle)


class CachedFullSortEvalDataLoader(FullSortEvalDataLoader):
    """RecBole's full-sort evaluation loader, with each batch built once.

    RecBole rebuilds every batch at every validation with a Python loop over its users; the evaluation
    users and their batches never change, so ours builds a batch once, with one concatenation, and hands
    out the same tensors afterwards (the evaluation only reads them). What a batch holds is RecBole's:
    the users, (row, item) of their history to mask, (row, item) of their positives.
    """

    def __init__(self, config, dataset, sampler, shuffle=False, run=None, batch_users=None):
        """Built as in one process (every user, batches of `batch_users` users); in a distributed run (`run`, a
        :class:`~recbole_diffrec.run_context.RunContext`) each rank then evaluates one contiguous block of the
        users, without the padding RecBole's DistributedSampler adds (it repeats users to even out the ranks,
        which moves the metrics); the trainer gathers the blocks in rank order, so the metrics are a single
        process's."""
        overrides = {"single_spec": True}
        if batch_users is not None:
            overrides["eval_batch_size"] = batch_users * dataset.item_num
        super().__init__(ConfigView(config, **overrides), dataset, sampler, shuffle=shuffle)
        self.shard = (run or RunContext()).shard(self.sample_size)

    def __iter__(self):
        if self.shard is None:
            return super().__iter__()
        low, high = self.shard
        return (self.collate_fn(np.arange(start, min(start + self.step, high))) for start in range(low, high, self.step))

    def __len__(self):
        if self.shard is None:
            return super().__len__()
        low, high = self.shard
        return -(-(high - low) // self.step)

    def collate_fn(self, index):
        index = np.asarray(index)
        key = index.tobytes()  # the batch's positions; no Python loop over them
        cache = self.__dict__.setdefault("_batches", {})
        if key not in cache:
            cache[key] = self._build_batch(index)
        return cache[key]

    def _build_batch(self, index):
        if self.is_sequential:
            return super().collate_fn(index)
        user_df = self.user_df[index]
        uids = user_df[self.uid_field].numpy()

        def rows_and_items(per_user):
            lengths = torch.tensor([len(items) for items in per_user], dtype=torch.int64)
            rows = torch.repeat_interleave(torch.arange(len(per_user)), lengths)
            return rows, torch.cat(list(per_user))

        return (user_df, rows_and_items(self.uid2history_item[uids]),
                *rows_and_items(self.uid2positive_item[uids]))


def check_data_files(config):
    """The dataset's folder and interaction files exist (before RecBole, which would try to download a
    missing dataset it knows by name)."""
    name, folder = config["dataset"], os.path.abspath(config["data_path"])
    parts = config["benchmark_filename"] or [None]
    files = [os.path.join(folder, f"{name}.{part}.inter" if part else f"{name}.inter") for part in parts]
    if not os.path.isdir(folder):
        raise DataError(f"dataset {name!r}: no folder {folder}; put {os.path.basename(files[0])} there (RecBole's "
                        "atomic format) or set data_path to the folder that holds it (only ml-100k ships with RecBole)")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(f"dataset {name!r}: no file {missing[0]}; a dataset needs {', '.join(map(os.path.basename, files))}")
    getLogger().info(f"dataset {name!r}: reading {', '.join(files)}")
    separator = (config["field_separator"] or "\t").encode()
    for path in files:
        check_row_widths(path, separator)
    boms = []
    for path in files:
        with open(path, "rb") as handle:
            boms.append(handle.read(3) == b"\xef\xbb\xbf")
    if any(boms) and (config["encoding"] or "utf-8").lower().replace("_", "-") in ("utf-8", "utf8"):
        # a byte-order mark (spreadsheet programs write one) would otherwise end up in the first column's name
        config["encoding"] = "utf-8-sig"
        getLogger().info(f"dataset {name!r}: a .inter file starts with a UTF-8 byte-order mark; read as utf-8-sig")


def check_row_widths(path, separator=b"\t"):
    """No row of an atomic file has more fields than its header: pandas would silently shift such a row's
    columns (an extra separator in `u<TAB>it<TAB>242<TAB>881250949` makes `it` the item and 242 the time)."""
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    width = lines[0].count(separator)
    for number, line in enumerate(lines[1:], start=2):
        if line.count(separator) > width:
            shown = line.decode("utf-8", "replace").rstrip("\r")[:80]
            raise DataError(f"{path}, line {number}: {line.count(separator) + 1} fields where the header has "
                            f"{width + 1} ({shown!r}); RecBole would shift its columns silently. Fix the row")


_READ_FIELDS = ("uid_field", "iid_field", "time_field")


@contextlib.contextmanager
def refusing_missing_values():
    """While RecBole loads a dataset: an interaction file whose user, item or time field has a missing or
    non-finite value is refused with the row count and the first line, before RecBole's fill would give the
    row a padding token or the column's mean (which moves the time-ordered split and the recency weights)."""
    original = RecBoleDataset._load_feat

    def load_feat(self, filepath, source):
        frame = original(self, filepath, source)
        if frame is not None and source == FeatureSource.INTERACTION:
            for attribute in _READ_FIELDS:
                field = getattr(self, attribute, None)
                if field is None or field not in frame:
                    continue
                values = frame[field]
                bad = np.array(values.isna().to_numpy(), dtype=bool)
                if pd.api.types.is_numeric_dtype(values):
                    bad |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        f"{filepath}: {int(bad.sum())} rows have no valid {field!r} (first at line {first + 2}, "
                        f"counting the header as line 1); RecBole would fill them with "
                        f"{'the column mean' if pd.api.types.is_numeric_dtype(values) else 'a padding id'}, silently. "
                        "Fix or drop those rows")
        return frame

    RecBoleDataset._load_feat = load_feat
    try:
        yield
    finally:
        RecBoleDataset._load_feat = original


def create_dataset(config, check=None):
    """RecBole's dataset, its duplicate (user, item) rows reported (and, with ``duplicate_interactions:
    drop``, dropped), passed to `check` (a model class's ``validate_dataset``) before anything is trained."""
    check_data_files(config)
    name = config["dataset"]
    try:
        with refusing_missing_values():
            dataset = recbole_create_dataset(config)
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, pd.errors.ParserError) as err:
        if "feat is empty" in str(err):
            raise DataError(
                f"dataset {name!r} (data_path {config['data_path']!r}) has no interactions left after "
                f"filtering: user_inter_num_interval={config['user_inter_num_interval']}, "
                f"item_inter_num_interval={config['item_inter_num_interval']}, val_interval={config['val_interval']}; "
                "loosen them or check the .inter file"
            ) from None
        message = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"dataset {name!r} ({os.path.abspath(config['data_path'])}) cannot be read: {message}; check "
                        "the .inter file's header (name:type, tab-separated) and its values") from None
    if len(dataset.inter_feat) == 0:
        raise DataError(f"dataset {name!r} ({os.path.abspath(config['data_path'])}) holds no interactions")
    time_field = dataset.time_field
    if time_field is not None and time_field in dataset.field2type \
            and dataset.field2type[time_field] != FeatureType.FLOAT:
        kind = dataset.field2type[time_field].value
        raise DataError(f"dataset {name!r}: the time field {time_field!r} is declared {time_field}:{kind}; RecBole "
                        "numbers tokens by first appearance, so time order and recency would follow arbitrary "
                        f"numbers. Declare it {time_field}:float in the .inter header")
    handle_duplicates(dataset, config["duplicate_interactions"] or "keep")
    if check is not None:
        check(dataset)
    return dataset


def column(feat, field):
    """A column of a dataset's interactions as numpy: a pandas frame before RecBole's build(), an Interaction after."""
    values = feat[field]
    return values.to_numpy() if hasattr(values, "to_numpy") else values.numpy()


def duplicate_rows(users, items):
    """Boolean mask of the rows that repeat an earlier row's (user, item) pair."""
    order = np.lexsort((np.arange(len(users)), items, users))  # by pair, then by row: the first one first
    same = np.r_[False, (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])]
    mask = np.zeros(len(users), dtype=bool)
    mask[order[same]] = True
    return mask


def handle_duplicates(dataset, policy):
    """Report duplicate (user, item) rows (a pair in both training and test can never be hit, so every metric
    is biased down); with policy "drop", keep only the first row of each pair, in file order (the training
    split first with benchmark files)."""
    feat = dataset.inter_feat
    mask = duplicate_rows(column(feat, dataset.uid_field), column(feat, dataset.iid_field))
    count = int(mask.sum())
    if not count:
        return 0
    logger = getLogger()
    if policy != "drop":
        logger.warning(f"dataset {dataset.dataset_name!r}: {count} duplicate (user, item) rows kept (RecBole's "
                       "behaviour); a test pair also in training can never be hit")
        return count
    keep = np.flatnonzero(~mask)
    if dataset.benchmark_filename_list is not None:  # the split boundaries move with the dropped rows
        bounds = np.r_[0, np.cumsum(dataset.file_size_list)]
        dataset.file_size_list = [int((~mask[a:b]).sum()) for a, b in zip(bounds[:-1], bounds[1:])]
    dataset.inter_feat = feat.iloc[keep].reset_index(drop=True) if hasattr(feat, "iloc") else feat[torch.from_numpy(keep)]
    logger.warning(f"dataset {dataset.dataset_name!r}: dropped {count} duplicate (user, item) rows, keeping the "
                   "first of each (duplicate_interactions: drop; 'keep' keeps RecBole's behaviour)")
    return count


def _check_split(train_set, valid_set, test_set):
    """Users with no training interaction cannot be scored (their input vector is empty): refused.
    Items seen only in evaluation can be ranked but were never learned: counted in a warning (a random
    split of ml-100k has a few, and refusing them would refuse RecBole's own default split)."""
    uid, iid = train_set.uid_field, train_set.iid_field
    train_users = np.unique(train_set.inter_feat[uid].numpy())
    train_items = np.unique(train_set.inter_feat[iid].numpy())
    for name, part in (("valid", valid_set), ("test", test_set)):
        users = np.setdiff1d(part.inter_feat[uid].numpy(), train_users)
        if len(users):
            tokens = train_set.id2token(uid, users[:5]).tolist()
            raise DataError(
                f"{len(users)} users of the {name} split have no training interactions (e.g. tokens {tokens}); "
                "a diffusion model denoises a user's history and cannot score them. Filter them out "
                "(user_inter_num_interval) or change the split (eval_args)"
            )
        items = np.setdiff1d(part.inter_feat[iid].numpy(), train_items)
        if len(items):
            getLogger().warning(f"{len(items)} items of the {name} split never occur in training")


CPU_EVAL_BATCH_USERS = 512
# Bytes per score in the evaluation of one batch: the reverse chain keeps a few (users x items) float32
# tensors alive at once (x_t, the denoiser's output and activations, RecBole's masked copy); 16 floats
# per score is a generous bound.
EVAL_BYTES_PER_SCORE = 64


def read_loader_settings(reader):
    """The loaders' own setting (declared in ``trainer.yaml``, which every model reads), read where it is used
    and checked by Config before any data loads."""
    return {"eval_batch_users": reader.integer("eval_batch_users", low=0)}


def eval_batch_users(config, dataset):
    """Users per full-sort evaluation batch of recbole-diffrec's models: `eval_batch_users`, or with 0, 512 on
    the CPU and on a GPU as many as a quarter of its free memory holds (all users where they fit): fewer,
    larger batches mean fewer launches and fewer of RecBole's per-batch host steps."""
    users = read_loader_settings(SettingsReader(config))["eval_batch_users"]
    if users:
        return users
    device = config["device"]
    if device.type != "cuda":
        return CPU_EVAL_BATCH_USERS
    free, _ = torch.cuda.mem_get_info(device)
    fits = (free // 4) // (EVAL_BYTES_PER_SCORE * dataset.item_num)
    return int(max(1, min(fits, dataset.user_num)))


def _eval_loader(config, phase, part, sampler, run, batch_users):
    loader = get_dataloader(config, phase)
    if loader is FullSortEvalDataLoader:
        return CachedFullSortEvalDataLoader(config, part, sampler, run=run, batch_users=batch_users)
    return loader(ConfigView(config, eval_batch_size=batch_users * part.item_num), part, sampler, shuffle=False)


def data_preparation(config, dataset, ours, run=None):
    """(train, valid, test) loaders. recbole-diffrec's models (`ours`) get :class:`TrainingUserLoader` and
    evaluation batches of :func:`eval_batch_users` users, evaluated by blocks of users in a distributed `run`;
    RecBole's models get what RecBole gives them, with `eval_batch_users` users per full-sort batch where it
    is set (> 0). The config is not changed."""
    try:
        return _data_preparation(config, dataset, ours, run or RunContext.of(config))
    except UserError:
        raise
    except ValueError as err:  # RecBole's samplers and splits refuse some data (e.g. users who have every item)
        if "num_samples=0" in str(err):  # torch's sampler over an empty training split
            raise DataError("the train split is empty (every user's interactions went to validation and test "
                            "under eval_args' split): filter short histories out (user_inter_num_interval) or "
                            "change eval_args") from None
        raise DataError(f"dataset {dataset.dataset_name!r}: {' '.join(str(err).split())}") from None


def _data_preparation(config, dataset, ours, run):
    batch_users = read_loader_settings(SettingsReader(config))["eval_batch_users"]
    if not ours:
        if batch_users and config["eval_args"]["mode"].get("test", "full") == "full":
            config = ConfigView(config, eval_batch_size=batch_users * dataset.item_num)
        return recbole_data_preparation(config, dataset)
    batch_users = eval_batch_users(config, dataset)
    built = dataset.build()
    train_set, valid_set, test_set = built
    _, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    _check_split(train_set, valid_set, test_set)
    attach_artifacts(train_set, config)  # what the model derives from the split, cached beside the checkpoints
    train = TrainingUserLoader(config, train_set, None, shuffle=True)
    valid = _eval_loader(config, "valid", valid_set, valid_sampler, run, batch_users)
    test = _eval_loader(config, "test", test_set, test_sampler, run, batch_users)
    return train, valid, test


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
