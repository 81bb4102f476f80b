r"""
DiffRec and T-DiffRec
#####################

Reference:
    Wenjie Wang, Yiyan Xu, Fuli Feng, Xiaoyu Lin, Xiangnan He, Tat-Seng Chua.
    "Diffusion Recommender Model." SIGIR 2023 (arXiv 2304.04971).

DiffRec diffuses each user's interaction vector with small scheduled Gaussian noise and trains an MLP
to undo it; items are ranked by the denoised vector. T-DiffRec first weights each interaction by its
recency (Sec. 4.2).
"""

from __future__ import annotations

from logging import getLogger
from typing import TYPE_CHECKING, Any

import numpy as np

from recbole_diffrec.data.interactions import recency_weights
from recbole_diffrec.errors import DataError
from recbole_diffrec.models.base import DiffusionRecommender
from recbole_diffrec.networks.denoiser import ACTIVATIONS, MLPDenoiser
from recbole_diffrec.settings import SettingError

if TYPE_CHECKING:  # annotations only
    import torch
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole_diffrec.settings import SettingsReader


class DiffRec(DiffusionRecommender):
    """Diffusion over the item space with an MLP denoiser."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        s = super().read_settings(reader)
        s["dims_dnn"] = reader.int_list("dims_dnn")
        s["embedding_size"] = reader.integer("embedding_size", low=1)
        s["mlp_act_func"] = reader.choice("mlp_act_func", tuple(ACTIVATIONS))
        s["dropout"] = reader.number("dropout", low=0, high=1, high_open=True)
        s["norm"] = reader.boolean("norm")
        return s

    def build_networks(self, dataset: Dataset) -> None:
        s = self.settings
        self.denoiser = MLPDenoiser(self.n_items, s["dims_dnn"], s["embedding_size"], s["mlp_act_func"],
                                    s["dropout"], s["norm"])

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        x_start = self.inputs.dense(interaction[self.USER_ID])
        return self.diffusion_loss(self.denoiser, x_start)

    def user_scores(self, users: torch.Tensor) -> torch.Tensor:
        # the reverse chain reads the rows sparse where input_path says so; training cannot: its input x_t
        # carries Gaussian noise on every item (docs/speed.md)
        return self.denoise(self.denoiser, self.input_rows(users))


class TimeWeighting:
    """Recency weighting of T-DiffRec (Sec. 4.2), read from the dataset's time field; mixed into T-DiffRec
    and LT-DiffRec, whose settings files it shares (``TimeWeighting.yaml``, ``TimeWeighting.hyper``).

    The diffused input holds the weights; the evaluation masks use the unweighted history.
    """

    USER_ID: str  # from the model it is mixed into
    settings: dict[str, Any]

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        s = super().read_settings(reader)  # type: ignore[misc]  # the model's own, after this mixin
        s["w_min"] = reader.number("w_min", low=0, high=1, low_open=True)
        s["w_max"] = reader.number("w_max", low=0, high=1, low_open=True)
        if s["w_min"] > s["w_max"]:
            raise SettingError("w_min", s["w_min"], f"must not exceed w_max={s['w_max']}")
        return s

    @classmethod
    def validate_dataset(cls, dataset: Dataset) -> None:
        super().validate_dataset(dataset)  # type: ignore[misc]
        times = cls._checked_times(dataset)
        if len(times) > 1 and np.all(times == times[0]):
            getLogger().warning(
                f"{cls.__name__}: every interaction of dataset {dataset.dataset_name!r} has the same "
                f"{dataset.time_field!r} ({times[0]}); the recency weights then follow the order of the rows in the file")

    @classmethod
    def _checked_times(cls, dataset: Dataset) -> np.ndarray:
        """The interactions' times; a missing time field or a non-finite time is refused (DataError)."""
        time_field = dataset.time_field
        if time_field is None or time_field not in dataset.inter_feat:
            raise DataError(
                f"{cls.__name__} weights interactions by time, but dataset {dataset.dataset_name!r} has no time "
                f"field (TIME_FIELD={dataset.config['TIME_FIELD']!r}). Add a timestamp column to the .inter file, "
                "set TIME_FIELD to its name and list it in load_col, e.g. load_col: {inter: [user_id, item_id, "
                "timestamp]}"
            )
        times = dataset.inter_feat[time_field]
        times = times.numpy() if hasattr(times, "numpy") else np.asarray(times)
        bad = ~np.isfinite(times.astype(np.float64))
        if bad.any():
            raise DataError(
                f"{cls.__name__}: {int(bad.sum())} interactions have a non-finite {time_field!r} "
                f"(first at row {int(np.flatnonzero(bad)[0])}); fix or drop them"
            )
        return times

    def interaction_values(self, dataset: Dataset) -> np.ndarray:
        # the training split's times (the whole dataset was validated before the split, when prepare built it)
        times = self._checked_times(dataset)
        return recency_weights(dataset.inter_feat[self.USER_ID].numpy(), times, self.settings["w_min"],
                               self.settings["w_max"]).astype(np.float32)


class TDiffRec(TimeWeighting, DiffRec):
    """DiffRec over recency-weighted interaction vectors."""
