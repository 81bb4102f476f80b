"""recbole-diffrec's DiffuRec against DiffuRec's published code, on Beauty, with the same weights and draws.

The published model's weights are copied into recbole-diffrec's (item rows matched by token), both get the
same timesteps, the same Gaussian noise and the same uncertainty scales (the latter moved to the other
code's left-padded layout), and the script reports the largest difference of the training loss and of the
full-ranking scores (every item, after the whole reverse chain from noise) over a few batches of Beauty's
training examples. Dropout is off in both (evaluation mode), so the numbers depend on the weights and draws
alone. The published code is read from a scratch copy; nothing of it is part of this project.

    git -C <a snapshot of WHUIR/DiffuRec> archive HEAD src | tar -x -C /tmp/diffurec_official
    recbole-diffrec convert ../shared/datasets/seq/beauty/beauty.txt --out dataset --name beauty
    python benchmarks/diffurec_fidelity.py --official /tmp/diffurec_official/src
"""

import argparse
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


class Draws:
    """Stands in for torch's random functions: hands out prepared tensors in order, checking each shape."""

    def __init__(self, queue):
        self.queue = list(queue)

    def take(self, shape):
        value = self.queue.pop(0)
        assert tuple(value.shape) == tuple(shape), (value.shape, shape)
        return value.clone()


def patched(draws, t):
    """torch.randn, randn_like, normal and randint replaced by `draws` (and `t` for the timesteps)."""
    real = {name: getattr(torch, name) for name in ("randn", "randn_like", "normal", "randint")}

    def normal(*args, **kwargs):
        size = kwargs.get("size")
        if size is None:  # torch.normal(mean=tensor, std=tensor), the published code's form
            size = (kwargs.get("mean") if "mean" in kwargs else args[0]).shape
        return draws.take(size)

    torch.randn = lambda *size, **kw: draws.take(size[0] if len(size) == 1 and not isinstance(size[0], int) else size)
    torch.randn_like = lambda x, **kw: draws.take(x.shape)
    torch.normal = normal
    torch.randint = lambda low, high, size, **kw: t.clone()
    return real


def restore(real):
    for name, fn in real.items():
        setattr(torch, name, fn)


def official_model(src, n_items, args):
    sys.path.insert(0, str(src))
    from diffurec import DiffuRec as OfficialDiffusion
    from model import Att_Diffuse_model

    ns = types.SimpleNamespace(hidden_size=args["hidden_size"], schedule_sampler_name="lossaware",
                               diffusion_steps=args["steps"], noise_schedule="trunc_lin", rescale_timesteps=True,
                               dropout=args["dropout"], num_blocks=args["n_layers"],
                               lambda_uncertainty=args["lambda_uncertainty"], emb_dropout=args["emb_dropout"],
                               item_num=n_items, max_len=args["MAX_ITEM_LIST_LENGTH"])
    return Att_Diffuse_model(OfficialDiffusion(ns), ns)


def copy_weights(official, ours, tokens):
    """The published model's weights into ours: item rows by token, the approximator's layers by role."""
    with torch.no_grad():
        rows = torch.tensor([0] + [int(tok) for tok in tokens[1:]])
        ours.item_embedding.weight.copy_(official.item_embeddings.weight[rows])
        pairs = [(official.LayerNorm, ours.norm),
                 (official.diffu.xstart_model.time_embed[0], ours.approximator.time_embed[0]),
                 (official.diffu.xstart_model.time_embed[2], ours.approximator.time_embed[2]),
                 (official.diffu.xstart_model.norm_diffu_rep, ours.approximator.norm)]
        for theirs, mine in zip(official.diffu.xstart_model.att.transformer_blocks, ours.approximator.blocks):
            q, k, v = theirs.attention.linear_layers
            pairs += [(q, mine.attention.query), (k, mine.attention.key), (v, mine.attention.value),
                      (theirs.attention.w_layer, mine.attention.output),
                      (theirs.feed_forward.w_1, mine.feed_forward.inner),
                      (theirs.feed_forward.w_2, mine.feed_forward.outer),
                      (theirs.input_sublayer.norm, mine.attention_norm),
                      (theirs.output_sublayer.norm, mine.feed_forward_norm)]
        for theirs, mine in pairs:
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)


def left_padded(sequence, lengths):
    """RecBole's right-padded rows, moved to the end of each row (the published code's layout)."""
    out = torch.zeros_like(sequence)
    for row, n in enumerate(lengths.tolist()):
        out[row, sequence.shape[1] - n:] = sequence[row, :n]
    return out


