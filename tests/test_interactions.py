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
