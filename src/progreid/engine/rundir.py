"""One folder per run: resolved config, metrics.jsonl, per-round checkpoints, resumable state.

Safe to leave running for hours (fast-reid's Checkpointer and Lightning's checkpoint connector do
the same three things):
- one writer: :class:`~progreid.folder_lock.FolderLock` on the folder from the first write to the
  process's end (a second ``adapt`` on the same ``--out`` fails naming the holder's pid);
- atomic writes (temp file + rename): a run killed at any instant leaves the folder at its last
  finished round;
- verified rounds: every round's files (weights, arrays) are hashed (SHA-256) into that round's
  record, ``checkpoints/round_NN.json``, which also holds the metrics rows; ``state.json`` names the
  last round and its record's hash. ``--resume``, ``export`` and ``rank`` check the hashes; on a
  corrupt or missing file ``--resume`` says which and continues from the last round that verifies.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from progreid.config import Config, config_from_dict
from progreid.errors import ProgReIDError
from progreid.folder_lock import LOCK_NAME, FolderLock, ensure_writable_folder
from progreid.models.checkpoint import atomic_write, save_npy, sha256_file

# keys a resumed run may change: how many rounds it runs, and where it runs (the results are the same)
SAFE_ON_RESUME = ("loop.max_rounds", "device")
RUN_FILES = {"config.yaml", "metrics.jsonl", "state.json", "checkpoints", LOCK_NAME}


@dataclasses.dataclass
class RoundRecord:
    """What a finished round left, as recorded when it was written."""

    round: int
    files: dict[str, str]        # path relative to the run folder -> SHA-256
    rows: list[dict[str, Any]]   # the metrics rows up to this round
    arrays: list[str]            # names of the state arrays saved with the round
    stop_reason: str = ""


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = FolderLock(self.path)

    # files
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def checkpoint(self, round_: int) -> Path:
        return self.path / "checkpoints" / f"round_{round_:02d}.safetensors"

    def array_file(self, name: str, round_: int) -> Path:
        return self.path / "checkpoints" / f"{name}_round_{round_:02d}.npy"

    def record_file(self, round_: int) -> Path:
        return self.path / "checkpoints" / f"round_{round_:02d}.json"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.path).as_posix()

    # lifecycle
    def start(self, cfg: Config, resume: bool, force: bool = False) -> tuple[Config, dict[str, Any] | None, list[str]]:
        """Lock the folder, then create it or reopen it with ``resume``. Returns the config to use, the
        saved state (None for a new run) and notes to show (a safe option changed on resume).

        A folder whose run never finished round 0 (no ``state.json``) holds nothing to lose: it is
        started afresh, so a run that failed on bad input can simply be repeated. A resumed run keeps
        its saved config: ``cfg`` may differ from it only in :data:`SAFE_ON_RESUME`.
        """
        if self.path.is_dir() and not resume and not force and not (self.path / "config.yaml").exists() and \
                any(p.name not in RUN_FILES for p in self.path.iterdir()):
            raise ProgReIDError(f"--out {self.path}: a folder that holds other files and no run. Fix: choose a new "
                                "or empty folder, or pass --force to write the run there anyway.")
        ensure_writable_folder(self.path)
        self.lock.acquire()
        has_run = self.state_file.exists() or any(self.path.glob("checkpoints/round_*.json"))
        if has_run and not resume:
            raise ProgReIDError(f"{self.path}: already holds a run. Fix: pass --resume to continue it, "
                                "or choose another --out.")
        if resume and not self.config_file.exists():
            raise ProgReIDError(f"{self.path}: no run to resume there (no config.yaml). Fix: drop --resume.")
        notes: list[str] = []
        if resume:
            saved_cfg = self.saved_config()
            cfg, notes = reconcile_resume(saved_cfg, cfg, self.path)
        self.write_config(cfg)
        return cfg, (self.read_state() if has_run and resume else None), notes

    def saved_config(self) -> Config:
        try:
            data = yaml.safe_load(self.config_file.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ProgReIDError(f"{self.config_file}: cannot be read ({type(exc).__name__}). Fix: restore it, or "
                                "start the run afresh in another --out.") from None
        if not isinstance(data, dict):
            raise ProgReIDError(f"{self.config_file}: holds no run configuration. Fix: restore it, or start afresh.")
        return config_from_dict(data)

    def set_max_rounds(self, cfg: Config, state: dict[str, Any] | None, max_rounds: int) -> dict[str, Any] | None:
        """Change the round budget of this run in place (config.yaml and state); ``cfg`` is updated."""
        last = state["last_round"] if state else 0
        if max_rounds < max(last, 1):
            raise ProgReIDError(f"{self.path}: max rounds {max_rounds} is below the {last} rounds already made. "
                                f"Fix: ask for at least {max(last, 1)}.")
        cfg.loop.max_rounds = max_rounds
        self.write_config(cfg)
        if state is not None and last < max_rounds:
            state = {**state, "finished": False}
        return state

    def write_config(self, cfg: Config) -> None:
        atomic_write(self.config_file, lambda t: Path(t).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` (for reading a run; resuming takes them from the round records)."""
        if not self.metrics_file.exists():
            return []
        rows = []
        for n, line in enumerate(self.metrics_file.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ProgReIDError(f"{self.metrics_file}:{n}: not a JSON line (the file was changed or is "
                                        "damaged). Fix: `progreid adapt --out RUN --resume` rewrites it from the "
                                        "run's round records.") from None
        return rows

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        atomic_write(self.metrics_file, lambda t: Path(t).write_text(text))

    def read_state(self) -> dict[str, Any]:
        """``state.json``; unreadable, it says so and the last round record found stands in for it."""
        try:
            state = json.loads(self.state_file.read_text())
            if not isinstance(state, dict) or not isinstance(state.get("last_round"), int):
                raise ValueError("no last_round")
            return state
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            rounds = self.recorded_rounds()
            return {"last_round": max(rounds, default=-1), "finished": False, "unreadable": f"{exc}"[:80]}

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_file, lambda t: Path(t).write_text(json.dumps(state, indent=2)))

    def save_array(self, name: str, round_: int, arr: np.ndarray) -> str:
        """Save ``arr`` for ``round_``; returns its SHA-256."""
        path = self.array_file(name, round_)
        save_npy(path, arr)
        return sha256_file(path)

    def load_array(self, name: str, round_: int) -> np.ndarray:
        return np.load(self.array_file(name, round_), allow_pickle=False)

    # round records
    def write_record(self, record: RoundRecord) -> str:
        """Write ``record`` atomically; returns its own SHA-256 (kept in ``state.json``)."""
        path = self.record_file(record.round)
        text = json.dumps(dataclasses.asdict(record), indent=1)
        atomic_write(path, lambda t: Path(t).write_text(text))
        return sha256_file(path)

    def recorded_rounds(self) -> list[int]:
        found = (re.fullmatch(r"round_(\d+)\.json", p.name) for p in self.path.glob("checkpoints/round_*.json"))
        return sorted(int(m.group(1)) for m in found if m)

    def verified_record(self, round_: int, expected_sha: str | None = None) -> tuple[RoundRecord | None, list[str]]:
        """(the record of ``round_``, []) when it and every file it lists match their hashes, else
        (None, the problems, each naming its file)."""
        path = self.record_file(round_)
        name = self.relative(path)
        if not path.is_file():
            return None, [f"{name}: missing"]
        if expected_sha is not None and sha256_file(path) != expected_sha:
            return None, [f"{name}: does not match the SHA-256 in state.json (damaged or changed)"]
        try:
            record = RoundRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, UnicodeDecodeError):
            return None, [f"{name}: unreadable (damaged)"]
        problems = []
        for rel, sha in record.files.items():
            file = self.path / rel
            if not file.is_file():
                problems.append(f"{rel}: missing")
            elif sha256_file(file) != sha:
                problems.append(f"{rel}: does not match the SHA-256 recorded when it was written (damaged or changed)")
        return (None, problems) if problems else (record, [])

    def last_good_round(self, state: dict[str, Any]) -> tuple[RoundRecord | None, list[str]]:
        """The newest round at or before ``state``'s last one that verifies, and what failed on the way."""
        problems = [f"state.json: unreadable ({state['unreadable']})"] if "unreadable" in state else []
        last = state["last_round"]
        for r in sorted((r for r in self.recorded_rounds() if r <= last), reverse=True):
            expected = state.get("record_sha256") if r == last and "unreadable" not in state else None
            record, found = self.verified_record(r, expected)
            if record is not None:
                return record, problems
            problems.extend(found)
        return None, problems

    def verified_checkpoint(self, round_: int) -> Path:
        """The weights of ``round_``, checked against the hash recorded when they were written (folders
        made before round records existed are read as they are)."""
        ckpt = self.checkpoint(round_)
        if not self.record_file(round_).exists() and ckpt.is_file():
            return ckpt  # an older run folder: no hashes to check
        record, problems = self.verified_record(round_)
        if record is None:
            raise ProgReIDError(f"{self.path}: round {round_} does not verify ({'; '.join(problems)}). Fix: use "
                                "another --round, or `progreid adapt --out RUN --resume` to redo the round.")
        return ckpt


