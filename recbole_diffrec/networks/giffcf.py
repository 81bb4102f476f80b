"""GiffCF's denoiser (Zhu et al., SIGIR 2024): item embeddings shared by the encoder and the decoder, and
two tiny mixers that combine, per coordinate, the noised state, the user's row, its smoothed version and a
learned scalar of the step. Keras's layer defaults are kept (Glorot-uniform weights, zero biases, SiLU),
so the released weights load as they are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.networks.timesteps import timestep_embedding


def _keras_init(linear):
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class StepScalar(nn.Module):
    """A step t -> one learned scalar: a 20-wide sinusoidal embedding (sines first), a SiLU layer, a linear one."""

    def __init__(self, width: int = 20):
        super().__init__()
        self.width = width
        self.hidden = _keras_init(nn.Linear(width, width))
        self.out = _keras_init(nn.Linear(width, 1))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.width, sin_first=True).to(self.hidden.weight.dtype)
        return self.out(F.silu(self.hidden(emb)))  # (batch, 1)


class Mixer(nn.Module):
    """Per coordinate, a SiLU layer of width 2 over `inputs` channels, then one output."""

    def __init__(self, inputs: int):
        super().__init__()
        self.hidden = _keras_init(nn.Linear(inputs, 2))
        self.out = _keras_init(nn.Linear(2, 1))

    def forward(self, *channels: torch.Tensor) -> torch.Tensor:
        x = torch.stack(channels, dim=-1)
        return self.out(F.silu(self.hidden(x))).squeeze(-1)


class GiffDenoiser(nn.Module):
    """x_pred = score_mixer(E e, c, A c, s2(t)) with e = embed_mixer(z_t E / n, c E / max(|c|_1, 1), s1(t))."""

    def __init__(self, n_items: int, n_real_items: int, embedding_size: int, input_norm: bool = True):
        super().__init__()
        self.n_real_items = n_real_items  # z_t is divided by the catalogue size (RecBole's padding item aside)
        self.input_norm = input_norm
        self.item_embedding = nn.Parameter(torch.empty(n_items, embedding_size))
        nn.init.xavier_uniform_(self.item_embedding)
        self.step_embed = StepScalar()
        self.step_score = StepScalar()
        self.embed_mixer = Mixer(3)
        self.score_mixer = Mixer(4)

    def forward(self, z_t: torch.Tensor, c: torch.Tensor, smoothed_c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.item_embedding
        if self.input_norm:
            c_in = c / c.abs().sum(-1, keepdim=True).clamp_min(1.0)
        else:
            c_in = c
        z_embed = (z_t / self.n_real_items) @ emb
        c_embed = c_in @ emb
        x_embed = self.embed_mixer(z_embed, c_embed, self.step_embed(t).expand_as(z_embed))
        x_mid = x_embed @ emb.T
        return self.score_mixer(x_mid, c, smoothed_c, self.step_score(t).expand_as(x_mid))
