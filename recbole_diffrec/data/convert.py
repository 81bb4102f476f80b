"""Convert released datasets to RecBole atomic files.

1. The DiffRec paper's released split (a folder) to benchmark files.
2. Sequences as released with DiffuRec (a text file, one user per line: ``user item_1 ... item_n`` in time
   order) to one ``.inter`` file whose timestamp is each item's position in its user's sequence, so RecBole's
   time order is the sequence order; the leave-one-out split is then RecBole's (dataset_configs/beauty.yaml).

    recbole-diffrec convert ../shared/datasets/seq/beauty/beauty.txt --out dataset --name beauty

``--sample_users N`` keeps the sequences of N users drawn without replacement by a seeded generator
(``--sample_seed``, default 0): the same N and seed give the same users on every machine, so a comparison on a
sample names it by (N, seed) and any model can be run on exactly those users.

For the DiffRec split:

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


def _target_folder(out, name):
    """<out>/<name>, refused when <out> or it exists as something other than a folder."""
    for folder in (Path(out), Path(out) / name):
        if folder.exists() and not folder.is_dir():
            raise DataError(f"invalid setting out={str(folder)!r}: it is a file, not a folder; choose another --out "
                            "or --name")
    return Path(out) / name


def convert(src, out="dataset", name=None, overwrite=False):
    """Write the atomic files; returns the dataset folder. Refuses to overwrite unless asked."""
    src = Path(src)
    name = name or src.name
    arrays = load_split(src)
    target = _target_folder(out, name)
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


INT64_MAX = np.iinfo(np.int64).max


def _token(path, number, text, what):
    """A user or item id of a sequences file: ASCII digits, no leading zero, within int64."""
    if not text.isascii() or not text.isdigit():
        raise SplitError(f"{path}:{number}: {what} {text!r} is not a non-negative integer of the digits 0-9; "
                         "expected 'user item_1 ... item_n'")
    if len(text) > 1 and text[0] == "0":
        raise SplitError(f"{path}:{number}: {what} {text!r} has a leading zero; ids are read as numbers, so it would "
                         f"be the same {what} as {text.lstrip('0') or '0'!r}. Write it without the zero")
    value = int(text)
    if value > INT64_MAX:
        raise SplitError(f"{path}:{number}: {what} {text} is larger than {INT64_MAX}, the largest id allowed (int64)")
    return value


def load_sequences(path):
    """(users, items, positions) int64 arrays from a sequences file; refused (SplitError) when malformed.

    The file is UTF-8 text (a leading byte-order mark is accepted), one user per line. A user on two lines
    is refused with both line numbers: their positions would restart and the two sequences interleave."""
    users, items, positions, seen = [], [], [], {}
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # the byte-order mark spreadsheet programs write
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SplitError(f"{path}:{number}: not UTF-8 text (byte {line[err.start]:#04x} at column "
                             f"{err.start + 1}); expected 'user item_1 ... item_n'") from None
        fields = text.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise SplitError(f"{path}:{number}: expected 'user item_1 ... item_n' (a user and at least one item)")
        user = _token(path, number, fields[0], "user")
        if user in seen:
            raise SplitError(f"{path}:{number}: user {user} already has a sequence on line {seen[user]}; give each "
                             "user one line (merge the two sequences in time order)")
        seen[user] = number
        sequence = np.array([_token(path, number, f, "item") for f in fields[1:]], dtype=np.int64)
        users.append(np.full(len(sequence), user, dtype=np.int64))
        items.append(sequence)
        positions.append(np.arange(len(sequence), dtype=np.int64))
    if not users:
        raise SplitError(f"{path} holds no sequences")
    return np.concatenate(users), np.concatenate(items), np.concatenate(positions)


def sample_users(users, n, seed=0):
    """Boolean mask over the rows of the users of a seeded draw of ``n`` distinct users (sorted ids, then
    numpy's PCG64 ``choice`` without replacement: fixed by (n, seed))."""
    distinct = np.unique(users)
    if not 1 <= n <= len(distinct):
        raise DataError(f"invalid setting sample_users={n}: must be between 1 and {len(distinct)}, the users there are")
    chosen = np.random.default_rng(seed).choice(distinct, size=n, replace=False)
    return np.isin(users, chosen)


def convert_sequences(src, out="dataset", name=None, overwrite=False, sample=None, sample_seed=0):
    """Write ``<out>/<name>/<name>.inter`` from a sequences file, all users or a seeded sample of ``sample``
    of them; returns the dataset folder."""
    src = Path(src)
    name = name or src.stem
    users, items, positions = load_sequences(src)
    if sample is not None:
        keep = sample_users(users, sample, sample_seed)
        users, items, positions = users[keep], items[keep], positions[keep]
    target = _target_folder(out, name)
    path = target / f"{name}.inter"
    if path.exists() and not overwrite:
        raise DataError(f"{path} exists; pass --overwrite to replace it, or choose another --out or --name")
    target.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".inter.tmp")
    with open(tmp, "w") as handle:
        handle.write(HEADER)
        np.savetxt(handle, np.column_stack([users, items, positions]), fmt="%d", delimiter="\t")
    os.replace(tmp, path)
    return target


def main(argv=None, prog="recbole-diffrec convert"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="folder with train_list.npy, valid_list.npy, test_list.npy; or a sequences "
                        "file (user item_1 ... item_n per line)")
    parser.add_argument("--out", default="dataset", help="RecBole data_path to write into (default: dataset)")
    parser.add_argument("--name", default=None, help="dataset name (default: the source folder's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--sample_users", type=int, default=None, metavar="N",
                        help="sequences file only: keep a seeded draw of N users (default: all)")
    parser.add_argument("--sample_seed", type=int, default=0, help="seed of --sample_users (default: 0)")
    args = parser.parse_args(argv)
    if not Path(args.src).exists():
        parser.error(f"{args.src}: no such folder or file (a folder holds train_list.npy, valid_list.npy, "
                     "test_list.npy; a file one sequence per line)")
    try:
        if Path(args.src).is_file():
            target = convert_sequences(args.src, args.out, args.name, args.overwrite, args.sample_users,
                                       args.sample_seed)
        elif args.sample_users is not None:
            parser.exit(2, f"{parser.prog}: error: --sample_users applies to a sequences file, not to a folder\n")
        else:
            target = convert(args.src, args.out, args.name, args.overwrite)
    except DataError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    main()
