"""Configuration: RecBole's Config, resolving models through :func:`~recbole_diffrec.registry.get_model`.

:class:`Config` loads our yaml for our models (never RecBole's file of the same name), RecBole's for
RecBole's models, and the trainer's file (``trainer.yaml``) for both; it validates the trainer's settings
and our models' settings before any data loads. For our models a setting given as an override (command line
or ``config_dict``) that nothing declares is an error, with the nearest declared name, so a typo cannot
silently leave a default in place. Creating a Config applies RecBole's fixes for today's stack
(:mod:`recbole_diffrec.compat`).
"""

import difflib
import functools
import os
import re
import sys
from pathlib import Path

import yaml
from recbole.config import Config as RecBoleConfig

from recbole_diffrec import compat, ownership
from recbole_diffrec.errors import RecBoleSettingError, UserError
from recbole_diffrec.registry import RECBOLE_PREFIX, get_model, is_ours
from recbole_diffrec.settings import (
    SettingError,
    SettingsReader,
    check_renamed,
    model_yamls,
    trainer_yaml,
)
from recbole_diffrec.data.loaders import read_loader_settings
from recbole_diffrec.training.run_settings import DIST_BACKENDS, read_run_settings, read_trainer_settings

# Settings the run itself supplies or reads without a yaml default: the distributed hand-over
# (launcher.run_distributed) and the process-group backend (Config._init_device).
RUNTIME_SETTINGS = frozenset({"local_rank", "world_size", "nproc", "offset", "ip", "port", "dist_backend",
                              "device_index"})


def torchrun_environment():
    """(rank, world size, local rank) of a process that ``torchrun`` started for a run of more than one
    process, else None."""
    env = os.environ
    if not {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"} <= set(env) or int(env["WORLD_SIZE"]) < 2:
        return None
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))


_KEY_READ = re.compile(r"""config\[\s*["']([A-Za-z_]\w*)["']\s*\]""")


@functools.lru_cache(maxsize=None)
def _keys_read_in(path):
    try:
        return frozenset(_KEY_READ.findall(Path(path).read_text()))
    except OSError:
        return frozenset()


def recbole_read_keys(model_class):
    """The settings RecBole's code reads as config["key"]: everywhere outside its model package, and in the
    modules of `model_class` and of its RecBole base classes."""
    import recbole

    root = Path(recbole.__file__).parent
    keys = set()
    for path in root.rglob("*.py"):
        if root / "model" not in path.parents:
            keys |= _keys_read_in(str(path))
    for cls in model_class.__mro__:
        module = sys.modules.get(cls.__module__)
        if module is not None and cls.__module__.startswith("recbole.") and getattr(module, "__file__", None):
            keys |= _keys_read_in(module.__file__)
    return keys


def _yaml_keys(path):
    try:
        return set(yaml.safe_load(Path(path).read_text()) or {})
    except (OSError, yaml.YAMLError, TypeError, ValueError):
        return set()


@functools.lru_cache(maxsize=None)
def known_anywhere():
    """Every key some model or RecBole itself declares or reads: RecBole's yaml files and source, and every
    recbole-diffrec model's declared settings (read once)."""
    import recbole

    from recbole_diffrec.registry import model_classes
    from recbole_diffrec.settings import declared_settings

    root = Path(recbole.__file__).parent
    keys = set()
    for path in root.rglob("*.py"):
        keys |= _keys_read_in(str(path))
    for path in (root / "properties").rglob("*.yaml"):
        keys |= _yaml_keys(path)
    for cls in model_classes().values():
        keys |= set(declared_settings(cls))
    return frozenset(keys)


