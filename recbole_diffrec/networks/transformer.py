"""DiffuRec's approximator (Li, Sun, Li, TOIS 2023, Sec. 4): a Transformer over the embedded history, into
every position of which the noised target representation is added with a random per-element scale; the
representation at the last real position is the estimate of the target's embedding. torch only.

The blocks follow DiffuRec's published code, which differs from a textbook Transformer in three places,
kept here because a trained model depends on them: layer norms take their epsilon inside the square root
(1e-12); each sub-layer normalises first and adds its dropped-out output to its input, and a block ends in
one more dropout; the attention mask hides padding *queries* (rows), not keys, so every position attends to
all positions, padding included (whose representations are the same wherever the padding stands).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.networks.timesteps import step_mlp, timestep_embedding


class LayerNorm(nn.Module):
    """Layer normalisation with the epsilon inside the square root."""

    def __init__(self, size: int, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(-1, keepdim=True)
        return self.weight * centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + self.eps) + self.bias


def at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rows of x (B, L, ...) at positions (B, Q): (B, Q, ...)."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], positions]


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.output = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_normal_(self.output.weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, H); mask (B, L). ``queries`` (B, Q) positions: attend from those positions only (every
        position is still a key and a value), output (B, Q, H); default every position."""
        batch, length, hidden = x.shape
        q, query_mask = (x, mask) if queries is None else (at(x, queries), at(mask, queries))
        q = self.query(q).view(batch, q.shape[1], self.heads, -1).transpose(1, 2)
        k, v = (layer(x).view(batch, length, self.heads, -1).transpose(1, 2) for layer in (self.key, self.value))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(query_mask[:, None, :, None] == 0, -1e9)  # padding rows, as DiffuRec's code
        attended = self.dropout(F.softmax(scores, dim=-1)) @ v
        return self.output(attended.transpose(1, 2).reshape(batch, q.shape[2], hidden))


class FeedForward(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.inner, self.outer = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_normal_(self.inner.weight)
        nn.init.xavier_normal_(self.outer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.dropout(F.gelu(self.inner(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attention, self.feed_forward = SelfAttention(hidden, heads, dropout), FeedForward(hidden, dropout)
        self.attention_norm, self.feed_forward_norm = LayerNorm(hidden), LayerNorm(hidden)
        self.dropout = nn.ModuleList(nn.Dropout(dropout) for _ in range(3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """``queries`` (B, Q): compute the block's output at those positions only, (B, Q, H)."""
        attended = self.attention(self.attention_norm(x), mask, queries)
        if queries is not None:
            x = at(x, queries)
        x = x + self.dropout[0](attended)
        x = x + self.dropout[1](self.feed_forward(self.feed_forward_norm(x)))
        return self.dropout[2](x)


class DiffuRecApproximator(nn.Module):
    """f(history, x_t, t) -> estimate of the target item's embedding.

    Args:
        hidden: embedding size.
        blocks, heads: Transformer blocks and attention heads.
        dropout: dropout inside the blocks and on the output.
        lambda_uncertainty: the noised target is added to every position scaled by a factor drawn per
            element from N(lambda, lambda^2) (the paper's uncertainty injection).
        time_scale: timesteps are multiplied by this before their embedding (DiffuRec: 1000 / T).
    """

    def __init__(self, hidden: int, blocks: int = 4, heads: int = 4, dropout: float = 0.1,
                 lambda_uncertainty: float = 0.001, time_scale: float = 1.0):
        super().__init__()
        self.hidden, self.lambda_uncertainty, self.time_scale = hidden, lambda_uncertainty, time_scale
        self.time_embed = step_mlp(hidden)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)
        self.norm = LayerNorm(hidden)

    def forward(self, history: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
                last: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """history (B, L, H) embedded items, x_t (B, H), t (B,) timesteps, mask (B, L) 1 at real items,
        last (B,) the index of each row's last real position; `scale` (B, L, H) replaces the random scale
        (for tests and fidelity checks)."""
        x_t = x_t + self.time_embed(timestep_embedding(t.float() * self.time_scale, self.hidden).to(x_t.dtype))
        if scale is None:
            scale = torch.normal(self.lambda_uncertainty, self.lambda_uncertainty, size=history.shape,
                                 device=history.device, dtype=history.dtype)
        h = history + scale * x_t.unsqueeze(1)
        for block in self.blocks[:-1]:
            h = block(h, mask)
        # Only the last real position is read: the last block attends from that one query (every position
        # still a key and a value) and runs its feed-forward there alone, the same values as computing it
        # everywhere and indexing; it saves most of that block's work in training and in every reverse step.
        h = self.blocks[-1](h, mask, last[:, None])[:, 0]
        return self.norm(self.dropout(h))


def pre_norm_encoder(hidden: int, n_heads: int, n_layers: int, dropout: float) -> nn.TransformerEncoder:
    """DNR's encoder: torch's Transformer encoder, pre-norm, GELU, feed-forward 4 x hidden, batch first."""
    layer = nn.TransformerEncoderLayer(hidden, n_heads, 4 * hidden, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
