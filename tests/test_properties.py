"""Property-based tests (hypothesis): setting validation and the recency weighting."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_diffrec.core.schedules import make_betas
from recbole_diffrec.data.interactions import recency_weights
from recbole_diffrec.models import DiffRec, TDiffRec
from recbole_diffrec.settings import SettingError, SettingsReader, declared_settings

DEFAULTS = declared_settings(TDiffRec)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.integers(-3, 60),
    sampling_steps=st.integers(-3, 70),
    noise_scale=st.floats(-1, 50, allow_nan=False),
    noise_min=st.floats(0, 0.05, allow_nan=False),
    noise_max=st.floats(0, 0.05, allow_nan=False),
    schedule=st.sampled_from(["linear", "linear-var", "cosine", "binomial", "quadratic"]),
    w_min=st.floats(-0.5, 1.5, allow_nan=False),
    w_max=st.floats(-0.5, 1.5, allow_nan=False),
)
def test_settings_are_accepted_exactly_when_valid(steps, sampling_steps, noise_scale, noise_min, noise_max,
                                                   schedule, w_min, w_max):
    config = {**DEFAULTS, "steps": steps, "sampling_steps": sampling_steps, "noise_scale": noise_scale,
              "noise_min": noise_min, "noise_max": noise_max, "noise_schedule": schedule, "w_min": w_min,
              "w_max": w_max, "inference_steps": 0}
    uses_bounds = schedule in ("linear", "linear-var") and noise_scale > 0
    valid = (schedule != "quadratic" and steps >= 1 and 0 <= sampling_steps <= steps and noise_scale >= 0
             and not (uses_bounds and noise_min >= noise_max) and 0 < w_min <= 1 and 0 < w_max <= 1
             and w_min <= w_max)
    if valid and noise_scale > 0:
        # the schedule math itself has golden-value tests; here only whether its betas are admissible
        with np.errstate(all="ignore"):
            betas = make_betas(schedule, steps, noise_scale, noise_min, noise_max, True)
        valid = bool(np.all(betas > 0) and np.all(betas < 1))
    try:
        TDiffRec.read_settings(SettingsReader(config))
        accepted = True
    except SettingError as err:
        accepted = False
        assert str(err).startswith(f"invalid setting {err.key}=") and err.key in config
    assert accepted == valid


@st.composite
def histories(draw):
    n = draw(st.integers(1, 60))
    users = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    return np.array(users), np.array(times)


@settings(max_examples=200, deadline=None)
@given(histories(), st.floats(0.01, 1.0), st.floats(0.0, 1.0), st.randoms(use_true_random=False))
def test_recency_weights_properties(history, w_min, span, rnd):
    users, times = history
    w_max = w_min + (1 - w_min) * span
    w = recency_weights(users, times, w_min, w_max)
    assert w.shape == users.shape and np.all(w >= w_min - 1e-12) and np.all(w <= w_max + 1e-12)
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        order = rows[np.lexsort((rows, times[rows]))]  # by time, ties by row order
        expected = np.linspace(w_min, w_max, len(rows)) if len(rows) > 1 else np.array([w_min])
        assert np.allclose(w[order], expected)
    perm = np.array(rnd.sample(range(len(users)), len(users)))
    shuffled = recency_weights(users[perm], times[perm], w_min, w_max)
    # the same multiset of weights per user whatever the row order (ties may swap places)
    for u in np.unique(users):
        assert np.allclose(np.sort(shuffled[users[perm] == u]), np.sort(w[users == u]))


def test_diffrec_yaml_defaults_are_valid():
    DiffRec.read_settings(SettingsReader(declared_settings(DiffRec)))
