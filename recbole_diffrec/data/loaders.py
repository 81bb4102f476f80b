"""Data preparation: RecBole's datasets and loaders, with a per-user training loader and cached full-sort
evaluation batches for recbole-diffrec's models."""

from logging import getLogger

import numpy as np
import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import AbstractDataLoader, FullSortEvalDataLoader, UserDataLoader
from recbole.data.interaction import Interaction
from recbole.data.utils import create_samplers, get_dataloader


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


def create_dataset(config, check=None):
    """RecBole's dataset, passed to `check` (a model class's ``validate_dataset``) before anything is trained."""
    try:
        dataset = recbole_create_dataset(config)
    except ValueError as err:
        if "feat is empty" not in str(err):
            raise
        raise ValueError(
            f"dataset {config['dataset']!r} (data_path {config['data_path']!r}) has no interactions left after "
            f"filtering: user_inter_num_interval={config['user_inter_num_interval']}, "
            f"item_inter_num_interval={config['item_inter_num_interval']}, val_interval={config['val_interval']}; "
            "loosen them or check the .inter file"
        ) from None
    if check is not None:
        check(dataset)
    return dataset


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
            raise ValueError(
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


def eval_batch_users(config, dataset):
    """Users per full-sort evaluation batch: `eval_batch_users`, or with 0, 512 on the CPU and on a GPU as
    many as a quarter of its free memory holds (all users where they fit): fewer, larger batches mean
    fewer launches and fewer of RecBole's per-batch host steps."""
    users = config["eval_batch_users"]
    if users:
        return users
    device = config["device"]
    if device.type != "cuda":
        return CPU_EVAL_BATCH_USERS
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    fits = (free // 4) // (EVAL_BYTES_PER_SCORE * dataset.item_num)
    return int(max(1, min(fits, dataset.user_num)))


def _eval_loader(config, phase):
    loader = get_dataloader(config, phase)
    return CachedFullSortEvalDataLoader if loader is FullSortEvalDataLoader else loader


def data_preparation(config, dataset, ours):
    """(train, valid, test) loaders. recbole-diffrec's models (`ours`) get :class:`TrainingUserLoader` and an
    evaluation batch of `eval_batch_users` users; RecBole's models get what RecBole gives them, with
    `eval_batch_users` users per full-sort batch where it is set (> 0)."""
    if not ours:
        if config["eval_batch_users"] and config["eval_args"]["mode"].get("test", "full") == "full":
            config["eval_batch_size"] = config["eval_batch_users"] * dataset.item_num
        return recbole_data_preparation(config, dataset)
    config["eval_batch_size"] = eval_batch_users(config, dataset) * dataset.item_num
    built = dataset.build()
    train_set, valid_set, test_set = built
    _, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    _check_split(train_set, valid_set, test_set)
    train = TrainingUserLoader(config, train_set, None, shuffle=True)
    valid = _eval_loader(config, "valid")(config, valid_set, valid_sampler, shuffle=False)
    test = _eval_loader(config, "test")(config, test_set, test_sampler, shuffle=False)
    return train, valid, test
