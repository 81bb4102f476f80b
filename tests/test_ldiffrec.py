"""L-DiffRec: clusters, item order of scores, the embedding cache, bad input."""

import numpy as np
import pytest
import torch

from recbole_diffrec.data.embeddings import (
    balanced_labels,
    kmeans_clusters,
    spectral_item_embeddings,
)
from recbole_diffrec.networks.vae import GroupVAE, group_sizes
from recbole_diffrec.pipeline import prepare
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


def test_svd_and_kmeans_run_on_one_blas_thread(monkeypatch):
    """With more BLAS threads the SVD's last digits change with the thread count (seen at Amazon-book scale:
    a few items changed cluster), so both run on one thread whatever the caller allows."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import recbole_diffrec.data.embeddings as embeddings

    seen = []

    def spy(real):
        def wrapped(*args, **kwargs):
            seen.append(max((p["num_threads"] for p in threadpool_info()), default=None))
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(embeddings, "svds", spy(embeddings.svds))
    monkeypatch.setattr(embeddings, "kmeans2", spy(embeddings.kmeans2))
    users, items = _planted()
    with threadpool_limits(limits=2):
        emb = spectral_item_embeddings(users, items, 60, 40, dim=4, seed=0)
        kmeans_clusters(emb, 2, seed=0)
    if seen[0] is None:
        pytest.skip("no BLAS thread pool visible to threadpoolctl")
    assert seen == [1, 1]


def test_clusters_cover_every_item_once_and_none_is_empty():
    emb = np.zeros((10, 2))
    emb[0] = 5  # nine identical points: k-means would leave clusters empty
    labels = kmeans_clusters(emb, 4, seed=1)
    assert labels.shape == (10,) and set(labels.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="n_cate=11"):
        kmeans_clusters(emb, 11)


def test_balanced_clusters_have_equal_sizes_and_keep_planted_groups():
    # three well-separated blobs of 60, 25 and 15 points: plain k-means finds the blobs; balanced clusters
    # hold 34/33/33 points and each keeps the core of its blob (the points closest to the blob's centre)
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [60, 25, 15]
    data = np.concatenate([c + rng.normal(scale=0.5, size=(n, 2)) for c, n in zip(centres, sizes)])
    plain = kmeans_clusters(data, 3, seed=0)
    assert sorted(np.bincount(plain).tolist()) == [15, 25, 60]
    labels = kmeans_clusters(data, 3, seed=0, balanced=True)
    assert sorted(np.bincount(labels, minlength=3).tolist()) == [33, 33, 34]
    assert np.array_equal(labels, kmeans_clusters(data, 3, seed=0, balanced=True))  # deterministic
    small = [set(labels[60:85].tolist()), set(labels[85:].tolist())]
    assert all(len(g) == 1 for g in small) and small[0] != small[1]  # the small blobs stay whole, apart
    big = np.bincount(labels[:60], minlength=3)
    assert big.max() in (33, 34) and set(np.flatnonzero(big == big.max()).tolist()).isdisjoint(small[0] | small[1])


def test_balanced_labels_by_hand():
    # rows at 0, 1, 2, 10 on a line; centroids at 0 and 10; capacity 2 each. Regrets (second nearest
    # minus nearest): 10, 8, 6, 10; order rows 0, 3, 1, 2; row 2 finds cluster 0 full and goes to 1.
    data = np.array([[0.0], [1.0], [2.0], [10.0]])
    labels = balanced_labels(data, np.array([[0.0], [10.0]]))
    assert labels.tolist() == [0, 0, 1, 1]
    # 5 rows, 2 clusters: capacities 3 and 2; every row labelled once
    labels = balanced_labels(np.arange(5.0)[:, None], np.array([[0.0], [0.5]]))
    assert np.bincount(labels).tolist() == [3, 2]


def test_group_sizes_split_latent_and_sum_up():
    sizes = group_sizes([300], [10, 30], 40)
    assert sizes == [[75], [225]]
    assert sum(s[0] for s in group_sizes([300, 100], [3, 17, 20], 40)) == 300


def test_group_vae_scores_come_back_in_item_order():
    """Per-group decoders that echo their own item ids: each item's score must land in its own column."""
    groups = [torch.tensor([3, 0, 5]), torch.tensor([1, 4, 2])]
    vae = GroupVAE(groups, 6, in_dims=[6], out_dims=[4])
    for decoder, items in zip(vae.decoders, groups):
        layer = decoder[-1]
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.copy_(items.float())  # output j of this group = its own item id
    scores = vae.decode(torch.zeros(2, 6))
    assert torch.equal(scores[0], torch.arange(6).float())


