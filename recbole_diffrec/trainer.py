"""Trainers: safe checkpoints for every model, and a sync-free training epoch for ours.

RecBole 1.2.1 pickles its whole ``Config`` into checkpoints and reads them back with ``torch.load``,
which torch >= 2.6 refuses by default (and which would run any code a file carries). Our checkpoints
hold tensors and plain data only; they are written atomically and read with ``weights_only=True``.
The mixin goes onto whichever RecBole trainer a model needs, so RecBole's own models get it too.
"""

import os
import pickle
import time
import uuid

import numpy as np
import scipy.sparse as sp
import torch
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer
from recbole.utils import get_trainer as recbole_get_trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_diffrec.settings import SettingError

CHECKPOINT_FORMAT = "recbole-diffrec-checkpoint/1"
_PLAIN = (str, int, float, bool, type(None))
SNAPSHOT_SECONDS = 60  # a resume snapshot at least this often, whatever resume_every says


PRECISIONS = ("auto", "float32", "bfloat16")


def native_cpu_bfloat16():
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX): there, bfloat16
    matrix products run about 4x faster than float32 ones; elsewhere oneDNN emulates them, slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def training_autocast_dtype(precision, device):
    """The autocast dtype of the training step for `train_precision` on `device`, or None for float32.

    "auto" is bfloat16 on a CPU with native bfloat16 matrix products and float32 everywhere else
    (a GPU's training step is bound by kernel launches at these sizes, not by its matrix products).
    Only the forward pass and the loss run under autocast; weights, optimizer state, gradients
    accumulated into the weights and the whole evaluation stay float32."""
    if precision not in PRECISIONS:
        raise SettingError("train_precision", precision, f"must be one of {list(PRECISIONS)}")
    if precision == "float32" or (precision == "auto" and (device.type != "cpu" or not native_cpu_bfloat16())):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        gpu = torch.cuda.get_device_name(device)
        raise SettingError("train_precision", precision,
                           f"this GPU ({gpu}) has no bfloat16 support; use float32 or auto")
    if device.type not in ("cpu", "cuda"):
        raise SettingError("train_precision", precision, f"bfloat16 training runs on cpu or cuda, not {device.type}")
    return torch.bfloat16


class WeightAverage:
    """An exponential moving average of a model's trainable weights (Polyak averaging, as diffusion models
    are commonly evaluated), bias-corrected: after t updates it is sum_i decay^(t-i) w_i over sum_i
    decay^(t-i), so it never leans towards the initial weights, however early it is read.

    Two sets of weights take turns in the model. During a training epoch the model holds the optimizer's
    weights and `held` the average; between epochs the other way round, so validation, the checkpoints
    and every evaluation see the averaged weights. `update` runs after every optimizer step; it reads no
    value back from the device."""

    def __init__(self, params, decay):
        self.params = list(params)
        self.decay = decay
        self.steps = 0
        self.held = [p.detach().clone() for p in self.params]

    def update(self):
        """Fold the optimizer's current weights into the average (the model holds them: mid-epoch)."""
        self.steps += 1
        d, t = self.decay, self.steps
        keep = d * (1 - d ** (t - 1)) / (1 - d ** t)  # the share of the average so far; 0 at the first update
        with torch.no_grad():
            torch._foreach_lerp_(self.held, self.params, 1 - keep)

    def swap(self):
        """Exchange the model's weights with the held ones (no copy)."""
        with torch.no_grad():
            for i, p in enumerate(self.params):
                p.data, self.held[i] = self.held[i], p.data

    def state(self):
        return {"steps": self.steps, "held": list(self.held)}

    def load_state(self, state):
        if len(state["held"]) != len(self.params):
            raise ValueError(f"the checkpoint's weight average has {len(state['held'])} tensors, the model "
                             f"{len(self.params)} trainable ones")
        self.steps = int(state["steps"])
        self.held = [t.to(device=p.device, dtype=p.dtype).clone() for t, p in zip(state["held"], self.params)]


def _distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that holds more than tensors and plain data."""


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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True``; anything else in it is refused."""
    try:
        state = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, and loading "
            f"them could run code from the file. Only checkpoints written by recbole-diffrec load. ({err})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UnsafeCheckpointError(f"{path} is not a recbole-diffrec checkpoint (format {CHECKPOINT_FORMAT})")
    return state


# Settings a resumed run may change: they do not shape the model or its data (train_precision changes only the
# arithmetic of the step, e.g. when a run moves to another machine).
RESUME_MAY_CHANGE = frozenset({"eval_batch_users", "resume_every", "train_precision", "inference_steps"})


def changed_settings(settings, saved, may_change):
    """The keys of `settings` whose value differs from a checkpoint's `saved` one, in order; keys in
    `may_change`, and keys the checkpoint lacks (it predates them), aside."""
    return [k for k, v in settings.items() if k not in may_change and k in saved and saved[k] != v]


