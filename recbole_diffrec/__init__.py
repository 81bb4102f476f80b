"""recbole-diffrec: diffusion recommenders (DiffRec, L-DiffRec, T-DiffRec, LT-DiffRec) for RecBole.

Importing the package loads nothing else: ``recbole_diffrec.core`` (the diffusion math) imports torch
only. The names below load RecBole when first used; RecBole's fixes for today's stack are applied by
``Config`` and the command line, not at import.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "recbole_diffrec.config",
    "get_model": "recbole_diffrec.registry",
    "model_classes": "recbole_diffrec.registry",
    "prepare": "recbole_diffrec.pipeline",
    "run": "recbole_diffrec.pipeline",
    "load": "recbole_diffrec.pipeline",
    "evaluate": "recbole_diffrec.pipeline",
    "recommend": "recbole_diffrec.pipeline",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recbole_diffrec' has no attribute {name!r}")
