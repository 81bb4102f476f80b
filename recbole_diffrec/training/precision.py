"""The training step's precision: bfloat16 autocast where the CPU multiplies bfloat16 natively, float32
elsewhere (``train_precision``)."""

import os

import torch

from recbole_diffrec.settings import SettingError

PRECISIONS = ("auto", "float32", "bfloat16")


AUTO_ENV = "RECBOLE_DIFFREC_AUTO_PRECISION"  # float32 or bfloat16: what "auto" means on a CPU, overriding detection


def native_cpu_bfloat16():
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX): there, bfloat16
    matrix products run about 4x faster than float32 ones; elsewhere oneDNN emulates them, slower.
    The environment variable RECBOLE_DIFFREC_AUTO_PRECISION (float32 or bfloat16) overrides the detection,
    so that one machine can run the suite on either path."""
    forced = os.environ.get(AUTO_ENV, "")
    if forced:
        if forced not in ("float32", "bfloat16"):
            raise SettingError(AUTO_ENV, forced, "must be float32 or bfloat16 (what train_precision auto means on a CPU)")
        return forced == "bfloat16"
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def training_autocast_dtype(precision, device):
    """The autocast dtype of the training step for `train_precision` on `device`, or None for float32.

    "auto" is bfloat16 on a CPU with native bfloat16 matrix products and float32 everywhere else
    (a GPU's training step is bound by kernel launches at these sizes, not by its matrix products).
    Only the forward pass and the loss run under autocast; weights, optimizer state, gradients
    accumulated into the weights and the whole evaluation stay float32."""
    if precision not in PRECISIONS:
        raise SettingError("train_precision", precision, f"must be one of {list(PRECISIONS)}")
    if precision == "float32" or (precision == "auto" and (device.type != "cpu" or not native_cpu_bfloat16())):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        gpu = torch.cuda.get_device_name(device)
        raise SettingError("train_precision", precision,
                           f"this GPU ({gpu}) has no bfloat16 support; use float32 or auto")
    if device.type not in ("cpu", "cuda"):
        raise SettingError("train_precision", precision, f"bfloat16 training runs on cpu or cuda, not {device.type}")
    return torch.bfloat16
