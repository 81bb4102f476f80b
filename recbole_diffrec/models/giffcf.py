r"""
GiffCF and T-GiffCF
###################

Reference:
    Yunqin Zhu, Chao Wang, Qi Zhang, Hui Xiong. "Graph Signal Diffusion Model for Collaborative Filtering."
    SIGIR 2024 (arXiv 2311.08744).

The forward process blurs a user's row x toward its smoothed version A x over the item-item graph, with
A x = x R'^T R' / lambda_max (data/graph.py), optionally mixed with an ideal low-pass filter:
z_t = x + alpha t / T (A x - x), plus noise of std noise_std * noise_decay^(T - t) when noise_std > 0. The
denoiser predicts x from z_t, the user's row c (dropped out in training) and A c, with a squared loss over
items, t drawn uniformly from 1..T. A recommendation runs T deterministic reverse steps from z_T (each step
re-blurs the prediction and, with noise_decay > 0, keeps that share of the previous step's residual).
T-GiffCF weights the rows by recency (T-DiffRec's weights); the graph stays binary.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recbole_diffrec.errors import DataError
from recbole_diffrec.models.base import UserRowRecommender
from recbole_diffrec.models.diffrec import TimeWeighting
from recbole_diffrec.networks.denoiser import InputDropout
from recbole_diffrec.networks.giffcf import GiffDenoiser

if TYPE_CHECKING:  # annotations only
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole_diffrec.settings import SettingsReader

PROPAGATIONS = ("auto", "dense", "sparse")
# propagation auto: on a GPU the dense item-item matrix up to this many items (256 MB); on a CPU the two sparse
# products, which measured faster there (ml-1m_clean, one thread: 32 against 38 ms a training step)
DENSE_GRAPH_UP_TO = 8_000
CACHE_SMOOTHED_UP_TO = 2 ** 26  # A x of every user's row kept (users x items floats, 256 MB) up to this size


class GiffCF(UserRowRecommender):
    """Graph-signal diffusion over the users' rows with GiffCF's denoiser."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        s = super().read_settings(reader)
        s["embedding_size"] = reader.integer("embedding_size", low=1)
        s["steps"] = reader.integer("steps", low=1)
        s["alpha"] = reader.number("alpha", low=0)
        s["dropout"] = reader.number("dropout", low=0, high=1, high_open=True)
        s["input_norm"] = reader.boolean("input_norm")
        s["ideal_weight"] = reader.number("ideal_weight", low=0)
        s["ideal_cutoff"] = reader.integer("ideal_cutoff", low=1)
        s["noise_std"] = reader.number("noise_std", low=0)
        s["noise_decay"] = reader.number("noise_decay", low=0)
        s["propagation"] = reader.choice("propagation", PROPAGATIONS)
        return s

    def build(self, dataset: Dataset) -> None:
        s = self.settings
        cutoff = s["ideal_cutoff"] if s["ideal_weight"] > 0 else 1
        adjacency, values, vectors = self.artifacts.item_graph(cutoff)
        if s["ideal_weight"] > 0 and len(values) < cutoff:
            raise DataError(f"ideal_cutoff={cutoff} exceeds the {len(values)} singular vectors this training "
                            "matrix has; lower ideal_cutoff")
        self.largest_eigenvalue = float(values[0])
        on_gpu = torch.device(self.device).type == "cuda"
        dense = s["propagation"] == "dense" or (s["propagation"] == "auto" and on_gpu and self.n_items <= DENSE_GRAPH_UP_TO)
        self.dense_graph = dense
        if dense:
            gram = (adjacency.T @ adjacency).toarray() / self.largest_eigenvalue
            self.register_buffer("gram", torch.from_numpy(gram.astype(np.float32)), persistent=False)
        else:
            scaled = adjacency / np.sqrt(self.largest_eigenvalue)  # R'^T R' / lambda = (R'/sqrt l)^T (R'/sqrt l)
            self.register_buffer("adjacency", _torch_csr(scaled), persistent=False)
            self.register_buffer("adjacency_t", _torch_csr(scaled.T.tocsr()), persistent=False)
        self.register_buffer("ideal_basis", torch.from_numpy(vectors[:cutoff].astype(np.float32)), persistent=False)
        self.denoiser = GiffDenoiser(self.n_items, max(self.n_items - 1, 1), s["embedding_size"], s["input_norm"])
        self.input_dropout = InputDropout(s["dropout"])
        # The rows never change, so neither does their smoothed version: computed once where it fits (a
        # training step then smooths only the dropped-out row c, half the propagation work).
        self.cache_smoothed = self.n_users * self.n_items <= CACHE_SMOOTHED_UP_TO
        if self.cache_smoothed:
            with torch.no_grad():
                users = torch.arange(self.n_users)
                rows = torch.cat([self.smooth(self.inputs.dense(users[i:i + 1024]))
                                  for i in range(0, self.n_users, 1024)])
            self.register_buffer("smoothed_rows", rows, persistent=False)

    def smoothed_inputs(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A x of these users' input rows x (from the cache where there is one)."""
        if self.cache_smoothed:
            return self.smoothed_rows[users]
        return self.smooth(x)

    # ---- the graph filter ----------------------------------------------------------------------
    def propagate(self, x: torch.Tensor) -> torch.Tensor:
        """x R'^T R' / lambda_max, in float32 whatever the autocast."""
        with float32(x.device):
            x = x.float()
            if self.dense_graph:
                return x @ self.gram
            return (self.adjacency_t @ (self.adjacency @ x.T)).T

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """A x: the propagation, mixed with the ideal low-pass filter when ideal_weight > 0."""
        weight = self.settings["ideal_weight"]
        smoothed = self.propagate(x)
        if weight:
            with float32(x.device):
                ideal = (x.float() @ self.ideal_basis.T) @ self.ideal_basis
            smoothed = (smoothed + weight * ideal) / (1 + weight)
        return smoothed

    def blur(self, x: torch.Tensor, smoothed: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """z_t = x + alpha t / T (A x - x), t of shape (batch, 1) or a number."""
        s = self.settings
        return x + s["alpha"] * (t / s["steps"]) * (smoothed - x)

    # ---- training and inference ----------------------------------------------------------------
    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        s = self.settings
        users = interaction[self.USER_ID]
        x = self.inputs.dense(users)
        t = torch.randint(1, s["steps"] + 1, (x.shape[0], 1), device=x.device)
        z_t = self.blur(x, self.smoothed_inputs(users, x), t)
        if s["noise_std"] > 0:
            z_t = z_t + s["noise_std"] * s["noise_decay"] ** (s["steps"] - t) * torch.randn_like(x)
        c = self.input_dropout(x)
        x_pred = self.denoiser(z_t, c, self.smooth(c), t.reshape(-1))
        return (x - x_pred).pow(2).sum(-1).mean()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, smoothed: torch.Tensor | None = None) -> torch.Tensor:
        """The T deterministic reverse steps from z_T = blur(x, A x, T)."""
        s = self.settings
        smoothed = self.smooth(x) if smoothed is None else smoothed
        z = self.blur(x, smoothed, s["steps"])
        for t in range(s["steps"], 0, -1):
            steps = torch.full((x.shape[0],), t, device=x.device)
            x_pred = self.denoiser(z, x, smoothed, steps)
            smoothed_pred = self.smooth(x_pred)
            z_next = self.blur(x_pred, smoothed_pred, t - 1)
            if s["noise_decay"] > 0:
                z = z_next + s["noise_decay"] * (z - self.blur(x_pred, smoothed_pred, t))
            else:
                z = z_next
        return z

    def user_scores(self, users: torch.Tensor) -> torch.Tensor:
        x = self.inputs.dense(users)
        return self.reconstruct(x, self.smoothed_inputs(users, x))


class TGiffCF(TimeWeighting, GiffCF):
    """GiffCF over recency-weighted rows (T-DiffRec's weights, TimeWeighting.yaml)."""


def float32(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast off on `device` (a no-op on devices autocast does not know, such as meta)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _torch_csr(matrix):
    matrix = matrix.tocsr().astype(np.float32)
    return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                   torch.from_numpy(matrix.indices.astype(np.int64)),
                                   torch.from_numpy(matrix.data), size=matrix.shape)
