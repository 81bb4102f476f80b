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

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from recbole_diffrec.core.sparse import SparseRows
from recbole_diffrec.models.diffrec import DiffRec, TimeWeighting
from recbole_diffrec.networks.denoiser import ACTIVATIONS, MLPDenoiser
from recbole_diffrec.networks.vae import (
    DECODERS,
    GroupVAE,
    group_sizes,
    resolve_decoder,
)
from recbole_diffrec.settings import SettingError

if TYPE_CHECKING:  # annotations only
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole_diffrec.settings import SettingsReader

EMB_SOURCES = ("learned", "file", "none")


class LDiffRec(DiffRec):
    """DiffRec in the latent space of a clustered group VAE."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
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
        if s["item_emb_source"] == "file":
            s["item_emb_file"] = cls._checked_embedding_file(s["item_emb_file"])
        return s

    @staticmethod
    def _checked_embedding_file(path):
        """The embedding file of item_emb_source 'file', checked before any data loads: it exists, reads as a
        2-D numeric array (items x dims) and holds only finite values."""
        if not path:
            raise SettingError("item_emb_file", path, "must name a .npy file when item_emb_source is 'file'")
        try:
            table = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise SettingError("item_emb_file", path, f"must be a readable .npy array ({err})") from None
        if table.ndim != 2 or not np.issubdtype(table.dtype, np.number):
            raise SettingError("item_emb_file", path, f"must hold a 2-D numeric array (items x dims), got shape "
                               f"{table.shape} of {table.dtype}")
        finite = np.isfinite(table).all(1)
        if not finite.all():
            raise SettingError("item_emb_file", path, f"holds NaN or infinite values (first in row "
                               f"{int(np.flatnonzero(~finite)[0])})")
        return path

    def build_networks(self, dataset: Dataset) -> None:
        s = self.settings
        if s["n_cate"] > self.n_items - 1:
            raise SettingError("n_cate", s["n_cate"], f"must not exceed the number of items ({self.n_items - 1})")
        self.embedding_source: str | None = None
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
    def item_embeddings(self, dataset: Dataset) -> np.ndarray:
        s = self.settings
        if s["item_emb_source"] == "file":
            return self._embeddings_from_file(dataset, s["item_emb_file"])
        emb, self.embedding_source = self.artifacts.spectral_embeddings(s["item_emb_dim"])
        return emb

    def _embeddings_from_file(self, dataset, path):
        table = np.load(path, allow_pickle=False)  # checked when the settings were read
        if len(table) != self.n_items - 1:
            raise SettingError("item_emb_file", path, f"has {len(table)} rows but dataset {dataset.dataset_name!r} has "
                               f"{self.n_items - 1} items; row i must be the item with token i, one row per item")
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

    def cluster_items(self, dataset: Dataset) -> np.ndarray:
        """Cluster label of every RecBole item id (the padding id 0 joins a cluster like any item)."""
        if self.settings["n_cate"] == 1:
            return np.zeros(self.n_items, dtype=np.int64)
        emb = self.item_embeddings(dataset)
        return self.artifacts.clusters(emb, self.settings["n_cate"], balanced=self.settings["balanced_clusters"])

    # ---- RecBole interface ---------------------------------------------------------------------
    def epoch_finished(self) -> None:
        self.epoch_count += 1

    def annealed_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
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

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        x = self.input_rows(interaction[self.USER_ID])
        z, kl, target = self.autoencoder.encode(x)
        elbo, z0 = self.diffusion_loss_and_x0(self.denoiser, z)
        assert z0 is not None  # asked for
        log_p = F.log_softmax(self.autoencoder.decode(z0), dim=1)
        if isinstance(target, SparseRows):  # the multinomial likelihood of the non-zeros, gathered
            multinomial = -(log_p[target.rows(), target.cols] * target.values).sum() / log_p.shape[0]
        else:
            multinomial = -(log_p * target).sum(-1).mean()
        lamda, beta = self.annealed_weights()
        self.update_count += 1
        if self.settings["reweight"]:
            return lamda * elbo + multinomial + beta * kl
        return elbo + lamda * (multinomial + beta * kl)  # the paper's code without SNR reweighting

    def user_scores(self, users: torch.Tensor) -> torch.Tensor:
        z, _, _ = self.autoencoder.encode(self.input_rows(users))
        return self.autoencoder.decode(self.denoise(self.denoiser, z))

    def optimizer_groups(self, learning_rate: float) -> list[dict[str, Any]]:
        """The autoencoder at `ae_learning_rate`, the denoiser at `learning_rate` (the paper's two optimisers;
        Adam's update is per parameter, so one Adam with two groups computes the same steps)."""
        return [
            {"params": list(self.autoencoder.parameters()), "lr": self.settings["ae_learning_rate"]},
            {"params": list(self.denoiser.parameters()), "lr": learning_rate},
        ]


class LTDiffRec(TimeWeighting, LDiffRec):
    """L-DiffRec over recency-weighted interaction vectors."""
