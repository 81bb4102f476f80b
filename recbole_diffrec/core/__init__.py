"""The diffusion core: schedules, Gaussian diffusion and the timestep sampler. Imports torch and numpy
only; knows nothing of RecBole. The denoiser is always an argument."""

from recbole_diffrec.core.diffusion import MEAN_TYPES, GaussianDiffusion
from recbole_diffrec.core.sampler import TimestepSampler
from recbole_diffrec.core.schedules import BOUNDED, SCHEDULES, make_betas

__all__ = ["GaussianDiffusion", "TimestepSampler", "make_betas", "MEAN_TYPES", "SCHEDULES", "BOUNDED"]
