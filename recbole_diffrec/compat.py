"""What RecBole 1.2.1 needs to run on today's stack (numpy 2, torch >= 2.6, scipy >= 1.13, hyperopt 0.3).

Every fix lives here, is applied once by :func:`apply` (idempotent; ``import recbole_diffrec`` calls it)
and has its own test in ``tests/test_compat.py``. None of them downgrades a package.

1. ``numpy_aliases``: ``Config.compatibility_settings`` assigns ``np.float = np.float_`` (and
   ``np.complex_``, ``np.unicode_``), names numpy 2 removed, so every ``Config(...)`` raised
   ``AttributeError``. We define the three old names as the types they always meant.
2. ``scipy_dok_update``: LightGCN and NGCF fill their graph with ``dok_matrix._update``, which scipy 1.13
   removed. We restore it as a bulk insert into the dok's key store.
3. ``torch.load`` no longer unpickles RecBole's checkpoints (they pickle the whole ``Config``) since
   torch 2.6. That is not patched here: :mod:`recbole_diffrec.trainer` writes checkpoints of tensors and
   plain data only and loads them with ``weights_only=True``, for our models and RecBole's alike.
4. hyperopt >= 0.2.7 hands ``RandomState`` objects to algorithms that call ``.integers``; RecBole's
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


def apply():
    """Apply every fix once. Safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    numpy_aliases()
    scipy_dok_update()
    _APPLIED = True
