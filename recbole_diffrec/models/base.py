"""The shared bases of recbole-diffrec's models (general and sequential): RecBole glue around the diffusion core.

PackModel is what every model gives RecBole and the trainer; UserRowRecommender holds the general models'
training interactions on the model's device; DiffusionRecommender adds DiffRec's family's Gaussian diffusion
(its loss and reverse chain; GiffCF and FlowCF have losses of their own); SequentialDiffusionRecommender is
DiffuRec's and DNR's base. Both families read the Gaussian diffusion's settings through
read_gaussian_diffusion (the model's keys only: the trainer reads its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from recbole.model.abstract_recommender import GeneralRecommender, SequentialRecommender
from recbole.utils import InputType, ModelType

from recbole_diffrec.core import (
    MEAN_TYPES,
    BOUNDED,
    SCHEDULES,
    GaussianDiffusion,
    TimestepSampler,
    make_betas,
)
from recbole_diffrec.data.artifacts import artifacts_of
from recbole_diffrec.data.interactions import InteractionRows
from recbole_diffrec.errors import DataError
from recbole_diffrec.settings import SettingError, SettingsReader

if TYPE_CHECKING:  # annotations only
    import torch
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole.config import Config  # the pack's Config is one; no import loop through it
    from recbole_diffrec.core.diffusion import Denoiser
    from recbole_diffrec.core.sparse import SparseRows

INPUT_PATHS = ("auto", "dense", "sparse")
TIMESTEP_SAMPLING = ("importance", "uniform")
SPARSE_FROM_ITEMS = 20_000  # input_path auto: sparse rows from this catalogue size (docs/speed.md)


def read_gaussian_diffusion(reader: SettingsReader, schedules: tuple[str, ...] = SCHEDULES, *, mean_type: bool = True,
                            beta_fixed: bool | None = None, scale_open: bool = False) -> dict[str, Any]:
    """Read and check the Gaussian diffusion's settings, for every model of both families: the schedule,
    its scale and bounds, the steps, and (where the model has them) beta_fixed and mean_type. The betas the
    settings give must lie in (0, 1); a setting that breaks this is named before any data loads.
    `noise_scale` means the same in every model (:func:`~recbole_diffrec.core.schedules.make_betas`);
    `beta_fixed` given fixes that choice."""
    s = {"noise_schedule": reader.choice("noise_schedule", schedules),
         "noise_scale": reader.number("noise_scale", low=0, low_open=scale_open),
         "noise_min": reader.number("noise_min", low=0),
         "noise_max": reader.number("noise_max", low=0),
         "steps": reader.integer("steps", low=1)}
    s["beta_fixed"] = reader.boolean("beta_fixed") if beta_fixed is None else beta_fixed
    if mean_type:
        s["mean_type"] = reader.choice("mean_type", MEAN_TYPES)
    uses_bounds = s["noise_schedule"] in BOUNDED and s["noise_scale"] > 0
    if uses_bounds and s["noise_min"] >= s["noise_max"]:
        raise SettingError(
            "noise_min", s["noise_min"],
            f"must be below noise_max={s['noise_max']} for noise_schedule={s['noise_schedule']!r}",
        )
    if s["noise_scale"] > 0:
        betas = make_betas(s["noise_schedule"], s["steps"], s["noise_scale"], s["noise_min"], s["noise_max"],
                           s["beta_fixed"])
        if not ((betas > 0).all() and (betas < 1).all()):
            raise SettingError(
                "noise_scale", s["noise_scale"],
                f"with steps={s['steps']}, noise_min={s['noise_min']}, noise_max={s['noise_max']} and "
                f"noise_schedule={s['noise_schedule']!r} the betas span [{betas.min():.3g}, {betas.max():.3g}]; "
                "every beta must lie in (0, 1)",
            )
    return s


class PackModel:
    """What every recbole-diffrec model, general or sequential, gives RecBole and the pack's trainer, written
    once: its settings read and checked before any data loads (`validate_config`, then `settings` when built),
    the dataset checked before the model is built (`validate_dataset`), and the trainer's hooks
    (`epoch_finished`, `optimizer_groups`). Mixed in first by the two bases; not a model."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        """Read and validate every setting the model uses; returns them as a dict."""
        raise NotImplementedError

    @classmethod
    def validate_config(cls, config: Config) -> dict[str, Any]:
        """Check every setting before any data loads (raises SettingError)."""
        return cls.read_settings(SettingsReader(config))

    @classmethod
    def validate_dataset(cls, dataset: Dataset) -> None:
        """Check the dataset suits the model before it is built (raises DataError)."""
        if len(dataset.inter_feat) == 0:
            raise DataError(
                f"dataset {dataset.dataset_name!r} has no interactions left after filtering; "
                "check the filtering settings (user_inter_num_interval, item_inter_num_interval, val_interval)"
            )

    def __init__(self, config: Config, dataset: Dataset):
        super().__init__(config, dataset)  # type: ignore[call-arg]  # a mixin before RecBole's recommender
        self.settings = self.read_settings(SettingsReader(config))

    def epoch_finished(self) -> None:
        """Called by the trainer after every training epoch (L-DiffRec anneals per epoch)."""

    def optimizer_groups(self, learning_rate: float) -> list[dict[str, Any]]:
        """Parameter groups for the optimizer; one group at the configured learning rate by default."""
        parameters = self.parameters()  # type: ignore[attr-defined]  # the torch module it is mixed into
        return [{"params": [p for p in parameters if p.requires_grad], "lr": learning_rate}]


class UserRowRecommender(PackModel, GeneralRecommender):
    """Base of the pack's general models: each reads a user's whole interaction row (DiffRec and its
    variants, GiffCF, FlowCF). It holds the training interactions on the model's device (`history`: the
    0/1 rows the evaluation masks; `inputs`: the rows the model reads, which T-variants weight by recency),
    checks its settings before any data loads and its dataset before the model is built. Not a model."""

    abstract = True
    input_type = InputType.LISTWISE
    type = ModelType.GENERAL

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        return {"duplicate_interactions": reader.choice("duplicate_interactions", ("drop", "keep"))}

    def __init__(self, config: Config, dataset: Dataset):
        super().__init__(config, dataset)
        self.artifacts = artifacts_of(dataset, config)  # what the model derives from the split, made in data/
        users, items = self.training_pairs(dataset)
        if len(users) == 0:
            raise DataError("the training split holds no interactions: nothing to train on")
        self.history = InteractionRows(users, items, np.ones(len(users)), self.n_users, self.n_items)
        self.inputs = InteractionRows(users, items, self.interaction_values(dataset), self.n_users, self.n_items)
        self.build(dataset)

    def build(self, dataset: Dataset) -> None:
        """Make the model's networks and state (after `history` and `inputs` exist)."""
        raise NotImplementedError

    def training_pairs(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        feat = dataset.inter_feat
        return feat[self.USER_ID].numpy(), feat[self.ITEM_ID].numpy()

    def interaction_values(self, dataset: Dataset) -> np.ndarray:
        """The value of each training interaction in the model's input rows: 1 (T-variants override)."""
        return np.ones(len(dataset.inter_feat), dtype=np.float32)

    def user_scores(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        return self.user_scores(interaction[self.USER_ID]).reshape(-1)

    def predict(self, interaction: Interaction) -> torch.Tensor:
        scores = self.user_scores(interaction[self.USER_ID])
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)


class DiffusionRecommender(UserRowRecommender):
    """Base of DiffRec and its variants (Gaussian diffusion over the row or a latent code). Not a model."""

    abstract = True

    # ---- settings ------------------------------------------------------------------------------
    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        """Read and validate every setting the model uses; returns them as a dict."""
        s = super().read_settings(reader)
        s.update(read_gaussian_diffusion(reader))
        s["reweight"] = reader.boolean("reweight")
        s["history_num_per_term"] = reader.integer("history_num_per_term", low=1)
        s["timestep_sampling"] = reader.choice("timestep_sampling", TIMESTEP_SAMPLING)
        s["sampling_steps"] = reader.integer("sampling_steps", low=0, high=s["steps"], high_name="steps")
        s["sampling_noise"] = reader.boolean("sampling_noise")
        s["inference_steps"] = reader.integer("inference_steps", low=0, high=s["steps"], high_name="steps")
        s["input_path"] = reader.choice("input_path", INPUT_PATHS)
        return s

    # ---- construction --------------------------------------------------------------------------
    def build(self, dataset: Dataset) -> None:
        s = self.settings
        self.diffusion = GaussianDiffusion(
            s["mean_type"], s["noise_schedule"], s["noise_scale"], s["noise_min"], s["noise_max"], s["steps"],
            s["beta_fixed"],
        )
        self.sampler = TimestepSampler(s["steps"], s["history_num_per_term"],
                                       importance=s["timestep_sampling"] == "importance")
        self.build_networks(dataset)

    @property
    def sparse_input(self) -> bool:
        """Whether the input layers read the users' rows as sparse rows (input_path; auto: large catalogues)."""
        path = self.settings["input_path"]
        return path == "sparse" or (path == "auto" and self.n_items >= SPARSE_FROM_ITEMS)

    def input_rows(self, users: torch.Tensor) -> torch.Tensor | SparseRows:
        """The users' (weighted) interaction rows, sparse or dense as `sparse_input` says."""
        return self.inputs.sparse(users) if self.sparse_input else self.inputs.dense(users)

    def build_networks(self, dataset: Dataset) -> None:
        raise NotImplementedError

    # ---- RecBole interface ---------------------------------------------------------------------
    def diffusion_loss(self, denoiser: Denoiser, x_start: torch.Tensor) -> torch.Tensor:
        """The importance-sampled diffusion loss of a batch (Sec. 3.3), after updating the sampler."""
        return self.diffusion_loss_and_x0(denoiser, x_start, False)[0]

    def diffusion_loss_and_x0(self, denoiser: Denoiser, x_start: torch.Tensor,
                              return_x0: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`diffusion_loss`, and with `return_x0` the denoiser's estimate of x_0 (L-DiffRec decodes it)."""
        t, pt = self.sampler.sample(x_start.shape[0])
        out = self.diffusion.training_losses(denoiser, x_start, t, reweight=self.settings["reweight"],
                                             return_x0=return_x0)
        losses, x0 = out if isinstance(out, tuple) else (out, None)
        self.sampler.update(t, losses.detach())
        return self.sampler.weighted_mean(losses, pt), x0

    def denoise(self, denoiser: Denoiser, x_start: torch.Tensor | SparseRows) -> torch.Tensor:
        s = self.settings
        return self.diffusion.p_sample_loop(denoiser, x_start, s["sampling_steps"], s["sampling_noise"],
                                            s["inference_steps"])

class SequentialDiffusionRecommender(PackModel, SequentialRecommender):
    """Base of recbole-diffrec's sequential models: settings read and checked before any data loads, and
    what recbole-diffrec's trainer asks of a model. Not a model on its own."""

    abstract = True
    input_type = InputType.POINTWISE
    type = ModelType.SEQUENTIAL

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        """The Transformer's and the diffusion's shared keys; a model adds its own."""
        s = {
            "hidden_size": reader.integer("hidden_size", low=1),
            "n_layers": reader.integer("n_layers", low=1),
            "n_heads": reader.integer("n_heads", low=1),
            "dropout": reader.number("dropout", low=0, high=1, high_open=True),
            "steps": reader.integer("steps", low=1),
            "MAX_ITEM_LIST_LENGTH": reader.integer("MAX_ITEM_LIST_LENGTH", low=1),
        }
        if s["hidden_size"] % s["n_heads"]:
            raise SettingError("n_heads", s["n_heads"], f"must divide hidden_size={s['hidden_size']}")
        return s

    @classmethod
    def validate_config(cls, config: Config) -> dict[str, Any]:
        s = super().validate_config(config)
        negatives = config["train_neg_sample_args"]
        if negatives is not None and (negatives or {}).get("distribution", "none") != "none":
            raise SettingError("train_neg_sample_args", config["train_neg_sample_args"],
                               f"must be None: {cls.__name__} trains with cross-entropy over all items")
        return s

    def last_positions(self, interaction: Interaction) -> torch.Tensor:
        return interaction[self.ITEM_SEQ_LEN] - 1
