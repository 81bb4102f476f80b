"""The converter from the paper's released split to RecBole benchmark files."""

import numpy as np
import pytest

from recbole_diffrec.data.convert import SplitError, convert
from recbole_diffrec.errors import DataError
from recbole_diffrec.pipeline import prepare


def _write(folder, train, valid, test):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        np.save(folder / f"{name}_list.npy", np.array(rows, dtype=np.int64))
    return folder


TRAIN = [[0, 0], [0, 2], [1, 1], [0, 1], [2, 3], [1, 0], [2, 0], [1, 3], [3, 4], [3, 5], [2, 5]]
VALID = [[0, 3], [1, 2], [3, 0]]
TEST = [[2, 1], [0, 4], [3, 1]]


def test_round_trip_ids_counts_and_order(workdir):
    src = _write(workdir / "toy", TRAIN, VALID, TEST)
    target = convert(src, out=workdir / "dataset", name="toy")
    lines = (target / "toy.train.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    rows = [tuple(map(int, line.split("\t"))) for line in lines[1:]]
    assert [r[:2] for r in rows] == [tuple(r) for r in TRAIN]  # ids and order kept
    assert [r[2] for r in rows] == list(range(len(TRAIN)))  # time = row order
    valid_times = [int(line.split("\t")[2]) for line in (target / "toy.valid.inter").read_text().splitlines()[1:]]
    assert valid_times == [11, 12, 13]  # after every training row

    config = {"data_path": str(workdir / "dataset"), "show_progress": False, "epochs": 1, "steps": 2,
              "dims_dnn": [8], "eval_batch_users": 10, "topk": [3, 5], "valid_metric": "Recall@5"}
    _, (train, valid, test), model, _ = prepare("TDiffRec", "toy", [str(_repo() / "dataset_configs/ml-1m_clean.yaml")],
                                                config)
    ds = train._dataset
    assert len(ds.inter_feat) == len(TRAIN) and len(valid._dataset.inter_feat) == 3
    # T-DiffRec weights follow row order: user 0's items 0, 2, 1 get w_min, middle, w_max
    u0 = ds.token2id(ds.uid_field, "0")
    row = model.inputs.dense(torch_tensor([u0]))[0]
    items = ds.token2id(ds.iid_field, ["0", "2", "1"])
    assert row[items].tolist() == pytest.approx([0.1, 0.55, 1.0])


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def torch_tensor(x):
    import torch

    return torch.tensor(x)


def test_ids_out_of_range_and_unseen_users_are_refused(workdir):
    with pytest.raises(SplitError, match="negative id at row 1"):
        convert(_write(workdir / "neg", [[0, 1], [-1, 2]], VALID, TEST), out=workdir / "o")
    with pytest.raises(SplitError, match="1 users of test_list.npy never occur in train_list.npy"):
        convert(_write(workdir / "new", TRAIN, VALID, [[9, 1]]), out=workdir / "o")
    with pytest.raises(SplitError, match="integer rows"):
        folder = _write(workdir / "flt", TRAIN, VALID, TEST)
        np.save(folder / "train_list.npy", np.ones((3, 2)))
        convert(folder, out=workdir / "o")


def test_existing_files_are_not_overwritten(workdir):
    src = _write(workdir / "toy", TRAIN, VALID, TEST)
    convert(src, out=workdir / "d")
    with pytest.raises(DataError, match="--overwrite"):
        convert(src, out=workdir / "d")
    convert(src, out=workdir / "d", overwrite=True)
