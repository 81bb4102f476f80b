"""Networks: the MLP denoiser (DiffRec) and the group VAE (L-DiffRec). torch only."""

from recbole_diffrec.networks.denoiser import (
    ACTIVATIONS,
    MLPDenoiser,
    timestep_embedding,
)
from recbole_diffrec.networks.vae import GroupVAE

__all__ = ["ACTIVATIONS", "MLPDenoiser", "GroupVAE", "timestep_embedding"]
