r"""
FlowCF and T-FlowCF
###################

Reference:
    Chengkai Liu, Yangtian Zhang, Jianling Wang, Rex Ying, James Caverlee. "Flow Matching for Collaborative
    Filtering." KDD 2025 (arXiv 2502.07303).

Flow matching between a behaviour-guided prior and the users' rows: x_0 ~ Bernoulli(each item's share of
users in training), x_t takes each item from x_1 with probability t and from x_0 otherwise, t on a grid of
`steps` + 1 points in [0, 1], and an MLP predicts x_1 from (x_t, t) with a squared loss. A recommendation
starts from the user's own row at grid step steps - inference_steps, runs inference_steps predictions, moves
x_t one grid step along the velocity between them (an item switches on where its probability passes 1/2,
observed items stay on) and ranks items by the last prediction.

One deliberate difference from the published code, a setting (`prior`): its prior counts RecBole's padding
item once for every user whose padded history matrix row has a padding slot (so the padding column is almost
always on in x_0) and divides by RecBole's user count, padding user included (`prior: published`). By default
(`prior: items`) the prior is each real item's training count over the real users, and the padding column
stays 0. On ml-1m_clean the published prior gave the published code's figures exactly and ours 2% lower, within
the spread of 3 seeds (benchmarks/results/flowcf_fidelity-ml-1m_clean.md). T-FlowCF weights the rows by recency
(T-DiffRec's weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recbole_diffrec.models.base import UserRowRecommender
from recbole_diffrec.models.diffrec import TimeWeighting
from recbole_diffrec.networks.denoiser import ACTIVATIONS
from recbole_diffrec.networks.flow import FlowMLP

if TYPE_CHECKING:  # annotations only
    from recbole.data.dataset import Dataset
    from recbole.data.interaction import Interaction

    from recbole_diffrec.settings import SettingsReader


PRIORS = ("items", "published")


class FlowCF(UserRowRecommender):
    """Discrete flow matching on interaction rows with a behaviour-guided prior."""

    @classmethod
    def read_settings(cls, reader: SettingsReader) -> dict[str, Any]:
        s = super().read_settings(reader)
        s["steps"] = reader.integer("steps", low=1)
        s["inference_steps"] = reader.integer("inference_steps", low=1, high=s["steps"], high_name="steps")
        s["dims_dnn"] = reader.int_list("dims_dnn", allow_empty=True)
        s["embedding_size"] = reader.integer("embedding_size", low=1)
        s["mlp_act_func"] = reader.choice("mlp_act_func", tuple(ACTIVATIONS))
        s["dropout"] = reader.number("dropout", low=0, high=1, high_open=True)
        s["prior"] = reader.choice("prior", PRIORS)
        return s

    def build(self, dataset: Dataset) -> None:
        s = self.settings
        rows = self.history.to_scipy()
        counts = torch.from_numpy(rows.getnnz(axis=0).astype("float64"))
        if s["prior"] == "published":  # the padding column counted once per user whose padded history has a slot
            lengths = np.bincount(self.artifacts.users, minlength=self.n_users)
            counts[0] = float((lengths < lengths.max()).sum())
            users = self.n_users
        else:
            users = max(int((rows.getnnz(axis=1) > 0).sum()), 1)
        self.register_buffer("prior", (counts / users).float(), persistent=False)
        self.register_buffer("grid", torch.linspace(0, 1, s["steps"] + 1), persistent=False)
        self.flow = FlowMLP(self.n_items, s["dims_dnn"], s["embedding_size"], s["mlp_act_func"], s["dropout"])

    def flow_loss(self, x_1: torch.Tensor, step: torch.Tensor, x_0: torch.Tensor,
                  switch: torch.Tensor) -> torch.Tensor:
        """The loss for given draws: `step` (batch,) grid indices, `x_0` the prior draw, `switch` (batch,
        items) uniforms; item i of x_t comes from x_1 where switch <= t."""
        t = self.grid[step].unsqueeze(1)
        x_t = torch.where(switch <= t, x_1, x_0)
        return (x_1 - self.flow(x_t, t.squeeze(1))).pow(2).mean(-1).mean()

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        x_1 = self.inputs.dense(interaction[self.USER_ID])
        step = torch.randint(0, self.settings["steps"], (x_1.shape[0],), device=x_1.device)
        x_0 = torch.bernoulli(self.prior.expand_as(x_1))
        return self.flow_loss(x_1, step, x_0, torch.rand_like(x_1))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        s = self.settings
        observed = x > 0
        x_t = x
        first = s["steps"] - s["inference_steps"]
        for step in range(first, s["steps"]):
            t = self.grid[step].expand(x.shape[0])
            x_1 = self.flow(x_t, t)
            if step == s["steps"] - 1:
                break
            t_next = self.grid[step + 1]
            moved = x_t + (x_1 - x_t) / (1 - t[:, None]) * (t_next - t[:, None])
            x_t = ((moved > 0.5) | observed).to(x.dtype)
        return x_1

    def user_scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(self.inputs.dense(users))


class TFlowCF(TimeWeighting, FlowCF):
    """FlowCF over recency-weighted rows (T-DiffRec's weights, TimeWeighting.yaml)."""
