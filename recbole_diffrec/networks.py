"""Networks: the MLP denoiser of DiffRec (Sec. 3.5 of the paper)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.diffusion import timestep_embedding

ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu}


def init_linear(layer):
    """Xavier-normal weights, N(0, 0.001) biases, as the paper's code."""
    fan_out, fan_in = layer.weight.shape
    nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))
    nn.init.normal_(layer.bias, 0.0, 0.001)


class MLPDenoiser(nn.Module):
    """Predicts x_0 (or the noise) from [x_t, embedding of t].

    The shape follows the paper's ``--dims``: `dims` lists the hidden sizes of the output half, from
    the bottleneck outwards, and the input half mirrors it. dims [200, 600] over n items gives
    (n + e) -> 600 -> 200 -> 600 -> n; dims [1000] gives (n + e) -> 1000 -> n. Every layer but the last
    is followed by the activation.

    Args:
        n_features: length of the vector being denoised (items, or the latent size for L-DiffRec).
        dims: hidden sizes, see above; non-empty, positive.
        emb_size: timestep embedding size e.
        activation: a key of ACTIVATIONS.
        dropout: dropout on the input vector.
        norm: L2-normalise the input vector first.
    """

    def __init__(self, n_features, dims, emb_size=10, activation="tanh", dropout=0.5, norm=False):
        super().__init__()
        out_dims = list(dims) + [n_features]
        in_dims = out_dims[::-1]
        self.emb_size = emb_size
        self.norm = norm
        self.act = ACTIVATIONS[activation]
        self.emb_layer = nn.Linear(emb_size, emb_size)
        self.in_layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip([in_dims[0] + emb_size] + in_dims[1:-1], in_dims[1:])
        )
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(out_dims[:-1], out_dims[1:]))
        self.drop = nn.Dropout(dropout)
        for layer in [self.emb_layer, *self.in_layers, *self.out_layers]:
            init_linear(layer)

    def forward(self, x, t):
        emb = self.emb_layer(timestep_embedding(t, self.emb_size))
        if self.norm:
            x = F.normalize(x)
        h = torch.cat([self.drop(x), emb], dim=-1)
        for layer in self.in_layers:
            h = self.act(layer(h))
        last = len(self.out_layers) - 1
        for i, layer in enumerate(self.out_layers):
            h = layer(h)
            if i != last:
                h = self.act(h)
        return h
