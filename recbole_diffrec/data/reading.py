"""Reading a dataset: the interaction files checked before RecBole reads them (present, rows no wider than
their header, missing values refused), RecBole's dataset built, its time field checked, its duplicate
(user, item) rows reported or dropped."""

import contextlib
import os
from logging import getLogger

import numpy as np
import pandas as pd
import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data.dataset import Dataset as RecBoleDataset
from recbole.utils import FeatureSource, FeatureType

from recbole_diffrec.errors import DataError, UserError


def check_data_files(config):
    """The dataset's folder and interaction files exist (before RecBole, which would try to download a
    missing dataset it knows by name)."""
    name, folder = config["dataset"], os.path.abspath(config["data_path"])
    parts = config["benchmark_filename"] or [None]
    files = [os.path.join(folder, f"{name}.{part}.inter" if part else f"{name}.inter") for part in parts]
    if not os.path.isdir(folder):
        raise DataError(f"dataset {name!r}: no folder {folder}; put {os.path.basename(files[0])} there (RecBole's "
                        "atomic format) or set data_path to the folder that holds it (only ml-100k ships with RecBole)")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(f"dataset {name!r}: no file {missing[0]}; a dataset needs {', '.join(map(os.path.basename, files))}")
    getLogger().info(f"dataset {name!r}: reading {', '.join(files)}")
    separator = (config["field_separator"] or "\t").encode()
    for path in files:
        check_header(path, separator, {config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]})
        check_row_widths(path, separator)
    boms = []
    for path in files:
        with open(path, "rb") as handle:
            boms.append(handle.read(3) == b"\xef\xbb\xbf")
    if any(boms) and (config["encoding"] or "utf-8").lower().replace("_", "-") in ("utf-8", "utf8"):
        # a byte-order mark (spreadsheet programs write one) would otherwise end up in the first column's name
        config["encoding"] = "utf-8-sig"
        getLogger().info(f"dataset {name!r}: a .inter file starts with a UTF-8 byte-order mark; read as utf-8-sig")


FIELD_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's atomic-file column types


def check_header(path, separator, id_fields):
    """Every column of an atomic file's header is ``name:type`` with one of RecBole's types, and the user and
    item columns are tokens (RecBole fails deep in its build on either, with a message that names neither)."""
    with open(path, "rb") as handle:
        header = handle.readline().decode("utf-8-sig", "replace").rstrip("\r\n")
    for column in header.split(separator.decode()):
        name, _, kind = column.partition(":")
        if not kind:
            raise DataError(f"{path}, line 1: column {column!r} has no type; RecBole's header names every column "
                            f"name:type, e.g. user_id:token<TAB>item_id:token<TAB>timestamp:float")
        if kind not in FIELD_TYPES:
            raise DataError(f"{path}, line 1: column {column!r} has type {kind!r}, not one of {list(FIELD_TYPES)}")
        if name in id_fields and kind != "token":
            raise DataError(f"{path}, line 1: column {column!r}: users and items are tokens; declare it {name}:token")


def check_row_widths(path, separator=b"\t"):
    """No row of an atomic file has more fields than its header: pandas would silently shift such a row's
    columns (an extra separator in `u<TAB>it<TAB>242<TAB>881250949` makes `it` the item and 242 the time)."""
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    width = lines[0].count(separator)
    for number, line in enumerate(lines[1:], start=2):
        if line.count(separator) > width:
            shown = line.decode("utf-8", "replace").rstrip("\r")[:80]
            raise DataError(f"{path}, line {number}: {line.count(separator) + 1} fields where the header has "
                            f"{width + 1} ({shown!r}); RecBole would shift its columns silently. Fix the row")


_READ_FIELDS = ("uid_field", "iid_field", "time_field")


@contextlib.contextmanager
def refusing_missing_values():
    """While RecBole loads a dataset: an interaction file whose user, item or time field has a missing or
    non-finite value is refused with the row count and the first line, before RecBole's fill would give the
    row a padding token or the column's mean (which moves the time-ordered split and the recency weights)."""
    original = RecBoleDataset._load_feat

    def load_feat(self, filepath, source):
        frame = original(self, filepath, source)
        if frame is not None and source == FeatureSource.INTERACTION:
            for attribute in _READ_FIELDS:
                field = getattr(self, attribute, None)
                if field is None or field not in frame:
                    continue
                values = frame[field]
                bad = np.array(values.isna().to_numpy(), dtype=bool)
                if pd.api.types.is_numeric_dtype(values):
                    bad |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        f"{filepath}: {int(bad.sum())} rows have no valid {field!r} (first at line {first + 2}, "
                        f"counting the header as line 1); RecBole would fill them with "
                        f"{'the column mean' if pd.api.types.is_numeric_dtype(values) else 'a padding id'}, silently. "
                        "Fix or drop those rows")
        return frame

    RecBoleDataset._load_feat = load_feat
    try:
        yield
    finally:
        RecBoleDataset._load_feat = original


