"""Training configuration: one flat dataclass, named presets, JSON/YAML files and ``key=value`` overrides.

The default values are the paper's recipe (SGD lr 0.01, momentum 0.9, x0.1 every 10 epochs, 40
epochs, batch 16, 512x512).  Every field can be set from a config file (JSON, or YAML when PyYAML is
installed) and from the command line; an unknown key is an error that names the closest valid key, so
a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import json
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from modnet_edge.core.errors import ConfigError
from modnet_edge.core.limits import max_threads


@dataclass(frozen=True)
class LossWeights:
    """Weights and variants of the supervised objective (see :mod:`.losses` for the paper/official difference)."""

    semantic: float = 1.0  # lambda_s
    detail: float = 10.0  # lambda_d
    matte: float = 1.0  # lambda_alpha
    boundary_matte: float = 0.0  # extra weight of the matte terms inside the band (official: 4)
    half_semantic: bool = True  # the paper's 1/2 in L_s (official code: no 1/2)
    detail_over_band: bool = True  # mean over band pixels (paper) or over all pixels (official)

    def to_dict(self) -> dict:
        return asdict(self)


LOSS_PRESETS: dict[str, LossWeights] = {
    "paper": LossWeights(),
    "official": LossWeights(semantic=10.0, detail=10.0, matte=1.0, boundary_matte=4.0, half_semantic=False,
                            detail_over_band=False),
}


@dataclass
class TrainConfig:
    """Every knob of a supervised run (see the module docstring for the defaults' source)."""

    # data
    data: str | None = None  # folder; None = the built-in SYNTHETIC set
    val_data: str | None = None  # folder with image/ + matte/ for validation (None: hold out val_fraction)
    task: str = "auto"  # "matting" | "segmentation" (pretrains backbone + LR branch) | "auto" (from data)
    val_fraction: float = 0.1
    synthetic_count: int = 2000  # training samples of the synthetic set
    synthetic_val_count: int = 32
    compose: bool = False  # image/ + matte/ portraits: cut out and composite over fresh backgrounds (composites.py)
    samples_per_epoch: int = 400  # composites drawn per epoch (compose only)
    synthetic_mix: float = 0.0  # fraction of composite-epoch samples drawn from the synthetic set instead
    backgrounds: str | None = None  # compose: a folder of person-free photos (backgrounds, and negatives)
    negatives: float = 0.0  # compose: share of samples that are a person-free photo alone (all-zero matte)
    groups: float = 0.0  # compose: share of samples with two or three people
    squash: float = 0.0  # compose: aspect stretch of the whole frame, log-uniform in [1/(1+s), 1+s]
    real_background: float = 0.5  # compose: probability of a real photo (not a procedural texture) behind people
    person_scale: tuple[float, float] = (0.55, 1.5)  # compose: person size relative to the frame's short side
    # optimisation (paper recipe)
    size: int = 512
    batch_size: int = 16
    epochs: int = 40
    max_steps: int | None = None  # stop early after this many optimizer steps (bounded runs)
    optimizer: str = "sgd"  # "sgd" | "adam"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    lr_schedule: str = "step"  # "step" (x lr_gamma every lr_step_epochs) | "cosine" (to 0 over the epochs)
    # objective
    loss: str = "paper"  # "paper" | "official" (see train/losses.py)
    lambda_s: float | None = None  # None: the loss preset's value
    lambda_d: float | None = None
    lambda_alpha: float | None = None
    band_ratio: float = 1 / 32  # trimap band kernel = ratio x short side
    # augmentation
    scale_range: tuple[float, float] = (0.8, 1.25)
    flip: bool = True
    color_jitter: float = 0.2
    # model
    lr_block: str = "se"
    init: str | None = None  # checkpoint to start from (e.g. the segmentation-pretrained one)
    zero_init_residual: bool = False  # start every residual block as identity (ignored with init=)
    channels_last: bool = False  # NHWC activations on CPU (measured ~20% faster training steps on x86)
    # machinery
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: bool = True  # mixed precision (CUDA only; ignored on CPU)
    threads: int | None = None  # torch CPU threads (None: leave torch's default)
    workers: int = 0
    val_every: int = 1  # epochs between validations (0: never)
    log_every: int = 10  # steps between log records
    save_every: int = 200  # steps between mid-epoch resumable 'last' checkpoints (0: epoch ends only)
    save_every_epochs: int = 1  # epochs between end-of-epoch 'last' checkpoints (the final one is always written)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes copied into provenance

    def loss_weights(self) -> LossWeights:
        if self.loss not in LOSS_PRESETS:
            raise ConfigError(f"loss must be one of {sorted(LOSS_PRESETS)}, not {self.loss!r}")
        w = LOSS_PRESETS[self.loss]
        changes = {k: v for k, v in (("semantic", self.lambda_s), ("detail", self.lambda_d),
                                     ("matte", self.lambda_alpha)) if v is not None}
        return dataclasses.replace(w, **changes)

    def validate(self) -> TrainConfig:
        problems = []
        if self.size < 64 or self.size % 32:
            problems.append(f"size must be a multiple of 32 and >= 64, got {self.size}")
        for name in ("batch_size", "epochs", "synthetic_count", "save_every_epochs"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1 or null, got {self.max_steps}")
        for name, hint in _field_types().items():  # NaN/inf pass every comparison below: refuse them first
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                problems.append(f"{name} must be a finite number, got {value}")
        checks = [("lr", self.lr > 0, "> 0"), ("lr_gamma", 0 < self.lr_gamma <= 1, "in (0, 1]"),
                  ("lr_step_epochs", self.lr_step_epochs >= 1, ">= 1"),
                  ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
                  ("weight_decay", self.weight_decay >= 0, ">= 0"),
                  ("band_ratio", 0 < self.band_ratio <= 0.5, "in (0, 0.5]"),
                  ("color_jitter", 0 <= self.color_jitter < 1, "in [0, 1)"),
                  ("workers", self.workers >= 0, ">= 0"),
                  ("threads", self.threads is None or 1 <= self.threads <= max_threads(),
                   f"1 to {max_threads()} (or null: torch's default)"),
                  ("workers", self.workers <= max_threads(), f"at most {max_threads()}"),
                  ("log_every", self.log_every >= 0, ">= 0"), ("save_every", self.save_every >= 0, ">= 0"),
                  ("val_every", self.val_every >= 0, ">= 0"), ("synthetic_val_count", self.synthetic_val_count >= 0,
                                                              ">= 0")]
        for name, ok, rule in checks:
            if not ok:
                problems.append(f"{name} must be {rule}, got {getattr(self, name)}")
        for name in ("lambda_s", "lambda_d", "lambda_alpha"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.task not in ("auto", "matting", "segmentation"):
            problems.append(f"task must be auto, matting or segmentation, not {self.task!r}")
        if self.optimizer not in ("sgd", "adam"):
            problems.append(f"optimizer must be sgd or adam, not {self.optimizer!r}")
        if self.lr_block not in ("se", "e-aspp"):
            problems.append(f"lr_block must be se or e-aspp, not {self.lr_block!r}")
        if self.lr_schedule not in ("step", "cosine"):
            problems.append(f"lr_schedule must be step or cosine, not {self.lr_schedule!r}")
        for name in ("synthetic_mix", "negatives", "groups", "real_background"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.squash <= 2.0:
            problems.append(f"squash must be in [0, 2], got {self.squash}")
        if not (0 < self.person_scale[0] <= self.person_scale[1]):
            problems.append(f"person_scale must be (min, max) with 0 < min <= max, got {self.person_scale}")
        if (self.backgrounds or self.negatives > 0) and not self.compose:
            problems.append("backgrounds and negatives apply to composites only (compose=true)")
        if self.negatives > 0 and not self.backgrounds:
            problems.append("negatives need person-free photos: set backgrounds to a folder of them")
        if self.samples_per_epoch < 1:
            problems.append(f"samples_per_epoch must be >= 1, got {self.samples_per_epoch}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not (0 < self.scale_range[0] <= self.scale_range[1]):
            problems.append(f"scale_range must be (min, max) with 0 < min <= max, got {self.scale_range}")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        self.loss_weights()
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scale_range"] = list(self.scale_range)
        d["person_scale"] = list(self.person_scale)
        return d


# Named presets: overrides on top of the paper's defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "official": {"loss": "official"},
    # A bounded CPU run on the synthetic set: a well-behaved default network in about a minute or two on
    # two cores (saturated, confident mattes, calibrated BatchNorm statistics), deterministic.
    # Residual blocks start as identity (zero_init_residual): a from-scratch backbone with kaiming init is
    # chaotic (fp16 rounding grows ~80x through it) and a minute of training does not cure that.
    # Measured fp16-ONNX drift vs fp32 on 3 real p3m portraits: kaiming random init ~7e-5, this preset
    # ~4e-6; longer synthetic training makes it larger (480 steps: 9e-6), because a synthetic-trained
    # network stays unsaturated on real photos while its logits grow.  Passing the 1e-6 fp16 budget
    # needs a network whose mattes saturate on the parity images (real training data).
    "quick": {"size": 128, "batch_size": 4, "epochs": 1, "synthetic_count": 240, "synthetic_val_count": 8,
              "lr": 0.01, "lr_step_epochs": 1, "threads": 1, "log_every": 5, "save_every": 20,
              "zero_init_residual": True},
    # The longer synthetic run behind the development checkpoint (about 5 minutes on two idle cores).
    "synthetic": {"size": 128, "batch_size": 4, "epochs": 2, "synthetic_count": 1200, "synthetic_val_count": 16,
                  "lr_step_epochs": 1, "threads": 2, "save_every": 60, "zero_init_residual": True},
}


# Staged presets: a list of configs run one after another, each stage starting from the previous stage's
# best weights (``init``).  ``modnet-edge train starter --data P3M`` reproduces the shipped default weights.
_STARTER_COMMON: dict[str, Any] = {
    "compose": True, "synthetic_mix": 0.2, "val_fraction": 0.2, "optimizer": "adam", "lr_schedule": "cosine",
    "color_jitter": 0.3, "threads": 2, "zero_init_residual": True, "channels_last": True, "save_every": 0,
    "log_every": 10, "seed": 0,
}
# The license-clean person-free photos of a source checkout (data/person-free/train, with their record):
# not part of the installed package, so an installed copy passes --set backgrounds=DIR instead.
CHECKOUT_PERSON_FREE = Path(__file__).resolve().parents[1] / "data" / "person-free" / "train"
_V2_COMMON: dict[str, Any] = {
    **_STARTER_COMMON, "synthetic_mix": 0.1, "backgrounds": str(CHECKOUT_PERSON_FREE), "negatives": 0.2,
    "groups": 0.15, "squash": 0.4, "real_background": 0.7, "person_scale": (0.35, 1.5), "channels_last": False,
    "save_every": 50,
}
STAGED_PRESETS: dict[str, list[dict[str, Any]]] = {
    # starter-v1 (see modnet_edge/assets/weights/README.md): ~105 min on 2 x86 cores, from scratch.
    # Stage 1 learns the semantics fast at low resolution; stage 2 the detail at 320 px; stage 3 adapts
    # the statistics (BatchNorm, receptive field) to the 512 px the predictor feeds.
    "starter-v1": [
        {**_STARTER_COMMON, "size": 192, "batch_size": 8, "samples_per_epoch": 240, "epochs": 36, "lr": 1e-3},
        {**_STARTER_COMMON, "size": 320, "batch_size": 8, "samples_per_epoch": 160, "epochs": 20, "lr": 4e-4},
        {**_STARTER_COMMON, "size": 512, "batch_size": 8, "samples_per_epoch": 80, "epochs": 6, "lr": 1e-4},
    ],
    # starter-v2: v1 trained further with real person-free photos behind the people and alone (negatives),
    # groups and aspect stretch; channels-first (measured faster for training on an AMD EPYC, AVX2).
    # Stage 1's cosine is planned over 25 epochs and stopped at step 600 (lr ~1e-4 there), where stage 2
    # starts at 1e-4 and anneals to 0 at 384 px; stage 3 adapts the statistics to 512 px.  After stage 1
    # the network still marked 12 % of person-free photos as person (v1: 34 %), so the later stages
    # draw more negatives (35 % of samples).
    "starter-v2": [
        {**_V2_COMMON, "init": "starter-v1", "size": 256, "batch_size": 8, "samples_per_epoch": 320, "epochs": 25,
         "max_steps": 600, "lr": 3e-4},
        {**_V2_COMMON, "size": 384, "batch_size": 8, "samples_per_epoch": 160, "epochs": 6, "lr": 1e-4,
         "negatives": 0.35},
        {**_V2_COMMON, "size": 512, "batch_size": 8, "samples_per_epoch": 80, "epochs": 4, "lr": 5e-5,
         "negatives": 0.35},
    ],
}
# "starter" reproduces the default built-in weights (modnet_edge.model.weights.ALIASES["starter"]).
STAGED_PRESETS["starter"] = STAGED_PRESETS["starter-v1"]  # v2 did not beat v1 on all three quality sets


_UNIONS = (Union, types.UnionType)


def _field_types() -> dict[str, Any]:
    return get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, hint: Any, cls_name: str = "TrainConfig") -> Any:
    """Convert a JSON/YAML/CLI value to the field's declared type, or raise a ConfigError naming it."""
    origin, args = get_origin(hint), get_args(hint)
    if value is None:
        if origin in _UNIONS and type(None) in args:
            return None
        raise ConfigError(f"{name} cannot be null")
    if origin in _UNIONS:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0], cls_name)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name} must be a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(name, v, a, cls_name) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, (bool, int)):
                raise ValueError(value)
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {getattr(hint, '__name__', hint)}, got {value!r}") from None
    return value


