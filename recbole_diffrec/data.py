"""Data preparation: RecBole's, with the training loader chosen by the model's class."""

from logging import getLogger

import numpy as np
import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import AbstractDataLoader, UserDataLoader
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
        AbstractDataLoader.__init__(self, config, dataset, sampler, shuffle=True)


def create_dataset(config, model_class=None):
    """RecBole's dataset, checked by our model class (if it is one) before anything is trained."""
    from recbole_diffrec.config import is_ours

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
    if model_class is not None and is_ours(model_class):
        model_class.validate_dataset(dataset)
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


def data_preparation(config, dataset, model_class):
    """(train, valid, test) loaders. Our models get :class:`TrainingUserLoader` and an evaluation batch
    of `eval_batch_users` users; RecBole's models get exactly what RecBole gives them."""
    from recbole_diffrec.config import is_ours

    if not is_ours(model_class):
        return recbole_data_preparation(config, dataset)
    config["eval_batch_size"] = config["eval_batch_users"] * dataset.item_num
    built = dataset.build()
    train_set, valid_set, test_set = built
    _, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    _check_split(train_set, valid_set, test_set)
    train = TrainingUserLoader(config, train_set, None, shuffle=True)
    valid = get_dataloader(config, "valid")(config, valid_set, valid_sampler, shuffle=False)
    test = get_dataloader(config, "test")(config, test_set, test_sampler, shuffle=False)
    return train, valid, test
