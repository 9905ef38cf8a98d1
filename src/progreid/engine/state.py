"""What crosses rounds, in one object, and how a run folder saves and restores it.

Saved after every round (weights, named arrays such as TCUL's moving centers, the metrics rows),
so ``--resume`` continues exactly where an uninterrupted run would be. Caches that can be
recomputed from what is saved (features, the pristine original model) are never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.torch import load_file
from torch import nn

from progreid.engine.rundir import RunDir
from progreid.models import save_weights


@dataclass
class RunState:
    model: nn.Module                    # the model being adapted
    original: nn.Module                 # the source model, never trained (PUL restarts from it)
    last_round: int = -1                # last finished round; 0 = direct transfer evaluated
    finished: bool = False
    stop_reason: str = ""               # why the loop stopped before its round budget, if it did
    rows: list[dict[str, Any]] = field(default_factory=list)       # one metrics row per finished round
    arrays: dict[str, np.ndarray] = field(default_factory=dict)    # saved per round: "centers" (TCUL), ...
    # recomputable caches, never saved
    features: np.ndarray | None = None             # the current model's features of every training image
    original_features: np.ndarray | None = None    # the original model's (PUL's classifier warm-up)

    def model_changed(self) -> None:
        """Call after training: features of the old weights are stale."""
        self.features = None


def save_state(run: RunDir, state: RunState) -> None:
    """Write round ``state.last_round``: weights and arrays first, metrics, then ``state.json`` last
    (the commit point: a run killed before it resumes from the previous round)."""
    r = state.last_round
    if r >= 1:
        save_weights(state.model, run.checkpoint(r))
    for name, arr in state.arrays.items():
        run.save_array(name, r, arr)
    run.write_metrics(state.rows)
    write_status(run, state)


def write_status(run: RunDir, state: RunState) -> None:
    """``state.json`` alone: which round is the last finished one, whether the run is over, its arrays."""
    run.write_state({"last_round": state.last_round, "finished": state.finished, "arrays": sorted(state.arrays)})


def restore_state(run: RunDir, saved: dict[str, Any], state: RunState) -> None:
    """Load what ``save_state`` wrote for the last finished round into ``state``."""
    r = saved["last_round"]
    state.last_round, state.finished = r, bool(saved.get("finished"))
    state.rows = [row for row in run.metrics() if row["round"] <= r]
    if r >= 1:
        state.model.load_state_dict(load_file(str(run.checkpoint(r))))
    names = saved.get("arrays", ["centers"] if saved.get("has_centers") else [])  # older folders: has_centers
    state.arrays = {name: run.load_array(name, r) for name in names}
