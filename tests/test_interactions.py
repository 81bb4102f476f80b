"""The device-resident interaction rows and T-DiffRec's recency weights."""

import numpy as np
import pytest
import torch

from recbole_diffrec.data.interactions import InteractionRows, recency_weights


@pytest.mark.parametrize("exact_count", [None, True, False])  # None: the device's default (exact on the CPU)
def test_dense_rows_equal_scipy_rows(exact_count):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 40, 600), rng.integers(0, 25, 600)
    values = rng.random(600)
    rows = InteractionRows(users, items, values, 40, 25)
    full = rows.to_scipy().toarray()
    for batch in ([0], [5, 5, 39], list(range(40)), [17, 3, 0, 22], []):
        got = rows.dense(torch.tensor(batch, dtype=torch.long), exact_count=exact_count).numpy()
        assert got.shape == (len(batch), 25)
        assert np.allclose(got, full[batch])


def test_duplicates_keep_last_value_and_empty_users_are_zero():
    rows = InteractionRows([1, 1, 2], [3, 3, 0], [0.2, 0.7, 1.0], 4, 5)
    dense = rows.dense(torch.tensor([0, 1, 2, 3])).numpy()
    assert dense[1, 3] == pytest.approx(0.7) and dense[0].sum() == 0 and dense[3].sum() == 0
    assert rows.nnz == 2


def test_recency_weights_hand_example_with_shuffled_rows():
    # user 7: times 30, 10, 20 -> order 10, 20, 30 -> weights 0.1, 0.55, 1.0
    # user 3: times 5, 6, 7, 8 -> 0.1, 0.4, 0.7, 1.0 ; user 9: one interaction -> w_min
    users = np.array([7, 3, 7, 3, 9, 3, 7, 3])
    times = np.array([30, 7, 10, 5, 1, 8, 20, 6])
    want = np.array([1.0, 0.7, 0.1, 0.1, 0.1, 1.0, 0.55, 0.4])
    assert np.allclose(recency_weights(users, times, 0.1, 1.0), want)
    perm = np.random.default_rng(3).permutation(len(users))
    assert np.allclose(recency_weights(users[perm], times[perm], 0.1, 1.0), want[perm])


def test_recency_weights_ties_keep_row_order():
    w = recency_weights([0, 0, 0], [5, 5, 5], 0.2, 0.8)
    assert np.allclose(w, [0.2, 0.5, 0.8])


def test_sparse_rows_equal_the_dense_rows_and_their_products():
    import torch

    from recbole_diffrec.core.sparse import SparseRows

    rng = np.random.default_rng(3)
    users = rng.integers(0, 5, 40)  # user 5 has no interactions
    items = rng.integers(1, 30, 40)
    values = rng.random(40).astype(np.float32)
    rows = InteractionRows(users, items, values, 6, 30)
    batch = torch.tensor([4, 0, 2, 4])  # a user twice, one with no interactions at all (5 is absent)
    sparse = rows.sparse(batch)
    dense = rows.dense(batch)
    assert isinstance(sparse, SparseRows) and torch.equal(sparse.to_dense(), dense)
    weight = torch.randn(30, 7, dtype=torch.float64, requires_grad=True)
    reference = torch.randn(30, 7, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        reference.copy_(weight)
    got = sparse.with_values(sparse.values.double()).matmul(weight)
    want = dense.double() @ reference
    assert torch.allclose(got, want, atol=1e-12)
    grad = torch.randn_like(got)
    got.backward(grad)
    want.backward(grad)
    assert torch.allclose(weight.grad, reference.grad, atol=1e-12)  # the weight gradient too
    base = torch.randn(4, 30)
    assert torch.allclose(sparse.add_to(base, 0.5), base + 0.5 * dense)
    empty = rows.sparse(torch.tensor([5]))
    assert empty.cols.numel() == 0 and torch.equal(empty.to_dense(), torch.zeros(1, 30))


def test_input_dropout_on_sparse_rows_drops_stored_values_at_the_rate():
    import torch

    from recbole_diffrec.core.sparse import SparseRows
    from recbole_diffrec.networks.denoiser import InputDropout

    n = 200_000
    rows = SparseRows(torch.tensor([0]), torch.arange(n), torch.ones(n), n)
    drop = InputDropout(0.3).train()
    torch.manual_seed(0)
    kept = drop(rows).values
    assert kept.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    assert abs((kept == 0).float().mean().item() - 0.3) < 0.005
