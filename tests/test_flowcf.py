"""FlowCF: its interpolation, sampler and prior against its definition, and a run end to end through the pack's
paths (no RecBole patch)."""

import numpy as np
import pytest
import torch

from recbole_diffrec.pipeline import prepare, run

SMALL_FLOW = {"show_progress": False, "epochs": 1, "dims_dnn": [32], "train_precision": "float32"}


def test_flowcf_interpolates_and_scores_as_its_definition(workdir):
    _, _, net, _ = prepare("FlowCF", "ml-100k", None, SMALL_FLOW)
    net.eval()
    x1 = net.inputs.dense(torch.arange(1, 7))
    x0 = torch.zeros_like(x1)
    switch = torch.rand_like(x1)
    step = torch.tensor([0, 1, 2, 3, 8, 8])
    t = step.float() / 9
    x_t = torch.where(switch <= t[:, None], x1, x0)
    with torch.no_grad():
        expected = (x1 - net.flow(x_t, t)).pow(2).mean()
        assert net.flow_loss(x1, step, x0, switch).item() == pytest.approx(expected.item(), rel=1e-6)
        # the sampler: two predictions from the user's row at steps 7 and 8; items switch on past 1/2
        first = net.flow(x1, torch.full((6,), 7 / 9))
        moved = x1 + (first - x1) / (1 - 7 / 9) * (1 / 9)
        x_8 = ((moved > 0.5) | (x1 > 0)).float()
        torch.testing.assert_close(net.reconstruct(x1), net.flow(x_8, torch.full((6,), 8 / 9)))
    prior = net.prior.numpy()
    counts = np.bincount(net.history.to_scipy().nonzero()[1], minlength=net.n_items)
    np.testing.assert_allclose(prior, counts / (net.n_users - 1), rtol=1e-6)  # real users; padding item 0
    assert prior[0] == 0


def test_the_published_prior_counts_the_padding_column_as_the_published_code(workdir):
    """prior: published, computed independently from ml-100k's .inter file: each item's users over RecBole's
    user count (padding user included), and the padding column on for every user whose padded history row has
    a free slot (fewer training rows than the longest; the padding user has none). Equal to the published code's
    item_frequencies on ml-100k and ml-1m_clean (benchmarks/results/flowcf_fidelity-ml-1m_clean.md)."""
    _, (train, _, _), net, _ = prepare("FlowCF", "ml-100k", None, {**SMALL_FLOW, "prior": "published"})
    feat = train._dataset.inter_feat
    users, items = feat["user_id"].numpy(), feat["item_id"].numpy()
    lengths = np.bincount(users, minlength=net.n_users)
    want = np.zeros(net.n_items)
    for item in range(1, net.n_items):
        want[item] = len(np.unique(users[items == item]))
    want[0] = (lengths < lengths.max()).sum()
    np.testing.assert_allclose(net.prior.numpy(), want / net.n_users, rtol=1e-6)
    assert 0.99 < net.prior[0] < 1  # nearly always on: ml-100k's longest history is one user's


def test_an_end_to_end_run_learns(workdir):
    """Trained briefly on ml-100k through run(): test NDCG@10 above a floor Pop does not reach (0.1005 there;
    0.32 when written)."""
    result = run("FlowCF", config_dict={"show_progress": False, "epochs": 40, "train_batch_size": 256, "eval_step": 40})
    assert result["test_result"]["ndcg@10"] > 0.25, result["test_result"]
