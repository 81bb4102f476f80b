"""Reverse chains over a subset of the timesteps (a respaced process), and the noise-free chain written as an
affine recursion, apart from the diffusion itself (:mod:`recbole_diffrec.core.diffusion`) as improved
diffusion keeps its respacing apart.

A chain over the visited timesteps t_k > ... > t_1 is the posterior of the process whose alpha-bar is the
original alpha-bar at those steps; visiting every step gives the paper's posterior constants. Everything here
is host arithmetic on Python floats and numpy, computed once per chain: the reverse loop on the device then
launches no gather and syncs nothing.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class MeanType(str, Enum):
    """What the denoiser predicts (the yaml's ``mean_type`` strings, equal to these members)."""

    X0 = "x0"
    EPS = "eps"


class ReverseVariance(str, Enum):
    """The variance of a reverse step with sampling noise: the posterior's, or beta_t (``large``)."""

    POSTERIOR = "posterior"
    LARGE = "large"


def strided_timesteps(steps: int, inference_steps: int = 0) -> tuple[int, ...]:
    """The timesteps a reverse chain of a `steps`-step process visits, descending. 0 (or `steps`) means all of
    them (the paper's inference); k < steps takes k steps evenly spaced over [0, steps - 1], ending at 0."""
    if inference_steps in (0, steps):
        return tuple(range(steps - 1, -1, -1))
    if not 1 <= inference_steps <= steps:
        raise ValueError(f"inference_steps={inference_steps} must be in [0, {steps}]")
    if inference_steps == 1:
        return (steps - 1,)
    grid = np.round(np.linspace(0, steps - 1, inference_steps)).astype(int)
    return tuple(int(s) for s in sorted(set(grid.tolist()), reverse=True))


def posterior_coefficients(alphas_cumprod: np.ndarray, timesteps: tuple[int, ...],
                           reverse_variance: str = ReverseVariance.POSTERIOR) -> list[tuple[float, float, float]]:
    """(coef1, coef2, log variance) of each reverse step of the chain over `timesteps` (descending), from the
    process's alpha-bar (float64). As the paper's code, the first step's log variance is clipped to the
    second's (step 0 adds no noise, so a one-step chain's log(0) is never used); ``large`` takes beta_t, and
    at the first step the posterior's at the second."""
    variance_kind = ReverseVariance(reverse_variance)
    ab = alphas_cumprod[list(timesteps)][::-1]  # ascending time
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    beta = 1.0 - ab / ab_prev
    with np.errstate(divide="ignore", invalid="ignore"):
        coef1 = beta * np.sqrt(ab_prev) / (1.0 - ab)
        coef2 = (1.0 - ab_prev) * np.sqrt(1.0 - beta) / (1.0 - ab)
        variance = beta * (1.0 - ab_prev) / (1.0 - ab)
        clipped = np.concatenate([variance[1:2], variance[1:]]) if len(variance) > 1 else variance
        if variance_kind is ReverseVariance.LARGE:
            clipped = np.concatenate([variance[1:2], beta[1:]]) if len(variance) > 1 else variance
        log_var = np.log(clipped)
    return [(float(c1), float(c2), float(lv)) for c1, c2, lv in zip(coef1[::-1], coef2[::-1], log_var[::-1])]


def affine_coefficients(alphas_cumprod: np.ndarray, timesteps: tuple[int, ...],
                        chain: list[tuple[float, float, float]], mean_type: str,
                        noiseless: bool = False) -> list[tuple[float, float]]:
    """(a_t, b_t) of the noise-free reverse step x_{t-1} = a_t f(x_t, t) + b_t x_t over `timesteps`, given the
    chain's posterior coefficients. x0 prediction: the posterior mean's coefficients. eps prediction:
    x0 = r1 x_t - r2 eps folded in, a = -coef1 r2, b = coef1 r1 + coef2. Without noise the chain is x <- f(x)."""
    if noiseless:
        return [(1.0, 0.0)] * len(timesteps)
    if MeanType(mean_type) is MeanType.X0:
        return [(c1, c2) for c1, c2, _ in chain]
    r1 = np.sqrt(1.0 / alphas_cumprod)
    r2 = np.sqrt(1.0 / alphas_cumprod - 1.0)
    return [(-c1 * float(r2[step]), c1 * float(r1[step]) + c2) for step, (c1, c2, _) in zip(timesteps, chain)]
