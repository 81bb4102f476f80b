r"""
DiffuRec
########

Reference:
    Zihao Li, Aixin Sun, Chenliang Li. "DiffuRec: A Diffusion Model for Sequential Recommendation."
    ACM TOIS 2023 (arXiv 2304.00686).

The target item's embedding is diffused by a Gaussian forward process; an approximator (a Transformer over
the embedded history, into which the noised target is added with a random per-element scale) estimates the
target's embedding from the noised one; training is cross-entropy of that estimate's inner products with
all item embeddings. A recommendation runs the reverse process from pure Gaussian noise over all steps,
with sampling noise, and ranks items by their inner product with the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.core import GaussianDiffusion
from recbole_diffrec.models.base import SequentialDiffusionRecommender, read_gaussian_diffusion

from recbole_diffrec.networks.transformer import DiffuRecApproximator, LayerNorm

if TYPE_CHECKING:  # annotations only
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole.config import Config
    from recbole_diffrec.core.diffusion import Denoiser
    from recbole_diffrec.settings import SettingsReader


class DiffuRec(SequentialDiffusionRecommender):
    """DiffuRec with its published code's defaults (properties/DiffuRec.yaml)."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        s = super().read_settings(reader)
        s.update({
            "emb_dropout": reader.number("emb_dropout", low=0, high=1, high_open=True),
            "lambda_uncertainty": reader.number("lambda_uncertainty", low=0),
            "rescale_timesteps": reader.boolean("rescale_timesteps"),
        })
        # DiffuRec's code's schedules: trunc-linear (its default) and scaled-linear (its "linear") are Ho et
        # al.'s linear schedule rescaled to the number of steps, with the bounds noise_min and noise_max.
        s.update(read_gaussian_diffusion(reader, ("trunc-linear", "cosine", "scaled-linear"), mean_type=False,
                                         beta_fixed=False, scale_open=True))
        s["inference_steps"] = reader.integer("inference_steps", low=0, high=s["steps"], high_name="steps")
        return s

    def __init__(self, config: Config, dataset: Dataset):
        super().__init__(config, dataset)
        s = self.settings
        self.item_embedding = nn.Embedding(self.n_items, s["hidden_size"])
        self.emb_dropout = nn.Dropout(s["emb_dropout"])
        self.norm = LayerNorm(s["hidden_size"])
        self.diffusion = GaussianDiffusion("x0", s["noise_schedule"], s["noise_scale"], s["noise_min"], s["noise_max"],
                                           s["steps"], beta_fixed=False, reverse_variance="large")
        self.approximator = DiffuRecApproximator(
            s["hidden_size"], s["n_layers"], s["n_heads"], s["dropout"], s["lambda_uncertainty"],
            time_scale=1000.0 / s["steps"] if s["rescale_timesteps"] else 1.0)
        self.apply(self._init_embedding)

    @staticmethod
    def _init_embedding(module):
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 1.0)  # torch's default, as the published code leaves it

    def history_embeddings(self, interaction: Interaction) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embedded history after dropout and layer norm, mask of real positions, last real position)."""
        items = interaction[self.ITEM_SEQ]
        return (self.norm(self.emb_dropout(self.item_embedding(items))), (items > 0).float(),
                self.last_positions(interaction))

    def denoiser_given(self, interaction: Interaction) -> Denoiser:
        """The approximator as the diffusion core's denoiser(x_t, t) for these users' histories."""
        history, mask, last = self.history_embeddings(interaction)
        return lambda x_t, t: self.approximator(history, x_t, t, mask, last)

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        target = interaction[self.POS_ITEM_ID]
        x_start = self.item_embedding(target)
        t = torch.randint(0, self.settings["steps"], (x_start.shape[0],), device=x_start.device)  # uniform
        x_t = self.diffusion.q_sample(x_start, t)
        estimate = self.denoiser_given(interaction)(x_t, t)
        return F.cross_entropy(estimate @ self.item_embedding.weight.T, target)

    @torch.no_grad()
    def representation(self, interaction: Interaction) -> torch.Tensor:
        """The reverse process from pure noise with sampling noise: every step (the paper's inference), or a
        strided chain of inference_steps steps (the general models' strided chain)."""
        noise = torch.randn(interaction[self.ITEM_SEQ].shape[0], self.settings["hidden_size"],
                            device=self.item_embedding.weight.device)
        return self.diffusion.p_sample_loop(self.denoiser_given(interaction), noise, sampling_noise=True,
                                            inference_steps=self.settings["inference_steps"])

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        return self.representation(interaction) @ self.item_embedding.weight.T

    def predict(self, interaction: Interaction) -> torch.Tensor:
        items = self.item_embedding(interaction[self.ITEM_ID])
        return (self.representation(interaction) * items).sum(-1)
