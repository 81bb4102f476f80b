"""What a distributed evaluation needs beyond RecBole: every rank's per-user results, gathered in rank order."""

import torch


def gather_user_results(struct):
    """The evaluation's per-user results (the ``rec.*`` tensors of RecBole's collector) of every rank,
    concatenated in rank order, on every rank."""
    mine = {k: v for k, v in struct._data_dict.items() if k.startswith("rec.")}
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, {k: v.cpu() for k, v in mine.items()})
    for key in sorted({k for part in parts for k in part}):
        device = mine[key].device if key in mine else torch.device("cpu")
        struct[key] = torch.cat([part[key] for part in parts if key in part]).to(device)
    return struct
