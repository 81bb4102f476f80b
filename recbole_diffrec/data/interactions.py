"""The training interactions as a device-resident sparse matrix, and T-DiffRec's recency weights."""

import numpy as np
import torch
from torch import nn

from recbole_diffrec.core.sparse import SparseRows


def recency_weights(user_ids, timestamps, w_min, w_max):
    """T-DiffRec's weights (paper Sec. 4.2): a user's M interactions in time order get
    w_min + (m - 1) / (M - 1) * (w_max - w_min), m = 1..M.

    Vectorised: one stable sort over (user, time), no loop over users. Ties in time keep the order of
    the input rows (the sort is stable), so a split whose row order is its time order needs no
    timestamps at all. A user with a single interaction gets w_min, as the paper's code
    (``np.linspace(w_min, w_max, 1)``). Returns float64 weights aligned with the input rows.
    """
    user_ids = np.asarray(user_ids)
    timestamps = np.asarray(timestamps)
    n = len(user_ids)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    order = np.lexsort((timestamps, user_ids))  # by user, then time; stable for ties
    sorted_users = user_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, sizes)  # m - 1
    denominator = np.repeat(np.maximum(sizes - 1, 1), sizes)
    weights = np.empty(n, dtype=np.float64)
    weights[order] = w_min + position / denominator * (w_max - w_min)
    return weights


class InteractionRows(nn.Module):
    """Users' interaction vectors, stored as CSR buffers on the model's device.

    `dense(users)` builds the batch's dense rows there: a flat index (on a GPU of fixed size, an upper
    bound on the batch's non-zeros known on the host from the row lengths; on the CPU the exact count)
    is mapped to (row, column) pairs and scattered into a zero matrix. No Python loop, no host sync, and
    memory proportional to the batch, not to the catalogue times the users. Duplicate (user, item) pairs
    keep the last value given.
    """

    def __init__(self, users, items, values, n_users, n_items):
        super().__init__()
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        order = np.lexsort((items, users))
        users, items, values = users[order], items[order], values[order]
        if len(users):  # keep the last of each duplicate pair (stable sort keeps input order among them)
            last = np.r_[(users[1:] != users[:-1]) | (items[1:] != items[:-1]), True]
            users, items, values = users[last], items[last], values[last]
        lengths = np.bincount(users, minlength=n_users)
        indptr = np.r_[0, np.cumsum(lengths)]
        self.n_users, self.n_items = n_users, n_items
        self.register_buffer("indptr", torch.from_numpy(indptr), persistent=False)
        self.register_buffer("indices", torch.from_numpy(items), persistent=False)
        self.register_buffer("values", torch.from_numpy(values), persistent=False)
        # bound[b] = the most non-zeros any b users can have together (sum of the b longest rows).
        self._bound = np.r_[0, np.cumsum(np.sort(lengths)[::-1])]

    @property
    def nnz(self):
        return int(self.indices.numel())

    def _nonzeros(self, users, exact):
        """(row, source, valid, offsets) of the batch's non-zeros: for each position of a flat index, the
        batch row it belongs to, where its value is stored, whether it is one (with `exact` the index holds
        exactly the batch's non-zeros; otherwise an upper bound known on the host, padding marked invalid),
        and the offset of every row's first non-zero."""
        batch = users.shape[0]
        starts = self.indptr[users]
        lengths = self.indptr[users + 1] - starts
        ends = torch.cumsum(lengths, 0)
        if exact:
            count = int(ends[-1]) if batch else 0
        else:  # reading the count would sync with the device; the bound needs no read
            count = int(self._bound[min(batch, self.n_users)])
        flat = torch.arange(count, device=starts.device)
        row = torch.searchsorted(ends, flat, right=True)  # == batch past the batch's last non-zero
        safe_row = row.clamp_max(max(batch - 1, 0))
        source = starts[safe_row] + flat - (ends[safe_row] - lengths[safe_row])
        valid = row < batch
        return row, torch.where(valid, source, torch.zeros_like(source)), valid, ends - lengths

    def dense(self, users, exact_count=None):
        """Dense rows (len(users), n_items), float32, on the buffers' device. `exact_count` (default: on
        the CPU, where the exact count costs less than the padding) sizes the flat index by the batch's exact
        non-zero count instead of the bound."""
        exact = self.indptr.device.type == "cpu" if exact_count is None else exact_count
        row, source, valid, _ = self._nonzeros(users, exact)
        out = torch.zeros(users.shape[0] + 1, self.n_items, device=self.indptr.device)  # the extra row: padding
        out[row, self.indices[source]] = torch.where(valid, self.values[source], torch.zeros_like(self.values[source]))
        return out[:users.shape[0]]

    def sparse(self, users):
        """The batch's rows as :class:`~recbole_diffrec.core.sparse.SparseRows` (their exact non-zeros; on a
        GPU reading their count waits for the device once)."""
        _, source, _, offsets = self._nonzeros(users, exact=True)
        return SparseRows(offsets, self.indices[source], self.values[source], self.n_items)

    def to_scipy(self):
        """The matrix as scipy CSR on the host (for tests and tools)."""
        import scipy.sparse as sp

        return sp.csr_matrix(
            (self.values.cpu().numpy(), self.indices.cpu().numpy(), self.indptr.cpu().numpy()),
            shape=(self.n_users, self.n_items),
        )
