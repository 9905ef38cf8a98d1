"""What an export starts from: a run folder (its config and a round's checkpoint) or bare weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from torch import nn

from progreid.config import config_from_dict
from progreid.engine.rundir import RunDir
from progreid.errors import ProgReIDError
from progreid.models import load_model
from progreid.models.checkpoint import read_state_dict
from progreid.models.factory import ARCHS


@dataclass
class ExportSource:
    model: nn.Module
    arch: str
    name: str                   # what the weights are called in file names (the run folder's name)
    size: tuple[int, int]       # input (height, width)
    weights: Path
    bare_resnet: bool           # a ResNet with no neck or head (what torchreid's resnet builders hold)
    last_stride: int = 1
    round: int | None = None    # the run's round these weights are from (None: bare weights)

    @property
    def file_stem(self) -> str:
        """``<arch>_<name>``: trackers (BoxMOT) pick the network from the arch in a weights file's name."""
        return self.name if self.name.startswith(self.arch) else f"{self.arch}_{self.name}"


BEST_ESTIMATE = "best-estimate"


def best_estimate_round(run: RunDir, last: int) -> tuple[int, float]:
    """(round, its label_free_score): the finished round a user without labels would export, the one
    whose label-free signal on the unlabeled crops is highest (a later round wins a tie). The signal's
    evidence so far is a handful of runs (BENCHMARKS.md); a labeled check or ``verify`` outranks it."""
    from progreid.evaluation.label_free import best_round

    found = best_round(run.metrics(), last)
    if found is None:
        raise ProgReIDError(f"{run.path}: no finished round has a label_free_score (one camera, or a run from "
                            "before it was measured). Fix: pass --round N, or compare rounds with `progreid verify`.")
    return found


def load_export_source(path: str | Path, arch: str | None = None, round_: int | str | None = None,
                       size: tuple[int, int] | None = None) -> ExportSource:
    """A run folder (``config.yaml`` says the arch; the last finished round unless ``round_``, a number
    or ``"best-estimate"``) or a weights file (then ``arch`` is required)."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        if not run.config_file.is_file():
            raise ProgReIDError(f"{path}: not a run folder (no config.yaml). Fix: pass a run folder made by "
                                "`progreid adapt`, or a weights file with --arch.")
        cfg = config_from_dict(yaml.safe_load(run.config_file.read_text()))
        last = run.read_state()["last_round"] if run.state_file.is_file() else 0
        r = last if round_ is None else best_estimate_round(run, last)[0] if round_ == BEST_ESTIMATE else round_
        if r < 1 or r > last:
            finished = f"finished rounds: 1..{last}" if last >= 1 else "no round has finished yet"
            raise ProgReIDError(f"{path}: no adapted weights for round {r} ({finished}). "
                                "Fix: let the run finish a round, or pass --round within that range.")
        weights = run.verified_checkpoint(r)
        if arch and arch != cfg.model.arch:
            raise ProgReIDError(f"--arch {arch} differs from the run's {cfg.model.arch}; drop --arch for a run folder.")
        m = cfg.model
        model = load_model(m.arch, weights, last_stride=m.last_stride, embedding_dim=m.embedding_dim, bn_neck=m.bn_neck,
                           pooling=m.pooling)
        return ExportSource(model.eval(), m.arch, path.resolve().name, size or (cfg.data.height, cfg.data.width),
                            weights, m.arch.startswith("resnet") and not (m.embedding_dim or m.bn_neck), m.last_stride, r)
    if not arch:
        raise ProgReIDError(f"{path}: bare weights need --arch (one of {ARCHS}).")
    keys = read_state_dict(path)
    # a ResNet's extra layers show in its keys (a cc run's BN neck, an embedding head)
    bn_neck = any(k.startswith("neck.") for k in keys)
    embedding_dim = int(keys["head.0.weight"].shape[0]) if "head.0.weight" in keys else 0
    model = load_model(arch, path, bn_neck=bn_neck, embedding_dim=embedding_dim)
    return ExportSource(model.eval(), arch, path.stem.split(".")[0], size or (256, 128), path,
                        arch.startswith("resnet") and not (bn_neck or embedding_dim))
