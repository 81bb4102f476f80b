"""One test per fix in recbole_diffrec.compat (RecBole 1.2.1 on numpy 2 / scipy >= 1.13 / torch >= 2.6)."""

import numpy as np
import scipy.sparse as sp
import torch

from recbole_diffrec import compat


def test_stack_is_modern():
    assert int(np.__version__.split(".")[0]) >= 2
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6)


def test_numpy_aliases_let_recbole_config_run(workdir):
    compat.numpy_aliases()
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    from recbole.config import Config

    config = Config(model="BPR", dataset="ml-100k", config_dict={"show_progress": False})
    assert config["model"] == "BPR"


def test_dok_update_restored():
    compat.scipy_dok_update()
    m = sp.dok_matrix((2, 3), dtype=np.float32)
    m._update({(0, 2): 1.0, (1, 0): 2.0})
    assert m.toarray().tolist() == [[0, 0, 1], [2, 0, 0]]


def test_apply_is_idempotent():
    compat.apply()
    compat.apply()
    assert compat._APPLIED


def test_fill_nan_takes_effect_under_copy_on_write(workdir):
    """ml-100k's user 'zip_code' and item 'release_year' hold gaps; after loading, none is NaN."""
    import warnings

    import pandas as pd
    from recbole.data import create_dataset

    from recbole_diffrec.config import Config

    config = Config(model="Pop", dataset="ml-100k", config_dict={
        "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "release_year"]}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ChainedAssignmentError)
        dataset = create_dataset(config)
    assert not dataset.item_feat["release_year"].isna().any()


def test_atomic_files_read_by_the_c_parser_give_the_same_dataset(workdir, monkeypatch):
    """ml-100k's .inter and .user files whole and the .item file's tokens (floats, tokens, gaps): the same
    RecBole dataset whether the Python or the C parser read the files. (RecBole 1.2.1 cannot remap
    token-sequence fields such as the titles under pandas 3 with either parser; not loaded here.)"""
    import pandas as pd
    from recbole.data import create_dataset
    from recbole.data.dataset import dataset as module

    from recbole_diffrec.config import Config

    compat.fast_atomic_read()
    assert isinstance(module.pd, compat._CParserFirst)
    calls = []
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: calls.append(k.get("engine")) or real(*a, **k))
    settings = {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"],
                             "user": ["user_id", "age", "gender", "occupation", "zip_code"],
                             "item": ["item_id", "release_year"]}}
    fast = create_dataset(Config(model="Pop", dataset="ml-100k", config_dict=settings))
    assert calls and set(calls) == {"c"}
    monkeypatch.setattr(module, "pd", pd)
    slow = create_dataset(Config(model="Pop", dataset="ml-100k", config_dict=settings))
    assert calls.count("python") == len(calls) // 2
    for name in ("inter_feat", "user_feat", "item_feat"):
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(slow, name))  # values and dtypes
    assert len(fast.user_feat.columns) == 5 and len(fast.inter_feat.columns) == 4


def test_c_parser_refusal_falls_back_to_the_python_parser(tmp_path):
    import pandas

    path = tmp_path / "bad.inter"
    path.write_text("a:token\tb:float\n1\t2.0\n")
    proxy = compat._CParserFirst(pandas)
    # a tab-separated file: read by the C parser
    frame = proxy.read_csv(path, delimiter="\t", engine="python", dtype={"a:token": str, "b:float": float})
    assert frame["b:float"].tolist() == [2.0]
    # a multi-character separator is not the C parser's: the Python parser reads it as asked
    path.write_text("a:token::b:float\n1::2.0\n")
    frame = proxy.read_csv(path, delimiter="::", engine="python")
    assert frame.iloc[0].tolist() == [1, 2.0]

    class Refusing:  # pandas whose C parser refuses every file
        errors = pandas.errors

        def __init__(self):
            self.engines = []

        def read_csv(self, filepath, **kwargs):
            self.engines.append(kwargs["engine"])
            if kwargs["engine"] == "c":
                raise pandas.errors.ParserError("refused")
            return pandas.read_csv(filepath, **kwargs)

    refusing = Refusing()
    frame = compat._CParserFirst(refusing).read_csv(path, delimiter=":", engine="python")
    assert refusing.engines == ["c", "python"] and len(frame) == 1


def test_ensure_dir_survives_another_process_creating_the_folder_first(tmp_path, monkeypatch):
    import importlib
    import os

    compat.apply()
    folder = tmp_path / "log"
    folder.mkdir()
    # the race as the second rank sees it: the folder looked missing, then exists when it is created
    monkeypatch.setattr(os.path, "exists", lambda _path: False)
    for name in compat._ENSURE_DIR_USERS:
        importlib.import_module(name).ensure_dir(str(folder))  # RecBole's own raises FileExistsError here
    assert folder.is_dir()
