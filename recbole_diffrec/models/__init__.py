"""recbole-diffrec's models: thin RecBole classes on one base. Importing this package defines them for
:func:`recbole_diffrec.registry.get_model`."""

from recbole_diffrec.models.base import (
           DiffusionRecommender,
           SequentialDiffusionRecommender,
)
from recbole_diffrec.models.diffrec import DiffRec, TDiffRec, TimeWeighting
from recbole_diffrec.models.diffurec import DiffuRec
from recbole_diffrec.models.dnr import DNR
from recbole_diffrec.models.ldiffrec import LDiffRec, LTDiffRec

__all__ = ["DiffusionRecommender", "DiffRec", "TDiffRec", "LDiffRec", "LTDiffRec", "TimeWeighting",
           "SequentialDiffusionRecommender", "DiffuRec", "DNR"]
