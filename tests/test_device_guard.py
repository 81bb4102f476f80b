"""A CPU guard for the GPU path: every model of the pack runs its training loss's forward pass and
full_sort_predict with every parameter, buffer and input on a device that is not the CPU, so a tensor created
without the model's device fails here, on a machine without a GPU.

The device is torch's "meta" device: its tensors have shapes and dtypes but no data, and an operation that
meets a CPU tensor (other than a 0-dim scalar) raises "Tensor on device cpu is not on the expected device
meta". torch's FakeTensorMode with device "cuda" was tried first: on a CPU-only build of torch its advanced
indexing (x[index], which every model uses) raises "PyTorch is not linked with support for cuda devices", so it
cannot run a model; it is kept below for the one check it can make.

What the fake device cannot reach is left to tests/test_cuda.py on a real GPU: the backward pass and the
optimizer, CUDA autocast, sparse tensors (the sparse input path of DiffRec and L-DiffRec, GiffCF's sparse
propagation: here GiffCF runs its dense propagation), and anything that reads a value back to the host.
"""

import pytest
import torch

from recbole_diffrec.pipeline import prepare
from recbole_diffrec.registry import model_classes

fake_tensor = pytest.importorskip("torch._subclasses.fake_tensor")

TINY = {"show_progress": False, "epochs": 1, "train_precision": "float32", "eval_batch_users": 64}
GENERAL = {**TINY, "dims_dnn": [16]}
SEQUENTIAL = {**TINY, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "steps": 8, "MAX_ITEM_LIST_LENGTH": 10}
# Each model of the pack, with the settings that keep it small; every registered model must be listed here.
CASES = {
    "DiffRec": {**GENERAL, "steps": 5, "input_path": "dense"},
    "DiffRec@sparse-input-dense-guard": {**GENERAL, "steps": 5, "input_path": "dense", "sampling_noise": True},
    "TDiffRec": {**GENERAL, "steps": 5},
    "LDiffRec": {**TINY, "steps": 5, "dims_dnn": [16], "in_dims": [16], "n_cate": 2, "input_path": "dense"},
    "LTDiffRec": {**TINY, "steps": 5, "dims_dnn": [16], "in_dims": [16], "n_cate": 2, "input_path": "dense"},
    "GiffCF": {**TINY, "embedding_size": 16, "propagation": "dense"},
    "TGiffCF": {**TINY, "embedding_size": 16, "propagation": "dense", "ideal_weight": 0.5, "ideal_cutoff": 8},
    "FlowCF": {**TINY, "dims_dnn": [16]},
    "TFlowCF": {**TINY, "dims_dnn": [16]},
    "DiffuRec": SEQUENTIAL,
    "DNR": {**SEQUENTIAL, "inference_start": 3, "inference_draws": 2},
}


def _cases():
    """CASES, and every other registered model (another package's, through the entry points) with the small
    settings of its kind: every model the registry knows is guarded, with no list to keep."""
    from recbole_diffrec.models.base import SequentialDiffusionRecommender

    cases = dict(CASES)
    for name, cls in model_classes().items():
        if not any(case.split("@")[0] == name for case in cases):
            cases[name] = SEQUENTIAL if issubclass(cls, SequentialDiffusionRecommender) else TINY
    return cases


ALL_CASES = _cases()


def test_every_model_of_the_pack_is_guarded():
    assert set(model_classes()) <= {name.split("@")[0] for name in ALL_CASES}


DEVICE = torch.device("meta")


def to_device(module):
    """Every parameter and buffer of `module` on DEVICE (dense layouts only: see the module's docstring)."""
    for sub in module.modules():
        for name, buffer in sub._buffers.items():
            if buffer is not None:
                assert buffer.layout == torch.strided, f"{type(sub).__name__}.{name}: the guard runs dense layouts only"
    module.to(DEVICE)


def device_batch(model, n=4):
    """A training and an evaluation input on DEVICE, of the fields the model reads."""
    batch = {model.USER_ID: torch.zeros(n, dtype=torch.long, device=DEVICE)}
    if hasattr(model, "ITEM_SEQ"):
        batch[model.ITEM_SEQ] = torch.ones(n, model.max_seq_length, dtype=torch.long, device=DEVICE)
        batch[model.ITEM_SEQ_LEN] = torch.full((n,), 3, dtype=torch.long, device=DEVICE)
        batch[model.POS_ITEM_ID] = torch.ones(n, dtype=torch.long, device=DEVICE)
    return batch


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_the_model_keeps_every_tensor_on_its_device(case, workdir):
    name = case.split("@")[0]
    _, _, model, _ = prepare(name, "ml-100k", None, ALL_CASES[case])
    model.device = DEVICE  # what RecBole's model reads as its device
    to_device(model)
    batch = device_batch(model)
    with torch.no_grad():
        model.train()
        loss = model.calculate_loss(batch)
        assert loss.device == DEVICE
        model.eval()
        scores = model.full_sort_predict(batch)
        assert scores.device == DEVICE


def test_the_guard_catches_a_tensor_made_without_the_device():
    x = torch.empty(3, device=DEVICE)
    with pytest.raises(RuntimeError, match="not on the expected device"):
        _ = x + torch.ones(3)  # a new tensor without device=: the CPU


def test_fake_cuda_catches_a_tensor_made_without_the_device():
    with fake_tensor.FakeTensorMode():
        try:
            x = torch.empty(3, device="cuda")
        except RuntimeError as err:  # a torch build whose fake mode cannot make a "cuda" tensor here
            pytest.skip(f"FakeTensorMode cannot make a fake cuda tensor with this torch: {err}")
        with pytest.raises(fake_tensor.FakeTensorDeviceMismatchError):
            _ = x + torch.ones(3)  # a new tensor without device=: the CPU