def create_dataset(config, check=None):
    """RecBole's dataset, its duplicate (user, item) rows reported (and, with ``duplicate_interactions:
    drop``, dropped), passed to `check` (a model class's ``validate_dataset``) before anything is trained."""
    check_data_files(config)
    name = config["dataset"]
    try:
        with refusing_missing_values():
            dataset = recbole_create_dataset(config)
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, pd.errors.ParserError) as err:
        if "feat is empty" in str(err):
            raise DataError(
                f"dataset {name!r} (data_path {config['data_path']!r}) has no interactions left after "
                f"filtering: user_inter_num_interval={config['user_inter_num_interval']}, "
                f"item_inter_num_interval={config['item_inter_num_interval']}, val_interval={config['val_interval']}; "
                "loosen them or check the .inter file"
            ) from None
        message = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"dataset {name!r} ({os.path.abspath(config['data_path'])}) cannot be read: {message}; check "
                        "the .inter file's header (name:type, tab-separated) and its values") from None
    if len(dataset.inter_feat) == 0:
        raise DataError(f"dataset {name!r} ({os.path.abspath(config['data_path'])}) holds no interactions")
    time_field = dataset.time_field
    if time_field is not None and time_field in dataset.field2type \
            and dataset.field2type[time_field] != FeatureType.FLOAT:
        kind = dataset.field2type[time_field].value
        raise DataError(f"dataset {name!r}: the time field {time_field!r} is declared {time_field}:{kind}; RecBole "
                        "numbers tokens by first appearance, so time order and recency would follow arbitrary "
                        f"numbers. Declare it {time_field}:float in the .inter header")
    handle_duplicates(dataset, config["duplicate_interactions"] or "keep")
    if check is not None:
        check(dataset)
    return dataset


def column(feat, field):
    """A column of a dataset's interactions as numpy: a pandas frame before RecBole's build(), an Interaction after."""
    values = feat[field]
    return values.to_numpy() if hasattr(values, "to_numpy") else values.numpy()


def duplicate_rows(users, items):
    """Boolean mask of the rows that repeat an earlier row's (user, item) pair."""
    order = np.lexsort((np.arange(len(users)), items, users))  # by pair, then by row: the first one first
    same = np.r_[False, (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])]
    mask = np.zeros(len(users), dtype=bool)
    mask[order[same]] = True
    return mask


def handle_duplicates(dataset, policy):
    """Report duplicate (user, item) rows (a pair in both training and test can never be hit, so every metric
    is biased down); with policy "drop", keep only the first row of each pair, in file order (the training
    split first with benchmark files)."""
    feat = dataset.inter_feat
    mask = duplicate_rows(column(feat, dataset.uid_field), column(feat, dataset.iid_field))
    count = int(mask.sum())
    if not count:
        return 0
    logger = getLogger()
    if policy != "drop":
        logger.warning(f"dataset {dataset.dataset_name!r}: {count} duplicate (user, item) rows kept (RecBole's "
                       "behaviour); a test pair also in training can never be hit")
        return count
    keep = np.flatnonzero(~mask)
    if dataset.benchmark_filename_list is not None:  # the split boundaries move with the dropped rows
        bounds = np.r_[0, np.cumsum(dataset.file_size_list)]
        dataset.file_size_list = [int((~mask[a:b]).sum()) for a, b in zip(bounds[:-1], bounds[1:])]
    dataset.inter_feat = feat.iloc[keep].reset_index(drop=True) if hasattr(feat, "iloc") else feat[torch.from_numpy(keep)]
    logger.warning(f"dataset {dataset.dataset_name!r}: dropped {count} duplicate (user, item) rows, keeping the "
                   "first of each (duplicate_interactions: drop; 'keep' keeps RecBole's behaviour)")
    return count
