r"""
L-DiffRec and LT-DiffRec
########################

Reference:
    Wenjie Wang et al. "Diffusion Recommender Model." SIGIR 2023 (arXiv 2304.04971), Sec. 4.1.

Items are clustered (k-means on item embeddings) into `n_cate` groups; each group's slice of the
interaction vector is compressed by its own VAE encoder; the diffusion runs on the concatenated latent
code and the decoder maps the denoised code back to item scores (one decoder over the whole code, or one
per cluster: the `decoder` key), returned in RecBole's item order whatever the cluster permutation.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.embeddings import cached_spectral_embeddings, kmeans_clusters
from recbole_diffrec.models.diffrec import DiffRec, TimeAwareMixin
from recbole_diffrec.networks import ACTIVATIONS, InputDropout, MLPDenoiser, init_linear
from recbole_diffrec.settings import SettingError

EMB_SOURCES = ("learned", "file", "none")
DECODERS = ("auto", "shared", "per_cluster")


def resolve_decoder(decoder, out_dims):
    """The decoder layout `auto` stands for: shared with `out_dims` empty, per_cluster otherwise (the
    switch of the paper's code)."""
    if decoder == "auto":
        return "per_cluster" if out_dims else "shared"
    return decoder


def mlp(dims, activation, last_activation=False):
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        linear = nn.Linear(a, b)
        init_linear(linear)
        layers.append(linear)
        if i < len(dims) - 2 or last_activation:
            layers.append(activation)
    return nn.Sequential(*layers)


class _Activation(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.fn = ACTIVATIONS[name]

    def forward(self, x):
        return self.fn(x)


def group_sizes(total_dims, group_lengths, n_items):
    """Per group, each hidden size scaled by the group's share of the items (floor), the last group
    taking the remainder so the sizes add up to `total_dims` (as the paper's code)."""
    sizes = []
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

    def __init__(self, groups, n_items, in_dims, out_dims, activation="tanh", dropout=0.1, reparam=True,
                 decoder="auto"):
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
            self.decoders = nn.ModuleList(
                mlp([e[-1]] + d + [n], act) for n, e, d in zip(lengths, enc_sizes, dec_sizes)
            )
            self.decoder = None
        else:
            self.decoders = None
            self.decoder = mlp([in_dims[-1]] + list(out_dims) + [n_items], act)
        for module in self.modules():  # the paper's autoencoder: Xavier-normal weights, zero biases
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        for g, item_ids in enumerate(groups):
            self.register_buffer(f"group_{g}", item_ids.clone(), persistent=False)
        self.n_groups, self.n_items = len(groups), n_items
        self.drop = InputDropout(dropout)
        self.reparam = reparam

    def groups(self):
        return [getattr(self, f"group_{g}") for g in range(self.n_groups)]

    def encode(self, x):
        """(z, KL, h) for interaction vectors x in item order; h is the input after dropout, which the
        paper's code also uses as the reconstruction target."""
        h = self.drop(x)
        mus, logvars = [], []
        for encoder, items in zip(self.encoders, self.groups()):
            mu, logvar = encoder(h[:, items]).chunk(2, dim=-1)
            mus.append(mu)
            logvars.append(logvar)
        mu, logvar = torch.cat(mus, -1), torch.cat(logvars, -1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training and self.reparam else mu
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
        return z, kl, h

    def decode(self, z):
        """Item scores in item order from latent codes."""
        if self.decoder is not None:
            return self.decoder(z)
        out = z.new_zeros(z.shape[0], self.n_items)
        for decoder, items, part in zip(self.decoders, self.groups(), z.split(self.latent_sizes, dim=-1)):
            out[:, items] = decoder(part)
        return out


class LDiffRec(DiffRec):
    """DiffRec in the latent space of a clustered group VAE."""

    @classmethod
    def read_settings(cls, reader):
        s = super().read_settings(reader)
        s["n_cate"] = reader.integer("n_cate", low=1)
        s["balanced_clusters"] = reader.boolean("balanced_clusters")
        s["in_dims"] = reader.int_list("in_dims")
        s["out_dims"] = reader.int_list("out_dims", allow_empty=True)
        s["decoder"] = reader.choice("decoder", DECODERS)
        s["reparam"] = reader.boolean("reparam")
        s["ae_act_func"] = reader.choice("ae_act_func", tuple(ACTIVATIONS))
        s["ae_dropout"] = reader.number("ae_dropout", low=0, high=1, high_open=True)
        s["ae_learning_rate"] = reader.number("ae_learning_rate", low=0, low_open=True)
        s["lamda"] = reader.number("lamda", low=0)
        s["anneal_cap"] = reader.number("anneal_cap", low=0)
        s["anneal_steps"] = reader.integer("anneal_steps", low=0)
        s["vae_anneal_cap"] = reader.number("vae_anneal_cap", low=0)
        s["vae_anneal_steps"] = reader.integer("vae_anneal_steps", low=0)
        s["item_emb_source"] = reader.choice("item_emb_source", EMB_SOURCES)
        s["item_emb_file"] = reader.optional("item_emb_file")
        s["item_emb_dim"] = reader.integer("item_emb_dim", low=1)
        if s["n_cate"] > 1 and s["item_emb_source"] == "none":
            raise SettingError("item_emb_source", "none", f"needs n_cate=1 (n_cate={s['n_cate']} clusters need embeddings)")
        if s["item_emb_source"] == "file" and not s["item_emb_file"]:
            raise SettingError("item_emb_file", s["item_emb_file"], "must name a .npy file when item_emb_source is 'file'")
        return s

    def build_networks(self, dataset):
        s = self.settings
        if s["n_cate"] > self.n_items - 1:
            raise SettingError("n_cate", s["n_cate"], f"must not exceed the number of items ({self.n_items - 1})")
        self.embedding_source = None
        labels = self.cluster_items(dataset)
        groups = [torch.from_numpy(np.flatnonzero(labels == g)) for g in range(s["n_cate"])]
        lengths = [len(g) for g in groups]
        split = [("in_dims", s["in_dims"])]
        if resolve_decoder(s["decoder"], s["out_dims"]) == "per_cluster":
            split.append(("out_dims", s["out_dims"]))
        for name, dims in split:
            for g, sizes in enumerate(group_sizes(dims, lengths, self.n_items)):
                if min(sizes, default=1) < 1:
                    raise SettingError(
                        name, dims,
                        f"cluster {g} holds {lengths[g]} of {self.n_items} items, so its share of {dims} rounds "
                        "to zero; raise the sizes or lower n_cate",
                    )
        self.autoencoder = GroupVAE(groups, self.n_items, s["in_dims"], s["out_dims"], s["ae_act_func"],
                                    s["ae_dropout"], s["reparam"], s["decoder"])
        self.denoiser = MLPDenoiser(s["in_dims"][-1], s["dims_dnn"], s["embedding_size"], s["mlp_act_func"],
                                    s["dropout"], s["norm"])
        self.register_buffer("update_count", torch.zeros((), dtype=torch.long))  # batches trained
        self.register_buffer("epoch_count", torch.zeros((), dtype=torch.long))  # epochs trained

    # ---- item embeddings and clusters ----------------------------------------------------------
    def item_embeddings(self, dataset):
        s = self.settings
        if s["item_emb_source"] == "file":
            return self._embeddings_from_file(dataset, s["item_emb_file"])
        users, items = self.training_pairs(dataset)
        emb, path, reused = cached_spectral_embeddings(
            self.checkpoint_dir, dataset.dataset_name, users, items, self.n_users, self.n_items,
            s["item_emb_dim"], seed=self.seed,
        )
        self.embedding_source = f"spectral embeddings {'read from' if reused else 'cached at'} {path}"
        return emb

    def _embeddings_from_file(self, dataset, path):
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SettingError("item_emb_file", path, f"must be a readable .npy array ({err})") from None
        if table.ndim != 2:
            raise SettingError("item_emb_file", path, f"must hold a 2-D array (items x dims), got shape {table.shape}")
        if not np.isfinite(table).all():
            row = int(np.flatnonzero(~np.isfinite(table).all(1))[0])
            raise SettingError("item_emb_file", path, f"holds NaN or infinite values (first in row {row})")
        emb = np.zeros((self.n_items, table.shape[1]), dtype=np.float32)
        tokens = dataset.field2id_token[dataset.iid_field]
        for internal, token in enumerate(tokens[1:], start=1):
            try:
                row = int(token)
            except ValueError:
                raise SettingError("item_emb_file", path, f"item token {token!r} is not a row number") from None
            if not 0 <= row < len(table):
                raise SettingError(
                    "item_emb_file", path,
                    f"has {len(table)} rows but the dataset has item token {token}; row i must be the item with token i",
                )
            emb[internal] = table[row]
        self.embedding_source = f"item embeddings from {path}"
        return emb

    def cluster_items(self, dataset):
        """Cluster label of every RecBole item id (the padding id 0 joins a cluster like any item)."""
        if self.settings["n_cate"] == 1:
            return np.zeros(self.n_items, dtype=np.int64)
        emb = self.item_embeddings(dataset)
        return kmeans_clusters(emb, self.settings["n_cate"], seed=self.seed,
                               balanced=self.settings["balanced_clusters"])

    # ---- RecBole interface ---------------------------------------------------------------------
    def epoch_finished(self):
        self.epoch_count += 1

    def annealed_weights(self):
        """(lamda, beta) now, as the paper's code counts: lamda decays linearly to anneal_cap over
        anneal_steps *epochs*; the KL weight rises linearly to vae_anneal_cap over vae_anneal_steps
        *batches*."""
        s, step = self.settings, self.update_count.double()
        if s["anneal_steps"] > 0:
            epochs = self.epoch_count.double()
            lamda = torch.clamp((1.0 - epochs / s["anneal_steps"]) * s["lamda"], min=s["anneal_cap"])
        else:
            lamda = torch.full_like(step, max(s["lamda"], s["anneal_cap"]))
        if s["vae_anneal_steps"] > 0:
            beta = torch.clamp(step / s["vae_anneal_steps"], max=s["vae_anneal_cap"])
        else:
            beta = torch.full_like(step, s["vae_anneal_cap"])
        return lamda.float(), beta.float()

    def calculate_loss(self, interaction):
        x = self.inputs.dense(interaction[self.USER_ID])
        z, kl, target = self.autoencoder.encode(x)
        t, pt = self.sampler.sample(x.shape[0])
        losses, z0 = self.diffusion.training_losses(self.denoiser, z, t, reweight=self.settings["reweight"],
                                                    return_x0=True)
        self.sampler.update(t, losses.detach())
        elbo = (losses / pt.to(losses.dtype)).mean()
        recon = self.autoencoder.decode(z0)
        multinomial = -(F.log_softmax(recon, dim=1) * target).sum(-1).mean()
        lamda, beta = self.annealed_weights()
        self.update_count += 1
        if self.settings["reweight"]:
            return lamda * elbo + multinomial + beta * kl
        return elbo + lamda * (multinomial + beta * kl)  # the paper's code without SNR reweighting

    def user_scores(self, users):
        z, _, _ = self.autoencoder.encode(self.inputs.dense(users))
        return self.autoencoder.decode(self.denoise(self.denoiser, z))

    def optimizer_groups(self, learning_rate):
        """The autoencoder at `ae_learning_rate`, the denoiser at `learning_rate` (the paper's two optimisers;
        Adam's update is per parameter, so one Adam with two groups computes the same steps)."""
        return [
            {"params": list(self.autoencoder.parameters()), "lr": self.settings["ae_learning_rate"]},
            {"params": list(self.denoiser.parameters()), "lr": learning_rate},
        ]


class LTDiffRec(TimeAwareMixin, LDiffRec):
    """L-DiffRec over recency-weighted interaction vectors."""
