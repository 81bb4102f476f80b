"""recbole-diffrec's models. Importing this package registers them with :func:`recbole_diffrec.get_model`."""

from recbole_diffrec.models.base import DiffusionRecommender
from recbole_diffrec.models.diffrec import DiffRec, TDiffRec
from recbole_diffrec.models.ldiffrec import LDiffRec, LTDiffRec

__all__ = ["DiffusionRecommender", "DiffRec", "TDiffRec", "LDiffRec", "LTDiffRec"]
