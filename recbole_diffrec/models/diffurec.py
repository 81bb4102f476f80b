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

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType, ModelType
from torch import nn

from recbole_diffrec.core import GaussianDiffusion
from recbole_diffrec.errors import DataError
from recbole_diffrec.networks.transformer import DiffuRecApproximator, LayerNorm
from recbole_diffrec.settings import SettingError, SettingsReader


class SequentialDiffusionRecommender(SequentialRecommender):
    """Base of recbole-diffrec's sequential models: settings read and checked before any data loads, and
    what recbole-diffrec's trainer asks of a model. Not a model on its own."""

    abstract = True
    input_type = InputType.POINTWISE
    type = ModelType.SEQUENTIAL

    @classmethod
    def read_settings(cls, reader):
        """The Transformer's and the diffusion's shared keys; a model adds its own."""
        s = {
            "hidden_size": reader.integer("hidden_size", low=1),
            "n_layers": reader.integer("n_layers", low=1),
            "n_heads": reader.integer("n_heads", low=1),
            "dropout": reader.number("dropout", low=0, high=1, high_open=True),
            "steps": reader.integer("steps", low=1),
        }
        if s["hidden_size"] % s["n_heads"]:
            raise SettingError("n_heads", s["n_heads"], f"must divide hidden_size={s['hidden_size']}")
        return s

    @classmethod
    def validate_config(cls, config):
        s = cls.read_settings(SettingsReader(config))
        negatives = config["train_neg_sample_args"]
        if negatives is not None and (negatives or {}).get("distribution", "none") != "none":
            raise SettingError("train_neg_sample_args", config["train_neg_sample_args"],
                               f"must be None: {cls.__name__} trains with cross-entropy over all items")
        return s

    @classmethod
    def validate_dataset(cls, dataset):
        if len(dataset.inter_feat) == 0:
            raise DataError(f"dataset {dataset.dataset_name!r} has no interactions left after filtering")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.settings = self.read_settings(SettingsReader(config))

    def epoch_finished(self):
        """Called by the trainer after every training epoch."""

    def optimizer_groups(self, learning_rate):
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": learning_rate}]

    def last_positions(self, interaction):
        return interaction[self.ITEM_SEQ_LEN] - 1


class DiffuRec(SequentialDiffusionRecommender):
    """DiffuRec with its published code's defaults (properties/DiffuRec.yaml)."""

    @classmethod
    def read_settings(cls, reader):
        s = super().read_settings(reader)
        s.update({
            "emb_dropout": reader.number("emb_dropout", low=0, high=1, high_open=True),
            "noise_schedule": reader.choice("noise_schedule", ("trunc-linear", "cosine", "linear")),
            "noise_scale": reader.number("noise_scale", low=0, low_open=True),
            "lambda_uncertainty": reader.number("lambda_uncertainty", low=0),
            "rescale_timesteps": reader.boolean("rescale_timesteps"),
        })
        return s

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        s = self.settings
        self.item_embedding = nn.Embedding(self.n_items, s["hidden_size"])
        self.emb_dropout = nn.Dropout(s["emb_dropout"])
        self.norm = LayerNorm(s["hidden_size"])
        # "linear" is Ho et al.'s, rescaled to the number of steps as DiffuRec's code does: noise_scale = 1000 / steps
        # times [1e-4, 0.02] (its linear option); trunc-linear and cosine take no bounds.
        scale = 1000.0 / s["steps"]
        self.diffusion = GaussianDiffusion("x0", s["noise_schedule"], s["noise_scale"] * scale, 0.0001, 0.02,
                                           s["steps"], beta_fixed=False, reverse_variance="large")
        self.approximator = DiffuRecApproximator(
            s["hidden_size"], s["n_layers"], s["n_heads"], s["dropout"], s["lambda_uncertainty"],
            time_scale=1000.0 / s["steps"] if s["rescale_timesteps"] else 1.0)
        self.apply(self._init_embedding)

    @staticmethod
    def _init_embedding(module):
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 1.0)  # torch's default, as the published code leaves it

    def history(self, interaction):
        """(embedded history after dropout and layer norm, mask of real positions, last real position)."""
        items = interaction[self.ITEM_SEQ]
        return (self.norm(self.emb_dropout(self.item_embedding(items))), (items > 0).float(),
                self.last_positions(interaction))

    def denoiser(self, interaction):
        """The approximator as the diffusion core's denoiser(x_t, t) for these users' histories."""
        history, mask, last = self.history(interaction)
        return lambda x_t, t: self.approximator(history, x_t, t, mask, last)

    def calculate_loss(self, interaction):
        target = interaction[self.POS_ITEM_ID]
        x_start = self.item_embedding(target)
        t = torch.randint(0, self.settings["steps"], (x_start.shape[0],), device=x_start.device)  # uniform
        x_t = self.diffusion.q_sample(x_start, t)
        estimate = self.denoiser(interaction)(x_t, t)
        return F.cross_entropy(estimate @ self.item_embedding.weight.T, target)

    @torch.no_grad()
    def representation(self, interaction):
        """The reverse process from pure noise, every step, with sampling noise (the paper's inference)."""
        noise = torch.randn(interaction[self.ITEM_SEQ].shape[0], self.settings["hidden_size"],
                            device=self.item_embedding.weight.device)
        return self.diffusion.p_sample_loop(self.denoiser(interaction), noise, sampling_noise=True)

    def full_sort_predict(self, interaction):
        return self.representation(interaction) @ self.item_embedding.weight.T

    def predict(self, interaction):
        items = self.item_embedding(interaction[self.ITEM_ID])
        return (self.representation(interaction) * items).sum(-1)
