"""L-DiffRec: clusters, item order of scores, the embedding cache, bad input."""

import numpy as np
import pytest
import torch

from recbole_diffrec.embeddings import cached_spectral_embeddings, kmeans_clusters, spectral_item_embeddings
from recbole_diffrec.models.ldiffrec import GroupVAE, group_sizes
from recbole_diffrec.quick_start import prepare
from recbole_diffrec.settings import SettingError

FAST = {"show_progress": False, "epochs": 1, "steps": 5, "eval_batch_users": 256}


def _planted(n_users=60, n_items=40, seed=0):
    """Two user communities, each using only its own half of the items."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        half = u % 2
        chosen = rng.choice(n_items // 2, 8, replace=False) + half * (n_items // 2)
        users += [u] * 8
        items += chosen.tolist()
    return np.array(users), np.array(items)


def test_spectral_embeddings_separate_planted_communities_and_kmeans_recovers_them():
    users, items = _planted()
    emb = spectral_item_embeddings(users, items, 60, 40, dim=4, seed=0)
    labels = kmeans_clusters(emb, 2, seed=0)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[20]
    assert np.array_equal(labels, kmeans_clusters(emb, 2, seed=0))  # deterministic


def test_clusters_cover_every_item_once_and_none_is_empty():
    emb = np.zeros((10, 2))
    emb[0] = 5  # nine identical points: k-means would leave clusters empty
    labels = kmeans_clusters(emb, 4, seed=1)
    assert labels.shape == (10,) and set(labels.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="n_cate=11"):
        kmeans_clusters(emb, 11)


def test_group_sizes_split_latent_and_sum_up():
    sizes = group_sizes([300], [10, 30], 40)
    assert sizes == [[75], [225]]
    assert sum(s[0] for s in group_sizes([300, 100], [3, 17, 20], 40)) == 300


def test_group_vae_scores_come_back_in_item_order():
    """Decoders that echo a per-group code: each item's score must land in its own column."""
    groups = [torch.tensor([3, 0, 5]), torch.tensor([1, 4, 2])]
    vae = GroupVAE(groups, 6, in_dims=[6], out_dims=[])
    for decoder, items in zip(vae.decoders, groups):
        layer = decoder[0]
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.copy_(items.float())  # output j of this group = its own item id
    scores = vae.decode(torch.zeros(2, 6))
    assert torch.equal(scores[0], torch.arange(6).float())


def test_embedding_cache_is_reused(tmp_path, monkeypatch):
    users, items = _planted()
    first, path, reused = cached_spectral_embeddings(str(tmp_path), "toy", users, items, 60, 40, 4)
    assert not reused
    import recbole_diffrec.embeddings as e

    monkeypatch.setattr(e, "spectral_item_embeddings", lambda *a, **k: pytest.fail("recomputed"))
    second, path2, reused = cached_spectral_embeddings(str(tmp_path), "toy", users, items, 60, 40, 4)
    assert reused and path2 == path and np.array_equal(first, second)


def test_ldiffrec_trains_on_ml100k_with_learned_embeddings(workdir):
    _, (train, valid, _), model, trainer = prepare("LDiffRec", config_dict=FAST)
    assert "spectral" in model.embedding_source
    trainer.fit(train, valid, saved=False, show_progress=False)
    groups = model.autoencoder.groups()
    covered = torch.sort(torch.cat(groups)).values
    assert torch.equal(covered, torch.arange(model.n_items))
    # parameters, counted independently: per group an encoder n_g -> 2 L_g and a decoder L_g -> n_g
    vae = sum((len(g) + 1) * 2 * L + (L + 1) * len(g) for g, L in zip(groups, model.autoencoder.latent_sizes))
    assert sum(model.autoencoder.latent_sizes) == 300
    assert sum(p.numel() for p in model.autoencoder.parameters()) == vae


@pytest.mark.parametrize("override,key", [
    ({"n_cate": 0}, "n_cate"),
    ({"n_cate": 5000}, "n_cate"),
    ({"in_dims": []}, "in_dims"),
    ({"in_dims": [3], "n_cate": 3}, "in_dims"),
    ({"item_emb_source": "none", "n_cate": 2}, "item_emb_source"),
    ({"item_emb_source": "file"}, "item_emb_file"),
])
def test_bad_ldiffrec_settings(override, key, workdir):
    with pytest.raises(SettingError) as err:
        prepare("LDiffRec", config_dict={**FAST, **override})
    assert err.value.key == key


def test_embedding_file_wrong_rows_and_nan_are_refused(workdir):
    small = workdir / "small.npy"
    np.save(small, np.ones((10, 4), dtype=np.float32))
    with pytest.raises(SettingError, match="has 10 rows"):
        prepare("LDiffRec", config_dict={**FAST, "item_emb_source": "file", "item_emb_file": str(small)})
    bad = workdir / "nan.npy"
    table = np.ones((2000, 4), dtype=np.float32)
    table[7, 1] = np.nan
    np.save(bad, table)
    with pytest.raises(SettingError, match="NaN.*row 7"):
        prepare("LDiffRec", config_dict={**FAST, "item_emb_source": "file", "item_emb_file": str(bad)})
