"""GiffCF's released ML-1M weights in recbole-diffrec's GiffCF, evaluated two ways.

1. Under GiffCF's own evaluation (its models/recommender.py and utils/data.py, re-implemented here in numpy
   from the split's raw .npy files, independently of RecBole): history = the training row, masked = training
   and validation items, Recall@k = hits / min(|test items|, k), NDCG@k with the ideal DCG of
   min(|test items|, k) hits, averaged over every user. Its README's test figures must come out to 1e-4.
2. Under recbole-diffrec's protocol (RecBole's metrics on the converted split: Recall@k = hits / |test items|,
   the same NDCG and masks), as the leaderboard reports every model.

The weights are the .keras files of GiffCF's public repository (HDF5; read with h5py, no TensorFlow):

    python benchmarks/giffcf_fidelity.py --weights /path/to/GiffCF/checkpoints/movielens.keras \
        /path/to/GiffCF/checkpoints/legacy/movielens.keras --split ../shared/datasets/ml-1m_clean

Their item rows follow the split's original item ids; RecBole's internal ids are mapped through the
dataset's token table. Needs the converted dataset (dataset_configs/ml-1m_clean.yaml says how).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import harness

# GiffCF's readme, test set (Recall as GiffCF defines it)
PUBLISHED = {
    "movielens.keras": {"recall@10": 0.1308, "recall@20": 0.2024, "ndcg@10": 0.1002, "ndcg@20": 0.1272},
    "legacy/movielens.keras": {"recall@10": 0.1251, "recall@20": 0.1947, "ndcg@10": 0.0962, "ndcg@20": 0.1221},
}
# Keras's automatic layer names, in the order GiffCF's Denoiser creates them, and our modules
DENSE = {"dense": "step_embed.hidden", "dense_1": "step_embed.out", "dense_2": "step_score.hidden",
         "dense_3": "step_score.out", "dense_4": "embed_mixer.hidden", "dense_5": "embed_mixer.out",
         "dense_6": "score_mixer.hidden", "dense_7": "score_mixer.out"}


def read_keras_weights(path):
    """{name: array} of a Keras h5 weights file: 'item_embed' and 'dense_N/kernel' / 'dense_N/bias'."""
    import h5py

    found = {}
    with h5py.File(path, "r") as handle:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                parts = name.split("/")
                leaf = parts[-1].split(":")[0]
                key = leaf if leaf == "item_embed" else f"{parts[-2]}/{leaf}"
                found[key] = np.asarray(obj)
        handle.visititems(visit)
    return found


def load_released(net, dataset, weights):
    """Copy GiffCF's weights into our GiffCF; item rows go to RecBole's internal ids."""
    import torch

    field = dataset.iid_field
    original = np.array([int(t) for t in dataset.field2id_token[field][1:]])  # internal ids 1.. -> tokens
    table = weights["item_embed"]
    embedding = np.zeros((net.n_items, table.shape[1]), np.float32)
    embedding[1:] = table[original]
    state = {"denoiser.item_embedding": embedding}
    for layer, module in DENSE.items():
        state[f"denoiser.{module}.weight"] = weights[f"{layer}/kernel"].T
        state[f"denoiser.{module}.bias"] = weights[f"{layer}/bias"]
    with torch.no_grad():
        params = dict(net.named_parameters())
        for name, value in state.items():
            assert params[name].shape == value.shape, (name, params[name].shape, value.shape)
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))


def giffcf_metrics(scores, train, valid, test, ks=(10, 20)):
    """GiffCF's evaluation on original ids: scores (users, items); train/valid/test pair arrays."""
    n_users, n_items = scores.shape
    mask = np.zeros((n_users, n_items), bool)
    mask[train[:, 0], train[:, 1]] = True
    mask[valid[:, 0], valid[:, 1]] = True
    target = np.zeros((n_users, n_items), bool)
    target[test[:, 0], test[:, 1]] = True
    scores = np.where(mask, -np.inf, scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :max(ks)]
    hits = np.take_along_axis(target, top, axis=1).astype(np.float64)
    counts = target.sum(1)
    discount = 1 / np.log2(np.arange(2, max(ks) + 2))
    out = {}
    for k in ks:
        ideal = np.minimum(counts, k)
        idcg = np.cumsum(discount)[np.maximum(ideal, 1) - 1]
        out[f"recall@{k}"] = float(np.mean(hits[:, :k].sum(1) / ideal))
        out[f"ndcg@{k}"] = float(np.mean((hits[:, :k] * discount[:k]).sum(1) / idcg))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", required=True, help="GiffCF .keras files (h5)")
    parser.add_argument("--split", default=str(harness.REPO.parent / "shared" / "datasets" / "ml-1m_clean"))
    parser.add_argument("--out", default=str(harness.REPO / "benchmarks" / "results" / "giffcf_fidelity.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(harness.REPO))
    import torch

    from recbole_diffrec.pipeline import prepare

    split = Path(args.split)
    train, valid, test = (np.load(split / f"{name}_list.npy") for name in ("train", "valid", "test"))
    config, (train_data, valid_data, test_data), net, trainer = prepare(
        "GiffCF", "ml-1m_clean", [str(harness.REPO / "dataset_configs" / "ml-1m_clean.yaml")],
        {"show_progress": False, "state": "WARNING", "noise_decay": 0.5})
    dataset = train_data._dataset
    users_internal = np.array([dataset.token2id(dataset.uid_field, str(u)) for u in range(train[:, 0].max() + 1)])
    items_internal = np.array([dataset.token2id(dataset.iid_field, str(i)) for i in range(train[:, 1].max() + 1)])
    report = {"machine": harness.cpu(), "split": str(split), "checkpoints": {}}
    for path in args.weights:
        name = "legacy/movielens.keras" if "legacy" in str(path) else Path(path).name
        load_released(net, dataset, read_keras_weights(path))
        net.eval()
        with torch.no_grad():
            scores = torch.cat([net.user_scores(torch.from_numpy(users_internal[i:i + 500]))
                                for i in range(0, len(users_internal), 500)]).numpy()
        ours_giff = giffcf_metrics(scores[:, items_internal], train, valid, test)
        recbole = {k: float(v) for k, v in trainer.evaluate(test_data, load_best_model=False).items()}
        published = PUBLISHED.get(name, {})
        gaps = {k: ours_giff[k] - v for k, v in published.items()}
        report["checkpoints"][name] = {"giffcf_protocol": ours_giff, "published": published,
                                       "difference": gaps, "recbole_protocol": recbole,
                                       "within_1e-4": all(abs(g) <= 1e-4 for g in gaps.values())}
        print(f"{name}: GiffCF's metrics " + " ".join(f"{k} {v:.4f}" for k, v in ours_giff.items()))
        print("    published          " + " ".join(f"{k} {v:.4f}" for k, v in published.items()))
        print(f"    largest |difference| {max(map(abs, gaps.values())) if gaps else float('nan'):.2e}")
        print("    RecBole's metrics  " + " ".join(f"{k} {v:.4f}" for k, v in recbole.items()))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
