"""GiffCF: its graph, filter and reverse steps against independent computations, and runs end to end through
the pack's paths."""

import numpy as np
import pytest
import torch

from recbole_diffrec.data.graph import normalized_interactions, spectrum
from recbole_diffrec.pipeline import prepare, run

SMALL_GIFF = {"show_progress": False, "epochs": 1, "embedding_size": 16, "train_precision": "float32"}


def test_the_normalised_matrix_and_its_largest_eigenvalue():
    users = np.array([0, 0, 1, 2, 2, 2, 0])  # the last row repeats (0, 0): binary all the same
    items = np.array([0, 1, 1, 0, 1, 2, 0])
    dense = np.zeros((4, 3))  # user 3 has no item: a zero row, not inf
    dense[users, items] = 1
    expected = dense / np.maximum(dense.sum(1, keepdims=True), 1) ** 0.25 / dense.sum(0, keepdims=True) ** 0.5
    expected[3] = 0
    got = normalized_interactions(users, items, 4, 3).toarray()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    values, vectors = spectrum(normalized_interactions(users, items, 4, 3), 1)
    assert values[0] == pytest.approx(np.linalg.eigvalsh(expected.T @ expected).max(), rel=1e-10)
    assert vectors.shape == (1, 3)


@pytest.mark.parametrize("propagation", ["dense", "sparse"])
@torch.no_grad()
def test_giffcf_smooths_rows_as_the_formula_says(propagation, workdir):
    _, _, net, _ = prepare("GiffCF", "ml-100k", None, {**SMALL_GIFF, "propagation": propagation})
    r = net.history.to_scipy()
    users, items = r.nonzero()
    adjacency = normalized_interactions(users, items, net.n_users, net.n_items).toarray()
    gram = adjacency.T @ adjacency
    lam = np.linalg.eigvalsh(gram).max()
    x = net.inputs.dense(torch.arange(1, 33))
    expected = x.numpy().astype(np.float64) @ gram / lam
    np.testing.assert_allclose(net.smooth(x).numpy(), expected, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(net.smoothed_rows[1:33].numpy(), expected, rtol=2e-4, atol=1e-6)  # the cache
    t = 2
    blurred = net.blur(x, net.smooth(x), t)
    np.testing.assert_allclose(blurred.numpy(), x.numpy() + 1.5 * t / 3 * (expected - x.numpy()), rtol=2e-4, atol=1e-6)


@torch.no_grad()
def test_giffcf_reverse_steps_follow_the_published_recursion(workdir):
    _, _, net, _ = prepare("GiffCF", "ml-100k", None, SMALL_GIFF)
    net.eval()
    x = net.inputs.dense(torch.arange(1, 9))
    ax = net.smooth(x)
    z = x + 1.5 * (ax - x)  # z_T, T = 3
    for t in (3, 2, 1):  # x_pred, then z_s = blur(x_pred, s) + decay * (z_t - blur(x_pred, t))
        x_pred = net.denoiser(z, x, ax, torch.full((8,), t))
        a_pred = net.smooth(x_pred)
        z = (x_pred + 1.5 * (t - 1) / 3 * (a_pred - x_pred)) + 0.5 * (z - (x_pred + 1.5 * t / 3 * (a_pred - x_pred)))
    torch.testing.assert_close(net.reconstruct(x), z, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["GiffCF", "TGiffCF"])
def test_an_end_to_end_run_learns(model, workdir):
    """Trained briefly on ml-100k through run(): test NDCG@10 above a floor Pop does not reach (0.1005 there)."""
    result = run(model, config_dict={"show_progress": False, "epochs": 3, "embedding_size": 64})
    assert result["test_result"]["ndcg@10"] > 0.15, result["test_result"]
