"""Importance sampling of diffusion timesteps (DiffRec, Sec. 3.3). torch only."""

from __future__ import annotations

import torch
from torch import nn


class TimestepSampler(nn.Module):
    """Samples t with p_t proportional to sqrt(E[L_t^2]) over the last `history` losses of each step.

    Until every step has `history` losses recorded, t is uniform and p_t reads 1. A small uniform share
    (`uniform_prob`) keeps every step reachable. The loss history is model state (a persistent buffer):
    it moves with the model and is saved in checkpoints, so a resumed run samples as the uninterrupted
    one would. Sampling and updating are vectorised: no host sync, no Python loop over the batch.
    """

    loss_history: torch.Tensor  # buffers, registered in __init__
    history_count: torch.Tensor

    def __init__(self, steps: int, history: int = 10, uniform_prob: float = 0.001, importance: bool = True):
        super().__init__()
        self.steps = steps
        self.importance = importance  # False: t stays uniform (the ablation of importance sampling)
        self.history = history
        self.uniform_prob = uniform_prob
        self.register_buffer("loss_history", torch.zeros(steps, history, dtype=torch.float64))
        self.register_buffer("history_count", torch.zeros(steps, dtype=torch.long))

    def probabilities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(p over steps, whether the history is full); both stay on the device."""
        full = (self.history_count == self.history).all() & self.importance
        rms = self.loss_history.pow(2).mean(-1).sqrt()
        importance = rms / rms.sum().clamp_min(torch.finfo(rms.dtype).tiny)
        importance = importance * (1 - self.uniform_prob) + self.uniform_prob / self.steps
        # A non-finite loss in the history (a diverging run) must not crash the draw: t falls back to
        # uniform, and the trainer's end-of-epoch check reports the bad batch.
        full = full & torch.isfinite(importance).all()
        uniform = torch.full_like(importance, 1.0 / self.steps)
        return torch.where(full, importance, uniform), full

    def weighted_mean(self, losses: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The batch's loss: each element's loss divided by its p_t * T (from :meth:`sample`), averaged."""
        return (losses / weight.to(losses.dtype)).mean()

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps (long) and p_t * T, by which the caller divides the loss (1 while uniform)."""
        probs, full = self.probabilities()
        t = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        weight = torch.where(full, probs[t] * self.steps, torch.ones_like(probs[t]))
        return t, weight

    @torch.no_grad()
    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Append each loss to its step's FIFO history, in batch order, keeping the last `history`.

        Equivalent to visiting the batch element by element; done with one scatter and one gather.
        """
        t, losses = _gather_across_ranks(t, losses)
        steps, history, batch = self.steps, self.history, t.shape[0]
        order = torch.argsort(t, stable=True)
        t_sorted, loss_sorted = t[order], losses[order].to(self.loss_history.dtype)
        # index_add_, not bincount: bincount reads the largest index back to the host on CUDA.
        counts = torch.zeros(steps, dtype=torch.long, device=t.device).index_add_(0, t, torch.ones_like(t))
        group_start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(batch, device=t.device) - group_start[t_sorted]
        # A scratch row per step: old history, then this batch's losses for that step.
        scratch = torch.zeros(steps, history + batch, dtype=self.loss_history.dtype, device=t.device)
        scratch[:, :history] = self.loss_history
        scratch[t_sorted, self.history_count[t_sorted] + rank] = loss_sorted
        length = self.history_count + counts
        shift = (length - history).clamp_min(0)
        keep = shift[:, None] + torch.arange(history, device=t.device)[None, :]
        self.loss_history.copy_(torch.gather(scratch, 1, keep))
        self.history_count.copy_(length.clamp_max(history))


def _gather_across_ranks(t, losses):
    """In a distributed run, every rank's (t, loss) pairs in rank order, so each rank's sampler applies
    the same update and the samplers stay identical. A no-op in a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t, losses
    world = dist.get_world_size()
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    packed = torch.zeros(2, longest, dtype=torch.float64, device=t.device)
    packed[0, : t.shape[0]] = t.double()
    packed[1, : t.shape[0]] = losses.double()
    gathered = [torch.zeros_like(packed) for _ in range(world)]
    dist.all_gather(gathered, packed)
    parts = [g[:, : int(s.item())] for g, s in zip(gathered, sizes)]
    both = torch.cat(parts, dim=1)
    return both[0].long(), both[1].to(losses.dtype)


