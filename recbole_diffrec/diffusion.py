"""Gaussian diffusion over interaction vectors (DiffRec, Wang et al., SIGIR 2023, Sec. 3).

Pure torch; knows nothing of RecBole. The denoiser is passed in as an argument (any callable
``denoiser(x_t, t) -> tensor`` shaped like ``x_t``), so the math is testable with a lambda.

Names follow the diffusion literature: ``betas``, ``alphas_cumprod`` (alpha-bar), ``q_sample`` (forward
process, Eq. 2), ``q_posterior`` (Eq. 5), ``p_sample`` (reverse process at inference, Sec. 3.4).
Schedule constants are computed once in float64 and kept as non-persistent buffers: ``.to(device)``
moves them, and checkpoints do not carry what the settings already determine.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SCHEDULES = ("linear", "linear-var", "cosine", "binomial")
MEAN_TYPES = ("x0", "eps")
BETA_FIXED_VALUE = 1e-5  # beta_1 when `beta_fixed` (Sohl-Dickstein et al. 2015, Sec. 2.4.1), as the paper's code
MAX_BETA = 0.999


# --------------------------------------------------------------------------------------------------
# Schedules: small pure functions returning float64 numpy arrays of length `steps`.
# --------------------------------------------------------------------------------------------------
def linear_betas(steps, start, end):
    """beta_t rises linearly from `start` to `end`."""
    return np.linspace(start, end, steps, dtype=np.float64)


def linear_variance_betas(steps, start, end, max_beta=MAX_BETA):
    """The cumulative variance 1 - alpha-bar_t rises linearly from `start` to `end` (DiffRec Sec. 3.2)."""
    alpha_bar = 1.0 - np.linspace(start, end, steps, dtype=np.float64)
    previous = np.concatenate([[1.0], alpha_bar[:-1]])
    return np.minimum(1.0 - alpha_bar / previous, max_beta)


def cosine_betas(steps, max_beta=MAX_BETA, offset=0.008):
    """Nichol & Dhariwal (2021) cosine schedule: alpha-bar(s) = cos((s + o) / (1 + o) * pi / 2)^2."""
    def alpha_bar(s):
        return math.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)],
        dtype=np.float64,
    )


def binomial_betas(steps):
    """beta_t = 1 / (T - t + 1), t = 0..T-1 (Sohl-Dickstein et al. 2015, Sec. 2.4.1)."""
    return 1.0 / (steps - np.arange(steps, dtype=np.float64) + 1.0)


def make_betas(schedule, steps, noise_scale, noise_min, noise_max, beta_fixed):
    """Betas for a schedule. Linear schedules span [noise_scale * noise_min, noise_scale * noise_max];
    cosine and binomial ignore the three noise settings, as in the paper's code."""
    if schedule == "linear":
        betas = linear_betas(steps, noise_scale * noise_min, noise_scale * noise_max)
    elif schedule == "linear-var":
        betas = linear_variance_betas(steps, noise_scale * noise_min, noise_scale * noise_max)
    elif schedule == "cosine":
        betas = cosine_betas(steps)
    elif schedule == "binomial":
        betas = binomial_betas(steps)
    else:
        raise ValueError(f"noise_schedule={schedule!r} is not one of {SCHEDULES}")
    if beta_fixed:
        betas = betas.copy()
        betas[0] = BETA_FIXED_VALUE
    return betas


