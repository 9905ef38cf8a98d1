"""One folder per run: resolved config, metrics.jsonl, per-round checkpoints, resumable state.

Every write is atomic (temp file + rename): a run killed at any instant leaves the folder at its
last finished round, from which ``--resume`` continues.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from progreid.config import Config, config_from_dict
from progreid.errors import ProgReIDError
from progreid.models.checkpoint import atomic_write, save_npy


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

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

    # lifecycle
    def start(self, cfg: Config, resume: bool) -> tuple[Config, dict[str, Any] | None]:
        """Create the folder, or reopen it with ``resume``. Returns the config to use and saved state.

        A folder whose run never finished round 0 (no ``state.json``) holds nothing to lose: it is
        started afresh, so a run that failed on bad input can simply be repeated.
        """
        if self.state_file.exists():
            if not resume:
                raise ProgReIDError(f"{self.path}: already holds a run. Fix: pass --resume to continue it, "
                                    "or choose another --out.")
            saved = config_from_dict(yaml.safe_load(self.config_file.read_text()))
            return saved, json.loads(self.state_file.read_text())
        if resume and not self.config_file.exists():
            raise ProgReIDError(f"{self.path}: no run to resume there (no config.yaml). Fix: drop --resume.")
        if resume:
            cfg = config_from_dict(yaml.safe_load(self.config_file.read_text()))
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(cfg)
        return cfg, None

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
            self.write_state(state)
        return state

    def write_config(self, cfg: Config) -> None:
        atomic_write(self.config_file, lambda t: Path(t).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        atomic_write(self.metrics_file, lambda t: Path(t).write_text(text))

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_file, lambda t: Path(t).write_text(json.dumps(state, indent=2)))

    def save_array(self, name: str, round_: int, arr: np.ndarray) -> Path:
        path = self.array_file(name, round_)
        save_npy(path, arr)
        return path

    def load_array(self, name: str, round_: int) -> np.ndarray:
        return np.load(self.array_file(name, round_), allow_pickle=False)
