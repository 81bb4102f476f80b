"""Amazon-book-scale interactions, generated: 108,822 users, 94,949 items, about 3.1M interactions.

Item popularity is long-tailed (Zipf, exponent 0.8 over popularity rank), user activity log-normal with
at least 10 interactions per user (Amazon-book as the paper uses it is 10-core-like); timestamps rise
per user. Deterministic for a seed. Also writes RecBole atomic files for end-to-end benchmarks.

    python benchmarks/synthetic.py --out dataset   # -> dataset/amazon-book-synth/amazon-book-synth.inter
    python benchmarks/synthetic.py --out dataset --catalogue_heavy   # 4,000 users over the same 94,949 items
"""

import argparse
from pathlib import Path

import numpy as np

N_USERS, N_ITEMS, TARGET = 108_822, 94_949, 3_100_000


def generate(n_users=N_USERS, n_items=N_ITEMS, target=TARGET, seed=0, cover_items=False):
    """(users, items, timestamps) int64 arrays, no duplicate (user, item) pair. `cover_items`: every item
    occurs at least once (the items no draw reached go to random users), so the catalogue is all n_items."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    counts = np.maximum(10, np.round(activity / activity.sum() * target * 0.985)).astype(np.int64)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    users = np.repeat(np.arange(n_users), counts)
    items = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    if cover_items:
        missing = np.setdiff1d(np.arange(n_items), items)
        users = np.concatenate([users, rng.integers(0, n_users, len(missing))])
        items = np.concatenate([items, missing])
    pairs = np.unique(users * n_items + items)  # drop duplicates
    users, items = pairs // n_items, pairs % n_items
    times = rng.permutation(len(users)).astype(np.int64)  # arbitrary order in time
    return users, items, times


CATALOGUE_HEAVY = {"n_users": 4_000, "target": 4_000 * 44, "cover_items": True}  # ~52 a user, all 94,949 items


def write_atomic(out, name="amazon-book-synth", seed=0, **sizes):
    users, items, times = generate(seed=seed, **sizes)
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.inter"
    with open(path, "w") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        np.savetxt(handle, np.column_stack([users, items, times]), fmt="%d", delimiter="\t")
    return path, len(users)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalogue_heavy", action="store_true",
                        help="4,000 users over 94,949 items (dataset catalogue-synth)")
    args = parser.parse_args()
    if args.catalogue_heavy:
        path, n = write_atomic(args.out, "catalogue-synth", seed=args.seed, **CATALOGUE_HEAVY)
    else:
        path, n = write_atomic(args.out, seed=args.seed)
    print(f"wrote {path}: {n:,} interactions")
