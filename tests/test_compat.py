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
