"""Load and save weights safely: ``weights_only=True`` or safetensors, never arbitrary pickles.

Accepted files: a plain ``state_dict`` (``.pth``), a training checkpoint with the ``state_dict``
under ``state_dict``/``model`` (``.pth.tar``), or ``.safetensors``. ``module.`` prefixes
(DataParallel) are stripped; identity-classifier rows (``classifier.*``, torchvision's ``fc.*`` on a
ResNet) are dropped since their number of classes belongs to the source dataset.
Everything else must match exactly: a missing or extra key means a wrong ``--arch``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from progreid.errors import CheckpointError
from progreid.models.pooling import is_gem_key


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a weights file. Fix: pass the weights file itself "
                              "(.pth, .pth.tar, .safetensors); commands that read runs take a run folder as "
                              "--weights or SOURCE (export, rank, verify).")
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found. Fix: check the --weights path.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes): a download or copy that did not finish. Fix: fetch the "
                              "weights file again.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged, truncated, not a checkpoint, or objects other than tensors
        # torch's own message would suggest weights_only=False, i.e. running whatever code the file holds:
        # progreid never does that and never tells anyone to, so only the kind of failure is passed on
        raise CheckpointError(f"{path}: cannot be read as a weights file ({type(exc).__name__}): it is damaged or "
                              "truncated, or is not a state_dict of tensors. progreid reads only tensors from a "
                              "checkpoint, never code. Fix: pass a state_dict saved with torch.save, a .pth.tar with "
                              "'state_dict', or .safetensors (fetch the file again if it was cut short).") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state_dict of tensors.")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _is_classifier_key(key: str, model: nn.Module) -> bool:
    if key.startswith("classifier."):
        return True
    # torchvision ResNet classifier; our ResNet has no ``fc`` (OSNet's ``fc`` is its embedding).
    return key.startswith("fc.") and not any(k.startswith("fc.") for k in model.state_dict())


def load_weights(model: nn.Module, path: str | Path, arch: str = "",
                 state: dict[str, torch.Tensor] | None = None) -> list[str]:
    """Strictly load ``path`` into ``model``; return the dropped classifier keys. ``state``: ``path``'s
    state dict where the caller has read it already (it is not read twice)."""
    state = read_state_dict(path) if state is None else state
    dropped = [k for k in state if _is_classifier_key(k, model)]
    state = {k: v for k, v in state.items() if k not in dropped}
    own = model.state_dict()
    new_layers = ("head.", "neck.")  # an EmbeddingHead's or BNNeck's own layers, absent from ImageNet weights
    if any(k.startswith(new_layers) for k in own) and not any(k.startswith("backbone.") for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}  # ImageNet ResNet into the wrapper
        state.update({k: v for k, v in own.items() if k.startswith(new_layers)})
    # GeM's exponent is new to weights trained with average pooling: it starts at its initial value
    state.update({k: v for k, v in own.items() if is_gem_key(k) and k not in state})
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if unexpected and all(is_gem_key(k) for k in unexpected):
        raise CheckpointError(f"{path}: was trained with GeM pooling ({unexpected[0]}), this network pools by "
                              "average. Fix: pass --set model.pooling=gem (or load it with pooling=None, which "
                              "reads the pooling from the weights).")
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise CheckpointError(f"{path}: does not fit --arch {arch or type(model).__name__}: {'; '.join(parts)}. "
                              "Fix: pass the --arch the weights were trained with.")
    model.load_state_dict(state, strict=True)
    return dropped


def atomic_write(path: str | Path, write) -> None:
    """Write through ``write(tmp_path)`` then rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results should be as readable as any other
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, as hex (what a run folder records to verify its files by)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def save_npy(path: str | Path, arr: np.ndarray) -> None:
    """Save an array as .npy atomically, without pickling."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)

    atomic_write(path, write)


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Save the model's ``state_dict`` as safetensors, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp))
