"""Trainers: safe checkpoints, weight averaging and resume snapshots for every model; a sync-free
training epoch for recbole-diffrec's.

:class:`SafeCheckpointMixin` goes onto whichever RecBole trainer a model needs, so RecBole's own models get
the trainer's settings too (``trainer.yaml``: ``ema_decay``, ``resume_every``, ``train_precision``,
``eval_batch_users``); :class:`DiffusionTrainer` is the trainer of recbole-diffrec's models.
"""

import os
import shutil
import time
import uuid

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_diffrec import ownership
from recbole_diffrec.data.records import data_differences
from recbole_diffrec.errors import CheckpointError, NonFiniteScores, TrainingDiverged
from recbole_diffrec.run_context import ConfigView, RunContext
from recbole_diffrec.settings import (
    SETTINGS_VERSION,
    SettingError,
    SettingsReader,
    may_change,
    migrate_settings,
)
from recbole_diffrec.training.averaging import WeightAverage
from recbole_diffrec.training.checkpoint import (
    CHECKPOINT_FORMAT,
    changed_settings,
    from_plain,
    load_checkpoint,
    plain_config,
    save_checkpoint,
    to_plain,
)
from recbole_diffrec.training.distributed import gather_user_results
from recbole_diffrec.training.precision import training_autocast_dtype
from recbole_diffrec.training.run_settings import read_trainer_settings

SNAPSHOT_SECONDS = 60  # a resume snapshot at least this often, whatever resume_every says


RESUME_FIXED = ("learning_rate", "weight_decay", "train_batch_size", "learner")  # RecBole's optimisation keys