class SafeCheckpointMixin:
    """Checkpoint save, resume and best-model loading through :func:`save_checkpoint`/:func:`load_checkpoint`."""

    weight_average = None  # a WeightAverage where the trainer keeps one (DiffusionTrainer with ema_decay > 0)

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names the file by the second it was made in; two trainers in one second (tuning
        # trials, tests) would overwrite each other's best model. A short random suffix keeps them apart.
        stem, ext = os.path.splitext(self.saved_model_file)
        name = [f"{stem}-{uuid.uuid4().hex[:6]}{ext}"]
        if _distributed():  # every rank reads the file rank 0 writes
            torch.distributed.broadcast_object_list(name, src=0)
        self.saved_model_file = name[0]

    @property
    def _writes_files(self):
        """Whether this process writes checkpoints: always in a single process, rank 0 in a distributed run."""
        return self.config["single_spec"] or self.config["local_rank"] == 0

    def _checkpoint_state(self, epoch):
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.config["model"],
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "config": plain_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": to_plain(dict(self.best_valid_result or {})),
            "state_dict": self.model.state_dict(),
            "other_parameter": to_plain(self.model.other_parameter()),
            "optimizer": self.optimizer.state_dict(),
            "rng_state": torch.get_rng_state(),
            "external_config": to_plain(dict(self.config.external_config_dict)),
            "best_model_file": str(self.saved_model_file),
        }
        average = self.weight_average
        if average is not None:  # between epochs: the model holds the average, `held` the optimizer's weights
            state["weight_average"] = average.state()
        return state

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self._writes_files:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(self._checkpoint_state(epoch), path)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def _load_model_state(self, checkpoint):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(from_plain(checkpoint.get("other_parameter")))

    def resume_checkpoint(self, resume_file):
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        if checkpoint["model"] != self.config["model"]:
            raise ValueError(
                f"checkpoint {resume_file} is of model {checkpoint['model']!r}, not {self.config['model']!r}"
            )
        self._check_resumed_settings(checkpoint, resume_file)
        best = checkpoint.get("best_model_file")
        self.saved_model_file = best if best and os.path.isfile(best) else str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint.get("best_valid_result") or None
        self._load_model_state(checkpoint)
        self._load_weight_average(checkpoint, resume_file)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["rng_state"])
        self._pending_loader_state = checkpoint.get("train_loader_state")
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _load_weight_average(self, checkpoint, resume_file):
        average = self.weight_average
        if average is None:
            return
        if "weight_average" not in checkpoint:
            raise SettingError("ema_decay", average.decay, f"the resumed checkpoint ({resume_file}) was trained "
                               "without weight averaging; resume with --ema_decay=0, or start a new run")
        average.load_state(checkpoint["weight_average"])

    def _check_resumed_settings(self, checkpoint, resume_file):
        """A resumed run must train the model it continues: each of our model's settings must equal the
        checkpoint's (a default changed since, or a different command line, would otherwise mix two
        models silently). The settings in RESUME_MAY_CHANGE may differ."""
        settings = getattr(self.model, "settings", None) or {}
        saved = from_plain(checkpoint.get("config") or {})
        changed = changed_settings(settings, saved, RESUME_MAY_CHANGE)
        if changed:
            key = changed[0]
            raise SettingError(key, settings[key], f"differs from the resumed checkpoint's {saved[key]!r} "
                               f"({resume_file}); resume with --{key}={saved[key]!r}, or start a new run")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            if _distributed():
                torch.distributed.barrier()  # rank 0 has finished writing the best model
            path = model_file or self.saved_model_file
            self._load_model_state(load_checkpoint(path, map_location=self.device))
            self.logger.info(f"Loading model structure and parameters from {path}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


class DiffusionTrainer(SafeCheckpointMixin, Trainer):
    """Trainer of recbole-diffrec's models.

    Differences from RecBole's Trainer: the optimizer takes the model's parameter groups (L-DiffRec's
    autoencoder and denoiser learn at different rates); an epoch's batch losses stay on the device and
    are read once at its end, so a step never waits on the host; a non-finite loss stops training with
    the epoch, the batch and a hint, and the last good checkpoint is kept; with `ema_decay` > 0 validation,
    checkpoints and evaluation use a moving average of the weights (:class:`WeightAverage`).
    """

    def __init__(self, config, model):
        # RecBole wraps the model in DistributedDataParallel with GPU device ids, which a CPU (gloo) run
        # cannot take; our epoch all-reduces the gradients itself, so the wrapper is not built.
        distributed = not config["single_spec"]
        config["single_spec"] = True
        try:
            super().__init__(config, model)
        finally:
            config["single_spec"] = not distributed
        self.distributed = distributed
        self.autocast_dtype = training_autocast_dtype(model.settings["train_precision"], self.device)
        used = "float32" if self.autocast_dtype is None else "bfloat16 autocast"
        self.logger.info(f"training step precision: {used} (train_precision={model.settings['train_precision']!r})")
        if distributed:  # ranks were seeded apart: start every replica from rank 0's weights and state
            for tensor in self.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        decay = model.settings["ema_decay"]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.weight_average = WeightAverage(trainable, decay) if decay > 0 else None

    def _all_reduce_gradients(self):
        """Average the gradients over the ranks in one flat all-reduce."""
        import torch.distributed as dist

        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    @property
    def last_checkpoint_file(self):
        """Where the state before a recent epoch is kept, for resuming a killed run (``--resume``)."""
        return os.path.splitext(self.saved_model_file)[0] + "-last.pth"

    def _snapshot_due(self, epoch_idx):
        """A resume snapshot before every `resume_every`-th epoch and once a minute: on a GPU an epoch can
        take less time than writing the weights and the optimizer state to disk."""
        last = getattr(self, "_snapshot_epoch", None)
        if last is None or epoch_idx % self.model.settings["resume_every"] == 0:
            return True
        return time.monotonic() - self._snapshot_time >= SNAPSHOT_SECONDS

    def fit(self, *args, **kwargs):
        """RecBole's fit; when it ends normally the resume snapshot has served its purpose and is removed
        (a killed or failed run keeps it, which is when `--resume` needs it). The best model stays."""
        result = super().fit(*args, **kwargs)
        if self._writes_files and os.path.isfile(self.last_checkpoint_file):
            os.remove(self.last_checkpoint_file)
            self.logger.info(f"training finished: removed the resume snapshot {self.last_checkpoint_file}")
        return result

    def _save_last(self, train_data, epoch_idx):
        state = self._checkpoint_state(epoch_idx - 1)
        state["train_loader_state"] = train_data.generator.get_state()
        save_checkpoint(state, self.last_checkpoint_file)
        self._snapshot_epoch, self._snapshot_time = epoch_idx, time.monotonic()

    def _build_optimizer(self, **kwargs):
        if "params" not in kwargs:
            kwargs["params"] = self.model.optimizer_groups(self.learning_rate)
        optimizer = super()._build_optimizer(**kwargs)
        if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW) and self.device.type == "cpu":
            # The same update in one fused kernel per parameter group: 4x faster than the per-tensor loop
            # on the CPU, where it is otherwise a tenth of a training epoch. (On a GPU torch's default,
            # the multi-tensor update, stays: that is the path measured there.)
            groups = [{**group, "fused": True, "foreach": None} for group in optimizer.param_groups]
            try:
                optimizer = type(optimizer)(groups, fused=True)
            except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
                pass
        return optimizer

    def _to_device(self, interaction):
        """The batch on the model's device. On CUDA through pinned memory and without blocking: a copy
        from pageable memory would wait for the GPU to finish the previous step."""
        if self.device.type != "cuda":
            return interaction.to(self.device)
        return Interaction({k: v.pin_memory().to(self.device, non_blocking=True)
                            for k, v in interaction.interaction.items()})

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        pending = getattr(self, "_pending_loader_state", None)
        if pending is not None:  # resumed: the shuffle continues where the interrupted run was
            train_data.generator.set_state(pending)
            self._pending_loader_state = None
        if self._writes_files and self._snapshot_due(epoch_idx):
            self._save_last(train_data, epoch_idx)
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress else train_data
        )
        if not self.config["single_spec"] and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)
        batch_losses = []
        average = self.weight_average
        if average is not None:
            average.swap()  # the optimizer's weights in for the epoch, the average held
        try:
            for interaction in iter_data:
                interaction = self._to_device(interaction)
                self.optimizer.zero_grad()
                with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                    enabled=self.autocast_dtype is not None):
                    loss = loss_func(interaction)
                loss.backward()
                if self.distributed:
                    self._all_reduce_gradients()
                if self.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
                self.optimizer.step()
                if average is not None:
                    average.update()
                batch_losses.append(loss.detach())
        finally:
            if average is not None:
                average.swap()  # validation, checkpoints and evaluation see the average
        self.model.epoch_finished()
        losses = torch.stack(batch_losses).double().cpu().numpy()  # the epoch's one host sync
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            raise FloatingPointError(
                f"training loss is {losses[bad[0]]} at epoch {epoch_idx}, batch {bad[0]}; the last good checkpoint "
                f"(the state before epoch {self._snapshot_epoch}) is {self.last_checkpoint_file}. Hint: lower learning_rate or "
                "noise_scale, or check the input data; then continue with --resume=<that file>."
            )
        return float(losses.sum())


def get_trainer(config, model_class):
    """The trainer for a model class: ours for our models, RecBole's (with safe checkpoints) for the rest."""
    from recbole_diffrec.config import is_ours

    if is_ours(model_class):
        return getattr(model_class, "trainer_class", DiffusionTrainer)
    base = recbole_get_trainer(config["MODEL_TYPE"], config["model"])
    return type(f"Safe{base.__name__}", (SafeCheckpointMixin, base), {})
