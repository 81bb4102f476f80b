"""What a model derives from its training split once and reuses: L-DiffRec's spectral item embeddings and
item clusters, GiffCF's normalised item graph and its spectrum. Made here, with the cache folder and seed
of the run, so a model constructor asks for them instead of reading where and how to write files.

The loaders attach a :class:`SplitArtifacts` to the training split (``dataset.artifacts``), with the run's
``checkpoint_dir`` and ``seed``; :func:`artifacts_of` gives a model that one, or, for a split made by RecBole
alone, an uncached one with the config's seed. A cache file is named by a digest of everything that decides
its content (the split's interactions, the sizes, the settings and a version), so a stale file is never read.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from logging import getLogger

import numpy as np

from recbole_diffrec import ownership
from recbole_diffrec.data.embeddings import SPECTRAL_VERSION, kmeans_clusters, spectral_item_embeddings
from recbole_diffrec.data.graph import GRAPH_VERSION, normalized_interactions, spectrum


# what numpy raises on a truncated or garbled .npy / .npz file
CACHE_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def unreadable(path: str, why) -> None:
    """Warn that a cache file does not read back; it is then made again and rewritten."""
    reason = " ".join(str(why).split())[:200] or type(why).__name__
    getLogger().warning(f"cache {path} does not read back ({reason}); making it again")


class SplitArtifacts:
    """The derived data of one training split (a RecBole dataset), cached in `cache_dir` (None: not cached)."""

    def __init__(self, dataset, cache_dir: str | None, seed: int):
        self.dataset, self.cache_dir, self.seed = dataset, cache_dir, int(seed)
        feat = dataset.inter_feat
        self.users = feat[dataset.uid_field].numpy()
        self.items = feat[dataset.iid_field].numpy()
        self.n_users, self.n_items = dataset.user_num, dataset.item_num

    def _cache_path(self, stem: str, suffix: str, numbers, pairs=None) -> str | None:
        if self.cache_dir is None:
            return None
        users, items = pairs or (self.users, self.items)
        key = hashlib.sha256()
        for part in (np.asarray(users, np.int64), np.asarray(items, np.int64),
                     np.array([self.n_users, self.n_items, *numbers], np.int64)):
            key.update(part.tobytes())
        return os.path.join(self.cache_dir, f"{stem}-{key.hexdigest()[:16]}{suffix}")

    def _write(self, path: str, save) -> None:
        """Write through a temporary file, so a reader never sees half a cache."""
        ownership.makedirs(str(self.cache_dir))
        tmp = f"{path}.tmp-{os.getpid()}{os.path.splitext(path)[1]}"
        new = ownership.new_file(path)
        save(tmp)
        os.replace(tmp, path)
        if new:
            ownership.note_file(path)

    def spectral_embeddings(self, dim: int) -> tuple[np.ndarray, str]:
        """(the items' spectral embeddings, (n_items, dim), and where they came from)."""
        name = self.dataset.dataset_name
        path = self._cache_path(f"item_emb-{name}-spectral{dim}", ".npy", [dim, self.seed, SPECTRAL_VERSION])
        if path is not None and os.path.isfile(path):
            try:
                emb = np.load(path, allow_pickle=False)
                if emb.shape == (self.n_items, dim) and np.isfinite(emb).all():
                    return emb, f"spectral embeddings read from {path}"
                unreadable(path, f"shape {emb.shape}, expected {(self.n_items, dim)}, or non-finite values")
            except CACHE_READ_ERRORS as err:
                unreadable(path, err)
        emb = spectral_item_embeddings(self.users, self.items, self.n_users, self.n_items, dim, self.seed)
        if path is None:
            return emb, "spectral embeddings (not cached)"
        self._write(path, lambda tmp: np.save(tmp, emb))
        return emb, f"spectral embeddings cached at {path}"

    def clusters(self, embeddings: np.ndarray, n_clusters: int, balanced: bool = False) -> np.ndarray:
        """k-means labels of the item embeddings with the run's seed (cheap: not cached)."""
        return kmeans_clusters(embeddings, n_clusters, seed=self.seed, balanced=balanced)

    def item_graph(self, cutoff: int):
        """(R' = user_deg^-1/4 R item_deg^-1/2 as float64 CSR, its top `cutoff` eigenvalues of R'^T R' and their
        eigenvectors (cutoff, n_items)); the spectrum is read from the cache when this split made it before."""
        # the binary matrix's (user, item) pairs, each once, by user then item: what the cache is keyed by
        cells = np.unique(np.asarray(self.users, np.int64) * self.n_items + np.asarray(self.items, np.int64))
        users, items = cells // self.n_items, cells % self.n_items
        adjacency = normalized_interactions(users, items, self.n_users, self.n_items)
        name = self.dataset.dataset_name
        path = self._cache_path(f"graph-{name}-top{cutoff}", ".npz", [cutoff, GRAPH_VERSION], (users, items))
        if path is not None and os.path.isfile(path):
            try:
                with np.load(path, allow_pickle=False) as cached:
                    values, vectors = cached["values"], cached["vectors"]
                if values.ndim == 1 and 1 <= len(values) <= cutoff and vectors.shape == (len(values), self.n_items) \
                        and np.isfinite(values).all() and np.isfinite(vectors).all():
                    return adjacency, values, vectors
                unreadable(path, f"shapes {values.shape} and {vectors.shape} for cut-off {cutoff}, or non-finite values")
            except CACHE_READ_ERRORS as err:
                unreadable(path, err)
        values, vectors = spectrum(adjacency, cutoff)
        if path is not None:
            self._write(path, lambda tmp: np.savez(tmp, values=values, vectors=vectors))
        return adjacency, values, vectors


def attach_artifacts(dataset, config) -> SplitArtifacts:
    """Give a training split its :class:`SplitArtifacts`, cached beside the run's checkpoints."""
    dataset.artifacts = SplitArtifacts(dataset, config["checkpoint_dir"], config["seed"])
    return dataset.artifacts


def artifacts_of(dataset, config) -> SplitArtifacts:
    """The split's artifacts: those the loaders attached, or for a split made by RecBole alone, uncached ones."""
    found = getattr(dataset, "artifacts", None)
    if found is not None and found.dataset is dataset:
        return found
    return SplitArtifacts(dataset, None, config["seed"])
