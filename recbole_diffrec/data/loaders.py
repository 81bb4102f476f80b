"""Data preparation: RecBole's loaders, with a per-user training loader and cached full-sort evaluation batches
for recbole-diffrec's models. Reading the dataset is :mod:`recbole_diffrec.data.reading`; what a checkpoint
records of the data and its split, :mod:`recbole_diffrec.data.records`."""

from logging import getLogger

import numpy as np
import torch
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import (
    AbstractDataLoader,
    FullSortEvalDataLoader,
    UserDataLoader,
)
from recbole.data.interaction import Interaction
from recbole.data.utils import create_samplers, get_dataloader

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
