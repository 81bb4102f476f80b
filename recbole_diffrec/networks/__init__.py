"""Networks: the MLP denoiser (DiffRec) and the group VAE (L-DiffRec). torch only."""

from recbole_diffrec.networks.denoiser import ACTIVATIONS, MLPDenoiser
from recbole_diffrec.networks.timesteps import timestep_embedding
from recbole_diffrec.networks.vae import GroupVAE

__all__ = ["ACTIVATIONS", "MLPDenoiser", "GroupVAE", "timestep_embedding"]
