"""Pick the compute device and the per-device speed settings in one place."""

from __future__ import annotations

import contextlib

import torch

from progreid.errors import ProgReIDError


def resolve_device(name: str = "auto") -> torch.device:
    try:
        dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    except RuntimeError:
        raise ProgReIDError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ProgReIDError(f"--device {name}: CUDA is not available on this machine. Fix: use --device cpu.")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    return dev


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (where it pays); plain fp32 on CPU, where autocast slows OSNet down."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
