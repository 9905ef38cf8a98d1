"""Runs across processes with PyTorch's own engine (``torchrun``): who is who, and the few
collective steps a round needs. A plain ``progreid adapt`` (no ``torchrun``) is one process and
every function here is then a no-op, so the single-process path is unchanged.

A round under ``torchrun --nproc_per_node N``: every rank extracts its contiguous slice of the
images and the slices are gathered (every rank then holds all features); rank 0 alone
pseudo-labels and selects, and broadcasts the result; training runs under DistributedDataParallel,
each rank forwarding its share of every global batch; rank 0 alone writes the run folder, log and
report. Backend: nccl on GPUs, gloo on CPUs.

A seed and a global batch define the run, whatever the world size: BatchNorm normalises with the
whole batch's statistics (``models.global_batchnorm``), every sample's augmentation is drawn for the
global batch from a generator keyed by (seed, epoch, batch) and sliced, and the losses are computed on
the gathered global batch on every rank (``gather_with_grad``), so each rank's rows get the gradient
they have in one process. What still differs is the order of floating-point reductions.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


def launched() -> bool:
    """True inside a multi-process ``torchrun`` launch."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: str = "auto") -> str:
    """Join the process group ``torchrun`` describes (a no-op otherwise); return the device to use:
    ``cuda:LOCAL_RANK`` with nccl where GPUs are asked for (or ``auto`` finds them), else CPU with gloo."""
    if not launched() or active():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or str(device).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return f"cuda:{local}" if use_cuda else "cpu"


def teardown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (pickled between this run's own processes only)."""
    if not active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 alone, its result on every rank. An error on rank 0 (a user's mistake such as
    a locked run folder) is raised on every rank, so no rank waits forever."""
    if not active():
        return fn()
    result = None
    if is_main():
        try:
            result = (fn(), None)
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            result = (None, exc)
    value, error = broadcast(result)
    if error is not None:
        raise error
    return value


def on_main_then_share(fn: Callable[[], T], state) -> T:
    """``fn()`` on rank 0 alone (pseudo-labelling: one k-means or DBSCAN, not one per rank); every rank
    gets its result and rank 0's ``state.arrays`` (what labellers keep across rounds)."""
    if not active():
        return fn()
    value, state.arrays = on_main(lambda: (fn(), state.arrays))
    return value


def share_state(state) -> None:
    """After rank 0 restored a run folder: its weights, arrays and rows on every rank."""
    if not active():
        return
    for t in state.model.state_dict().values():
        buf = t.to(_comm_device())
        dist.broadcast(buf, 0)
        t.copy_(buf)
    shared = broadcast((state.last_round, state.finished, state.stop_reason, state.rows, state.arrays))
    state.last_round, state.finished, state.stop_reason, state.rows, state.arrays = shared


def gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (small things: counts, lists of indices)."""
    if not active():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(n: int) -> slice:
    """This rank's contiguous slice of ``n`` items (the first ranks take one more when n % world != 0)."""
    return slice(*_bounds(n, world_size(), rank()))


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_rows(local: np.ndarray, n: int, to: str = "all") -> np.ndarray | None:
    """Concatenate every rank's ``shard(n)`` rows, in rank order, on every rank (``to="all"``) or on
    rank 0 alone (``to="main"``: the others get None, and hold no copy)."""
    if not active():
        return local
    w = world_size()
    size = -(-n // w)
    dev = _comm_device()
    padded = torch.zeros((size, *local.shape[1:]), dtype=torch.from_numpy(local[:0]).dtype, device=dev)
    padded[:len(local)] = torch.from_numpy(np.ascontiguousarray(local)).to(dev)
    counts = [b - a for a, b in (_bounds(n, w, r) for r in range(w))]
    if to == "main":
        parts = [torch.empty_like(padded) for _ in range(w)] if is_main() else None
        dist.gather(padded, parts, dst=0)
        return np.concatenate([p[:c].cpu().numpy() for p, c in zip(parts, counts)]) if is_main() else None
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    return np.concatenate([p[:c].cpu().numpy() for p, c in zip(parts, counts)])


def _bounds(n: int, w: int, r: int) -> tuple[int, int]:
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


class _SumWithGrad(torch.autograd.Function):
    """All-reduce (sum) whose backward is the sum of every rank's gradient: with DistributedDataParallel
    averaging the parameters' gradients, the result is the gradient of one process on the whole batch."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the ranks, differentiably (global BatchNorm statistics)."""
    return _SumWithGrad.apply(x) if active() else x


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.rows = len(x)
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every rank's loss of the global batch depends on this rank's rows
        return grad[rank() * ctx.rows:(rank() + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The global batch's rows (``sizes`` rows per rank, in rank order) on every rank, differentiably:
    a loss of the whole batch computed alike on every rank then gives each rank's rows the gradient
    they have in one process (DistributedDataParallel averages what it sums)."""
    if not active():
        return x
    size = max(sizes)
    padded = torch.cat([x, x.new_zeros((size - len(x), *x.shape[1:]))]) if len(x) < size else x
    full = _GatherWithGrad.apply(padded)
    keep = torch.cat([torch.arange(r * size, r * size + n) for r, n in enumerate(sizes)]).to(full.device)
    return full[keep]


def wrap(module: torch.nn.Module, global_batchnorm: bool = True) -> torch.nn.Module:
    """``module`` under DistributedDataParallel (gradients averaged across ranks), its BatchNorm layers
    over the global batch unless ``global_batchnorm`` is off (``train.batchnorm: per_rank``); as is
    outside ``torchrun``."""
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    if global_batchnorm:
        from progreid.models.global_batchnorm import use_global_batchnorm

        use_global_batchnorm(module)

    dev = next(module.parameters()).device
    # gradients as views of DDP's buckets: no copy, and no stride mismatch warning for channels-last weights
    return DistributedDataParallel(module, device_ids=[dev] if dev.type == "cuda" else None,
                                   gradient_as_bucket_view=True)


def check_in_sync(module: torch.nn.Module) -> None:
    """Fail loudly if the ranks' weights differ after training (DistributedDataParallel keeps them
    bit-identical; a difference means a rank trained apart, and its run would be wrong silently)."""
    if not active():
        return
    with torch.no_grad():
        digest = float(sum(p.double().sum() + p.double().abs().sum() for p in module.parameters()))
    digests = gather_objects(digest)
    if any(d != digests[0] for d in digests):
        raise RuntimeError(f"ranks hold different weights after training (checksums {digests}): "
                           "the processes fell out of sync. Fix: relaunch; report it if it repeats.")


def part_sizes(n: int) -> list[int]:
    """How many of a global batch of ``n`` each rank takes (``local_part``)."""
    return [len(a) for a in np.array_split(np.arange(n), world_size())]


def local_rows(n: int) -> slice:
    """The rows of a global batch of ``n`` this rank takes (``local_part``'s positions)."""
    start = sum(part_sizes(n)[:rank()])
    return slice(start, start + part_sizes(n)[rank()])


def local_part(batch: np.ndarray) -> np.ndarray:
    """This rank's share of a global batch: contiguous, so a P x K batch gives each rank whole identities."""
    return batch[local_rows(len(batch))] if active() else batch
