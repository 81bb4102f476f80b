"""FlowCF's velocity network (Liu et al., KDD 2025): an MLP over [x_t, a linear map of t's sinusoidal
embedding (frequencies times 2 pi, t in [0, 1])] that predicts the data end x_1. Dropout before every layer,
tanh between them, Xavier-normal weights and zero biases, as the published code builds it with RecBole's
MLPLayers.

Why not :class:`~recbole_diffrec.networks.denoiser.MLPDenoiser`, the same shape of network: the two differ
wherever their papers' code does, and each must load its code's weights and reproduce its draws. FlowCF
drops out before every layer (DiffRec only the input), scales the step's frequencies by 2 pi for t in [0, 1]
(DiffRec's integer steps take none), initialises Xavier-normal (DiffRec normal with fan-based std), and its
layers are a plain list of square-ish sizes where DiffRec mirrors its dims around a bottleneck and keeps its
first layer item-major for sparse input and the hidden-space reverse chain. One class with switches for all
of this would be two classes sharing a name."""

import math

import torch
from torch import nn

from recbole_diffrec.networks.denoiser import ACTIVATIONS
from recbole_diffrec.networks.timesteps import timestep_embedding


class FlowMLP(nn.Module):
    def __init__(self, n_items: int, dims: list, embedding_size: int, activation: str = "tanh",
                 dropout: float = 0.1):
        super().__init__()
        self.embedding_size = embedding_size
        self.activation = ACTIVATIONS[activation]
        self.time_layer = nn.Linear(embedding_size, embedding_size)
        sizes = [n_items + embedding_size, *dims, n_items]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        for layer in [self.time_layer, *self.layers]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_layer(timestep_embedding(t, self.embedding_size, scale=2 * math.pi).to(x_t.dtype))
        h = torch.cat([x_t, emb], dim=-1)
        for n, layer in enumerate(self.layers):
            h = layer(self.dropout(h))
            if n < len(self.layers) - 1:
                h = self.activation(h)
        return h
