"""T-DiffRec's recency weighting: ours at Amazon-book scale, and ours vs RecBole 1.2.1's time-aware
preprocessing on ML-1M clean, in one run. Writes time_weighting.md beside this script (a finished experiment:
what it answered is in README.md here).

    python benchmarks/experiments/time-weighting/time_weighting.py   # needs dataset/ml-1m_clean for the comparison
"""

import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    from synthetic import generate

    from recbole_diffrec.data.interactions import InteractionRows, recency_weights

    users, items, times = generate()
    big = best_of(lambda: recency_weights(users, times, 0.1, 1.0))
    lines = ["# T-DiffRec weighting", "",
             f"Generated Amazon-book scale: {len(users):,} interactions, {users.max() + 1:,} users.", "",
             f"- ours, `recency_weights`: {big:.3f} s (best of 3)"]

    from recbole.model.general_recommender.diffrec import DiffRec as Builtin

    from recbole_diffrec.pipeline import prepare

    _, (train, _, _), _, _ = prepare("Pop", "ml-1m_clean", [str(REPO / "dataset_configs/ml-1m_clean.yaml")],
                                     {"show_progress": False, "data_path": str(REPO / "dataset"), "state": "WARNING"})
    ds = train._dataset
    u = ds.inter_feat[ds.uid_field].numpy()
    i = ds.inter_feat[ds.iid_field].numpy()
    t = ds.inter_feat[ds.time_field].numpy()
    shell = types.SimpleNamespace(time_aware=True, w_min=0.1, w_max=1.0, device="cpu")
    theirs = best_of(lambda: Builtin.build_histroy_items(shell, ds), repeat=1)

    def ours_full():
        w = recency_weights(u, t, 0.1, 1.0)
        InteractionRows(u, i, w, ds.user_num, ds.item_num)

    ours = best_of(ours_full)
    lines += [f"- ML-1M clean ({len(u):,} interactions, {ds.user_num - 1:,} users), whole preprocessing "
              "(weights and the user-item store):",
              f"  - RecBole 1.2.1 `DiffRec.build_histroy_items` (time-aware): {theirs:.3f} s",
              f"  - ours (`recency_weights` + `InteractionRows`): {ours:.3f} s",
              f"  - ratio: {theirs / ours:.0f}x", "",
              "Command: `python benchmarks/experiments/time-weighting/time_weighting.py`"]
    out = Path(__file__).resolve().parent
    (out / "time_weighting.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
