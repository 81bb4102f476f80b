"""Contracts: lookup, yaml/code agreement, setting validation, checkpoints."""


import pytest
import torch

from recbole_diffrec import get_model, model_classes
from recbole_diffrec.config import Config
from recbole_diffrec.models import DiffRec
from recbole_diffrec.pipeline import prepare
from recbole_diffrec.settings import SettingError, SettingsReader, declared_settings
from recbole_diffrec.training.checkpoint import (
    UnsafeCheckpointError,
    load_checkpoint,
    save_checkpoint,
)

FAST = {"show_progress": False, "epochs": 1, "steps": 5, "dims_dnn": [64], "eval_batch_users": 256}


def test_lookup_returns_ours_and_recbole_builtin_by_prefix():
    from recbole.model.general_recommender import BPR as RecBoleBPR
    from recbole.model.general_recommender.diffrec import DiffRec as RecBoleDiffRec

    assert get_model("DiffRec") is DiffRec
    assert get_model("recbole.DiffRec") is RecBoleDiffRec
    assert get_model("BPR") is RecBoleBPR
    with pytest.raises(ValueError, match="NoSuchModel.*DiffRec.*BPR"):
        get_model("NoSuchModel")


def test_our_config_uses_our_yaml_only(workdir):
    config = Config(model="DiffRec", dataset="ml-100k", config_dict={"show_progress": False})
    ours = declared_settings(DiffRec)
    for key, value in ours.items():
        assert config[key] == value, key
    assert config["time-aware"] is None  # a key of RecBole's DiffRec.yaml must not leak in
    builtin = Config(model="recbole.DiffRec", dataset="ml-100k", config_dict={"show_progress": False})
    assert builtin["time-aware"] is False and builtin.model_class is get_model("recbole.DiffRec")


def _generic_keys():
    return set(Config(model="Pop", dataset="ml-100k").final_config_dict)


@pytest.mark.parametrize("name", sorted(model_classes()))
def test_yaml_declares_exactly_the_keys_the_model_reads(name, workdir):
    cls = model_classes()[name]
    declared = set(declared_settings(cls)) - _generic_keys()
    config = Config(model=name, dataset="ml-100k", config_dict={"show_progress": False})
    reader = SettingsReader(config)
    cls.read_settings(reader)
    assert set(reader.read) - _generic_keys() == declared  # RecBole's own keys a model validates aside


class _Recorder:
    def __init__(self, config):
        self._config, self.keys = config, set()

    def __getitem__(self, key):
        self.keys.add(key)
        return self._config[key]

    def __getattr__(self, name):
        return getattr(self._config, name)


def test_model_reads_no_undeclared_key(workdir):
    config, (train, _, _), _, _ = prepare("DiffRec", config_dict=FAST)
    recorder = _Recorder(config)
    DiffRec(recorder, train._dataset)
    declared = set(declared_settings(DiffRec))
    assert recorder.keys - _generic_keys() - declared == set()


BAD = [
    ({"mean_type": "x1"}, "mean_type"),
    ({"noise_schedule": "quadratic"}, "noise_schedule"),
    ({"steps": 0}, "steps"),
    ({"sampling_steps": -1}, "sampling_steps"),
    ({"sampling_steps": 41}, "sampling_steps"),
    ({"noise_scale": -0.1}, "noise_scale"),
    ({"noise_min": 0.02, "noise_max": 0.01}, "noise_min"),
    ({"noise_scale": 200.0}, "noise_scale"),  # betas leave (0, 1)
    ({"dims_dnn": []}, "dims_dnn"),
    ({"dims_dnn": [300, 0]}, "dims_dnn"),
    ({"dims_dnn": 300}, "dims_dnn"),
    ({"inference_steps": 41}, "inference_steps"),
    ({"reweight": "yes"}, "reweight"),
    ({"noise_sclae": 0.01}, "noise_sclae"),  # declared nowhere: a misspelling would leave the default in place
    ({"eval_batch_users": -1}, "eval_batch_users"),  # the loaders' setting, checked with the others
]


