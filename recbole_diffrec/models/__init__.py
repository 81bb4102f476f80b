"""recbole-diffrec's models: thin RecBole classes on one base. Importing this package defines them for
:func:`recbole_diffrec.registry.get_model`."""

from recbole_diffrec.models.base import (
           DiffusionRecommender,
           SequentialDiffusionRecommender,
           UserRowRecommender,
)
from recbole_diffrec.models.diffrec import DiffRec, TDiffRec, TimeWeighting
from recbole_diffrec.models.diffurec import DiffuRec
from recbole_diffrec.models.dnr import DNR
from recbole_diffrec.models.flowcf import FlowCF, TFlowCF
from recbole_diffrec.models.giffcf import GiffCF, TGiffCF
from recbole_diffrec.models.ldiffrec import LDiffRec, LTDiffRec

__all__ = ["UserRowRecommender", "DiffusionRecommender", "GiffCF", "TGiffCF", "FlowCF", "TFlowCF", "DiffRec", "TDiffRec", "LDiffRec", "LTDiffRec", "TimeWeighting",
           "SequentialDiffusionRecommender", "DiffuRec", "DNR"]
