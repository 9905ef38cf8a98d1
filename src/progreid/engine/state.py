"""What crosses rounds, in one object, and how a run folder saves and restores it.

Saved after every round (weights, named arrays such as TCUL's moving centers, the metrics rows),
so ``--resume`` continues exactly where an uninterrupted run would be. Caches that can be
recomputed from what is saved (features, the pristine original model) are never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from safetensors.torch import load_file
from torch import nn

from progreid.engine.rundir import RoundRecord, RunDir
from progreid.errors import ProgReIDError
from progreid.models import save_weights
from progreid.models.checkpoint import sha256_file


@dataclass
class RunState:
    model: nn.Module                    # the model being adapted
    original: nn.Module                 # the source model, never trained (PUL restarts from it)
    last_round: int = -1                # last finished round; 0 = direct transfer evaluated
    finished: bool = False
    stop_reason: str = ""               # why the loop stopped before its round budget, if it did
    record_sha256: str = ""             # SHA-256 of the last finished round's record (state.json keeps it)
    rows: list[dict[str, Any]] = field(default_factory=list)       # one metrics row per finished round
    arrays: dict[str, np.ndarray] = field(default_factory=dict)    # saved per round: "centers" (TCUL), ...
    # recomputable caches, never saved
    features: np.ndarray | None = None             # the current model's features of every training image
    original_features: np.ndarray | None = None    # the original model's (PUL's classifier warm-up)

    def model_changed(self) -> None:
        """Call after training: features of the old weights are stale."""
        self.features = None


def save_state(run: RunDir, state: RunState) -> None:
    """Write round ``state.last_round``: weights and arrays first, then the round's record (their
    hashes and the metrics rows), metrics.jsonl, and ``state.json`` last (the commit point: a run
    killed before it resumes from the previous round)."""
    r = state.last_round
    files = {}
    if r >= 1:
        save_weights(state.model, run.checkpoint(r))
        files[run.relative(run.checkpoint(r))] = sha256_file(run.checkpoint(r))
    for name, arr in state.arrays.items():
        files[run.relative(run.array_file(name, r))] = run.save_array(name, r, arr)
    state.record_sha256 = run.write_record(RoundRecord(r, files, state.rows, sorted(state.arrays), state.stop_reason))
    run.write_metrics(state.rows)
    write_status(run, state)


def write_status(run: RunDir, state: RunState) -> None:
    """``state.json`` alone: which round is the last finished one, whether the run is over, its
    record's hash."""
    run.write_state({"last_round": state.last_round, "finished": state.finished, "arrays": sorted(state.arrays),
                     "record_sha256": state.record_sha256})


def restore_state(run: RunDir, saved: dict[str, Any], state: RunState, log: Callable[[str], None] = print) -> None:
    """Load the last finished round that verifies into ``state``; say which files did not and where the
    run goes on from. Folders written before round records existed are restored as they are."""
    if "record_sha256" not in saved and "unreadable" not in saved and not run.recorded_rounds():
        return _restore_unrecorded(run, saved, state)
    record, problems = run.last_good_round(saved)
    last = saved["last_round"]
    if record is None:
        raise ProgReIDError(f"{run.path}: no finished round verifies ({'; '.join(problems) or 'no round records'}). "
                            "Fix: start the run afresh in another --out (or remove this one).")
    if problems:
        log(f"{run.path}: {'; '.join(problems)}")
        log(f"resuming from round {record.round}, the last round that verifies"
            + (f" (round {last} and later are redone)" if record.round < last else ""))
    state.last_round = record.round
    state.finished = bool(saved.get("finished")) and not problems
    state.stop_reason = record.stop_reason
    state.rows = [row for row in record.rows if row["round"] <= record.round]
    state.record_sha256 = saved.get("record_sha256", "") if not problems else ""
    if record.round >= 1:
        state.model.load_state_dict(load_file(str(run.checkpoint(record.round))))
    state.arrays = {name: run.load_array(name, record.round) for name in record.arrays}


def _restore_unrecorded(run: RunDir, saved: dict[str, Any], state: RunState) -> None:
    """A run folder from before round records: weights and rows as they are, missing files named."""
    r = saved["last_round"]
    state.last_round, state.finished = r, bool(saved.get("finished"))
    state.rows = [row for row in run.metrics() if row["round"] <= r]
    names = saved.get("arrays", ["centers"] if saved.get("has_centers") else [])  # older folders: has_centers
    needed = ([run.checkpoint(r)] if r >= 1 else []) + [run.array_file(n, r) for n in names]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise ProgReIDError(f"{missing[0]}: missing, so round {r} cannot be resumed. Fix: restore the file, or start "
                            "the run afresh in another --out.")
    try:
        if r >= 1:
            state.model.load_state_dict(load_file(str(run.checkpoint(r))))
        state.arrays = {name: run.load_array(name, r) for name in names}
    except Exception as exc:  # noqa: BLE001 - a damaged file of an unverified folder
        raise ProgReIDError(f"{run.path}: round {r} cannot be read ({type(exc).__name__}). Fix: start the run afresh "
                            "in another --out.") from None