class Config(RecBoleConfig):
    """RecBole's Config, resolving models through :func:`get_model` and loading our yaml for ours."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, unchecked=()):
        """`unchecked`: override keys exempt from the unknown-setting check (a saved run's settings, which
        came from files that may hold other models' keys)."""
        compat.apply()
        for path in config_file_list or []:
            if not os.path.isfile(path):
                raise SettingError("config_files", path, "no such file")
        name = dataset if dataset is not None else (config_dict or {}).get("dataset")
        if isinstance(name, str) and (os.sep in name or name in ("", ".", "..")):
            raise SettingError("dataset", name, "must be a name, not a path: its files go in "
                               "<data_path>/<name>/<name>.inter (set data_path to the folder above)")
        for key in ("metrics", "topk"):  # RecBole's own check fails on an empty list with "pop from an empty set"
            if key in (config_dict or {}) and config_dict[key] in ([], (), ""):
                raise SettingError(key, config_dict[key], "must name at least one, e.g. [Recall, NDCG] / [10, 20]")
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except UserError:
            raise
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError, yaml.YAMLError) as err:
            raise RecBoleSettingError(str(err).strip() or type(err).__name__) from None
        check_renamed(self["model"], {**self.file_config_dict, **self.variable_config_dict})
        self._refuse_unknown(set(config_dict or {}) - set(unchecked))
        self._refuse_unknown_in_files(config_file_list or [])
        if is_ours(self.model_class):
            self.model_class.validate_config(self)
        read_trainer_settings(SettingsReader(self))
        read_loader_settings(SettingsReader(self))
        read_run_settings(SettingsReader(self))
        self._check_output_folders()

    def _check_output_folders(self):
        """The checkpoint folder and RecBole's log folders can be made and written, before any data loads."""
        for key, folder in (("checkpoint_dir", self["checkpoint_dir"]), ("working folder (./log)", "log"),
                            ("working folder (./log_tensorboard)", "log_tensorboard")):
            why = ownership.unwritable(str(folder))
            if why:
                raise SettingError(key, str(folder), f"cannot hold this run's files: {why}")

    def _refuse_unknown(self, keys):
        """An override nothing declares (the model's yaml, RecBole's defaults, the config files) is read by
        no code of a recbole-diffrec model: most likely a misspelling. A RecBole model may also read keys its
        yaml does not declare: for it, a key its own module or RecBole's code outside the models reads is
        known too (RecBole's source, read once)."""
        known = set(self.internal_config_dict) | set(self.file_config_dict) | RUNTIME_SETTINGS
        if not is_ours(self.model_class):
            known |= recbole_read_keys(self.model_class)
        unknown = sorted(keys - known)
        if unknown:
            key = unknown[0]
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise SettingError(key, self.variable_config_dict[key],
                               f"not a setting of {self['model']} (declared by neither its yaml, RecBole's "
                               f"defaults nor the config files){hint}")

    def _refuse_unknown_in_files(self, paths):
        """A key of a config file must be a setting of some model (RecBole's or the pack's), of RecBole or of
        the pack's trainer: a file may be shared by several models, but a key no one reads is a misspelling."""
        candidates = set(self.file_config_dict) - set(self.internal_config_dict) - RUNTIME_SETTINGS
        unknown = sorted(candidates - known_anywhere()) if candidates else []  # RecBole's source read only if needed
        if not unknown:
            return
        key = unknown[0]
        where = next((p for p in paths if key in (_yaml_keys(p))), paths[-1] if paths else "?")
        near = difflib.get_close_matches(key, sorted(set(self.internal_config_dict) | known_anywhere()), n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise SettingError(key, self.file_config_dict[key],
                           f"in config file {where}: not a setting of {self['model']}, of any other model of "
                           f"RecBole or recbole-diffrec, or of RecBole itself{hint}")

    def _set_default_parameters(self):
        """RecBole's defaults, except that a data_path given for ml-100k is used: RecBole always reads its
        bundled copy for that name, so a user's own ml-100k folder would be ignored without a word."""
        given = self.external_config_dict.get("data_path")
        super()._set_default_parameters()
        if self.dataset == "ml-100k" and given is not None:
            self.final_config_dict["data_path"] = os.path.join(given, self.dataset)

    def compatibility_settings(self):
        compat.apply()
        super().compatibility_settings()

    def _init_device(self):
        """RecBole's device set-up, with a selectable process-group backend for distributed runs.

        RecBole 1.2.1 ignores ``use_gpu`` and always uses nccl and GPU ids. Here ``use_gpu: False`` runs on the
        CPU, ``dist_backend`` (gloo on CPU, nccl on GPUs by default) picks the backend, and ranks without a GPU
        train on the CPU. A run started by ``torchrun`` (on one machine or several) reads its rank, world size,
        local rank and rendezvous address from the launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK,
        MASTER_ADDR, MASTER_PORT). ``local_rank`` in the settings is the process's rank in the whole run (0
        writes the files), ``device_index`` its GPU on its machine.
        """
        import torch

        cfg = self.final_config_dict
        launched = torchrun_environment()
        if "local_rank" not in cfg and launched is None:
            super()._init_device()
            # RecBole 1.2.1 picks the device from gpu_id alone; use_gpu: False means the CPU, as its docs say.
            if not cfg.get("use_gpu", True):
                cfg["device"] = torch.device("cpu")
            return
        import torch.distributed as dist

        use_cuda = bool(cfg.get("use_gpu", True)) and torch.cuda.is_available()
        backend = cfg.get("dist_backend") or ("nccl" if use_cuda else "gloo")
        if backend not in DIST_BACKENDS:  # before the process group, which would fail with an assertion
            raise SettingError("dist_backend", backend, f"must be one of {list(DIST_BACKENDS)} (default: nccl on "
                               "GPUs, gloo on the CPU)")
        if launched is not None:
            cfg["local_rank"], cfg["world_size"], cfg["device_index"] = launched
            if not dist.is_initialized():
                dist.init_process_group(backend=backend, init_method="env://")
        else:
            cfg["device_index"] = cfg["local_rank"]
            if not dist.is_initialized():
                dist.init_process_group(
                    backend=backend, rank=cfg["local_rank"] + cfg.get("offset", 0), world_size=cfg["world_size"],
                    init_method=f"tcp://{cfg.get('ip', '127.0.0.1')}:{cfg.get('port', 29500)}",
                )
        cfg["single_spec"] = False
        if use_cuda:
            torch.cuda.set_device(cfg["device_index"])
            cfg["device"] = torch.device("cuda", cfg["device_index"])
        else:
            cfg["device"] = torch.device("cpu")
        if cfg["local_rank"] != 0:
            cfg["state"], cfg["show_progress"], cfg["verbose"] = "error", False, False

    def _load_cmd_line(self):
        # Command-line settings reach us as config_dict (see cli.main); RecBole's own reading of
        # sys.argv would also pick up the arguments of unrelated programs (pytest, the tuner).
        return {}

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise SettingError("model", None, "must be given: --model=<Name> (see --help for the list)")
        if isinstance(model, str):
            model_class = get_model(model)
            name = model[len(RECBOLE_PREFIX):] if model.startswith(RECBOLE_PREFIX) else model
        else:
            model_class, name = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise SettingError("dataset", None, "must be given: --dataset=<name>")
        return name, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        if not is_ours(model_class):
            super()._load_internal_config_dict(model, model_class, dataset)
            self._update_internal_config_dict(str(trainer_yaml()))
            return
        # RecBole's overall and dataset defaults, but not RecBole's model yaml of the same name.
        super()._load_internal_config_dict(f"{model}@recbole_diffrec", model_class, dataset)
        for path in [trainer_yaml(), *model_yamls(model_class)]:
            self._update_internal_config_dict(str(path))
