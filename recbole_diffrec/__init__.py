"""recbole-diffrec: diffusion recommenders (DiffRec, L-DiffRec, T-DiffRec, LT-DiffRec) for RecBole."""

from recbole_diffrec import compat

compat.apply()

from recbole_diffrec.config import Config, get_model, model_classes  # noqa: E402
from recbole_diffrec.quick_start import run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "get_model", "model_classes", "run", "__version__"]
