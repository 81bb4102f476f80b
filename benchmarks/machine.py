"""The machine a benchmark ran on, in one line for its results file (lscpu's model and the matrix flags that
decide the CPU's float32 and bfloat16 speed)."""

import platform
import subprocess


def cpu():
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("Model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("Flags")), [])
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}; flags: {' '.join(wanted) or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}"


def native_bfloat16():
    return "bf16" in cpu().split("flags:")[1]
