"""Batch samplers: plain shuffled batches and P identities x K instances (for the triplet loss)."""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator, drop_last: bool = True) -> Iterator[np.ndarray]:
    """Shuffled batches; the remainder is dropped (or kept), but never as a batch of one image,
    which BatchNorm cannot train on. Fewer than ``batch_size`` samples make one smaller batch."""
    order = rng.permutation(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for s in range(0, stop, batch_size):
        if stop - s >= 2:
            yield order[s:min(s + batch_size, stop)]


def pk_batches(labels: np.ndarray, p: int, k: int, rng: np.random.Generator,
               small: str = "replace", num_batches: int = 0) -> Iterator[np.ndarray]:
    """One epoch of P x K batches over ``labels`` (one entry per sample; -1 = not trained on).

    Every label appears once per epoch, with K of its samples: drawn without replacement when it
    has at least K, else with replacement (``small="replace"``) or the label is left out
    (``small="skip"``). Batches hold P distinct labels; the last incomplete batch is dropped,
    unless it would be the only one: fewer than P usable labels (a small camera network, an early
    round) still train, on one batch of all of them.

    ``num_batches`` > 0 fixes the epoch's length instead (Cluster Contrast's fixed iterations per
    epoch): passes over the labels, each in a fresh order, until that many batches.
    """
    if num_batches > 0:
        return itertools.islice(_passes(labels, p, k, rng, small), num_batches)
    return _one_pass(labels, p, k, rng, small)


def _passes(labels: np.ndarray, p: int, k: int, rng: np.random.Generator, small: str) -> Iterator[np.ndarray]:
    """Passes of ``_one_pass`` without end, each in a fresh order; none if a pass yields nothing."""
    while True:
        empty = True
        for batch in _one_pass(labels, p, k, rng, small):
            empty = False
            yield batch
        if empty:
            return


def _one_pass(labels: np.ndarray, p: int, k: int, rng: np.random.Generator, small: str) -> Iterator[np.ndarray]:
    labels = np.asarray(labels)
    by_label: dict[int, np.ndarray] = {}
    for lab in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == lab)
        if len(members) < k and small == "skip":
            continue
        if len(members) < 2 and small == "replace":
            continue  # a single image has no positive to pair with
        by_label[int(lab)] = members
    order = rng.permutation(sorted(by_label))
    stop = len(order) - len(order) % p if len(order) >= p else (len(order) if len(order) >= 2 else 0)
    for s in range(0, stop, p):
        batch = []
        for lab in order[s:s + p]:
            members = by_label[int(lab)]
            batch.append(rng.choice(members, size=k, replace=len(members) < k))
        yield np.concatenate(batch)