@pytest.mark.parametrize("override,key", BAD)
def test_bad_settings_fail_before_data_loads(override, key, workdir, monkeypatch):
    import recbole_diffrec.preparation as qs

    monkeypatch.setattr(qs, "create_dataset", lambda *a, **k: pytest.fail("data loaded before validation"))
    with pytest.raises(SettingError) as err:
        qs.prepare("DiffRec", config_dict={"show_progress": False, **override})
    message = str(err.value)
    assert err.value.key == key and message.startswith(f"invalid setting {key}=")
    if key in override:
        assert repr(override[key]) in message


def test_an_override_nothing_declares_is_refused_with_the_nearest_name(tmp_path):
    with pytest.raises(SettingError, match=r"^invalid setting noise_sclae=0\.01: not a setting of DiffRec "
                                           r"\(declared by .*\); did you mean noise_scale\?$"):
        Config(model="DiffRec", dataset="ml-100k", config_dict={"noise_sclae": 0.01})
    with pytest.raises(SettingError, match=r"^invalid setting zzz=1: not a setting of LDiffRec \(.*\)$"):
        Config(model="LDiffRec", dataset="ml-100k", config_dict={"zzz": 1})
    # a key a config file declares is known (a shared file may hold several models' keys); the distributed
    # hand-over's keys are known; a RecBole model is checked too, against its yaml and the keys RecBole's code reads
    shared = tmp_path / "shared.yaml"
    shared.write_text("reg_weight: 0.001\n")
    assert Config(model="DiffRec", dataset="ml-100k", config_file_list=[str(shared)],
                  config_dict={"reg_weight": 0.01})["reg_weight"] == 0.01
    assert Config(model="DiffRec", dataset="ml-100k", config_dict={"dist_backend": "gloo"})["dist_backend"] == "gloo"
    with pytest.raises(SettingError, match=r"^invalid setting zzz=1: not a setting of BPR"):
        Config(model="BPR", dataset="ml-100k", config_dict={"zzz": 1})
    # `unchecked` exempts a saved run's own settings
    assert Config(model="DiffRec", dataset="ml-100k", config_dict={"zzz": 1}, unchecked={"zzz"})["zzz"] == 1


def test_noise_bounds_ignored_where_schedule_does_not_use_them(workdir):
    Config(model="DiffRec", dataset="ml-100k", config_dict={"noise_schedule": "cosine", "noise_min": 0.5,
                                                            "noise_max": 0.1})


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match="LDiffRec|DiffRec"):
        Config(model="DifRec", dataset="ml-100k")


def test_save_load_gives_identical_scores_and_loads_weights_only(workdir):
    config, (train, valid, test), model, trainer = prepare("DiffRec", config_dict=FAST)
    trainer.fit(train, valid, saved=True, show_progress=False)
    users = torch.arange(1, 50)
    model.eval()
    before = model.user_scores(users)
    state = torch.load(trainer.saved_model_file, weights_only=True)  # plain torch, the safe way
    assert state["format"].startswith("recbole-diffrec") and "sampler.loss_history" in state["state_dict"]
    _, _, fresh, fresh_trainer = prepare("DiffRec", config_dict=FAST)
    fresh_trainer.resume_checkpoint(trainer.saved_model_file)
    fresh.eval()
    assert torch.equal(fresh.user_scores(users), before)
    assert torch.equal(fresh.sampler.loss_history, model.sampler.loss_history)


# floors: a random ranking of ml-100k gets NDCG@10 of about 0.01; 3 short epochs are well above it
@pytest.mark.slow
@pytest.mark.parametrize("name, extra, floor", [("DiffRec", {"dims_dnn": [200, 600]}, 0.05),
                                                ("LDiffRec", {"dims_dnn": [100], "n_cate": 2, "in_dims": [100]}, 0.03)])