def check_keys(data: dict[str, Any], valid: set[str], where: str) -> None:
    """Refuse unknown keys, suggesting the nearest valid one."""
    unknown = sorted(set(data) - valid)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"unknown config key(s) {', '.join(hints)}; valid keys: {', '.join(sorted(valid))}", where)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON (or, with PyYAML installed, YAML) mapping from disk."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file does not exist", path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML configs need PyYAML (pip install pyyaml); or use JSON", path) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", path) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}", path) from None
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of key: value", path)
    return data


def build_config(config: str | Path | dict[str, Any] | TrainConfig | None = None,
                 overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A validated :class:`TrainConfig` from a preset name, a file, a mapping or a config object.

    A file or mapping may name a ``preset`` to start from; ``overrides`` (e.g. from the CLI) win over
    everything."""
    if isinstance(config, TrainConfig):
        base = config.to_dict()
        where = "config"
    elif config is None or (isinstance(config, str) and config in PRESETS):
        base = dict(PRESETS[config or "paper"])
        where = f"preset {config or 'paper'!r}"
    elif isinstance(config, dict):
        base, where = dict(config), "config"
    elif isinstance(config, (str, Path)):
        if not Path(config).exists() and isinstance(config, str) and "/" not in config and "." not in config:
            raise ConfigError(f"unknown preset {config!r}; presets: {sorted(PRESETS) + sorted(STAGED_PRESETS)} "
                              "(or pass a config file)")
        base, where = read_config_file(config), str(config)
    else:
        raise ConfigError(f"config must be a preset name, a file, a dict or a TrainConfig, not {type(config).__name__}")
    preset = base.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}", where)
        base = {**PRESETS[preset], **base}
    merged = {**base, **(overrides or {})}
    return config_from_dict(merged, where)


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    hints = _field_types()
    check_keys(data, set(hints), where)
    values = {k: _coerce(k, v, hints[k]) for k, v in data.items()}
    return TrainConfig(**values).validate()


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=0.001", "size=256"]`` -> values decoded as JSON where possible, else kept as strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out
