"""One fine-tuning round: train an embedding model on (image index, class) pairs.

Used by source training (labeled identities), PUL (softmax over clusters with a fresh classifier)
and TCUL/SUL (batch-hard triplet on P x K batches, no classifier). Batches are gathered from the
uint8 image cache and augmented inline (cheap: see ``data.transforms.augment``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from progreid.config import TrainConfig
from progreid.data.sampler import pk_batches, shuffled_batches
from progreid.data.transforms import augment, draw_augment
from progreid import distributed
from progreid.engine.device import autocast
from progreid.errors import ProgReIDError
from progreid.losses import LOSSES, batch_hard_triplet, cross_entropy_smooth
from progreid.memory import ClusterMemory
from progreid.label_ensemble import SoftLabels, soft_label_loss
from progreid.support import ise_loss, support_lambda



@dataclass
class FitStats:
    epochs: int = 0
    images: int = 0
    seconds: float = 0.0
    loss: list[float] = field(default_factory=list)  # mean loss per epoch
    accuracy: list[float] = field(default_factory=list)  # softmax: the classifier's top-1 on its training batches

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def make_classifier(feature_dim: int, num_classes: int, dropout: float) -> nn.Module:
    """A freshly initialised classifier (PUL re-creates it every round: cluster ids change)."""
    linear = nn.Linear(feature_dim, num_classes)
    nn.init.normal_(linear.weight, std=0.001)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.Dropout(dropout), linear)


def warm_up_classifier(classifier: nn.Module, features: np.ndarray, labels: np.ndarray, steps: int,
                       label_smooth: float, seed: int) -> None:
    """Fit a fresh classifier on frozen features (full batch, Adam) so that fine-tuning starts from
    meaningful logits instead of sending random-classifier gradients into the backbone."""
    torch.manual_seed(seed)
    device = next(classifier.parameters()).device
    x = torch.as_tensor(np.asarray(features, np.float32), device=device).to(torch.get_default_dtype())
    y = torch.as_tensor(labels, device=device)
    opt = torch.optim.Adam(classifier.parameters(), lr=0.01)
    classifier.train()
    for _ in range(steps):
        loss = cross_entropy_smooth(classifier(x), y, label_smooth)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def freeze_modules(model: nn.Module, prefixes: str) -> list[str]:
    """Fix the parameters of the named submodules and keep their BatchNorm layers in eval mode."""
    names = [p.strip() for p in prefixes.split(",") if p.strip()]
    if not names:
        return []
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        top = [n for n in modules if n and "." not in n]
        raise ProgReIDError(f"train.freeze: no module {unknown} in this model; top-level modules: {top}.")
    for n in names:
        for p in modules[n].parameters():
            p.requires_grad_(False)
        modules[n].eval()
    return names


def make_optimizer(cfg: TrainConfig, model: nn.Module, classifier: nn.Module | None) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    if classifier is not None:
        groups.append({"params": list(classifier.parameters()), "lr": cfg.lr * cfg.classifier_lr_mult})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)  # Nesterov needs momentum: 0 is plain SGD
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ProgReIDError(f"train.optimizer {cfg.optimizer!r}: choose sgd or adam.")


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """Multiplier of the base learning rate at ``epoch`` (0-based): linear warm-up, then step/cosine."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    e = epoch - cfg.warmup_epochs
    if cfg.scheduler == "step":
        return 0.1 ** (e // max(cfg.step_size, 1))
    if cfg.scheduler == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * e / span))
    return 1.0


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The augmentation generator of one global batch, keyed by (seed, epoch, batch), never by rank."""
    state = np.random.SeedSequence([seed, epoch, batch]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


def _batches(cfg: TrainConfig, labels: np.ndarray, rng: np.random.Generator, num_batches: int = 0) -> Iterator[np.ndarray]:
    """Positions into ``labels`` for one epoch (of ``num_batches`` P x K batches where > 0)."""
    if "triplet" in cfg.loss or cfg.loss == "contrast":
        return pk_batches(labels, cfg.p, cfg.k, rng, cfg.small_clusters, num_batches)
    return shuffled_batches(len(labels), cfg.batch_size, rng)


def fit(model: nn.Module, images: np.ndarray, indices: np.ndarray, labels: np.ndarray, cfg: TrainConfig,
        device: torch.device, seed: int, progress: bool = True, desc: str = "train",
        features: np.ndarray | None = None, memory: ClusterMemory | None = None,
        epoch_offset: int = 0, memory_targets: np.ndarray | None = None, total_epochs: int = 0,
        soft_labels: SoftLabels | None = None, epoch_batches: int = 0) -> FitStats:
    """Train ``model`` in place on ``images[indices]`` with class ``labels`` (0..C-1) for ``cfg.epochs``.

    ``features``: the model's current features of ``images[indices]``, used to warm up a fresh
    classifier when ``cfg.classifier_warmup`` > 0. ``memory``: the cluster memory of
    ``train.loss: contrast`` (updated in place); ``memory_targets``: each sample's entry in it where that
    is not its class (camera-aware proxies). ``epoch_offset``: epochs already trained in earlier
    calls, so that a learning-rate schedule runs across rounds of one epoch each; ``total_epochs``: the
    whole run's, over which ISE's support samples (``cfg.support``) move further out. ``soft_labels``: RLCC's
    (``label_ensemble.SoftLabels``, rows by position in ``indices``), trained with weight
    ``1 - cfg.ensemble_alpha`` beside the memory loss. ``epoch_batches`` > 0: P x K batches per epoch
    (clusters drawn again in fresh orders), instead of every class once.
    """
    if cfg.loss not in LOSSES:
        raise ProgReIDError(f"train.loss {cfg.loss!r}: choose one of {LOSSES}.")
    if (cfg.loss == "contrast") != (memory is not None):
        raise ProgReIDError("train.loss contrast trains against a cluster memory: use it with "
                            "stages.fine_tune=cluster_memory (and only there).")
    indices, labels = np.asarray(indices), np.asarray(labels, np.int64)
    if len(indices) == 0:
        raise ProgReIDError("nothing to train on: the selection kept no sample.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    num_classes = int(labels.max()) + 1
    classifier = None
    if "softmax" in cfg.loss:
        classifier = make_classifier(model.feature_dim, num_classes, cfg.dropout).to(device)
        if cfg.classifier_warmup > 0 and features is not None:
            warm_up_classifier(classifier, features, labels, cfg.classifier_warmup, cfg.label_smooth, seed)
    model.to(device, memory_format=torch.channels_last).train()
    frozen = freeze_modules(model, cfg.freeze)
    net = distributed.wrap(model, global_batchnorm=cfg.batchnorm == "global")
    head = distributed.wrap(classifier) if classifier is not None else None
    optimizer = make_optimizer(cfg, model, classifier)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    labels_t = torch.as_tensor(labels)
    memory_t = labels_t if memory_targets is None else torch.as_tensor(np.asarray(memory_targets, np.int64))
    height, width = images.shape[1:3]
    stats = FitStats()
    start = time.perf_counter()

    for epoch in range(cfg.epochs):
        for g, lr in zip(optimizer.param_groups, base_lrs):
            g["lr"] = lr * lr_factor(cfg, epoch_offset + epoch)
        batches = list(_batches(cfg, labels, rng, epoch_batches))
        if not batches:
            raise ProgReIDError(f"no complete batch: {len(indices)} samples in {num_classes} classes are too few "
                                f"for train.batch_size={cfg.batch_size} / train.p={cfg.p}, train.k={cfg.k}.")
        losses, correct, seen = [], torch.zeros((), dtype=torch.long, device=device), 0
        bar = tqdm(batches, desc=f"{desc} {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for b, batch in enumerate(bar):
            sizes = distributed.part_sizes(len(batch))
            if len(batch) < 2 or min(sizes) < 1:
                continue  # BatchNorm cannot train on one image, and every rank needs a share (all ranks skip alike)
            # the global batch's augmentation, drawn from (seed, epoch, batch) and sliced: alike on any world size
            draws = draw_augment(len(batch), height, width, cfg.augment,
                                 batch_generator(seed, epoch_offset + epoch, b)).rows(distributed.local_rows(len(batch)))
            x = augment(images[indices[distributed.local_part(batch)]], cfg.augment, device=device, draws=draws)
            y = labels_t[batch].to(device)
            with autocast(device):
                # the losses see the whole global batch on every rank: batch-hard mining, per-camera means and
                # normalisation as one process would (gather_with_grad sends each rank its rows' gradient)
                feats = distributed.gather_with_grad(net(x), sizes).to(torch.get_default_dtype())  # out of bf16
                loss = torch.zeros((), device=device)
                if head is not None:
                    logits = head(feats).to(torch.get_default_dtype())
                    loss = loss + cross_entropy_smooth(logits, y, cfg.label_smooth)
                    correct += (logits.detach().argmax(1) == y).sum()
                    seen += len(y)
                if "triplet" in cfg.loss:
                    loss = loss + batch_hard_triplet(feats, y, cfg.margin)
                if memory is not None:
                    y_mem = memory_t[batch].to(device)
                    if cfg.support:  # ISE's degree follows the share of the whole run trained so far
                        done = (epoch_offset + epoch + b / len(batches)) / max(total_epochs, epoch_offset + cfg.epochs)
                        loss = loss + ise_loss(memory, feats, y_mem, support_lambda(done, cfg.support_lambda),
                                               cfg.lp_weight, cfg.lp_temperature)
                    else:
                        loss = loss + memory.loss(feats, y_mem)
                    if soft_labels is not None:
                        a = cfg.ensemble_alpha
                        loss = (1 - a) * soft_label_loss(memory.class_logits(feats),
                                                         soft_labels.rows(torch.as_tensor(batch).to(device))) + a * loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if memory is not None:  # every rank moves the entries by the whole global batch, in its order
                memory.update(feats.detach(), y_mem)
            losses.append(loss.detach())  # no host sync per step (it would stall a GPU)
            stats.images += len(batch)
            if progress and b % 10 == 0:
                bar.set_postfix(loss=f"{float(torch.stack(losses[-10:]).mean()):.3f}")
        # every rank computed the losses of the whole batch: the epoch's figures are the same on all of them
        stats.loss.append(float(torch.stack(losses).mean()) if losses else 0.0)
        if seen:
            stats.accuracy.append(float(correct) / seen)
        stats.epochs += 1
    stats.seconds = time.perf_counter() - start
    distributed.check_in_sync(model)
    for name in frozen:
        for p in dict(model.named_modules())[name].parameters():
            p.requires_grad_(True)
    model.eval()
    return stats
