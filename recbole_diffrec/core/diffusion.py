"""Gaussian diffusion over interaction vectors (DiffRec, Wang et al., SIGIR 2023, Sec. 3).

Pure torch; knows nothing of RecBole. The denoiser is passed in as an argument (any callable
``denoiser(x_t, t) -> tensor`` shaped like ``x_t``), so the math is testable with a lambda.

Names follow the diffusion literature: ``betas``, ``alphas_cumprod`` (alpha-bar), ``q_sample`` (forward
process, Eq. 2), ``posterior_mean_coef1/2`` (Eq. 5), ``p_sample`` (one reverse step, Sec. 3.4) and
``p_sample_loop`` (the reverse chain).
Schedule constants are computed once in float64 and kept as non-persistent buffers: ``.to(device)``
moves them, and checkpoints do not carry what the settings already determine.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.core.respace import (
    MeanType,
    ReverseVariance,
    affine_coefficients,
    posterior_coefficients,
    strided_timesteps,
)
from recbole_diffrec.core.schedules import make_betas
from recbole_diffrec.core.sparse import SparseRows

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # denoiser(x_t, t) -> a tensor shaped like x_t

MEAN_TYPES = tuple(m.value for m in MeanType)  # the yaml's strings; the core holds the enum members
REVERSE_VARIANCES = tuple(v.value for v in ReverseVariance)


def _gather(constants, t):
    """constants[t], shaped (B, 1) to broadcast over items (pass the float32 copy: one kernel, no cast)."""
    return constants[t].unsqueeze(-1)


# --------------------------------------------------------------------------------------------------
# Gaussian diffusion.
# --------------------------------------------------------------------------------------------------
class GaussianDiffusion(nn.Module):
    """Forward and reverse processes of DiffRec.

    Args:
        mean_type: "x0" (the denoiser predicts x_0) or "eps" (it predicts the noise).
        noise_schedule: one of :data:`~recbole_diffrec.core.schedules.SCHEDULES`.
        noise_scale: scale of the linear schedules; 0 turns the noise off (x_t = x_0), as the paper allows.
        noise_min, noise_max: bounds of the linear schedules, multiplied by noise_scale.
        steps: number of diffusion steps T.
        beta_fixed: fix beta_1 to 1e-5, as the paper's code, to keep the first step almost noise-free.
        reverse_variance: the variance of a reverse step with sampling noise: "posterior" (the posterior's,
            the first step's clipped to the second's; DiffRec) or "large" (beta_t, the first step's the
            posterior's at step 1; Ho et al.'s other choice, DiffuRec's code).
    """

    # buffers, registered in __init__ (float64: the exact constants; float32: the per-row coefficients)
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas_cumprod: torch.Tensor
    sqrt_recipm1_alphas_cumprod: torch.Tensor

    def __init__(self, mean_type: str = "x0", noise_schedule: str = "linear-var", noise_scale: float = 0.005,
                 noise_min: float = 0.005, noise_max: float = 0.01, steps: int = 40, beta_fixed: bool = True,
                 reverse_variance: str = "posterior"):
        super().__init__()
        if reverse_variance not in REVERSE_VARIANCES:
            raise ValueError(f"reverse_variance={reverse_variance!r} is not one of {REVERSE_VARIANCES}")
        self.reverse_variance = ReverseVariance(reverse_variance)
        if mean_type not in MEAN_TYPES:
            raise ValueError(f"mean_type={mean_type!r} is not one of {MEAN_TYPES}")
        self.mean_type = MeanType(mean_type)
        self.steps = steps
        self.noiseless = noise_scale == 0
        betas = make_betas(noise_schedule, steps, noise_scale, noise_min, noise_max, beta_fixed)
        if not self.noiseless and not ((betas > 0).all() and (betas < 1).all()):
            raise ValueError(f"betas of schedule {noise_schedule!r} fall outside (0, 1): {betas.min()}..{betas.max()}")
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        self._alphas_cumprod = alphas_cumprod  # host copy for the reverse chain's scalar coefficients
        with np.errstate(divide="ignore", invalid="ignore"):
            # float64: the loss weights and the posterior (Eq. 5, Ho et al. 2020 Eq. 7)
            exact = {
                "betas": betas,
                "alphas_cumprod": alphas_cumprod,
                "alphas_cumprod_prev": alphas_cumprod_prev,
                "posterior_mean_coef1": betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
                "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod),
            }
            # float32 (cast once here): the per-row coefficients of the training step and its x0 estimate
            per_row = {
                "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
                "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
                "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
                "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1.0),
            }
        for name, value in exact.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.float64), persistent=False)
        for name, value in per_row.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.float64).float(), persistent=False)
        self._chains: dict[tuple[int, ...], list[tuple]] = {}

    # ---- forward process -------------------------------------------------------------------------
    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps (Eq. 2)."""
        if self.noiseless:
            return x_start
        if noise is None:
            noise = torch.randn_like(x_start)
        return torch.addcmul(_gather(self.sqrt_one_minus_alphas_cumprod, t) * noise,
                             _gather(self.sqrt_alphas_cumprod, t), x_start)

    def q_posterior_mean(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x_0) (Eq. 5), in the inputs' dtype."""
        coef1 = _gather(self.posterior_mean_coef1, t).to(x_start.dtype)
        coef2 = _gather(self.posterior_mean_coef2, t).to(x_t.dtype)
        return coef1 * x_start + coef2 * x_t

    def predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert Eq. 2: x_0 = (x_t - sqrt(1 - alpha-bar_t) eps) / sqrt(alpha-bar_t)."""
        return _gather(self.sqrt_recip_alphas_cumprod, t) * x_t - _gather(self.sqrt_recipm1_alphas_cumprod, t) * eps

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio alpha-bar_t / (1 - alpha-bar_t), float64."""
        return self.alphas_cumprod[t] / (1.0 - self.alphas_cumprod[t])

    # ---- training --------------------------------------------------------------------------------
    def training_losses(self, denoiser: Denoiser, x_start: torch.Tensor, t: torch.Tensor,
                        noise: torch.Tensor | None = None, reweight: bool = True,
                        return_x0: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
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
    def reverse_timesteps(self, inference_steps: int = 0) -> tuple[int, ...]:
        """The timesteps the reverse chain visits, descending (:func:`~recbole_diffrec.core.respace.strided_timesteps`)."""
        return strided_timesteps(self.steps, inference_steps)

    def chain(self, timesteps: tuple[int, ...]) -> list[tuple[float, float, float]]:
        """Scalar posterior coefficients (coef1, coef2, log variance) for a chain over `timesteps`, computed
        once per chain (:func:`~recbole_diffrec.core.respace.posterior_coefficients`)."""
        if timesteps not in self._chains:
            self._chains[timesteps] = posterior_coefficients(self._alphas_cumprod, timesteps, self.reverse_variance)
        return self._chains[timesteps]

    def p_sample(self, denoiser: Denoiser, x_t: torch.Tensor, step: int, coefficients: tuple,
                 sampling_noise: bool = False) -> torch.Tensor:
        """One reverse step x_t -> x_{t-1} (Sec. 3.4) at timestep `step` with the chain's posterior
        `coefficients` (coef1, coef2, log variance) for that step (see :meth:`chain`): the posterior mean
        given the denoiser's x0 estimate, plus the posterior noise with `sampling_noise` (none at step 0)."""
        coef1, coef2, log_var = coefficients
        t = torch.full((x_t.shape[0],), step, dtype=torch.long, device=x_t.device)
        output = denoiser(x_t, t)
        if self.noiseless:
            return output
        x0 = output if self.mean_type == "x0" else self.predict_xstart_from_eps(x_t, t, output)
        x_prev = coef1 * x0 + coef2 * x_t
        if sampling_noise and step > 0:
            x_prev = x_prev + math.exp(0.5 * log_var) * torch.randn_like(x_prev)
        return x_prev

    @torch.no_grad()
    def p_sample_loop(self, denoiser: Denoiser, x_start: torch.Tensor | SparseRows, sampling_steps: int = 0, sampling_noise: bool = False,
                      inference_steps: int = 0) -> torch.Tensor:
        """Recommendation by the reverse process (Sec. 3.4).

        The user's history is noised by `sampling_steps` forward steps (0: used as is) and then denoised
        over all T steps, as the paper's code does whatever `sampling_steps` says, or over a strided
        chain of `inference_steps` steps (beyond the paper; 1 is a single x0 prediction).

        Without sampling noise every step is affine in the denoiser's output and in x_t,
        x_{t-1} = a_t f(x_t, t) + b_t x_t. A denoiser whose ``runs_hidden_chain()`` says so (the MLP, unless
        switched off) runs the whole chain in its hidden space (``affine_chain``): the same result up to
        float rounding at a fraction of the cost, and reads `x_start` as :class:`SparseRows` if given so (its
        first product then costs the non-zeros). Otherwise :meth:`p_sample` runs step by step.
        """
        batch = x_start.shape[0]
        hidden = not sampling_noise and getattr(denoiser, "runs_hidden_chain", lambda: False)()
        if isinstance(x_start, SparseRows) and (sampling_steps > 0 or not hidden):
            x_start = x_start.to_dense()  # only the hidden-space chain reads sparse rows as they are
        timesteps = self.reverse_timesteps(inference_steps)
        if isinstance(x_start, SparseRows):  # hidden and no forward steps: the rows go in as they are
            chain = denoiser.affine_chain  # type: ignore[attr-defined]  # networks.denoiser.MLPDenoiser
            return chain(x_start, timesteps, self.affine_coefficients(timesteps))
        if sampling_steps > 0:
            t = torch.full((batch,), sampling_steps - 1, dtype=torch.long, device=x_start.device)
            x_t = self.q_sample(x_start, t)
        else:
            x_t = x_start
        if hidden:  # a denoiser with the hidden-space chain (networks.denoiser.MLPDenoiser)
            chain = denoiser.affine_chain  # type: ignore[attr-defined]
            return chain(x_t, timesteps, self.affine_coefficients(timesteps))
        for step, coefficients in zip(timesteps, self.chain(timesteps)):
            x_t = self.p_sample(denoiser, x_t, step, coefficients, sampling_noise)
        return x_t

    def affine_coefficients(self, timesteps: tuple[int, ...]) -> list[tuple[float, float]]:
        """(a_t, b_t) of the noise-free reverse step x_{t-1} = a_t f(x_t, t) + b_t x_t over `timesteps`
        (:func:`~recbole_diffrec.core.respace.affine_coefficients`)."""
        return affine_coefficients(self._alphas_cumprod, timesteps, self.chain(timesteps), self.mean_type,
                                   self.noiseless)