def config_differences(saved: Config, given: Config) -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, given value) for every setting that differs."""
    out: list[tuple[str, Any, Any]] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        for f in dataclasses.fields(a):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(va):
                walk(va, vb, key + ".")
            elif va != vb:
                out.append((key, va, vb))

    walk(saved, given, "")
    return out


def reconcile_resume(saved: Config, given: Config, where: Path) -> tuple[Config, list[str]]:
    """The config a resumed run continues with: the saved one, with the safe changes of ``given``
    applied and said; any other difference is an error naming each setting."""
    diffs = [(k, a, b) for k, a, b in config_differences(saved, given) if not (k == "preset" and not a)]
    unsafe = [(k, a, b) for k, a, b in diffs if k not in SAFE_ON_RESUME]
    if unsafe:
        listed = "; ".join(f"{k}: saved {a!r}, given {b!r}" for k, a, b in unsafe)
        raise ProgReIDError(f"{where}: --resume continues the run with its saved settings, and these differ: {listed}. "
                            "Fix: drop those options to continue the run, or start a new run in another --out "
                            "(only --max-rounds and --device may change on resume).")
    notes = []
    for key, a, b in diffs:
        if key == "loop.max_rounds":
            continue  # applied and said by the loop (set_max_rounds)
        if key == "device":
            saved.device = b
            notes.append(f"resuming on device {b} (the run was made on {a})")
    return saved, notes