def timestep_embedding(timesteps, dim, max_period=10000):
    """Sinusoidal embedding of integer timesteps (Vaswani et al. 2017), shape (len(timesteps), dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def _gather(constants, t):
    """constants[t], shaped (B, 1) to broadcast over items (pass the float32 copy: one kernel, no cast)."""
    return constants[t].unsqueeze(-1)


# --------------------------------------------------------------------------------------------------
# Importance sampling of timesteps (the paper's Sec. 3.3, "importance sampling").
# --------------------------------------------------------------------------------------------------
class TimestepSampler(nn.Module):
    """Samples t with p_t proportional to sqrt(E[L_t^2]) over the last `history` losses of each step.

    Until every step has `history` losses recorded, t is uniform and p_t reads 1. A small uniform share
    (`uniform_prob`) keeps every step reachable. The loss history is model state (a persistent buffer):
    it moves with the model and is saved in checkpoints, so a resumed run samples as the uninterrupted
    one would. Sampling and updating are vectorised: no host sync, no Python loop over the batch.
    """

    def __init__(self, steps, history=10, uniform_prob=0.001):
        super().__init__()
        self.steps = steps
        self.history = history
        self.uniform_prob = uniform_prob
        self.register_buffer("loss_history", torch.zeros(steps, history, dtype=torch.float64))
        self.register_buffer("history_count", torch.zeros(steps, dtype=torch.long))

    def probabilities(self):
        """(p over steps, whether the history is full); both stay on the device."""
        full = (self.history_count == self.history).all()
        rms = self.loss_history.pow(2).mean(-1).sqrt()
        importance = rms / rms.sum().clamp_min(torch.finfo(rms.dtype).tiny)
        importance = importance * (1 - self.uniform_prob) + self.uniform_prob / self.steps
        uniform = torch.full_like(importance, 1.0 / self.steps)
        return torch.where(full, importance, uniform), full

    def sample(self, batch_size, generator=None):
        """Timesteps (long) and p_t * T, by which the caller divides the loss (1 while uniform)."""
        probs, full = self.probabilities()
        t = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        weight = torch.where(full, probs[t] * self.steps, torch.ones_like(probs[t]))
        return t, weight

    @torch.no_grad()
    def update(self, t, losses):
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


# --------------------------------------------------------------------------------------------------
# Gaussian diffusion.
# --------------------------------------------------------------------------------------------------
class GaussianDiffusion(nn.Module):
    """Forward and reverse processes of DiffRec.

    Args:
        mean_type: "x0" (the denoiser predicts x_0) or "eps" (it predicts the noise).
        noise_schedule: one of SCHEDULES.
        noise_scale: scale of the linear schedules; 0 turns the noise off (x_t = x_0), as the paper allows.
        noise_min, noise_max: bounds of the linear schedules, multiplied by noise_scale.
        steps: number of diffusion steps T.
        beta_fixed: fix beta_1 to 1e-5, as the paper's code, to keep the first step almost noise-free.
    """

    def __init__(self, mean_type="x0", noise_schedule="linear-var", noise_scale=0.005, noise_min=0.005,
                 noise_max=0.01, steps=40, beta_fixed=True):
        super().__init__()
        if mean_type not in MEAN_TYPES:
            raise ValueError(f"mean_type={mean_type!r} is not one of {MEAN_TYPES}")
        self.mean_type = mean_type
        self.steps = steps
        self.noiseless = noise_scale == 0
        betas = make_betas(noise_schedule, steps, noise_scale, noise_min, noise_max, beta_fixed)
        if not self.noiseless and not ((betas > 0).all() and (betas < 1).all()):
            raise ValueError(f"betas of schedule {noise_schedule!r} fall outside (0, 1): {betas.min()}..{betas.max()}")
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        self._alphas_cumprod = alphas_cumprod  # host copy for the reverse chain's scalar coefficients
        constants = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1.0),
        }
        # Posterior q(x_{t-1} | x_t, x_0) (Eq. 5, Ho et al. 2020 Eq. 7).
        with np.errstate(divide="ignore", invalid="ignore"):
            constants["posterior_variance"] = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
            constants["posterior_mean_coef1"] = betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod)
            constants["posterior_mean_coef2"] = (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod)
        for name, value in constants.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.float64), persistent=False)
            # float32 copies for the per-row coefficients of the training step (the values the step
            # would get by casting, cast once here)
            self.register_buffer(f"{name}_f32", torch.tensor(value, dtype=torch.float64).float(), persistent=False)
        self._chains = {}

    # ---- forward process -------------------------------------------------------------------------
    def q_sample(self, x_start, t, noise=None):
        """x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps (Eq. 2)."""
        if self.noiseless:
            return x_start
        if noise is None:
            noise = torch.randn_like(x_start)
        return torch.addcmul(_gather(self.sqrt_one_minus_alphas_cumprod_f32, t) * noise,
                             _gather(self.sqrt_alphas_cumprod_f32, t), x_start)

    def q_posterior_mean(self, x_start, x_t, t):
        """Mean of q(x_{t-1} | x_t, x_0)."""
        return _gather(self.posterior_mean_coef1_f32, t) * x_start + _gather(self.posterior_mean_coef2_f32, t) * x_t

    def predict_xstart_from_eps(self, x_t, t, eps):
        """Invert Eq. 2: x_0 = (x_t - sqrt(1 - alpha-bar_t) eps) / sqrt(alpha-bar_t)."""
        return _gather(self.sqrt_recip_alphas_cumprod_f32, t) * x_t - _gather(self.sqrt_recipm1_alphas_cumprod_f32, t) * eps

    def snr(self, t):
        """Signal-to-noise ratio alpha-bar_t / (1 - alpha-bar_t), float64."""
        return self.alphas_cumprod[t] / (1.0 - self.alphas_cumprod[t])

    # ---- training --------------------------------------------------------------------------------
    def training_losses(self, denoiser, x_start, t, noise=None, reweight=True, return_x0=False):
        """Per-row loss at timesteps t (Sec. 3.3), before division by the sampler's p_t; with
        `return_x0`, also the denoiser's estimate of x_0 (L-DiffRec decodes it).

        With `reweight`, the x0 objective is weighted by SNR(t-1) - SNR(t) (Eq. 11-12) and the eps
        objective by its ELBO weight; step 0 gets weight 1 (and, for eps, the x0 likelihood term).
        """
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise)
        output = denoiser(x_t, t)
        target = x_start if self.mean_type == "x0" else noise
        # one fused kernel forward and backward (under autocast it computes in float32)
        mse = F.mse_loss(output, target, reduction="none").mean(-1)
        if return_x0:
            x0 = output if self.mean_type == "x0" else self.predict_xstart_from_eps(x_t, t, output)
            return self._weighted_loss(mse, x_start, x_t, t, output, reweight), x0
        return self._weighted_loss(mse, x_start, x_t, t, output, reweight)

    def _weighted_loss(self, mse, x_start, x_t, t, output, reweight):
        if not reweight or self.noiseless:
            return mse
        first = t == 0
        if self.mean_type == "x0":
            weight = self.snr((t - 1).clamp_min(0)) - self.snr(t)
            loss = mse
        else:
            weight = (1 - self.alphas_cumprod[t]) / (
                (1 - self.alphas_cumprod_prev[t]).pow(2) * (1 - self.betas[t])
            )
            x0_estimate = self.predict_xstart_from_eps(x_t, t, output)
            likelihood = F.mse_loss(x0_estimate, x_start, reduction="none").mean(-1) / 2.0
            loss = torch.where(first, likelihood, mse)
        weight = torch.where(first, torch.ones_like(weight), weight)
        return weight.float() * loss

    # ---- inference -------------------------------------------------------------------------------
    def reverse_timesteps(self, inference_steps=0):
        """The timesteps the reverse chain visits, descending. 0 means all T steps (the paper's
        inference); k < T takes k steps evenly spaced over [0, T-1], always ending at 0."""
        if inference_steps in (0, self.steps):
            return tuple(range(self.steps - 1, -1, -1))
        if not 1 <= inference_steps <= self.steps:
            raise ValueError(f"inference_steps={inference_steps} must be in [0, {self.steps}]")
        if inference_steps == 1:
            return (self.steps - 1,)
        grid = np.round(np.linspace(0, self.steps - 1, inference_steps)).astype(int)
        return tuple(int(s) for s in sorted(set(grid.tolist()), reverse=True))

    def chain(self, timesteps):
        """Scalar posterior coefficients (coef1, coef2, log variance) for a chain over `timesteps`.

        For the full chain these are the paper's posterior constants; for a strided chain they are the
        posterior of the respaced process whose alpha-bar is alpha-bar at the visited steps. Python
        floats: the reverse loop launches no gather and syncs nothing.
        """
        if timesteps not in self._chains:
            ab = self._alphas_cumprod[list(timesteps)][::-1]  # ascending time
            ab_prev = np.concatenate([[1.0], ab[:-1]])
            beta = 1.0 - ab / ab_prev
            with np.errstate(divide="ignore", invalid="ignore"):
                coef1 = beta * np.sqrt(ab_prev) / (1.0 - ab)
                coef2 = (1.0 - ab_prev) * np.sqrt(1.0 - beta) / (1.0 - ab)
                variance = beta * (1.0 - ab_prev) / (1.0 - ab)
                # As the paper's code: the first step's log variance is clipped to the second's
                # (step 0 adds no noise, so a one-step chain's log(0) is never used).
                log_var = np.log(np.concatenate([variance[1:2], variance[1:]]) if len(variance) > 1 else variance)
            self._chains[timesteps] = [
                (float(c1), float(c2), float(lv)) for c1, c2, lv in zip(coef1[::-1], coef2[::-1], log_var[::-1])
            ]
        return self._chains[timesteps]

    @torch.no_grad()
    def p_sample(self, denoiser, x_start, sampling_steps=0, sampling_noise=False, inference_steps=0, factored=True):
        """Recommendation by the reverse process (Sec. 3.4).

        The user's history is noised by `sampling_steps` forward steps (0: used as is) and then denoised
        over all T steps, as the paper's code does whatever `sampling_steps` says, or over a strided
        chain of `inference_steps` steps (beyond the paper; 1 is a single x0 prediction).

        Without sampling noise every step is affine in the denoiser's output and in x_t,
        x_{t-1} = a_t f(x_t, t) + b_t x_t, so a denoiser with an `affine_chain` method (the MLP) runs the
        whole chain in its hidden space: the same result up to float rounding at a fraction of the cost.
        `factored=False` forces the step-by-step loop.
        """
        batch = x_start.shape[0]
        if sampling_steps > 0:
            t = torch.full((batch,), sampling_steps - 1, dtype=torch.long, device=x_start.device)
            x_t = self.q_sample(x_start, t)
        else:
            x_t = x_start
        timesteps = self.reverse_timesteps(inference_steps)
        if factored and not sampling_noise and getattr(denoiser, "can_factor_chain", lambda: False)():
            return denoiser.affine_chain(x_t, timesteps, self.affine_coefficients(timesteps))
        if self.noiseless:
            for step in timesteps:
                x_t = denoiser(x_t, torch.full((batch,), step, dtype=torch.long, device=x_t.device))
            return x_t
        for step, (coef1, coef2, log_var) in zip(timesteps, self.chain(timesteps)):
            t = torch.full((batch,), step, dtype=torch.long, device=x_t.device)
            output = denoiser(x_t, t)
            x0 = output if self.mean_type == "x0" else self.predict_xstart_from_eps(x_t, t, output)
            x_t = coef1 * x0 + coef2 * x_t
            if sampling_noise and step > 0:
                x_t = x_t + math.exp(0.5 * log_var) * torch.randn_like(x_t)
        return x_t

    def affine_coefficients(self, timesteps):
        """(a_t, b_t) of the noise-free reverse step x_{t-1} = a_t f(x_t, t) + b_t x_t over `timesteps`.

        x0 prediction: the posterior mean's coefficients. eps prediction: x0 = r1 x_t - r2 eps folded in,
        a = -coef1 r2, b = coef1 r1 + coef2. Without noise (noise_scale 0) the chain is x <- f(x).
        """
        if self.noiseless:
            return [(1.0, 0.0)] * len(timesteps)
        if self.mean_type == "x0":
            return [(c1, c2) for c1, c2, _ in self.chain(timesteps)]
        r1 = np.sqrt(1.0 / self._alphas_cumprod)
        r2 = np.sqrt(1.0 / self._alphas_cumprod - 1.0)
        return [(-c1 * float(r2[step]), c1 * float(r1[step]) + c2)
                for step, (c1, c2, _) in zip(timesteps, self.chain(timesteps))]
