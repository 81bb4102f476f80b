"""GiffCF's item-item graph, computed with scipy (once per training split: :mod:`recbole_diffrec.data.artifacts`
caches it beside the checkpoints).

The propagation matrix is R' = D_u^-1/4 R D_i^-1/2 over the binary training matrix R (users with no
training item, such as RecBole's padding user, get a zero row). A user's row x is smoothed as
x R'^T R' / lambda_max, lambda_max the largest eigenvalue of R'^T R' (the square of R''s largest singular
value), so the smoothing's spectrum lies in [0, 1]. The ideal low-pass filter projects onto the top
`cutoff` right singular vectors of R'. The SVD runs on one BLAS thread from a fixed start vector, so the
same split gives the same digits on any machine's thread count.
"""

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

GRAPH_VERSION = 1


def normalized_interactions(users, items, n_users, n_items):
    """R' = D_u^-1/4 R D_i^-1/2 (float64 CSR, binary R whatever the duplicates; zero degree -> zero row)."""
    matrix = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    matrix.data[:] = 1.0
    du = np.asarray(matrix.sum(1)).ravel()
    di = np.asarray(matrix.sum(0)).ravel()
    with np.errstate(divide="ignore"):
        left = np.where(du > 0, du ** -0.25, 0.0)
        right = np.where(di > 0, di ** -0.5, 0.0)
    return (sp.diags(left) @ matrix @ sp.diags(right)).tocsr()


def spectrum(adjacency, k):
    """(eigenvalues of R'^T R' in decreasing order, the matching right singular vectors as rows (k, n_items))."""
    k = max(1, min(k, min(adjacency.shape) - 1))
    v0 = np.ones(min(adjacency.shape)) / np.sqrt(min(adjacency.shape))
    with threadpool_limits(limits=1):
        _, s, vt = svds(adjacency, k=k, v0=v0)
    order = np.argsort(-s)
    return s[order] ** 2, vt[order]
