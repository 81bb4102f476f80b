"""Convert the DiffRec paper's released split to RecBole atomic benchmark files.

Input: a folder with ``train_list.npy``, ``valid_list.npy``, ``test_list.npy`` (int [user, item] rows,
each user's rows in time order) and optionally ``item_emb.npy``. Output: ``<out>/<name>/<name>.{train,
valid,test}.inter`` with ``user_id:token``, ``item_id:token`` and ``timestamp:float``. The timestamp is
the row's position (train rows first, then valid, then test), so time order is the released row order,
which is what the paper's T-DiffRec code relies on. ``item_emb.npy`` is copied as is (row i = item token
i), for L-DiffRec's ``item_emb_file``.

    recbole-diffrec convert ../shared/datasets/ml-1m_clean --out dataset --name ml-1m_clean
"""

import argparse
import os
import shutil
from pathlib import Path

import numpy as np

from recbole_diffrec.errors import DataError

SPLITS = ("train", "valid", "test")
HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


class SplitError(DataError):
    """The released split is missing or malformed."""


def load_split(src):
    src = Path(src)
    arrays = {}
    for split in SPLITS:
        path = src / f"{split}_list.npy"
        if not path.is_file():
            raise SplitError(f"{path} is missing; a split folder holds train_list.npy, valid_list.npy, test_list.npy")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SplitError(f"{path} is not a readable .npy array of [user, item] rows ({err})") from None
        if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.integer):
            raise SplitError(f"{path}: expected integer rows [user, item], got dtype {array.dtype} shape {array.shape}")
        bad = np.flatnonzero((array < 0).any(axis=1))
        if len(bad):
            raise SplitError(f"{path}: negative id at row {bad[0]} ({array[bad[0]].tolist()}); ids must be >= 0")
        if len(array) == 0:
            raise SplitError(f"{path} holds no interactions")
        arrays[split] = array
    for split in ("valid", "test"):
        for column, what in ((0, "users"), (1, "items")):
            unseen = np.setdiff1d(arrays[split][:, column], arrays["train"][:, column])
            if len(unseen):
                raise SplitError(
                    f"{src}: {len(unseen)} {what} of {split}_list.npy never occur in train_list.npy "
                    f"(e.g. {unseen[:5].tolist()}); the model could never score them. Remove them or add training data."
                )
    return arrays


def convert(src, out="dataset", name=None, overwrite=False):
    """Write the atomic files; returns the dataset folder. Refuses to overwrite unless asked."""
    src = Path(src)
    name = name or src.name
    arrays = load_split(src)
    target = Path(out) / name
    files = [target / f"{name}.{split}.inter" for split in SPLITS]
    existing = [f for f in files if f.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists; pass --overwrite to replace it, or choose another --out or --name")
    target.mkdir(parents=True, exist_ok=True)
    offset = 0
    for split, path in zip(SPLITS, files):
        array = arrays[split]
        times = np.arange(offset, offset + len(array), dtype=np.int64)
        offset += len(array)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w") as handle:
            handle.write(HEADER)
            np.savetxt(handle, np.column_stack([array, times]), fmt="%d", delimiter="\t")
        os.replace(tmp, path)
    emb = src / "item_emb.npy"
    if emb.is_file():
        shutil.copyfile(emb, target / "item_emb.npy")
    return target


def main(argv=None, prog="recbole-diffrec convert"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="folder with train_list.npy, valid_list.npy, test_list.npy")
    parser.add_argument("--out", default="dataset", help="RecBole data_path to write into (default: dataset)")
    parser.add_argument("--name", default=None, help="dataset name (default: the source folder's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    if not Path(args.src).is_dir():
        parser.error(f"{args.src}: no such folder (it should hold train_list.npy, valid_list.npy, test_list.npy)")
    try:
        target = convert(args.src, args.out, args.name, args.overwrite)
    except DataError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    main()
