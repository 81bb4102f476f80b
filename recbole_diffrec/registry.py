"""Model lookup: recbole-diffrec's models first, RecBole's as the fallback (the RecBole-GNN way), and the
trainer each model trains with.

- ``get_model("DiffRec")`` is recbole-diffrec's DiffRec; ``get_model("recbole.DiffRec")`` is RecBole's
  built-in one; any other name is looked up in RecBole.
- Our models train with :class:`DiffusionTrainer`, RecBole's with RecBole's trainer under
  :class:`SafeCheckpointMixin`. (Which settings files a model reads: :mod:`recbole_diffrec.settings`.)
"""

import difflib
import functools
import importlib
import importlib.metadata
import importlib.resources
import pkgutil

import torch
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_diffrec.errors import SettingError
from recbole_diffrec.models.base import (
    SequentialDiffusionRecommender,
    UserRowRecommender,
)
from recbole_diffrec.training.trainer import DiffusionTrainer, SafeCheckpointMixin

RECBOLE_PREFIX = "recbole."


ENTRY_POINT_GROUP = "recbole_diffrec.models"  # other packages' models: ``Name = module:Class``


def model_classes():
    """Our models, by class name: every concrete subclass of our two bases (general and sequential) defined in
    a module of :mod:`recbole_diffrec.models` (found by walking the package, so a new module needs no list),
    and the models other installed packages declare in the entry-point group ``recbole_diffrec.models``."""
    found = {}
    for cls in _subclasses():
        if cls.__module__.startswith("recbole_diffrec.models") and not cls.__dict__.get("abstract", False):
            found[cls.__name__] = cls
    found.update(outside_models())
    return dict(sorted(found.items()))


def _subclasses():
    package = importlib.import_module("recbole_diffrec.models")
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    stack, seen = [UserRowRecommender, SequentialDiffusionRecommender], []
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            seen.append(sub)
    return seen


@functools.lru_cache(maxsize=None)
def _entry_points():
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def outside_models():
    """{name: class} of the entry points in group ``recbole_diffrec.models``; one that does not load, or does not
    name a model class built on the pack's bases, is an error naming it."""
    found = {}
    for point in _entry_points():
        try:
            cls = point.load()
        except Exception as err:  # noqa: BLE001 - whatever importing another package raises
            raise SettingError("model", point.name, f"the entry point {point.name} = {point.value} (group "
                               f"{ENTRY_POINT_GROUP}) does not load: {type(err).__name__}: {err}") from None
        if not is_ours(cls):
            raise SettingError("model", point.name, f"the entry point {point.name} = {point.value} is not a "
                               "subclass of recbole_diffrec's UserRowRecommender or SequentialDiffusionRecommender")
        found[point.name] = cls
    return found


def recbole_model_names():
    """Names of RecBole's general, sequential, context and knowledge models (for --help and errors)."""
    root = importlib.resources.files("recbole") / "properties" / "model"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def get_model(name):
    """The model class for `name`: ours, ``recbole.<Name>`` for RecBole's, else RecBole's by name."""
    ours = model_classes()
    if name in ours:
        return ours[name]
    recbole_name = name[len(RECBOLE_PREFIX):] if name.startswith(RECBOLE_PREFIX) else name
    known = recbole_model_names()
    if recbole_name in known:
        # Importing RecBole's sequential models imports its SINE, which turns torch's autograd anomaly
        # detection on for the whole process (a check of every backward op: slower training, and NaN
        # errors raised from inside backward). The setting is restored as it was.
        anomaly = torch.is_anomaly_enabled()
        try:
            return recbole_get_model(recbole_name)
        finally:
            torch.autograd.set_detect_anomaly(anomaly)
    names = list(ours) + known
    near = [n for n in names if n.lower() == recbole_name.lower()] or difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {near[0]}? " if near else ""
    raise SettingError("model", name, f"not a known model; {hint}recbole-diffrec's models: {', '.join(ours)}; "
                       f"RecBole's (also as recbole.<Name>): {', '.join(known)}")


def is_ours(model_class):
    return isinstance(model_class, type) and issubclass(model_class, (UserRowRecommender,
                                                                      SequentialDiffusionRecommender))


def get_trainer(config, model_class):
    """The trainer for a model class: ours for our models, RecBole's (with safe checkpoints, weight
    averaging and resume snapshots) for the rest."""
    if is_ours(model_class):
        return DiffusionTrainer
    base = recbole_get_trainer(config["MODEL_TYPE"], config["model"])
    return type(f"Safe{base.__name__}", (SafeCheckpointMixin, base), {})