class SafeCheckpointMixin:
    """What every model's trainer gets on top of RecBole's: checkpoints through :func:`save_checkpoint` and
    :func:`load_checkpoint`; a resume snapshot before every `resume_every`-th epoch (removed when the run
    ends normally); weight averaging with `ema_decay` > 0 (validation, checkpoints and evaluation see the
    average); `train_precision` (for RecBole's models: float32, or RecBole's own bfloat16 autocast on the CPU).
    """

    weight_average = None  # a WeightAverage with ema_decay > 0
    _nonfinite_scores = None  # whether an evaluation under way has scored an item NaN or +inf (a tensor)
    data_record = None  # what the model is trained on (data.records.data_record), saved with it; set by prepare

    def __init__(self, config, model, run=None):
        self.run = run or RunContext.of(config)
        self.trainer_settings = read_trainer_settings(SettingsReader(config))
        tensorboard_before = ownership.entries("log_tensorboard")  # RecBole's writer's fixed root
        try:
            super().__init__(config, model)
        finally:  # also when RecBole's set-up fails after making the writer (an unusable checkpoint_dir)
            if getattr(self, "tensorboard", None) is not None:
                ownership.note_tensorboard(self.tensorboard, tensorboard_before)
        # RecBole names the file by the second it was made in; two trainers in one second (tuning
        # trials, tests) would overwrite each other's best model. A short random suffix keeps them apart.
        stem, ext = os.path.splitext(self.saved_model_file)
        name = [f"{stem}-{uuid.uuid4().hex[:6]}{ext}"]
        if self.run.distributed:  # every rank reads the file rank 0 writes
            torch.distributed.broadcast_object_list(name, src=0)
        self.saved_model_file = name[0]
        self._set_precision()
        self._start_replicas()
        decay = self.trainer_settings["ema_decay"]
        if decay > 0:
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            self.weight_average = average = WeightAverage(trainable, decay)
            self.optimizer.register_step_post_hook(lambda *_: average.update())

    def _set_precision(self):
        """RecBole's trainers: `auto` and `float32` train in float32 (as RecBole does); `bfloat16` turns on
        RecBole's own autocast, which is bfloat16 on the CPU only."""
        precision = self.trainer_settings["train_precision"]
        if precision != "bfloat16":
            return
        if self.device.type != "cpu":
            raise SettingError("train_precision", precision, f"RecBole's {self.config['model']} trains in bfloat16 "
                               f"on the CPU only (RecBole's autocast on {self.device.type} is float16); use auto or "
                               "float32")
        self.enable_amp = True

    def _start_replicas(self):
        """Make a distributed run's replicas equal before training (RecBole's trainers: its DDP wrapper does)."""

    @property
    def _writes_files(self):
        """Whether this process writes checkpoints: always in a single process, rank 0 in a distributed run."""
        return self.run.writes_files

    def _checkpoint_state(self, epoch):
        state = {
            "format": CHECKPOINT_FORMAT,
            "settings_version": SETTINGS_VERSION,
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
            "data": self.data_record,
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
        """Continue the run `resume_file` was written by. Checked first: the checkpoint's model, settings and
        data must be this run's. The resumed run writes new files (its own best model, seeded with the
        checkpoint's best, and its own snapshots); no existing file is replaced."""
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        if checkpoint["model"] != self.config["model"]:
            raise CheckpointError(f"checkpoint {resume_file} is of model {checkpoint['model']!r}, not "
                                  f"{self.config['model']!r}; resume it with --model={checkpoint['model']}")
        self._check_resumed_settings(checkpoint, resume_file)
        if checkpoint.get("data") is not None and self.data_record is not None:
            changed = data_differences(checkpoint["data"], self.data_record)
            if changed:
                raise CheckpointError(f"refusing to resume {resume_file}: {changed}")
        if self.weight_average is not None and "weight_average" not in checkpoint:
            raise SettingError("ema_decay", self.weight_average.decay, f"the resumed checkpoint ({resume_file}) was "
                               "trained without weight averaging; resume with --ema_decay=0, or start a new run")
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint.get("best_valid_result") or None
        try:
            self._load_model_state(checkpoint)
            if self.weight_average is not None:
                self.weight_average.load_state(checkpoint["weight_average"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"{resume_file} does not fit this model's parameters (written by an earlier version of "
                f"recbole-diffrec, or with other settings): {' '.join(str(err).split())[:200]}; evaluate and "
                "recommend still read it, resuming it needs a new run") from None
        torch.set_rng_state(checkpoint["rng_state"])
        self._pending_loader_state = checkpoint.get("train_loader_state")
        best = checkpoint.get("best_model_file")
        if self._writes_files:  # the best so far, under this run's own name, until this run improves on it
            new = ownership.new_file(self.saved_model_file)
            shutil.copyfile(best if best and os.path.isfile(best) else str(resume_file), self.saved_model_file)
            if new:
                ownership.note_file(self.saved_model_file)
        self.logger.info(f"Checkpoint {resume_file} loaded. Resume training from epoch {self.start_epoch}; this "
                         f"run's best model: {self.saved_model_file}")

    def _check_resumed_settings(self, checkpoint, resume_file):
        """A resumed run must train the model it continues: each setting of the model and of the trainer
        must equal the checkpoint's (a default changed since, or a different command line, would otherwise
        mix two models silently), except those declared "may change on resume"."""
        # the optimizer's and the batches' settings too: the optimizer state resumes with the checkpoint's
        # learning rate and weight decay, whatever a new value would say in the log
        optimization = {k: self.config[k] for k in RESUME_FIXED if self.config[k] is not None}
        settings = {**optimization, **(getattr(self.model, "settings", None) or {}), **self.trainer_settings}
        saved = migrate_settings(checkpoint["model"], from_plain(checkpoint.get("config") or {}),
                                 checkpoint.get("settings_version", 1))
        changed = changed_settings(settings, saved, may_change(type(self.model), "resume"))
        if changed:
            key = changed[0]
            raise SettingError(key, settings[key], f"differs from the resumed checkpoint's {saved[key]!r} "
                               f"({resume_file}); resume with --{key}={saved[key]!r}, or start a new run")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            if self.run.distributed:
                torch.distributed.barrier()  # rank 0 has finished writing the best model
            path = model_file or self.saved_model_file
            self._load_model_state(load_checkpoint(path, map_location=self.device))
            self.logger.info(f"Loading model structure and parameters from {path}")
        self._nonfinite_scores = None
        result = self._evaluate(eval_data, show_progress)
        bad, self._nonfinite_scores = self._nonfinite_scores, None
        if bad is not None and bool(bad):  # one sync per evaluation, not per batch
            raise NonFiniteScores(f"{self.config['model']} scored items NaN or +inf at evaluation: its weights or "
                                  "settings give no ranking, so no metric is reported and nothing is saved as the "
                                  "best model; lower learning_rate or check the settings")
        return result

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        bad = torch.isnan(scores).any() | torch.isposinf(scores).any()  # -inf: RecBole's mask of the history
        self._nonfinite_scores = bad if self._nonfinite_scores is None else self._nonfinite_scores | bad
        return interaction, scores, positive_u, positive_i

    def _evaluate(self, eval_data, show_progress):
        if getattr(eval_data, "shard", None) is None:
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        # A distributed evaluation over blocks of users (recbole-diffrec's trainer, which RecBole sees as one
        # process): every rank gathers all blocks' per-user results in rank order and computes the metrics as
        # one process would (RecBole averages per-rank metrics).
        collector = self.eval_collector
        collector.get_data_struct = lambda: gather_user_results(type(collector).get_data_struct(collector))
        try:
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            del collector.get_data_struct

    @property
    def last_checkpoint_file(self):
        """Where the state before a recent epoch is kept, for resuming a killed run (``--resume``)."""
        return os.path.splitext(self.saved_model_file)[0] + "-last.pth"

    def _snapshot_due(self, epoch_idx):
        """A resume snapshot before every `resume_every`-th epoch and once a minute: on a GPU an epoch can
        take less time than writing the weights and the optimizer state to disk."""
        last = getattr(self, "_snapshot_epoch", None)
        if last is None or epoch_idx % self.trainer_settings["resume_every"] == 0:
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
        self.logger.info(f"resume snapshot before epoch {epoch_idx}: {self.last_checkpoint_file} (if this run is "
                         f"killed, continue it with --resume={self.last_checkpoint_file})")

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch (:meth:`_run_epoch`), preceded by a resume snapshot when one is due and run on the
        optimizer's weights when the trainer averages them."""
        pending = getattr(self, "_pending_loader_state", None)
        if pending is not None:  # resumed: the shuffle continues where the interrupted run was
            train_data.generator.set_state(pending)
            self._pending_loader_state = None
        if self._writes_files and self._snapshot_due(epoch_idx):
            self._save_last(train_data, epoch_idx)
        average = self.weight_average
        if average is not None:
            average.swap()  # the optimizer's weights in for the epoch, the average held
        try:
            return self._run_epoch(train_data, epoch_idx, loss_func, show_progress)
        finally:
            if average is not None:
                average.swap()  # validation, checkpoints and evaluation see the average

    def _run_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """RecBole's training epoch."""
        self._epoch_running, self._batch_running = epoch_idx, 0
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _check_nan(self, loss):
        """RecBole's check of each batch's loss (its models), stopping as recbole-diffrec's trainer does."""
        batch = getattr(self, "_batch_running", 0)
        self._batch_running = batch + 1
        if not torch.isfinite(loss):
            snapshot = (f"the last good checkpoint (the state before epoch {self._snapshot_epoch}) is "
                        f"{self.last_checkpoint_file}" if getattr(self, "_snapshot_epoch", None) is not None
                        else "no snapshot was written yet")
            raise TrainingDiverged(
                f"training loss is {float(loss)} at epoch {getattr(self, '_epoch_running', '?')}, batch {batch}; "
                f"{snapshot}. Hint: lower learning_rate, or check the input data; then continue with --resume=<that file>.")

class DiffusionTrainer(SafeCheckpointMixin, Trainer):
    """Trainer of recbole-diffrec's models.

    Differences from RecBole's Trainer: the optimizer takes the model's parameter groups (L-DiffRec's
    autoencoder and denoiser learn at different rates); an epoch's batch losses stay on the device and
    are read once at its end, so a step never waits on the host; a non-finite loss stops training with
    the epoch, the batch and a hint, and the last good checkpoint is kept; with `ema_decay` > 0 validation,
    checkpoints and evaluation use a moving average of the weights (:class:`WeightAverage`).
    """

    def __init__(self, config, model, run=None):
        # RecBole wraps the model in DistributedDataParallel with GPU device ids, which a CPU (gloo) run
        # cannot take, and averages each rank's metrics; our epoch all-reduces the gradients itself and our
        # evaluation gathers the users' results (the run context says how), so RecBole sees one process.
        run = run or RunContext.of(config)
        super().__init__(ConfigView(config, single_spec=True), model, run)

    def _start_replicas(self):
        if self.run.distributed:  # ranks were seeded apart: start every replica from rank 0's weights and state
            for tensor in self.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def _set_precision(self):
        precision = self.trainer_settings["train_precision"]
        self.autocast_dtype = training_autocast_dtype(precision, self.device)
        used = "float32" if self.autocast_dtype is None else "bfloat16 autocast"
        self.logger.info(f"training step precision: {used} (train_precision={precision!r})")

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

    def _run_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress else train_data
        )
        if self.run.distributed and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)
        batch_losses = []
        for interaction in iter_data:
            interaction = self._to_device(interaction)
            self.optimizer.zero_grad()
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                loss = loss_func(interaction)
            loss.backward()
            if self.run.distributed:
                self._all_reduce_gradients()
            if self.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            self.optimizer.step()  # and the weight average's update (a step hook)
            batch_losses.append(loss.detach())
        self.model.epoch_finished()
        losses = torch.stack(batch_losses).double().cpu().numpy()  # the epoch's one host sync
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            raise TrainingDiverged(
                f"training loss is {losses[bad[0]]} at epoch {epoch_idx}, batch {bad[0]}; the last good checkpoint "
                f"(the state before epoch {self._snapshot_epoch}) is {self.last_checkpoint_file}. Hint: lower learning_rate or "
                "noise_scale, or check the input data; then continue with --resume=<that file>."
            )
        return float(losses.sum())
