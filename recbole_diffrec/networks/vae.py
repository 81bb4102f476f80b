"""L-DiffRec's group VAE (Sec. 4.1 of the paper): one encoder per item cluster, a decoder back to items."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from recbole_diffrec.core.sparse import SparseRows
from recbole_diffrec.networks.denoiser import ACTIVATIONS, InputDropout, init_linear

DECODERS = ("auto", "shared", "per_cluster")


class ItemMajorLinear(nn.Module):
    """A linear layer from items, its weight stored item-major (n x out): dense rows take one product, sparse
    rows a gather-and-sum per non-zero. Loads checkpoints of the nn.Linear it replaces."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().t().contiguous())
        self.bias = nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight = state_dict.get(prefix + "weight")
        if weight is not None and weight.shape == self.weight.shape[::-1] and weight.shape != self.weight.shape:
            state_dict[prefix + "weight"] = weight.t().contiguous()  # an nn.Linear's (out x n) weight
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def resolve_decoder(decoder: str, out_dims: list[int]) -> str:
    """The decoder layout `auto` stands for: shared with `out_dims` empty, per_cluster otherwise (the
    switch of the paper's code)."""
    if decoder == "auto":
        return "per_cluster" if out_dims else "shared"
    return decoder


def mlp(dims: list[int], activation: nn.Module, last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        linear = nn.Linear(a, b)
        init_linear(linear)
        layers.append(linear)
        if i < len(dims) - 2 or last_activation:
            layers.append(activation)
    return nn.Sequential(*layers)


class _Activation(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.fn = ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def group_sizes(total_dims: list[int], group_lengths: list[int], n_items: int) -> list[list[int]]:
    """Per group, each hidden size scaled by the group's share of the items (floor), the last group
    taking the remainder so the sizes add up to `total_dims` (as the paper's code)."""
    sizes: list[list[int]] = []
    for g, length in enumerate(group_lengths):
        if g == len(group_lengths) - 1:
            sizes.append([d - sum(s[j] for s in sizes) for j, d in enumerate(total_dims)])
        else:
            sizes.append([int(length / n_items * d) for d in total_dims])
    return sizes


class GroupVAE(nn.Module):
    """One VAE encoder per item group (L-DiffRec's autoencoder), and the decoder back to items.

    As the paper's code: the encoders read the raw interaction values after dropout (no normalisation)
    and end in the activation (with tanh, mu and log-variance lie in (-1, 1)).
    The decoder is `shared` (one MLP from the whole latent code to every item: latent -> out_dims -> n_items;
    with `out_dims` empty one linear layer, the paper's code's default) or `per_cluster` (group g's own MLP
    from its latent share to its items: L_g -> out_dims share -> n_g; the fewest parameters). The paper's
    code builds the per-cluster decoder whenever its out_dims is non-empty, as the mirror of the encoder:
    here per_cluster with out_dims = in_dims[:-1] reversed (with in_dims [300]: empty, one linear layer
    each). `auto`: shared with `out_dims` empty, per_cluster otherwise.

    Args:
        groups: list of LongTensors, the item ids (RecBole ids) of each group; together all items once.
        n_items: catalogue size.
        in_dims: encoder hidden sizes, the last being the total latent size; split across groups.
        out_dims: decoder hidden sizes (may be empty), split across groups with a per-cluster decoder.
        activation: a key of ACTIVATIONS.
        dropout: dropout on the input.
        reparam: sample z by reparameterisation while training (else z = mu).
        decoder: a key of DECODERS.
    """

    def __init__(self, groups: list[torch.Tensor], n_items: int, in_dims: list[int], out_dims: list[int],
                 activation: str = "tanh", dropout: float = 0.1, reparam: bool = True, decoder: str = "auto"):
        super().__init__()
        lengths = [len(g) for g in groups]
        enc_sizes = group_sizes(in_dims, lengths, n_items)
        act = _Activation(activation)
        # The paper's encoders end in the activation too, so mu and log-variance lie in its range.
        self.encoders = nn.ModuleList(
            mlp([n] + e[:-1] + [2 * e[-1]], act, last_activation=True) for n, e in zip(lengths, enc_sizes)
        )
        self.latent_sizes = [e[-1] for e in enc_sizes]
        if resolve_decoder(decoder, out_dims) == "per_cluster":
            dec_sizes = group_sizes(out_dims, lengths, n_items)
            self.decoders: nn.ModuleList | None = nn.ModuleList(
                mlp([e[-1]] + d + [n], act) for n, e, d in zip(lengths, enc_sizes, dec_sizes)
            )
            self.decoder: nn.Sequential | None = None
        else:
            self.decoders = None
            self.decoder = mlp([in_dims[-1]] + list(out_dims) + [n_items], act)
        for module in self.modules():  # the paper's autoencoder: Xavier-normal weights, zero biases
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        for encoder in self.encoders:  # item-major first layers: dense rows one product, sparse rows a gather
            cast(nn.Sequential, encoder)[0] = ItemMajorLinear(cast(nn.Linear, cast(nn.Sequential, encoder)[0]))
        for g, item_ids in enumerate(groups):
            self.register_buffer(f"group_{g}", item_ids.clone(), persistent=False)
        group_of = torch.zeros(n_items, dtype=torch.long)
        local = torch.zeros(n_items, dtype=torch.long)
        for g, item_ids in enumerate(groups):
            group_of[item_ids] = g
            local[item_ids] = torch.arange(len(item_ids))
        self.register_buffer("group_of", group_of, persistent=False)  # every item's cluster ...
        self.register_buffer("local_index", local, persistent=False)  # ... and its column there
        self.n_groups, self.n_items = len(groups), n_items
        self.drop = InputDropout(dropout)
        self.reparam = reparam

    def groups(self) -> list[torch.Tensor]:
        return [getattr(self, f"group_{g}") for g in range(self.n_groups)]

    def encode(self, x: torch.Tensor | SparseRows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, KL, h) for interaction vectors x in item order, dense or :class:`SparseRows` (each encoder's
        first layer then reads only its cluster's non-zeros); h is the input after dropout, which the
        paper's code also uses as the reconstruction target."""
        h = self.drop(x)
        parts = self._split(h) if isinstance(h, SparseRows) else [h[:, items] for items in self.groups()]
        mus, logvars = [], []
        for encoder, part in zip(self.encoders, parts):
            layers = cast(nn.Sequential, encoder)
            first = cast(ItemMajorLinear, layers[0])
            out = part.matmul(first.weight) + first.bias if isinstance(part, SparseRows) else first(part)
            mu, logvar = layers[1:](out).chunk(2, dim=-1)
            mus.append(mu)
            logvars.append(logvar)
        mu, logvar = torch.cat(mus, -1), torch.cat(logvars, -1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training and self.reparam else mu
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
        return z, kl, h

    def _split(self, rows):
        """Sparse rows over all items -> one SparseRows per cluster, over its own columns."""
        batch, row, group = rows.shape[0], rows.rows(), self.group_of[rows.cols]
        parts = []
        for g in range(self.n_groups):
            keep = group == g
            counts = torch.bincount(row[keep], minlength=batch)
            parts.append(SparseRows(torch.cumsum(counts, 0) - counts, self.local_index[rows.cols[keep]],
                                    rows.values[keep], len(getattr(self, f"group_{g}"))))
        return parts

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Item scores in item order from latent codes."""
        if self.decoder is not None:
            return self.decoder(z)
        out = z.new_zeros(z.shape[0], self.n_items)
        assert self.decoders is not None  # per_cluster: one decoder per cluster
        for decoder, items, part in zip(self.decoders, self.groups(), z.split(self.latent_sizes, dim=-1)):
            out[:, items] = decoder(part)
        return out