def to_left(scale, lengths):
    out = torch.empty_like(scale)
    length = scale.shape[1]
    for row, n in enumerate(lengths.tolist()):
        order = list(range(n, length)) + list(range(n))  # right-padded position of each left-padded slot
        out[row] = scale[row, order]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, help="the published code's src folder (a scratch copy)")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from recbole_diffrec.pipeline import prepare

    torch.manual_seed(args.seed)
    config, (train, _, _), ours, _ = prepare(
        "DiffuRec", "beauty", [str(REPO / "dataset_configs" / "beauty.yaml")],
        {"show_progress": False, "state": "WARNING", "train_batch_size": args.batch_size,
         "data_path": str(REPO / "dataset"), "checkpoint_dir": "/tmp/recbole-diffrec-fidelity"})
    settings = {**ours.settings, "MAX_ITEM_LIST_LENGTH": config["MAX_ITEM_LIST_LENGTH"]}
    tokens = train._dataset.field2id_token["item_id"]
    official = official_model(args.official, len(tokens) - 1, settings)
    copy_weights(official, ours, tokens)
    dtype = torch.float32  # the published code embeds timesteps in float32 whatever its weights are
    ours.eval()
    official.eval()
    token_of = torch.tensor([0] + [int(tok) for tok in tokens[1:]])
    steps, hidden = settings["steps"], settings["hidden_size"]
    worst_loss, worst_score, count, same_top = 0.0, 0.0, 0, 0
    generator = torch.Generator().manual_seed(args.seed)
    for n, interaction in enumerate(train):
        if n == args.batches:
            break
        seq, lengths = interaction["item_id_list"], interaction["item_length"]
        target = interaction["item_id"]
        batch, length = seq.shape
        their_seq = left_padded(token_of[seq], lengths)
        their_target = token_of[target].unsqueeze(-1)
        t = torch.randint(0, steps, (batch,), generator=generator)
        noise = torch.randn(batch, hidden, generator=generator, dtype=dtype)
        scale = 0.001 + 0.001 * torch.randn(batch, length, hidden, generator=generator, dtype=dtype)
        # the training loss
        real = patched(Draws([noise, scale]), t)
        try:
            mine = ours.calculate_loss(interaction).item()
        finally:
            restore(real)
        official.diffu.schedule_sampler.sample = lambda size, device: (t.clone(), torch.ones(size))
        real = patched(Draws([noise, to_left(scale, lengths)]), t)
        try:
            _, rep, _, _, _, _ = official(their_seq, their_target, train_flag=True)
            theirs = official.loss_diffu_ce(rep, their_target).item()
        finally:
            restore(real)
        worst_loss = max(worst_loss, abs(mine - theirs))
        # the full-ranking scores after the reverse chain from noise
        start = torch.randn(batch, hidden, generator=generator, dtype=dtype)
        scales = [0.001 + 0.001 * torch.randn(batch, length, hidden, generator=generator, dtype=dtype)
                  for _ in range(steps)]
        noises = [torch.randn(batch, hidden, generator=generator, dtype=dtype) for _ in range(steps)]
        mine_draws = [start] + [x for pair in zip(scales, noises) for x in pair]
        their_draws = [start] + [x for s, z in zip(scales, noises) for x in (to_left(s, lengths), z)]
        real = patched(Draws(mine_draws), t)
        try:
            my_scores = ours.full_sort_predict(interaction)
        finally:
            restore(real)
        real = patched(Draws(their_draws), t)
        try:
            with torch.no_grad():
                _, rep, _, _, _, _ = official(their_seq, their_target, train_flag=False)
                their_scores = official.diffu_rep_pre(rep)
        finally:
            restore(real)
        worst_score = max(worst_score, (my_scores[:, 1:] - their_scores[:, token_of[1:]]).abs().max().item())
        same_top += (my_scores[:, 1:].topk(20).indices == their_scores[:, token_of[1:]].topk(20).indices).all(1).sum().item()
        scale_of_scores = their_scores.abs().max().item()
        count += batch
        print(f"batch {n}: loss ours {mine:.6f} published {theirs:.6f}; scores max |difference| "
              f"{worst_score:.2e} (scores up to {scale_of_scores:.1f})", flush=True)
    print(f"{count} training examples of Beauty, {steps} steps, {dtype}: largest |loss difference| {worst_loss:.2e}, "
          f"largest |score difference| {worst_score:.2e}; the same top-20 items in the same order for {same_top} "
          f"of {count} users")
    # float32 rounding: the loss to 1e-5 absolute; scores, after 32 Transformer passes, to 1e-5 of their size
    return 0 if worst_loss <= 1e-5 and worst_score <= 1e-5 * max(1.0, scale_of_scores) else 1


if __name__ == "__main__":
    sys.exit(main())
