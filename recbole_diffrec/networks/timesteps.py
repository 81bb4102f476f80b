"""The sinusoidal timestep embedding every model of the pack shares (Vaswani et al. 2017), and the step MLP
the sequential models put on it."""

import math

import torch
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0, scale: float = 1.0,
                       sin_first: bool = False) -> torch.Tensor:
    """Embedding of (integer or real) timesteps, shape (len(timesteps), dim): cos and sin of t * scale *
    max_period^(-i / (dim // 2)) for i < dim // 2, cosines first (DiffRec's order; `sin_first` for GiffCF's),
    zero-padded to an odd `dim`. `scale` multiplies the frequencies (2 pi for FlowCF's t in [0, 1])."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    ) * scale
    args = timesteps[:, None].float() * freqs[None]
    parts = [torch.sin(args), torch.cos(args)] if sin_first else [torch.cos(args), torch.sin(args)]
    emb = torch.cat(parts, dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def step_mlp(hidden: int) -> nn.Sequential:
    """hidden -> 4 hidden -> hidden with SiLU between: the step embedding's MLP of DiffuRec and DNR (both
    papers' code; the layer indices 0 and 2 are the checkpoints' keys)."""
    return nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.SiLU(), nn.Linear(4 * hidden, hidden))
