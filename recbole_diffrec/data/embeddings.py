"""Item embeddings and item clusters for L-DiffRec.

The paper clusters items by embeddings of a pre-trained LightGCN. recbole-diffrec learns them from the
training split alone, as the spectral embedding of the user-item graph: the top singular vectors of the
degree-normalised interaction matrix D_u^-1/2 R D_i^-1/2, scaled by their singular values. That is the
subspace LightGCN's propagation converges to (its propagation matrix has the same top eigenvectors; see
Shen et al., "How Powerful is Graph Convolution for Recommendation?", CIKM 2021), obtained in one
deterministic sparse SVD instead of a training run, with rows scaled to unit length for clustering, and with
no dependency on RecBole's LightGCN (whose graph code needs scipy < 1.13). The SVD and k-means run on one
BLAS thread, so a seed fixes the clusters whatever the thread count. :mod:`recbole_diffrec.data.artifacts`
caches the embeddings beside the checkpoints, keyed by the data and settings.
"""

import numpy as np
import scipy.sparse as sp
from scipy.cluster.vq import kmeans2
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

SPECTRAL_VERSION = 3  # 3: computed with one BLAS thread (earlier caches may hold multi-thread digits)


def spectral_item_embeddings(users, items, n_users, n_items, dim, seed=0):
    """(n_items, dim) float32 spectral embedding of the bipartite user-item graph."""
    data = np.ones(len(users), dtype=np.float64)
    matrix = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))
    matrix.data[:] = 1.0  # binary, whatever the duplicates
    du = np.asarray(matrix.sum(1)).ravel()
    di = np.asarray(matrix.sum(0)).ravel()
    norm = sp.diags(1 / np.sqrt(np.maximum(du, 1))) @ matrix @ sp.diags(1 / np.sqrt(np.maximum(di, 1)))
    k = min(dim, min(norm.shape) - 1)
    v0 = np.random.default_rng(seed).standard_normal(min(norm.shape))
    # One BLAS thread: with more, the SVD's last digits (and with them the k-means boundary items) change
    # with the thread count (measured at Amazon-book scale), and a seed would not fix the clusters.
    with threadpool_limits(limits=1):
        _, s, vt = svds(norm.astype(np.float64), k=k, v0=v0, random_state=seed)
    order = np.argsort(-s)
    emb = (vt[order].T * s[order]).astype(np.float32)
    # Sign is arbitrary in an SVD: fix it so the largest-magnitude entry of each column is positive.
    signs = np.sign(emb[np.abs(emb).argmax(0), np.arange(emb.shape[1])])
    emb *= np.where(signs == 0, 1, signs)
    if k < dim:
        emb = np.pad(emb, ((0, 0), (0, dim - k)))
    # Rows to unit length (Ng, Jordan & Weiss 2001): a row's length mostly tracks the item's popularity,
    # and k-means on raw rows splits off a handful of popular items (measured on the generated
    # Amazon-book-scale data: clusters of 94,943 and 6 items); on unit rows it groups by direction.
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.where(norms > 0, norms, 1)).astype(np.float32)


def kmeans_clusters(embeddings, n_clusters, seed=0, iters=50, balanced=False):
    """Cluster label per row: k-means (k-means++ start, scipy), deterministic for a seed.

    An empty cluster is never returned silently: each one takes the row farthest from its own centroid
    in the largest cluster, until none is empty. With `balanced`, the k-means centroids start
    size-constrained Lloyd rounds (`balanced_labels`): the clusters' sizes then differ by at most one.
    """
    n = len(embeddings)
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_cate={n_clusters} must be in [1, {n}] (the number of items)")
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    data = np.asarray(embeddings, dtype=np.float64)
    with threadpool_limits(limits=1):  # as in spectral_item_embeddings: the same labels whatever the threads
        return _kmeans(data, n_clusters, seed, iters, balanced)


def _kmeans(data, n_clusters, seed, iters, balanced):
    centroids, labels = kmeans2(data, n_clusters, iter=iters, minit="++", seed=np.random.default_rng(seed),
                                missing="warn")
    labels = labels.astype(np.int64)
    if balanced:
        for _ in range(iters):
            new = balanced_labels(data, centroids)
            if np.array_equal(new, labels):
                break
            labels = new
            centroids = np.stack([data[labels == c].mean(0) for c in range(n_clusters)])
        return labels
    for empty in np.flatnonzero(np.bincount(labels, minlength=n_clusters) == 0):
        largest = np.bincount(labels, minlength=n_clusters).argmax()
        members = np.flatnonzero(labels == largest)
        far = members[np.linalg.norm(data[members] - centroids[largest], axis=1).argmax()]
        labels[far] = empty
    return labels


def balanced_labels(data, centroids):
    """Nearest-centroid labels under equal capacities: cluster c takes at most ceil(n / k) rows (the first
    n mod k clusters one more than the others), so sizes differ by at most one and none is empty.

    Rows choose in order of how much they would lose by not getting their nearest centroid (distance to
    the second nearest minus to the nearest, largest first), each taking the nearest cluster with room
    (the initial assignment of same-size k-means). Deterministic: stable sorts, ties by row.
    """
    n, k = len(data), len(centroids)
    capacity = np.full(k, n // k, dtype=np.int64)
    capacity[: n % k] += 1
    sq = (data**2).sum(1)[:, None] - 2.0 * data @ centroids.T + (centroids**2).sum(1)[None, :]
    dist = np.sqrt(np.maximum(sq, 0.0))
    preference = np.argsort(dist, axis=1, kind="stable")
    ranked = np.take_along_axis(dist, preference, axis=1)
    regret = ranked[:, 1] - ranked[:, 0]
    labels = np.empty(n, dtype=np.int64)
    for row in np.argsort(-regret, kind="stable").tolist():
        for cluster in preference[row].tolist():
            if capacity[cluster]:
                labels[row] = cluster
                capacity[cluster] -= 1
                break
    return labels