def test_factored_reverse_chain_gives_the_same_metrics_as_the_step_by_step_chain(name, extra, floor, workdir,
                                                                                   monkeypatch):
    from recbole_diffrec.networks import MLPDenoiser

    settings = {**FAST, "steps": 20, "epochs": 3, **extra}
    config, (train, valid, test), model, trainer = prepare(name, config_dict=settings)
    trainer.fit(train, valid, saved=False, show_progress=False)
    calls = []
    chain = MLPDenoiser.affine_chain
    monkeypatch.setattr(MLPDenoiser, "affine_chain", lambda *args: calls.append(1) or chain(*args))
    factored = trainer.evaluate(test, load_best_model=False)
    assert calls  # evaluation took the factored chain
    for denoiser in (m for m in model.modules() if isinstance(m, MLPDenoiser)):
        denoiser.hidden_chain = False
    step_by_step = trainer.evaluate(test, load_best_model=False)
    assert factored.keys() == step_by_step.keys()
    for key in factored:
        assert abs(factored[key] - step_by_step[key]) <= 1e-6, (key, factored[key], step_by_step[key])
    assert factored["ndcg@10"] > floor


class _Payload:
    def __reduce__(self):
        return (print, ("this ran from a checkpoint",))


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"format": "recbole-diffrec-checkpoint/1", "state_dict": {}, "x": _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match="refusing"):
        load_checkpoint(path)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "best.pth"
    save_checkpoint({"format": "recbole-diffrec-checkpoint/1", "v": torch.ones(2)}, path)

    def crash(obj, f, *a, **k):
        with open(f, "wb") as handle:
            handle.write(b"trunc")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"format": "recbole-diffrec-checkpoint/1", "v": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(2))  # the first write, whole


def test_cached_evaluation_batches_equal_recboles_and_are_built_once(workdir):
    from recbole.data.dataloader import FullSortEvalDataLoader

    from recbole_diffrec.data.loaders import CachedFullSortEvalDataLoader

    from recbole_diffrec.run_context import ConfigView

    config, (_, valid, test), net, _ = prepare("DiffRec", config_dict={**FAST, "eval_batch_users": 100})
    assert config["eval_batch_size"] == 4096 and config["single_spec"]  # the loaders read, never write, the config
    for loader in (valid, test):
        assert isinstance(loader, CachedFullSortEvalDataLoader)
        view = ConfigView(config, eval_batch_size=100 * loader._dataset.item_num)
        reference = FullSortEvalDataLoader(view, loader._dataset, loader._sampler, shuffle=False)
        batches = list(loader)
        assert len(batches) == len(reference) == 10  # 943 users in batches of 100
        for ours, theirs in zip(batches, reference):
            assert torch.equal(ours[0][net.USER_ID], theirs[0][net.USER_ID])
            assert all(torch.equal(a, b) for a, b in zip(ours[1], theirs[1]))  # history to mask
            assert torch.equal(ours[2], theirs[2]) and torch.equal(ours[3], theirs[3])  # positives
        again = list(loader)  # a second validation: the same tensors, not rebuilt
        assert all(a[2] is b[2] for a, b in zip(batches, again))


def test_a_bound_taken_from_another_setting_is_named():
    reader = SettingsReader({"steps": 10, "sampling_steps": 11})
    with pytest.raises(SettingError, match=r"^invalid setting sampling_steps=11: must be <= steps=10$"):
        reader.integer("sampling_steps", low=0, high=reader.integer("steps", low=1), high_name="steps")
    assert SettingsReader({"k": 11}).integer("k", high=11, high_name="steps") == 11


def test_setting_error_pickles_whole():
    import pickle

    err = pickle.loads(pickle.dumps(SettingError("dims_dnn", [0], "every entry must be >= 1")))
    assert isinstance(err, SettingError)
    assert (err.key, err.value, err.allowed) == ("dims_dnn", [0], "every entry must be >= 1")
    assert str(err) == "invalid setting dims_dnn=[0]: every entry must be >= 1"
