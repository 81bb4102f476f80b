"""Noise schedules of DiffRec (Wang et al., SIGIR 2023, Sec. 3.2): small pure functions returning float64
numpy arrays of betas, one per diffusion step. numpy only."""

import math

import numpy as np

SCHEDULES = ("linear", "linear-var", "cosine", "binomial", "trunc-linear")
BETA_FIXED_VALUE = 1e-5  # beta_1 when `beta_fixed` (Sohl-Dickstein et al. 2015, Sec. 2.4.1), as the paper's code
MAX_BETA = 0.999


def linear_betas(steps: int, start: float, end: float) -> np.ndarray:
    """beta_t rises linearly from `start` to `end`."""
    return np.linspace(start, end, steps, dtype=np.float64)


def linear_variance_betas(steps: int, start: float, end: float, max_beta: float = MAX_BETA) -> np.ndarray:
    """The cumulative variance 1 - alpha-bar_t rises linearly from `start` to `end` (DiffRec Sec. 3.2)."""
    alpha_bar = 1.0 - np.linspace(start, end, steps, dtype=np.float64)
    previous = np.concatenate([[1.0], alpha_bar[:-1]])
    return np.minimum(1.0 - alpha_bar / previous, max_beta)


def cosine_betas(steps: int, max_beta: float = MAX_BETA, offset: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal (2021) cosine schedule: alpha-bar(s) = cos((s + o) / (1 + o) * pi / 2)^2."""
    def alpha_bar(s):
        return math.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)],
        dtype=np.float64,
    )


def binomial_betas(steps: int) -> np.ndarray:
    """beta_t = 1 / (T - t + 1), t = 0..T-1 (Sohl-Dickstein et al. 2015, Sec. 2.4.1)."""
    return 1.0 / (steps - np.arange(steps, dtype=np.float64) + 1.0)


def truncated_linear_betas(steps: int) -> np.ndarray:
    """DiffuRec's schedule (its code's ``trunc_lin``): Ho et al.'s linear schedule rescaled to `steps`
    (1000 / steps x [1e-4, 0.02]), shifted up by 0.01; where the end would pass 1, 1000 / steps x 0.001 + 0.01."""
    scale = 1000.0 / steps
    start, end = scale * 0.0001 + 0.01, scale * 0.02 + 0.01
    if end > 1:
        end = scale * 0.001 + 0.01
    return np.linspace(start, end, steps, dtype=np.float64)


def make_betas(schedule: str, steps: int, noise_scale: float, noise_min: float, noise_max: float,
               beta_fixed: bool) -> np.ndarray:
    """Betas for a schedule. Linear schedules span [noise_scale * noise_min, noise_scale * noise_max];
    cosine, binomial and trunc-linear ignore the three noise settings, as in the papers' code."""
    if schedule == "linear":
        betas = linear_betas(steps, noise_scale * noise_min, noise_scale * noise_max)
    elif schedule == "linear-var":
        betas = linear_variance_betas(steps, noise_scale * noise_min, noise_scale * noise_max)
    elif schedule == "cosine":
        betas = cosine_betas(steps)
    elif schedule == "binomial":
        betas = binomial_betas(steps)
    elif schedule == "trunc-linear":
        betas = truncated_linear_betas(steps)
    else:
        raise ValueError(f"noise_schedule={schedule!r} is not one of {SCHEDULES}")
    if beta_fixed:
        betas = betas.copy()
        betas[0] = BETA_FIXED_VALUE
    return betas