def test_group_encoders_read_their_own_items():
    """A planted input touching only group 0's items moves only group 0's latent code."""
    groups = [torch.tensor([3, 0, 5]), torch.tensor([1, 4, 2])]
    vae = GroupVAE(groups, 6, in_dims=[6], out_dims=[]).eval()
    x = torch.zeros(1, 6)
    x[0, [0, 3, 5]] = 1.0
    z, _, h = vae.encode(x)
    z0, _, _ = vae.encode(torch.zeros(1, 6))
    moved = (z != z0)[0]
    assert moved[:3].all() and not moved[3:].any()
    assert torch.equal(h, x)  # no normalisation; dropout is off in eval mode


def test_group_vae_parameters_match_the_paper_layout():
    """out_dims empty: per-group encoders n_g -> 2 L_g and one decoder L -> n over all items."""
    groups = [torch.arange(0, 30), torch.arange(30, 100)]
    vae = GroupVAE(groups, 100, in_dims=[20], out_dims=[])
    assert vae.latent_sizes == [6, 14]
    expected = (30 + 1) * 12 + (70 + 1) * 28 + (20 + 1) * 100
    assert sum(p.numel() for p in vae.parameters()) == expected
    assert all(torch.count_nonzero(m.bias) == 0 for m in vae.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("decoder,out_dims,expected_decoder", [
    # per_cluster, no hidden layer: each group L_g -> n_g (the paper's code's decoder when its out_dims is
    # non-empty, for a one-layer encoder)
    ("per_cluster", [], (6 + 1) * 30 + (14 + 1) * 70),
    ("auto", [10], (6 + 1) * 3 + (3 + 1) * 30 + (14 + 1) * 7 + (7 + 1) * 70),  # hidden share 3 / 7
    ("shared", [10], (20 + 1) * 10 + (10 + 1) * 100),  # one MLP L -> 10 -> n, hidden size not split
    ("auto", [], (20 + 1) * 100),
])
def test_decoder_layouts_count_their_parameters(decoder, out_dims, expected_decoder):
    groups = [torch.arange(0, 30), torch.arange(30, 100)]
    vae = GroupVAE(groups, 100, in_dims=[20], out_dims=out_dims, decoder=decoder)
    encoders = (30 + 1) * 12 + (70 + 1) * 28
    assert sum(p.numel() for p in vae.parameters()) == encoders + expected_decoder


def test_per_cluster_decoder_without_hidden_layer_returns_item_order():
    groups = [torch.tensor([3, 0, 5]), torch.tensor([1, 4, 2])]
    vae = GroupVAE(groups, 6, in_dims=[6], out_dims=[], decoder="per_cluster")
    assert vae.decoder is None and all(len(d) == 1 for d in vae.decoders)
    for decoder, items in zip(vae.decoders, groups):
        with torch.no_grad():
            decoder[0].weight.zero_()
            decoder[0].bias.copy_(items.float())
    assert torch.equal(vae.decode(torch.zeros(2, 6))[1], torch.arange(6).float())


def test_lamda_anneals_per_epoch_and_beta_per_batch(workdir):
    _, _, model, _ = prepare("LDiffRec", config_dict={**FAST, "lamda": 0.03, "anneal_cap": 0.005,
                                                      "anneal_steps": 10, "vae_anneal_cap": 0.3,
                                                      "vae_anneal_steps": 200})
    model.update_count.fill_(50)
    lamda, beta = model.annealed_weights()
    assert lamda.item() == pytest.approx(0.03) and beta.item() == pytest.approx(0.25)
    for _ in range(4):
        model.epoch_finished()
    lamda, _ = model.annealed_weights()
    assert lamda.item() == pytest.approx(0.03 * 0.6)
    model.epoch_count.fill_(9)
    assert model.annealed_weights()[0].item() == pytest.approx(0.005)  # floor: 0.003 < anneal_cap


@pytest.mark.parametrize("model_name,first_beta", [
    ("LDiffRec", 0.005 * 0.005),  # the paper's L-DiffRec code: the schedule's own first beta
    ("LTDiffRec", 0.005 * 0.005),
    ("DiffRec", 1e-5),  # the paper's DiffRec and T-DiffRec code: beta_1 fixed to 1e-5
    ("TDiffRec", 1e-5),
])
def test_default_noise_schedule_is_the_papers_code_per_model(model_name, first_beta, workdir):
    settings = {"show_progress": False, "steps": 40, "noise_scale": 0.005, "noise_min": 0.005, "noise_max": 0.02}
    if model_name.startswith("L"):
        settings.update(n_cate=1, item_emb_source="none")
    _, _, model, _ = prepare(model_name, config_dict=settings)
    # 1 - alpha-bar rises linearly from 0.005 * 0.005 to 0.005 * 0.02 over 40 steps (linear-var), by hand
    variance = 0.005 * (0.005 + (0.02 - 0.005) * np.arange(40) / 39)
    alpha_bar = 1 - variance
    expected = np.concatenate([[first_beta], 1 - alpha_bar[1:] / alpha_bar[:-1]])
    betas = model.diffusion.betas.double().cpu().numpy()
    assert np.allclose(betas, expected, rtol=1e-9, atol=0)


def _toy_split(users, items, n_users=60, n_items=40):
    from types import SimpleNamespace

    feat = {"user_id": torch.as_tensor(users), "item_id": torch.as_tensor(items)}
    return SimpleNamespace(inter_feat=feat, uid_field="user_id", iid_field="item_id", user_num=n_users,
                           item_num=n_items, dataset_name="toy")


def test_embedding_and_graph_caches_are_reused(tmp_path, monkeypatch):
    import recbole_diffrec.data.artifacts as artifacts

    users, items = _planted()
    split = _toy_split(users, items)
    first, said = artifacts.SplitArtifacts(split, str(tmp_path), seed=0).spectral_embeddings(4)
    assert said.startswith("spectral embeddings cached at ")
    graph = artifacts.SplitArtifacts(split, str(tmp_path), seed=0).item_graph(3)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("graph-toy-top3-") and files[1].startswith("item_emb-toy-spectral4-")
    monkeypatch.setattr(artifacts, "spectral_item_embeddings", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(artifacts, "spectrum", lambda *a, **k: pytest.fail("recomputed"))
    again = artifacts.SplitArtifacts(split, str(tmp_path), seed=0)
    second, said = again.spectral_embeddings(4)
    assert said.startswith("spectral embeddings read from ") and np.array_equal(first, second)
    assert all(np.array_equal(np.asarray(a.todense() if hasattr(a, "todense") else a),
                              np.asarray(b.todense() if hasattr(b, "todense") else b))
               for a, b in zip(graph, again.item_graph(3)))
    # another seed or other data is another file, never the stale one
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        artifacts.SplitArtifacts(split, str(tmp_path), seed=1).spectral_embeddings(4)
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        artifacts.SplitArtifacts(_toy_split(users[1:], items[1:]), str(tmp_path), seed=0).item_graph(3)


def test_a_split_without_artifacts_is_not_cached(tmp_path, monkeypatch):
    """A model built on a split RecBole made alone (no loaders of ours) computes what it needs, writing nothing."""
    from recbole_diffrec.data.artifacts import artifacts_of

    monkeypatch.chdir(tmp_path)
    users, items = _planted()
    found = artifacts_of(_toy_split(users, items), {"seed": 3, "checkpoint_dir": str(tmp_path / "saved")})
    assert found.cache_dir is None and found.seed == 3
    _, said = found.spectral_embeddings(4)
    assert said == "spectral embeddings (not cached)" and not any(tmp_path.iterdir())


def test_ldiffrec_trains_on_ml100k_with_learned_embeddings(workdir):
    _, (train, valid, _), model, trainer = prepare("LDiffRec", config_dict=FAST)
    assert "spectral" in model.embedding_source
    trainer.fit(train, valid, saved=False, show_progress=False)
    assert model.epoch_count.item() == 1  # the trainer reports each epoch
    groups = model.autoencoder.groups()
    covered = torch.sort(torch.cat(groups)).values
    assert torch.equal(covered, torch.arange(model.n_items))
    # parameters, counted independently: per group an encoder n_g -> 2 L_g; one decoder 300 -> n_items
    vae = sum((len(g) + 1) * 2 * L for g, L in zip(groups, model.autoencoder.latent_sizes))
    vae += (300 + 1) * model.n_items
    assert sum(model.autoencoder.latent_sizes) == 300
    assert sum(p.numel() for p in model.autoencoder.parameters()) == vae


def test_balanced_clusters_setting_gives_equal_groups_and_fewer_encoder_parameters(workdir):
    counts = {}
    for balanced in (False, True):
        _, _, model, _ = prepare("LDiffRec", config_dict={**FAST, "n_cate": 5, "balanced_clusters": balanced})
        groups = model.autoencoder.groups()
        assert torch.equal(torch.sort(torch.cat(groups)).values, torch.arange(model.n_items))
        lengths = [len(g) for g in groups]
        counts[balanced] = sum(p.numel() for p in model.autoencoder.encoders.parameters())
        if balanced:
            assert max(lengths) - min(lengths) <= 1
    # each encoder is n_g x 2 L_g with L_g proportional to n_g: equal groups minimise the sum of squares
    assert counts[True] < counts[False]


@pytest.mark.parametrize("override,key", [
    ({"n_cate": 0}, "n_cate"),
    ({"n_cate": 5000}, "n_cate"),
    ({"in_dims": []}, "in_dims"),
    ({"in_dims": [3], "n_cate": 3}, "in_dims"),
    ({"item_emb_source": "none", "n_cate": 2}, "item_emb_source"),
    ({"item_emb_source": "file"}, "item_emb_file"),
    ({"decoder": "per_item"}, "decoder"),
    ({"out_dims": [1], "n_cate": 3, "decoder": "per_cluster"}, "out_dims"),
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


def test_a_corrupt_cache_is_made_again_with_a_warning(workdir, caplog):
    """A truncated spectral-embedding cache (and GiffCF's graph cache) is rebuilt, not a traceback on every run."""
    settings = {**FAST, "item_emb_source": "learned", "checkpoint_dir": str(workdir / "cache")}
    prepare("LDiffRec", config_dict=settings)
    giff = {"show_progress": False, "epochs": 1, "embedding_size": 16, "checkpoint_dir": str(workdir / "cache")}
    prepare("GiffCF", config_dict=giff)
    caches = sorted((workdir / "cache").glob("item_emb-*.npy")) + sorted((workdir / "cache").glob("graph-*.npz"))
    assert len(caches) == 2
    for path in caches:
        path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        _, _, emb_model, _ = prepare("LDiffRec", config_dict=settings)
        prepare("GiffCF", config_dict=giff)
    said = [r.getMessage() for r in caplog.records if "does not read back" in r.getMessage()]
    assert len(said) == 2 and all("making it again" in line for line in said)
    assert all(path.stat().st_size > 1000 for path in caches)  # rewritten whole
    caplog.clear()
    with caplog.at_level("WARNING"):
        prepare("LDiffRec", config_dict=settings)
    assert not [r for r in caplog.records if "does not read back" in r.getMessage()]
