"""What RecBole 1.2.1 needs to run on today's stack (numpy 2, torch >= 2.6, scipy >= 1.13, hyperopt 0.3).

Every fix lives here, is applied once by :func:`apply` (idempotent; the entry points call it: creating a
:class:`~recbole_diffrec.config.Config` and the command line, never a plain import) and has its own test in
``tests/test_compat.py``. None of them downgrades a package.

1. ``numpy_aliases``: ``Config.compatibility_settings`` assigns ``np.float = np.float_`` (and
   ``np.complex_``, ``np.unicode_``), names numpy 2 removed, so every ``Config(...)`` raised
   ``AttributeError``. We define the three old names as the types they always meant.
2. ``scipy_dok_update``: LightGCN and NGCF fill their graph with ``dok_matrix._update``, which scipy 1.13
   removed. We restore it as a bulk insert into the dok's key store.
3. ``pandas_fill_nan``: ``Dataset._fill_nan`` fills missing values with chained
   ``df[field].fillna(..., inplace=True)``; under pandas 3's copy-on-write that fills a copy, so NaN
   stayed in token and float features (with a ``ChainedAssignmentError`` warning). We replace it with
   the same imputation written as assignments.
4. ``torch.load`` no longer unpickles RecBole's checkpoints (they pickle the whole ``Config``) since
   torch 2.6. That is not patched here: :mod:`recbole_diffrec.training.checkpoint` defines checkpoints of tensors and
   plain data only and loads them with ``weights_only=True``, for our models and RecBole's alike.
5. ``fast_atomic_read`` (speed, not a break): ``Dataset._load_feat`` reads every atomic file with
   pandas' pure-Python parser (``engine="python"``), a few seconds for ML-1M at every start. With a
   one-character separator (RecBole's default tab) we read with pandas' C parser, which gives the same
   frame; anything else, or a file the C parser refuses, still goes to the Python parser.
6. ``race_free_ensure_dir``: ``recbole.utils.ensure_dir`` checks that a folder is missing, then creates
   it; two ranks of a distributed run starting together both see ``./log`` missing and the second one
   dies with ``FileExistsError``. We make it ``os.makedirs(..., exist_ok=True)`` in every module that
   imported it.
7. hyperopt >= 0.2.7 hands ``RandomState`` objects to algorithms that call ``.integers``; RecBole's
   ``exhaustive_search`` does. Fixed on our side in :mod:`recbole_diffrec.tuning`.
"""


import numpy as np

_APPLIED = False


def numpy_aliases():
    """Define the numpy 1 aliases RecBole's ``Config`` reads (only those that are missing)."""
    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if old not in np.__dict__:
            setattr(np, old, new)


def scipy_dok_update():
    """Give scipy's dok matrices back the ``_update(dict)`` bulk insert that RecBole's graph models call."""
    from scipy.sparse import _dok

    base = _dok._dok_base
    if not hasattr(base, "_update"):
        def _update(self, data):
            self._dict.update(data)

        base._update = _update


def pandas_fill_nan():
    """RecBole's missing-value imputation (token -> 0 = [PAD], float -> mean, sequences -> empty),
    as assignments that take effect under copy-on-write."""
    from recbole.data.dataset import Dataset
    from recbole.utils import FeatureType

    if getattr(Dataset._fill_nan, "_recbole_diffrec", False):
        return

    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                else:
                    dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                    feat[field] = feat[field].apply(
                        lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                    )

    _fill_nan._recbole_diffrec = True
    Dataset._fill_nan = _fill_nan


class _CParserFirst:
    """Stands in for the ``pandas`` module inside RecBole's dataset module: ``read_csv`` uses the C
    parser where the Python one was asked for and the separator is one character (RecBole passes
    plain characters, not patterns); every other name is pandas' own."""

    def __init__(self, pandas):
        self._pandas = pandas

    def __getattr__(self, name):
        return getattr(self._pandas, name)

    def read_csv(self, filepath, **kwargs):
        separator = kwargs.get("delimiter", kwargs.get("sep", ","))
        if kwargs.get("engine") == "python" and isinstance(separator, str) and len(separator) == 1:
            try:
                return self._pandas.read_csv(filepath, **{**kwargs, "engine": "c"})
            except (ValueError, self._pandas.errors.ParserError):
                pass  # what the C parser refuses, the Python parser reads (or reports) as before
        return self._pandas.read_csv(filepath, **kwargs)


def fast_atomic_read():
    """RecBole's atomic files read by pandas' C parser (same frames; see :class:`_CParserFirst`)."""
    from recbole.data.dataset import dataset as module

    if not isinstance(module.pd, _CParserFirst):
        module.pd = _CParserFirst(module.pd)


_ENSURE_DIR_USERS = ("recbole.utils", "recbole.utils.utils", "recbole.utils.logger", "recbole.trainer.trainer",
                     "recbole.data.utils", "recbole.data.dataset.dataset")


def _ensure_dir(dir_path):
    """Create `dir_path` (and its parents) unless it exists, also when another process does it too; the
    folders made are reported to :mod:`recbole_diffrec.ownership` (a failed run removes what it made)."""
    from recbole_diffrec import ownership

    ownership.makedirs(dir_path)


def race_free_ensure_dir():
    """``ensure_dir`` without the check-then-create race, wherever RecBole's modules call it."""
    import importlib

    for name in _ENSURE_DIR_USERS:
        module = importlib.import_module(name)
        if hasattr(module, "ensure_dir"):
            module.ensure_dir = _ensure_dir


def quiet_readonly_array_warning():
    """RecBole turns read-only numpy arrays into tensors it never writes to; torch's warning about it would
    reach every user's console without saying anything they can act on."""
    import warnings

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


def apply():
    """Apply every fix once. Safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    quiet_readonly_array_warning()
    numpy_aliases()
    scipy_dok_update()
    pandas_fill_nan()
    fast_atomic_read()
    race_free_ensure_dir()
    _APPLIED = True
