"""Settings: their declarations in the yaml files, and their typed reading and validation (every key read
once, with an error naming key, value and what is allowed). No RecBole, no torch."""

import importlib.resources
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from recbole_diffrec.errors import SettingError

TRAINER_FILE = "trainer.yaml"

__all__ = ["SettingError", "SettingsReader", "Declaration", "read_declarations", "declarations",
           "declared_settings", "may_change", "model_yamls", "hyper_files", "properties_dir", "trainer_yaml",
           "SETTINGS_VERSION", "RENAMED", "check_renamed", "migrate_settings"]


class SettingsReader:
    """Typed accessors over a RecBole Config (or a dict); records the keys it read."""

    def __init__(self, config):
        self.config = config
        self.read = {}

    def raw(self, key):
        try:
            value = self.config[key]
        except KeyError:
            value = None
        if value is None:
            raise SettingError(key, None, "missing; declare it in the model's yaml or pass --{}=...".format(key))
        self.read[key] = value
        return value

    def optional(self, key):
        try:
            value = self.config[key]
        except KeyError:
            value = None
        self.read[key] = value
        return value

    def boolean(self, key):
        value = self.raw(key)
        if not isinstance(value, bool):
            raise SettingError(key, value, "must be True or False")
        return value

    def choice(self, key, options):
        value = self.raw(key)
        if value not in options:
            raise SettingError(key, value, f"must be one of {list(options)}")
        return value

    def integer(self, key, low=None, high=None, high_name=None):
        """`high_name` names the setting the upper bound comes from, for the message."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(key, value, "must be an integer")
        _check_range(key, value, low, high, False, False, high_name)
        return value

    def number(self, key, low=None, high=None, low_open=False, high_open=False):
        """A finite number in the range given (NaN and infinity are refused: NaN passes every comparison)."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingError(key, value, "must be a number")
        if not math.isfinite(value):
            raise SettingError(key, value, "must be a finite number")
        _check_range(key, value, low, high, low_open, high_open)
        return float(value)

    def int_list(self, key, allow_empty=False, low=1):
        value = self.raw(key)
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SettingError(key, value, "must be a list of integers, e.g. [300]")
        if not value and not allow_empty:
            raise SettingError(key, value, "must not be empty")
        if any(v < low for v in value):
            raise SettingError(key, value, f"every entry must be >= {low}")
        return list(value)


def _check_range(key, value, low, high, low_open, high_open, high_name=None):
    if low is not None and (value < low or (low_open and value == low)):
        raise SettingError(key, value, f"must be {'>' if low_open else '>='} {low}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = f"{high_name}={high}" if high_name else f"{high}"
        raise SettingError(key, value, f"must be {'<' if high_open else '<='} {bound}")


# ---- declarations: the settings files, read with their comments ------------------------------------
# A settings file declares one key per line: ``key: default   # (type) Description.`` A key that may take
# another value when a run is resumed or a saved model is evaluated says so inside the parentheses:
# ``# (int; may change on resume, evaluate) ...``. Everything else about a key lives in the code that
# reads it (SettingsReader above); what a key is, and when it may change, lives only here.
WHEN = ("resume", "evaluate")
_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*):[^#]*#\s*\((?P<type>[^;)]*)"
                   r"(?:;\s*may change on\s+(?P<when>[^)]*))?\)\s*(?P<doc>.*)$")


@dataclass(frozen=True)
class Declaration:
    """One declared setting: its default, type, description, and when it may change (see WHEN)."""

    key: str
    default: object
    type: str
    doc: str
    may_change: frozenset
    source: str


def read_declarations(path):
    """{key: Declaration} of a settings file, in file order. A key without the ``# (type) ...`` comment,
    or with an unknown occasion after "may change on", is an error: every key is documented where declared."""
    import yaml

    path = Path(path)
    text = path.read_text()
    values = yaml.safe_load(text) or {}
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line[0] in "# " or ":" not in line:
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"{path}:{number}: a setting is declared as 'key: value   # (type) Description.'")
        when = frozenset(w.strip() for w in (match["when"] or "").split(",") if w.strip())
        if not when <= set(WHEN):
            raise ValueError(f"{path}:{number}: 'may change on' takes {', '.join(WHEN)}, not {sorted(when - set(WHEN))}")
        key = match["key"]
        found[key] = Declaration(key, values[key], match["type"].strip(), match["doc"].strip(), when, path.name)
    missing = set(values) - set(found)
    if missing:
        raise ValueError(f"{path}: {sorted(missing)} lack the '# (type) Description.' comment")
    return found


