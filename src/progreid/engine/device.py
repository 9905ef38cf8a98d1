"""Pick the compute device and the per-device speed settings in one place."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from progreid.errors import ProgReIDError

        raise ProgReIDError(f"--device {name}: CUDA is not available on this machine. Fix: use --device cpu.")
    return dev


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (where it pays); plain fp32 on CPU, where autocast slows OSNet down."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
