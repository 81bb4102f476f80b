"""Noise schedules of DiffRec (Wang et al., SIGIR 2023, Sec. 3.2) and DiffuRec: small pure functions returning float64
numpy arrays of betas, one per diffusion step. numpy only."""

import math

import numpy as np

SCHEDULES = ("linear", "linear-var", "cosine", "binomial", "scaled-linear", "trunc-linear")
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
    def alpha_bar(s: float) -> float:
        return math.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)],
        dtype=np.float64,
    )


def binomial_betas(steps: int) -> np.ndarray:
    """beta_t = 1 / (T - t + 1), t = 0..T-1 (Sohl-Dickstein et al. 2015, Sec. 2.4.1)."""
    return 1.0 / (steps - np.arange(steps, dtype=np.float64) + 1.0)


def scaled_linear_betas(steps: int, start: float, end: float) -> np.ndarray:
    """Ho et al.'s linear schedule, written for 1000 steps, rescaled to `steps`: beta_t rises linearly from
    1000 / steps x `start` to 1000 / steps x `end` (DiffuRec's code's ``linear``)."""
    return linear_betas(steps, (1000.0 / steps) * start, (1000.0 / steps) * end)


TRUNCATED_FALLBACK_END = 0.001  # DiffuRec's code: the end when 1000 / steps x end + 0.01 would pass 1
TRUNCATED_SHIFT = 0.01


def truncated_linear_betas(steps: int, start: float, end: float) -> np.ndarray:
    """DiffuRec's schedule (its code's ``trunc_lin``): :func:`scaled_linear_betas`' bounds shifted up by 0.01;
    where the end would pass 1, 1000 / steps x 0.001 + 0.01, as that code does."""
    scale = 1000.0 / steps
    first, last = scale * start + TRUNCATED_SHIFT, scale * end + TRUNCATED_SHIFT
    if last > 1:
        last = scale * TRUNCATED_FALLBACK_END + TRUNCATED_SHIFT
    return np.linspace(first, last, steps, dtype=np.float64)


BOUNDED = ("linear", "linear-var", "scaled-linear", "trunc-linear")  # the schedules noise_scale and the bounds set


def make_betas(schedule: str, steps: int, noise_scale: float, noise_min: float, noise_max: float,
               beta_fixed: bool) -> np.ndarray:
    """Betas for a schedule. `noise_scale` has one meaning in every model: a multiplier on the bounds
    [noise_min, noise_max] of the bounded schedules (:data:`BOUNDED`), which span [noise_scale x noise_min,
    noise_scale x noise_max] (linear, linear-var), 1000 / steps times that (scaled-linear), or that plus 0.01
    (trunc-linear); cosine and binomial take no bounds and ignore the three settings, as in the papers' code."""
    low, high = noise_scale * noise_min, noise_scale * noise_max
    if schedule == "linear":
        betas = linear_betas(steps, low, high)
    elif schedule == "linear-var":
        betas = linear_variance_betas(steps, low, high)
    elif schedule == "scaled-linear":
        betas = scaled_linear_betas(steps, low, high)
    elif schedule == "cosine":
        betas = cosine_betas(steps)
    elif schedule == "binomial":
        betas = binomial_betas(steps)
    elif schedule == "trunc-linear":
        betas = truncated_linear_betas(steps, low, high)
    else:
        raise ValueError(f"noise_schedule={schedule!r} is not one of {SCHEDULES}")
    if beta_fixed:
        betas = betas.copy()
        betas[0] = BETA_FIXED_VALUE
    return betas


