"""BatchNorm over the global batch under ``torchrun``: the statistics every rank normalises with are
those of the whole batch, so a run trains alike on 1, 2 or 32 processes (the field's reference
implementations normalise per GPU, and their accuracy moves with the GPU count: Cluster Contrast #16,
SpCL #31, MMT #4).

``torch.nn.SyncBatchNorm`` does this on GPUs only (it refuses CPU tensors); this module does it on any
device with autograd-aware all-reduces of the per-channel sums (the mean, then the squared deviations), so the CPU/gloo path the tests run
is the path a GPU cluster runs. In eval mode, and outside ``torchrun``, it is plain BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from progreid import distributed


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Any-dimensional BatchNorm (1d, 2d) whose training statistics are summed over every rank."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and distributed.active()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        xf = x.to(torch.get_default_dtype())  # out of bf16 (autocast on GPUs)
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], device=x.device, dtype=xf.dtype)
        sums = distributed.sum_with_grad(torch.cat([xf.sum(dims), count]))
        n = sums[-1]
        mean = sums[:c] / n
        shape = [1, c] + [1] * (x.dim() - 2)
        centred = xf - mean.view(shape)
        # a second pass for the variance (sum of squared deviations): E[x^2] - E[x]^2 in float32 loses the
        # variance of channels whose mean is large against their spread
        var = distributed.sum_with_grad((centred * centred).sum(dims)) / n  # biased, as BatchNorm normalises with
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def use_global_batchnorm(model: nn.Module) -> nn.Module:
    """Swap every BatchNorm of ``model`` (in place) for a :class:`GlobalBatchNorm` holding the same
    parameters, buffers and mode; the state dict's keys are unchanged. Returns ``model``."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            swapped = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
            swapped.load_state_dict(child.state_dict())
            swapped.to(next(iter(child.state_dict().values())).device)
            if child.affine:
                swapped.weight.requires_grad_(child.weight.requires_grad)
                swapped.bias.requires_grad_(child.bias.requires_grad)
            swapped.train(child.training)
            setattr(model, name, swapped)
        else:
            use_global_batchnorm(child)
    return model
