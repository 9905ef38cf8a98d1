"""Typed run configuration: dataclass defaults <- method preset (YAML) <- user file <- ``a.b=c``.

Every key of a run is here, so any of them can be set from the command line
(``--set train.lr=0.01``) and the resolved config is written into the run folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from progreid.data.transforms import AugmentConfig
from progreid.errors import ProgReIDError

METHODS = ("pul", "sul", "tcul", "cc", "tcc")
PRESET_FILES = (*METHODS, "train")


@dataclass
class DataConfig:
    target: str = ""            # dataset folder; its train split is used WITHOUT labels
    source: str = ""            # labeled source dataset (progreid train only)
    layout: str = "auto"
    height: int = 256
    width: int = 128
    bad_images: str = "error"   # an unreadable training crop: error (name it and stop) | skip (count it, train without it)


@dataclass
class ModelConfig:
    arch: str = "osnet_x0_25"
    weights: str = ""           # the original (source) model
    last_stride: int = 1        # ResNet only
    embedding_dim: int = 0      # ResNet only: 0 = pooled features
    bn_neck: bool = False       # ResNet only: BatchNorm on the pooled features (cc, tcc); OSNet's fc has its own


@dataclass
class StagesConfig:
    """Which implementation runs each stage of a round (names from the registries; see ``engine``)."""

    pseudo_label: str = "kmeans"       # kmeans: every round (PUL) | moving_centers: k-means once, then nearest
                                       # center (TCUL) | dbscan: on the k-reciprocal Jaccard distance (cc)
    select: str = "similarity"         # similarity | temporal | all | clustered (all but DBSCAN's outliers)
    fine_tune: str = "restart"         # restart: from the original model each round (PUL) | continue (TCUL)
                                       # | cluster_memory: InfoNCE against cluster centroids (cc)
    after_round: tuple[str, ...] = ()  # e.g. [center_update] (TCUL)


@dataclass
class ClusterConfig:
    k: str = "auto"             # number of clusters; auto: estimated once from the unlabeled features (the
                                # cluster count of a density clustering, cluster/density.py); 0 = one per 16
                                # training images (Market-1501's habit); or a number
    max_iter: int = 300
    tol: float = 1e-4           # sklearn's center-shift tolerance
    rtol: float = 1e-4          # stop once an iteration lowers the inertia by less than this fraction
    normalize: bool = False     # L2-normalise before k-means (PUL found it worse)
    center_update: float = 0.0  # lambda_c of TCUL's center update (eq. 6-7), after_round stage center_update
    beta: float = 1.0           # beta of the center update
    k1: int = 30                # k-reciprocal Jaccard distance (dbscan): neighbours, itself included
    k2: int = 6                 # ... and the local query expansion
    eps: str = "auto"           # DBSCAN radius on the Jaccard distance; auto: the radius with the most clusters
    min_samples: int = 4        # DBSCAN core points need this many neighbours (itself included)
    link_k: int = 10            # temporal_dbscan: must-linked crops are mutual link_k-nearest neighbours
    link_blend: float = 0.0     # temporal_dbscan: cluster on features blended this much with their linked group's mean
    eps_from: str = "linked"    # temporal_dbscan, eps auto: choose eps on the linked distance or on appearance alone


@dataclass
class SelectConfig:
    lam: float = 0.85           # cosine threshold of similarity selection ...
    reference: str = "center_sample"  # ... to: center_sample (PUL) | any_center_sample (PUL's code) | center (SUL)
    frame_window: str = "auto"  # lambda_fr of temporal selection (frames), or auto: calibrated per camera


@dataclass
class TrainConfig:
    loss: str = "softmax"       # softmax | triplet | softmax+triplet
    epochs: int = 20
    batch_size: int = 16        # softmax batches
    p: int = 16                 # identities per triplet batch
    k: int = 8                  # images per identity in a triplet batch
    small_clusters: str = "replace"  # clusters with < k reliable samples: replace | skip
    optimizer: str = "sgd"      # sgd | adam
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    classifier_lr_mult: float = 10.0
    classifier_warmup: int = 0  # steps fitting the fresh classifier on frozen features before fine-tuning
    freeze: str = ""            # comma-separated module prefixes kept fixed (weights and BN stats), e.g. conv1,conv2
    dropout: float = 0.5
    label_smooth: float = 0.1
    margin: float = 0.5
    temperature: float = 0.05   # InfoNCE temperature (loss contrast)
    memory_momentum: float = 0.1  # cluster memory: m <- mu m + (1 - mu) f, then normalised
    memory: str = "cluster"     # cluster: one entry per cluster | camera: one per (cluster, camera), CAP's loss
    scheduler: str = "none"     # none | step | cosine
    step_size: int = 10         # epochs per x0.1 step (scheduler=step)
    warmup_epochs: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class LoopConfig:
    max_rounds: int = 20
    stop_tol: float = 0.01      # reliable count changed by less than this fraction ...
    stop_patience: int = 2      # ... for this many rounds in a row: stop (0 = never stop early)
    eval_every: int = 1         # evaluate on the target query/gallery every N rounds (0 = never)


@dataclass
class SemiConfig:
    labeled_csv: str = ""       # CSV 'path,pid' of labeled target images (semi-supervised PUL)
    labeled_ids: int = 0        # experiment: take the labels of this many train identities


@dataclass
class Config:
    method: str = "pul"
    seed: int = 0
    device: str = "auto"
    stages: StagesConfig = field(default_factory=StagesConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    semi: SemiConfig = field(default_factory=SemiConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, current: Any, where: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(current, str) and isinstance(value, (str, int, float)):
        return str(value)
    elif isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    elif isinstance(current, tuple) and isinstance(value, str) and all(isinstance(c, str) for c in current):
        return tuple(v.strip() for v in value.split(",") if v.strip())  # stages.after_round=a,b
    raise ProgReIDError(f"{where}: expected {type(current).__name__}, got {value!r}.")


def merge(obj: Any, updates: dict[str, Any], where: str = "config") -> Any:
    """Apply a nested dict onto a dataclass, refusing unknown keys and wrong types."""
    if not isinstance(updates, dict):
        raise ProgReIDError(f"{where}: expected a mapping, got {updates!r}.")
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in updates.items():
        if key not in names:
            raise ProgReIDError(f"{where}: unknown key {key!r}; valid keys: {sorted(names)}.")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            merge(current, value, f"{where}.{key}")
        else:
            setattr(obj, key, _coerce(value, current, f"{where}.{key}"))
    return obj


def parse_override(text: str) -> dict[str, Any]:
    """``train.lr=0.01`` -> {"train": {"lr": 0.01}} (the value parsed as YAML)."""
    if "=" not in text:
        raise ProgReIDError(f"override {text!r} must look like section.key=value (e.g. train.lr=0.01).")
    path, raw = text.split("=", 1)
    value: Any = yaml.safe_load(raw) if raw.strip() else ""
    for part in reversed(path.strip().split(".")):
        value = {part: value}
    return value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in (over or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_file(method: str) -> dict[str, Any]:
    """A method's YAML; ``inherit: other`` starts from ``other``'s base and presets (e.g. tcc from cc)."""
    if method not in PRESET_FILES:
        raise ProgReIDError(f"unknown --method {method!r}; choose one of {METHODS}.")
    spec = yaml.safe_load(resources.files("progreid").joinpath("configs", f"{method}.yaml").read_text())
    if "inherit" in spec:
        parent = preset_file(spec.pop("inherit"))
        spec = {"base": deep_merge(parent.get("base", {}), spec.get("base", {})),
                "presets": deep_merge(parent.get("presets", {}), spec.get("presets", {}))}
    return spec


def load_config(method: str = "pul", preset: str = "paper", file: str | Path | None = None,
                overrides: list[str] | None = None) -> Config:
    """Resolve a run's config: defaults, the method's ``base`` and ``presets[preset]``, a file, overrides."""
    spec = preset_file(method)
    cfg = merge(Config(method=method), spec.get("base", {}), f"{method}.yaml:base")
    presets = spec.get("presets", {})
    if preset not in presets:
        raise ProgReIDError(f"--preset {preset!r} is not defined for {method}; choose one of {sorted(presets)}.")
    merge(cfg, presets[preset] or {}, f"{method}.yaml:presets.{preset}")
    if file:
        try:
            user = yaml.safe_load(Path(file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ProgReIDError(f"{file}: cannot read the config file ({exc}).") from None
        merge(cfg, user, str(file))
    for text in overrides or []:
        merge(cfg, parse_override(text), f"override {text!r}")
    cfg.method = method
    return cfg


# Keys of run folders written before the stages section (progreid <= 0.1), and where they went.
_OLD_STAGE_KEYS = {("cluster", "labels"): ("pseudo_label", {"kmeans": "kmeans", "centers": "moving_centers"}),
                   ("select", "method"): ("select", None),
                   ("train", "init"): ("fine_tune", {"original": "restart", "previous": "continue"})}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Move an older ``config.yaml``'s stage choices into ``stages`` so its run can be resumed."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    if "stages" in data:
        return data
    stages: dict[str, Any] = {}
    for (section, key), (stage, names) in _OLD_STAGE_KEYS.items():
        if key in data.get(section, {}):
            value = data[section].pop(key)
            stages[stage] = names.get(value, value) if names else value
    if stages:
        center_update = data.get("cluster", {}).get("center_update", 0.0)
        stages["after_round"] = ["center_update"] if center_update else []
        data["stages"] = stages
    return data


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from a run folder's ``config.yaml`` (older layouts are migrated)."""
    data = migrate(data)
    return merge(Config(method=data.get("method", "pul")), data, "config.yaml")
