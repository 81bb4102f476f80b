r"""
DNR
###

Reference:
    Hanwen Du, Huanhuan Yuan, Zhen Huang, Pengpeng Zhao, Xiaofang Zhou. "Sequential Recommendation with
    Diffusion Models." arXiv 2304.04541 (2023). The paper calls its model DiffRec (a name recbole-diffrec gives
    Wang et al.'s model) and its Transformer denoiser DNR (Denoise Sequential Recommender).

No code was published; this follows the paper's description, and every choice where it is silent is a
setting (properties/DNR.yaml) or written here:

- An extra forward transition maps the target item to a hidden vector h_0: its embedding plus Gaussian noise
  of standard deviation `embedding_noise`. Diffusion runs on h_0 alone (the history is not noised).
- The denoiser is a Transformer encoder over the history's item embeddings and one more slot holding h_n,
  each plus a learned position embedding, the slot plus the step's embedding (sinusoidal, then an MLP);
  attention is bidirectional over the real positions (padding keys masked). It reads the slot and predicts
  h_0 directly (the KL terms rewritten as a squared error).
- An extra reverse transition maps a hidden vector to a distribution over items: a linear layer and a
  softmax. Training minimises the squared error plus the cross-entropy of that distribution at the
  predicted h_0 for the target item.
- Steps are drawn by importance sampling on their loss history (the timestep sampler of DiffRec).
- A recommendation predicts h_0 in one step from step `inference_start` (the slot holding pure Gaussian
  noise, the target being unknown), averaging the item distributions of `inference_draws` noise draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from recbole_diffrec.core import GaussianDiffusion, TimestepSampler
from recbole_diffrec.models.base import SequentialDiffusionRecommender, read_gaussian_diffusion
from recbole_diffrec.networks.timesteps import step_mlp, timestep_embedding
from recbole_diffrec.networks.transformer import pre_norm_encoder

if TYPE_CHECKING:  # annotations only
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole.config import Config
    from recbole_diffrec.settings import SettingsReader


class DNR(SequentialDiffusionRecommender):
    """Du et al.'s diffusion model for next-item prediction with its Transformer denoiser."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        s = super().read_settings(reader)
        s.update(read_gaussian_diffusion(reader, mean_type=False, beta_fixed=False, scale_open=True))
        s["embedding_noise"] = reader.number("embedding_noise", low=0)
        s["history_num_per_term"] = reader.integer("history_num_per_term", low=1)
        s["inference_start"] = reader.integer("inference_start", low=0, high=s["steps"] - 1, high_name="steps - 1")
        s["inference_draws"] = reader.integer("inference_draws", low=1)
        return s

    def __init__(self, config: Config, dataset: Dataset):
        super().__init__(config, dataset)
        s = self.settings
        hidden = s["hidden_size"]
        self.item_embedding = nn.Embedding(self.n_items, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length + 1, hidden)  # the history, then the slot
        self.step_embedding = step_mlp(hidden)
        self.encoder = pre_norm_encoder(hidden, s["n_heads"], s["n_layers"], s["dropout"])
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(s["dropout"])
        self.to_items = nn.Linear(hidden, self.n_items)  # the extra reverse transition (then a softmax)
        self.diffusion = GaussianDiffusion("x0", s["noise_schedule"], s["noise_scale"], s["noise_min"],
                                           s["noise_max"], s["steps"], beta_fixed=False)
        self.sampler = TimestepSampler(s["steps"], s["history_num_per_term"])
        nn.init.normal_(self.item_embedding.weight, 0.0, 0.02)
        nn.init.normal_(self.position_embedding.weight, 0.0, 0.02)

    def estimate_h0(self, interaction: Interaction, h_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The estimate of h_0 from h_t at steps t, given the users' histories."""
        items = interaction[self.ITEM_SEQ]
        batch, length = items.shape
        lengths = interaction[self.ITEM_SEQ_LEN]
        slot = h_t + self.step_embedding(timestep_embedding(t, h_t.shape[-1]).to(h_t.dtype))
        sequence = torch.cat([self.item_embedding(items), slot.unsqueeze(1)], dim=1)
        positions = torch.arange(length + 1, device=items.device)
        hidden = self.dropout(sequence + self.position_embedding(positions))
        padding = torch.cat([positions[None, :length] >= lengths[:, None],
                             torch.zeros(batch, 1, dtype=torch.bool, device=items.device)], dim=1)
        out = self.encoder(hidden, src_key_padding_mask=padding)
        return self.norm(out[:, -1])

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        target = interaction[self.POS_ITEM_ID]
        embedded = self.item_embedding(target)
        h0 = embedded + self.settings["embedding_noise"] * torch.randn_like(embedded)
        t, weight = self.sampler.sample(h0.shape[0])
        estimate = self.estimate_h0(interaction, self.diffusion.q_sample(h0, t), t)
        squared = F.mse_loss(estimate, h0, reduction="none").mean(-1)
        rounding = F.cross_entropy(self.to_items(estimate), target, reduction="none")
        losses = squared + rounding
        self.sampler.update(t, losses.detach())
        return self.sampler.weighted_mean(losses, weight)

    @torch.no_grad()
    def item_log_probabilities(self, interaction: Interaction) -> torch.Tensor:
        """log of the item distribution averaged over `inference_draws` one-step predictions from
        `inference_start`, the slot holding pure noise."""
        s = self.settings
        batch = interaction[self.ITEM_SEQ].shape[0]
        device = self.item_embedding.weight.device
        t = torch.full((batch,), s["inference_start"], dtype=torch.long, device=device)
        probabilities = torch.zeros((), device=device)
        for _ in range(s["inference_draws"]):
            noise = torch.randn(batch, s["hidden_size"], device=device)
            probabilities = probabilities + F.softmax(self.to_items(self.estimate_h0(interaction, noise, t)), dim=-1)
        return torch.log(probabilities / s["inference_draws"])

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        return self.item_log_probabilities(interaction)

    def predict(self, interaction: Interaction) -> torch.Tensor:
        scores = self.item_log_probabilities(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
