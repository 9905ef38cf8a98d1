"""Typed run configuration: dataclass defaults <- method preset (YAML) <- user file <- ``a.b=c``.

Every key of a run is here, so any of them can be set from the command line
(``--set train.lr=0.01``) and the resolved config is written into the run folder. Each key declares
its valid values beside its default (:func:`progreid.options.opt`); a resolved config is checked as a
whole before any work, so an out-of-range value fails naming the key, the value and the range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from progreid.data.images import ImageLimits
from progreid.data.transforms import AugmentConfig
from progreid.errors import ProgReIDError
from progreid.models.pooling import POOLINGS
from progreid.options import opt, validate

METHODS = ("pul", "sul", "tcul", "cc", "tcc", "oracle")  # oracle: a measurement (true identities), not a method
PRESET_FILES = (*METHODS, "train")


def _layouts() -> tuple[str, ...]:
    from progreid.data.layouts import LAYOUTS

    return ("auto", *sorted(LAYOUTS))


def _archs() -> tuple[str, ...]:
    from progreid.models.factory import ARCHS

    return tuple(ARCHS)


def _references() -> tuple[str, ...]:
    from progreid.select import REFERENCES

    return REFERENCES


def _losses() -> tuple[str, ...]:
    from progreid.losses import LOSSES

    return LOSSES


MIN_INPUT_SIDE = 16  # OSNet pools by 16: a smaller input has no feature map left (ResNet-50 by 16 too, last stride 1)
IMAGE_SIDE = {"integer": True, "ge": MIN_INPUT_SIDE, "le": 4096}
POSITIVE_INT = {"integer": True, "ge": 1}
COUNT = {"integer": True, "ge": 0}
FRACTION = {"ge": 0, "le": 1}


@dataclass
class DataConfig:
    target: str = ""            # dataset folder; its train split is used WITHOUT labels
    source: str = ""            # labeled source dataset (progreid train only)
    layout: str = opt("auto", choices=_layouts)
    height: int = opt(256, **IMAGE_SIDE)
    width: int = opt(128, **IMAGE_SIDE)
    bad_images: str = opt("error", choices=("error", "skip"))  # an unreadable, oversized or tiny crop: error
                                # (name it and stop) | skip (count it, train without it)
    max_pixels: int = opt(ImageLimits.max_pixels, **POSITIVE_INT)  # a larger image is refused unread (bombs)
    min_side: int = opt(ImageLimits.min_side, **POSITIVE_INT)  # a crop narrower or lower than this is refused


@dataclass
class ModelConfig:
    arch: str = opt("osnet_x0_25", choices=_archs)
    weights: str = ""           # the original (source) model
    last_stride: int = opt(1, choices=(1, 2))  # ResNet only
    embedding_dim: int = opt(0, **COUNT)    # ResNet only: 0 = pooled features
    bn_neck: bool = False       # ResNet only: BatchNorm on the pooled features (cc, tcc); OSNet's fc has its own
    pooling: str = opt("avg", choices=POOLINGS)  # global pooling: avg (as the source was trained) | gem
                                # (Cluster Contrast's generalized mean, exponent learnt from 3: models/pooling.py)
    gem_p: float = opt(3.0, ge=1)  # GeM's starting exponent: 3 as the reference; 1 starts as average pooling, so a
                                # source trained with it gives the same round-0 features


@dataclass
class StagesConfig:
    """Which implementation runs each stage of a round (names from the registries, checked against
    them before any work: see ``engine``)."""

    pseudo_label: str = "kmeans"       # kmeans: every round (PUL) | moving_centers: k-means once, then nearest
                                       # center (TCUL) | dbscan: on the k-reciprocal Jaccard distance (cc)
    select: str = "similarity"         # similarity | temporal | all | clustered (all but DBSCAN's outliers)
    fine_tune: str = "restart"         # restart: from the original model each round (PUL) | continue (TCUL)
                                       # | cluster_memory: InfoNCE against cluster centroids (cc)
    after_round: tuple[str, ...] = ()  # e.g. [center_update] (TCUL)


@dataclass
class ClusterConfig:
    k: str = opt("auto", words=("auto",), **COUNT)  # number of clusters; auto: estimated once from the
                                # unlabeled features (the cluster count of a density clustering,
                                # cluster/density.py); 0 = one per 16 training images (Market-1501's habit)
    max_iter: int = opt(300, **POSITIVE_INT)
    tol: float = opt(1e-4, ge=0)           # sklearn's center-shift tolerance
    rtol: float = opt(1e-4, ge=0)          # stop once an iteration lowers the inertia by less than this fraction
    normalize: bool = False     # L2-normalise before k-means (PUL found it worse)
    center_update: float = opt(0.0, **FRACTION)  # lambda_c of TCUL's center update (eq. 6-7), after_round center_update
    beta: float = opt(1.0, gt=0)           # beta of the center update
    k1: int = opt(30, integer=True, ge=2)  # k-reciprocal Jaccard distance (dbscan): neighbours, itself included
    k2: int = opt(6, **POSITIVE_INT)       # ... and the local query expansion
    distance: str = opt("jaccard", choices=("jaccard", "camera_jaccard"))  # dbscan's distance: k-reciprocal
                                # Jaccard, or CA-Jaccard's neighbours within and across cameras (cluster/camera_jaccard.py)
    k1_intra: str = opt("auto", words=("auto",), **POSITIVE_INT)  # camera_jaccard: neighbours within a camera;
                                # auto: a camera visit's crops, estimated once (pseudo_label.intra_camera_neighbours)
    eps: str = opt("auto", words=("auto",), gt=0, lt=1)  # DBSCAN radius on the Jaccard distance; auto: see density.py
    eps_update: str = opt("every", choices=("every", "first"))  # eps auto: chosen every round | on the first
                                # round's features and kept (engine/stages/pseudo_label.density_radius)
    min_samples: int = opt(4, **POSITIVE_INT)  # DBSCAN core points need this many neighbours (itself included)
    link_k: int = opt(10, **POSITIVE_INT)  # temporal_dbscan: must-linked crops are mutual link_k-nearest neighbours
    link_blend: float = opt(0.0, **FRACTION)  # temporal_dbscan: cluster on features blended this much with their
                                # linked group's mean
    eps_from: str = opt("linked", choices=("linked", "appearance"))  # temporal_dbscan, eps auto: choose eps on the
                                # linked distance or on appearance alone
    link_as: str = opt("distance", choices=("distance", "merge"))  # temporal_dbscan: must-linked pairs at distance
                                # ~0 before DBSCAN, or DBSCAN as cc's and the clusters they join merged after it


@dataclass
class SelectConfig:
    lam: float = opt(0.85, ge=0, lt=1)     # cosine threshold of similarity selection ...
    reference: str = opt("center_sample", choices=_references)  # ... to: center_sample (PUL) |
                                # any_center_sample (PUL's code) | center (SUL)
    frame_window: str = opt("auto", words=("auto",), **POSITIVE_INT)  # lambda_fr of temporal selection
                                # (frames), or auto: calibrated per camera


@dataclass
class TrainConfig:
    loss: str = opt("softmax", choices=_losses)  # softmax | triplet | softmax+triplet | contrast
    epochs: int = opt(20, **POSITIVE_INT)
    batch_size: int = opt(16, integer=True, ge=2)  # softmax batches (BatchNorm trains on 2 or more)
    p: int = opt(16, integer=True, ge=2)   # identities per triplet batch
    k: int = opt(8, **POSITIVE_INT)        # images per identity in a triplet batch
    small_clusters: str = opt("replace", choices=("replace", "skip"))  # clusters with < k reliable samples
    epoch_length: str = opt("clusters", choices=("clusters", "crops"))  # cluster_memory: an epoch draws every
                                # cluster once (K x k samples) | as many samples as the target has training crops,
                                # so a round's length does not follow the cluster count (engine/stages/fine_tune.py)
    optimizer: str = opt("sgd", choices=("sgd", "adam"))
    lr: float = opt(0.001, gt=0)
    momentum: float = opt(0.9, ge=0, lt=1)
    weight_decay: float = opt(5e-4, ge=0)
    classifier_lr_mult: float = opt(10.0, ge=0)
    classifier_warmup: int = opt(0, **COUNT)  # steps fitting the fresh classifier on frozen features first
    freeze: str = ""            # comma-separated module prefixes kept fixed (weights and BN stats), e.g. conv1,conv2
    dropout: float = opt(0.5, ge=0, lt=1)
    label_smooth: float = opt(0.1, ge=0, lt=1)
    margin: float = opt(0.5, ge=0)
    temperature: float = opt(0.05, gt=0)   # InfoNCE temperature (loss contrast)
    memory_momentum: float = opt(0.1, ge=0, lt=1)  # cluster memory: m <- mu m + (1 - mu) f, then normalised
    memory: str = opt("cluster", choices=("cluster", "camera"))  # cluster: one entry per cluster |
                                # camera: one per (cluster, camera), CAP's loss
    support: bool = False       # cluster_memory: ISE's support samples between clusters (support.py)
    support_lambda: float = opt(1.0, gt=0)   # ... its base interpolation degree (reaches 0.5 x this)
    lp_weight: float = opt(0.1, ge=0)        # ... weight of its label-preserving loss
    lp_temperature: float = opt(0.6, gt=0)   # ... and that loss's temperature
    label_ensemble: bool = False  # cluster_memory: RLCC's soft labels, the last round's clusters carried over
                                # through the two clusterings' consensus (label_ensemble.py)
    ensemble_alpha: float = opt(0.9, gt=0, le=1)   # ... weight of the hard labels (and of the last round's one-hot)
    ensemble_temperature: float = opt(30.0, gt=0)  # ... sharpness of the softmax over the last round's centres
    scheduler: str = opt("none", choices=("none", "step", "cosine"))
    step_size: int = opt(10, **POSITIVE_INT)  # epochs per x0.1 step (scheduler=step)
    warmup_epochs: int = opt(0, **COUNT)
    batchnorm: str = opt("global", choices=("global", "per_rank"))  # under torchrun: BatchNorm statistics of
                                # the whole batch (the same run on any number of ranks) | of each rank's share
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class LoopConfig:
    max_rounds: int = opt(20, **POSITIVE_INT)
    stop_tol: float = opt(0.01, ge=0)      # reliable count changed by less than this fraction ...
    stop_patience: int = opt(2, **COUNT)   # ... for this many rounds in a row: stop (0 = never stop early)
    eval_every: int = opt(1, **COUNT)      # evaluate on the target query/gallery every N rounds (0 = never)


@dataclass
class SemiConfig:
    labeled_csv: str = ""       # CSV 'path,pid' of labeled target images (semi-supervised PUL)
    labeled_ids: int = opt(0, **COUNT)  # experiment: take the labels of this many train identities
    # how the labeled groups train: "classes" of their own beside the pseudo-identities (PUL's
    # semi-supervised setting), or "links": must-links inside the density clustering (cc, tcc), the
    # crops staying in the pool so each group joins the cluster of the rest of its person's crops;
    # "auto": links where the method clusters by density, classes for k-means (engine.context.labels_as)
    labels_as: str = opt("auto", choices=("auto", "classes", "links"))
    cannot_links_csv: str = ""  # CSV 'path_a,path_b' of crops shown to differ (verify --write-cannot-links); links only


@dataclass
class Config:
    method: str = opt("pul", choices=PRESET_FILES)
    preset: str = ""            # the preset the run was made with (recorded; --resume compares it)
    seed: int = opt(0, **COUNT)
    device: str = "auto"        # checked where it is resolved (engine.device): auto, cpu, cuda, cuda:N
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


def read_config_file(file: str | Path) -> dict[str, Any]:
    """A user's ``--config`` YAML as a mapping (an empty file is an empty mapping)."""
    try:
        user = yaml.safe_load(Path(file).read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProgReIDError(f"{file}: cannot read the config file ({type(exc).__name__}: {exc}). "
                            "Fix: pass a YAML file of sections and keys, e.g. 'train: {epochs: 5}'.") from None
    if not isinstance(user, dict):
        raise ProgReIDError(f"{file}: a config file holds sections and keys (e.g. 'train: {{epochs: 5}}'), "
                            f"not a {type(user).__name__}.")
    return user


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
        merge(cfg, read_config_file(file), str(file))
    for text in overrides or []:
        merge(cfg, parse_override(text), f"override {text!r}")
    cfg.method, cfg.preset = method, preset
    validate(cfg)
    return cfg


# Keys of run folders written before the stages section (progreid <= 0.1), and where they went.
_OLD_STAGE_KEYS = {("cluster", "labels"): ("pseudo_label", {"kmeans": "kmeans", "centers": "moving_centers"}),
                   ("select", "method"): ("select", None),
                   ("train", "init"): ("fine_tune", {"original": "restart", "previous": "continue"})}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Move an older ``config.yaml``'s stage choices into ``stages`` (and keep how its labels trained)
    so its run can be resumed as it was made."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    semi = data.get("semi")
    if isinstance(semi, dict) and "labels_as" not in semi:
        semi["labels_as"] = "classes"  # written before links existed: its labeled crops trained as classes
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
    cfg = merge(Config(method=data.get("method", "pul")), data, "config.yaml")
    validate(cfg)
    return cfg
