"""Per-user sequences and histories, rebuilt from RecBole's loaders, for serving (``recommend``): a sequential
model's whole known sequence per user and its latest items as model input, a general model's training items."""

import numpy as np
import torch


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
