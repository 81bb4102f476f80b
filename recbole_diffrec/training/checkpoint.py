"""The checkpoint format: tensors and plain data only, written atomically, read with ``weights_only=True``.

RecBole 1.2.1 pickles its whole ``Config`` into checkpoints and reads them back with ``torch.load``,
which torch >= 2.6 refuses by default (and which would run any code a file carries). recbole-diffrec's
checkpoints, for its models and RecBole's alike, hold tensors and plain data only.
"""

import os
import pickle

import numpy as np
import scipy.sparse as sp
import torch

from recbole_diffrec import ownership
from recbole_diffrec.errors import CheckpointError, UnsafeCheckpointError

CHECKPOINT_FORMAT = "recbole-diffrec-checkpoint/1"
_PLAIN = (str, int, float, bool, type(None))


# ---- plain encoding of what models keep outside their state dict ---------------------------------
def to_plain(value):
    """Encode tensors, numpy arrays, scipy sparse matrices and containers as tensors and plain data."""
    if isinstance(value, np.generic):  # before the plain check: np.float64 subclasses float
        return value.item()
    if isinstance(value, torch.Tensor) or isinstance(value, _PLAIN):
        return value
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if sp.issparse(value):
        csr = sp.csr_matrix(value)
        return {"__csr__": [torch.from_numpy(csr.data), torch.from_numpy(csr.indices),
                            torch.from_numpy(csr.indptr), list(csr.shape)]}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return str(value)


def from_plain(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__csr__" in value:
            data, indices, indptr, shape = value["__csr__"]
            return sp.csr_matrix((data.numpy(), indices.numpy(), indptr.numpy()), shape=tuple(shape))
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    return value


def plain_config(config):
    """The final settings as a plain dict (non-plain values as their string form)."""
    return {k: to_plain(v) if isinstance(v, (dict, list, tuple, np.generic) + _PLAIN) else str(v)
            for k, v in config.final_config_dict.items()}


def save_checkpoint(state, path):
    """Write atomically: a temporary file beside the target, then a rename."""
    path = str(path)
    ownership.makedirs(os.path.dirname(os.path.abspath(path)))
    tmp = f"{path}.tmp-{os.getpid()}"
    new = ownership.new_file(path)
    torch.save(state, tmp)
    os.replace(tmp, path)
    if new:
        ownership.note_file(path)


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True``; anything else in it is refused (CheckpointError)."""
    if not os.path.isfile(str(path)):
        raise CheckpointError(f"checkpoint {path}: no such file")
    if os.path.getsize(str(path)) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was not written completely")
    try:
        state = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = " ".join(str(err).split())
        if "GLOBAL" not in text:  # no object torch refused by name: bytes it cannot read safely
            raise UnsafeCheckpointError(
                f"refusing to load {path}: torch's safe reader cannot read it (not a checkpoint, or holding "
                "objects other than tensors and plain data, which could run code from the file; only checkpoints "
                f"written by recbole-diffrec load) ({text.split('WeightsUnpickler error: ')[-1][:60]})") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, and loading "
            f"them could run code from the file; only checkpoints written by recbole-diffrec load ({first})"
        ) from None
    except Exception as err:  # noqa: BLE001 - whatever torch's reader raises on bytes that are not a checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read: truncated or not a checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a recbole-diffrec checkpoint (format {CHECKPOINT_FORMAT})")
    problem = state_problem(state)
    if problem:
        raise CheckpointError(f"checkpoint {path} is damaged or was edited: {problem}")
    return state


# The entries every checkpoint holds, and their types; "data" is None in checkpoints of data that was not recorded.
_REQUIRED = {"model": str, "config": dict, "external_config": dict, "state_dict": dict, "epoch": int,
             "cur_step": int, "best_valid_score": float, "optimizer": dict, "rng_state": torch.Tensor}


def state_problem(state):
    """What makes a loaded dict unusable as a checkpoint of this version of recbole-diffrec ('' if nothing)."""
    from recbole_diffrec.settings import SETTINGS_VERSION

    for key, kind in _REQUIRED.items():
        value = state.get(key)
        if kind is float and isinstance(value, int):
            value = float(value)
        if key not in state:
            return f"it has no {key!r}"
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"its {key!r} is a {type(value).__name__}, not a {kind.__name__}"
    version = state.get("settings_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"its settings_version {version!r} is not a version number"
    if version > SETTINGS_VERSION:
        return (f"it was written by a newer recbole-diffrec (settings_version {version}; this one reads up to "
                f"{SETTINGS_VERSION}): upgrade recbole-diffrec to use it")
    data = state.get("data")
    if data is not None and not (isinstance(data, dict) and {"dataset", "data_path", "rows", "user_tokens",
                                                            "item_tokens", "fingerprint"} <= set(data)):
        return "its record of the training data is incomplete"
    return ""


def changed_settings(settings, saved, may_change):
    """The keys of `settings` whose value differs from a checkpoint's `saved` one, in order; keys in
    `may_change`, and keys the checkpoint lacks (it predates them), aside."""
    return [k for k, v in settings.items() if k not in may_change and k in saved and saved[k] != v]
