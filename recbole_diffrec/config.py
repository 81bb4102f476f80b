"""Model lookup and configuration: our models first, RecBole's as the fallback (the RecBole-GNN way).

- ``get_model("DiffRec")`` is recbole-diffrec's DiffRec; ``get_model("recbole.DiffRec")`` is RecBole's
  built-in one; any other name is looked up in RecBole.
- :class:`Config` loads our yaml for our models (never RecBole's file of the same name), RecBole's
  for RecBole's models, and validates our models' settings before any data loads; for our models a
  setting given as an override (command line or ``config_dict``) that nothing declares is an error, with
  the nearest declared name, so a typo cannot silently leave a default in place.
"""

import difflib
import importlib.resources
from pathlib import Path

from recbole.config import Config as RecBoleConfig
from recbole.utils import get_model as recbole_get_model

from recbole_diffrec import compat
from recbole_diffrec.settings import SettingError

RECBOLE_PREFIX = "recbole."

# Settings the run itself supplies or reads without a yaml default: the distributed hand-over
# (quick_start.run_distributed) and the process-group backend (Config._init_device).
RUNTIME_SETTINGS = frozenset({"local_rank", "world_size", "nproc", "offset", "ip", "port", "dist_backend"})


def _resource_dir(name):
    """A data folder that ships inside the package (installed) or beside it (source checkout)."""
    packaged = importlib.resources.files("recbole_diffrec") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def properties_dir():
    return _resource_dir("properties")


def dataset_configs_dir():
    return _resource_dir("dataset_configs")


def model_classes():
    """Our models, by class name: every concrete DiffusionRecommender subclass the package defines."""
    from recbole_diffrec.models import base

    importlib.import_module("recbole_diffrec.models")
    found, stack = {}, [base.DiffusionRecommender]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("recbole_diffrec.") and not sub.__dict__.get("abstract", False):
                found[sub.__name__] = sub
    return dict(sorted(found.items()))


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
        return recbole_get_model(recbole_name)
    raise ValueError(
        f"model={name!r} is not a known model. recbole-diffrec models: {', '.join(ours)}; "
        f"RecBole models (also as recbole.<Name>): {', '.join(known)}"
    )


def is_ours(model_class):
    from recbole_diffrec.models.base import DiffusionRecommender

    return isinstance(model_class, type) and issubclass(model_class, DiffusionRecommender)


def model_yamls(model_class):
    """The model's yaml files, base classes first: a variant's file holds only what it adds or changes
    (TDiffRec.yaml adds w_min and w_max to DiffRec.yaml), so shared defaults cannot drift apart."""
    files = [properties_dir() / f"{cls.__name__}.yaml" for cls in reversed(model_class.__mro__) if is_ours(cls)]
    return [f for f in files if f.is_file()]


def declared_settings(model_class):
    """Every key the model's yaml files declare, with its default."""
    import yaml

    merged = {}
    for path in model_yamls(model_class):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


class Config(RecBoleConfig):
    """RecBole's Config, resolving models through :func:`get_model` and loading our yaml for ours."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, unchecked=()):
        """`unchecked`: override keys exempt from the unknown-setting check (a saved run's settings, which
        came from files that may hold other models' keys)."""
        compat.apply()
        super().__init__(model, dataset, config_file_list, config_dict)
        if is_ours(self.model_class):
            self._refuse_unknown(set(config_dict or {}) - set(unchecked))
            self.model_class.validate_config(self)

    def _refuse_unknown(self, keys):
        """An override nothing declares (the model's yaml, RecBole's defaults, the config files) is read by
        no code of a recbole-diffrec model: most likely a misspelling. RecBole's models are not checked,
        since some of them read keys their yaml does not declare."""
        known = set(self.internal_config_dict) | set(self.file_config_dict) | RUNTIME_SETTINGS
        unknown = sorted(keys - known)
        if unknown:
            key = unknown[0]
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise SettingError(key, self.variable_config_dict[key],
                               f"not a setting of {self['model']} (declared by neither its yaml, RecBole's "
                               f"defaults nor the config files){hint}")

    def compatibility_settings(self):
        compat.apply()
        super().compatibility_settings()

    def _init_device(self):
        """RecBole's device set-up, with a selectable process-group backend for distributed runs.

        RecBole 1.2.1 ignores ``use_gpu`` and always uses nccl and GPU ids. Here ``use_gpu: False`` runs on the
        CPU, and ``dist_backend`` (gloo on CPU, nccl on GPUs by
        default) picks the backend, and ranks without a GPU train on the CPU.
        """
        import torch

        if "local_rank" not in self.final_config_dict:
            super()._init_device()
            # RecBole 1.2.1 picks the device from gpu_id alone; use_gpu: False means the CPU, as its docs say.
            if not self.final_config_dict.get("use_gpu", True):
                self.final_config_dict["device"] = torch.device("cpu")
            return
        import torch.distributed as dist

        cfg = self.final_config_dict
        use_cuda = bool(cfg.get("use_gpu", True)) and torch.cuda.is_available()
        backend = cfg.get("dist_backend") or ("nccl" if use_cuda else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(
                backend=backend, rank=cfg["local_rank"] + cfg.get("offset", 0), world_size=cfg["world_size"],
                init_method=f"tcp://{cfg.get('ip', '127.0.0.1')}:{cfg.get('port', 29500)}",
            )
        cfg["single_spec"] = False
        if use_cuda:
            torch.cuda.set_device(cfg["local_rank"])
            cfg["device"] = torch.device("cuda", cfg["local_rank"])
        else:
            cfg["device"] = torch.device("cpu")
        if cfg["local_rank"] != 0:
            cfg["state"], cfg["show_progress"], cfg["verbose"] = "error", False, False

    def _load_cmd_line(self):
        # Command-line settings reach us as config_dict (see quick_start.main); RecBole's own reading of
        # sys.argv would also pick up the arguments of unrelated programs (pytest, the tuner).
        return {}

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given: --model=<Name> (see --help for the list)")
        if isinstance(model, str):
            model_class = get_model(model)
            name = model[len(RECBOLE_PREFIX):] if model.startswith(RECBOLE_PREFIX) else model
        else:
            model_class, name = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given: --dataset=<name>")
        return name, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        if not is_ours(model_class):
            return super()._load_internal_config_dict(model, model_class, dataset)
        # RecBole's overall and dataset defaults, but not RecBole's model yaml of the same name.
        super()._load_internal_config_dict(f"{model}@recbole_diffrec", model_class, dataset)
        for path in model_yamls(model_class):
            self._update_internal_config_dict(str(path))