# ---- which files a model reads ----------------------------------------------------------------------
# A model's settings are the trainer's file (``trainer.yaml``), then one file per class of its lineage that
# has one, base classes first: TDiffRec reads DiffRec.yaml and TimeWeighting.yaml; LTDiffRec DiffRec.yaml,
# LDiffRec.yaml and TimeWeighting.yaml. Each key is declared once. ``.hyper`` search spaces compose the
# same way.
def _resource_dir(name):
    """A data folder that ships inside the package (installed) or beside it (source checkout)."""
    packaged = importlib.resources.files("recbole_diffrec") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def properties_dir():
    return _resource_dir("properties")


def _lineage_files(model_class, suffix):
    """The files `<Class><suffix>` of the model's lineage, base classes first (recbole-diffrec's classes
    only: a RecBole model has none)."""
    return [f for f in (_settings_file(cls, suffix) for cls in reversed(model_class.__mro__)) if f and f.is_file()]


def _settings_file(cls, suffix):
    """Where a class of a model's lineage keeps its `<Class><suffix>`: properties/ for the pack's classes,
    beside the class's module for a model of another package (None for RecBole's and torch's classes)."""
    if cls.__module__.startswith("recbole_diffrec."):
        return properties_dir() / f"{cls.__name__}{suffix}"
    module = sys.modules.get(cls.__module__)
    if module is None or not getattr(module, "__file__", None) or cls.__module__.split(".")[0] in _NOT_MODELS:
        return None
    return Path(module.__file__).parent / f"{cls.__name__}{suffix}"


_NOT_MODELS = {"recbole", "torch", "builtins", "abc", "typing"}


def trainer_yaml():
    return properties_dir() / TRAINER_FILE


def model_yamls(model_class):
    """The model's own settings files, base classes first (the trainer's file aside)."""
    return _lineage_files(model_class, ".yaml")


def hyper_files(model_class):
    """The model's search-space files, base classes first; a later file's line replaces an earlier one's."""
    return _lineage_files(model_class, ".hyper")


def declarations(model_class, trainer=True):
    """{key: Declaration} of every key the model's files declare (with the trainer's, unless `trainer` is
    False), later files winning."""
    merged = dict(read_declarations(trainer_yaml())) if trainer else {}
    for path in model_yamls(model_class):
        merged.update(read_declarations(path))
    return merged


def declared_settings(model_class, trainer=True):
    """{key: default} of :func:`declarations`."""
    return {k: d.default for k, d in declarations(model_class, trainer).items()}


def may_change(model_class, occasion):
    """The keys a run may set differently from a checkpoint's on `occasion` ("resume" or "evaluate")."""
    return frozenset(k for k, d in declarations(model_class).items() if occasion in d.may_change)




# ---- names and meanings changed since a checkpoint could be written -------------------------------------
SETTINGS_VERSION = 2  # written into every checkpoint; checkpoints without it are version 1
# Keys renamed at version 2, per model: {old: new}. Each name has one meaning across the models (DNR's
# `inference_step`, the step its one-step prediction starts from, sat beside the others' `inference_steps`, a
# count of reverse steps).
RENAMED = {"DNR": {"inference_step": "inference_start"}}
# What version 1's bounded-free schedules used, whatever noise_scale, noise_min and noise_max said.
_V1_DIFFUREC_BOUNDS = {"noise_min": 0.0001, "noise_max": 0.02}


def check_renamed(model_name, settings):
    """Refuse (SettingError) a setting ({key: value}) that `model_name` had under an old name: given now it
    would be read by nothing, silently."""
    for old, new in RENAMED.get(model_name, {}).items():
        if old in settings:
            raise SettingError(old, settings[old], f"renamed {new} (the same meaning); set {new}={settings[old]!r} "
                               "instead")


def migrate_settings(model_name, settings, version):
    """A checkpoint's saved settings (written at settings `version`) in today's names and meanings, so that
    the model it rebuilds is the one that was trained. Version 1 to 2: DNR's `inference_step` is
    `inference_start`; `noise_scale` multiplies the bounds of every bounded schedule, where version 1's
    trunc-linear ignored all three and used 1000 / T x [1e-4, 0.02] + 0.01, and DiffuRec's `linear` is now
    `scaled-linear` with the bounds as settings."""
    s = dict(settings)
    if version >= SETTINGS_VERSION:
        return s
    for old, new in RENAMED.get(model_name, {}).items():
        if old in s:
            s[new] = s.pop(old)
    schedule, scale = s.get("noise_schedule"), s.get("noise_scale")
    if schedule == "trunc-linear" and isinstance(scale, (int, float)) and scale > 0:
        s.update(noise_scale=1.0, **_V1_DIFFUREC_BOUNDS)
    elif model_name == "DiffuRec":
        if schedule == "linear":
            s["noise_schedule"] = "scaled-linear"
        s.update(_V1_DIFFUREC_BOUNDS)
    return s
