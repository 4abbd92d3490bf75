"""Training configuration: a dataclass schema, YAML recipes, dotted ``--set a.b=c`` overrides.

A recipe (``litevision/recipes/*.yaml``, ``litevision train --list-recipes``) sets any subset of the fields
below, by section; ``--set`` overrides are
applied on top (values are parsed as YAML: ``--set optim.lr=3e-4``, ``--set aug.scale=[0.5,1.0]``).
Unknown sections or keys are errors that name the key and suggest close ones. The resolved config
(every field) is written to ``<run>/config.yaml``, which is what ``--resume`` reads back.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from litevision.data import AugmentConfig
from litevision.errors import UserError


class ConfigError(UserError, ValueError):
    """A recipe or an override names an unknown key or gives a value of the wrong type."""


@dataclass
class TaskConfig:
    name: str = "auto"  # a registered task (classification, hyperspectral, ...); auto = the dataset's


@dataclass
class ModelConfig:
    name: str = "mobilenetv2_100"  # a registered model, timm:<name> or tv:<name>
    kwargs: dict[str, Any] = field(default_factory=dict)  # family constructor overrides (drop_path_rate, ...)
    checkpoint: str | None = None  # initial weights (fine-tuning); None = random init
    checkpoint_num_classes: int | None = None  # class count of `checkpoint` when it differs (head is reset)
    # a detector's backbone from a trained classifier (run folder or weights; its head left out); None = random
    backbone_checkpoint: str | None = None
    aux_loss_weight: float = 0.0  # weight of the model's auxiliary_loss() (LCNet: DTConv load balancing); 0 = off


@dataclass
class DataConfigSection:
    name: str = "fashion_mnist_subset"  # a registered dataset (`litevision train --list-data`) or a folder path
    options: dict[str, Any] = field(default_factory=dict)  # passed to the dataset builder
    root: str | None = None  # shortcut for options.root (image folders, fashion_mnist)
    input_size: int | None = None  # square model input; None = the model card's
    in_chans: int | None = None  # None = the dataset's channel count
    crop_pct: float | None = None  # eval center-crop fraction; None = the model card's
    interpolation: str | None = None  # None = the model card's
    norm: str = "auto"  # "auto" | "model" | "dataset": where mean/std come from (unless given below)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    batch_size: int = 128  # per process
    eval_batch_size: int | None = None  # None = 2 x batch_size
    workers: int = 2
    val_split: str = "val"  # "val" (the test split when the dataset has none), "test" or "none"
    skip_bad: bool = False  # skip and count unreadable images instead of stopping


@dataclass
class OptimConfig:
    opt: str = "adamw"  # any timm optimizer name
    lr: float | None = None  # absolute learning rate; None = lr_base scaled by the global batch
    lr_base: float = 1e-3
    lr_base_size: int = 512  # lr = lr_base * global_batch / lr_base_size ("linear") or its square root
    lr_base_scale: str = "linear"  # "linear" | "sqrt"
    weight_decay: float = 0.05
    eps: float | None = None  # None = the optimizer's default
    betas: tuple[float, float] | None = None
    momentum: float = 0.9
    clip_grad: float | None = None  # None = no clipping
    clip_mode: str = "norm"  # "norm" | "value" | "agc" (adaptive gradient clipping)
    accum_steps: int = 1  # micro-batches per optimizer update
    filter_bias_and_bn: bool = True  # no weight decay on biases and norm weights


@dataclass
class SchedConfig:
    name: str = "cosine"  # any timm scheduler (cosine, step, multistep, poly, tanh, constant, ...) or inverse_time
    epochs: int = 10
    warmup_epochs: float = 0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    cooldown_epochs: int = 0
    decay_epochs: float | None = None  # step scheduler
    decay_rate: float = 0.1  # step: factor per decay_epochs; inverse_time: lr / (1 + decay_rate * updates)
    step_on_epochs: bool = False  # False = the lr changes every update (smooth warm-up and decay)


@dataclass
class EmaConfig:
    enabled: bool = False
    decay: float = 0.9998
    warmup: bool = False  # timm ModelEmaV3 decay warm-up


@dataclass
class DistillConfig:
    type: str = "none"  # "none" | "hard" (DeiT) | "soft"
    teacher: str | None = None  # a model spec, or a litevision checkpoint / run folder (model read from it)
    teacher_checkpoint: str | None = None  # weights for a teacher given as a model spec
    alpha: float = 0.5  # weight of the distillation term
    tau: float = 1.0  # soft distillation temperature


@dataclass
class RunConfig:
    output: str = "runs"
    name: str | None = None  # None = <model>-<dataset>-<time>
    seed: int = 0
    deterministic: bool = False  # deterministic algorithms (bitwise-reproducible on CPU; slower on GPU)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU) | "none" | "bf16" | "fp16"
    channels_last: bool | None = None  # None = on for CUDA
    checkpoint_every: int = 0  # also checkpoint every N updates inside an epoch (0 = at epoch ends only)
    keep_checkpoints: int = 2  # resumable checkpoints kept in <run>/checkpoints
    log_every: int = 50  # updates between step log lines
    max_steps: int = 0  # stop after this many updates, the lr schedule compressed to end there (0 = all epochs)
    bn_recalibration: int = 0  # training batches (eval transform) re-estimating BatchNorm statistics at the end
    progress: bool = True  # tqdm progress bar with ETA (on a terminal)
    tensorboard: bool = True  # write TensorBoard events when tensorboard is installed
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    keep_memory: bool = True  # on CPU, glibc's malloc keeps freed memory: 2x faster detector training, 1.5x peak memory


@dataclass
class TrainConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfigSection = field(default_factory=DataConfigSection)
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------------------
# building a config from dicts, YAML and overrides


def config_from_dict(data: dict[str, Any] | None, *, origin: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts; unknown keys and wrong types raise :class:`ConfigError`."""
    cfg = TrainConfig()
    for section, values in (data or {}).items():
        _check_key(cfg, section, "", origin)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: section {section!r} must be a mapping of keys, got {values!r}")
        for key, value in values.items():
            set_value(cfg, f"{section}.{key}", value, origin=origin)
    return cfg


def set_value(cfg: TrainConfig, dotted: str, value: Any, *, origin: str = "--set") -> None:
    """Set ``section.key`` (or ``section.dictfield.subkey`` for dict fields like ``model.kwargs``)."""
    parts = dotted.split(".")
    if len(parts) < 2:
        raise ConfigError(f"{origin}: {dotted!r} is not a dotted key (use section.key, e.g. optim.lr)")
    section, key, rest = parts[0], parts[1], parts[2:]
    _check_key(cfg, section, "", origin)
    obj = getattr(cfg, section)
    _check_key(obj, key, f"{section}.", origin)
    hint = typing.get_type_hints(type(obj))[key]
    if rest:
        if typing.get_origin(hint) is not dict:
            raise ConfigError(f"{origin}: {section}.{key} has no sub-keys ({'.'.join(rest)!r} given)")
        target = getattr(obj, key)
        for p in rest[:-1]:
            target = target.setdefault(p, {})
        target[rest[-1]] = value
        return
    setattr(obj, key, _coerce(value, hint, f"{section}.{key}", origin))


def _check_key(obj: Any, key: str, prefix: str, origin: str) -> None:
    names = [f.name for f in dataclasses.fields(obj)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(prefix + c for c in close)}?" if close else ""
        what = "key" if prefix else "section"
        raise ConfigError(f"{origin}: unknown config {what} {prefix + key!r}.{hint} Valid: {', '.join(names)}")


def _coerce(value: Any, hint: Any, key: str, origin: str) -> Any:
    """Check ``value`` against a field's type hint, converting where YAML is ambiguous (1 -> 1.0, [] -> tuple)."""
    org, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if org in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, origin)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{origin}: {key}={value!r}: expected {' or '.join(_type_name(a) for a in args)}")
    bad = ConfigError(f"{origin}: {key}={value!r}: expected {_type_name(hint)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad
    if org is tuple:
        if not isinstance(value, list | tuple):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key, origin) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{origin}: {key}={value!r}: expected {len(args)} values")
        return tuple(_coerce(v, a, key, origin) for v, a in zip(value, args))
    if org is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if org is list:
        if not isinstance(value, list | tuple):
            raise bad
        return [_coerce(v, args[0], key, origin) for v in value] if args else list(value)
    return value


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint)


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` -> ``("optim.lr", 0.0003)``; the value is parsed as YAML (``null`` is None)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set optim.lr=3e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: cannot parse the value: {e}") from None
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string; dict fields get no type hint
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return key.strip(), value


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    for text in overrides:
        key, value = parse_override(text)
        set_value(cfg, key, value, origin=f"--set {text}")
    return cfg


RECIPES_ENV = "LITEVISION_RECIPES"


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up, first match wins: the folders in ``$LITEVISION_RECIPES``
    (``os.pathsep``-separated: a team's own recipes), then the recipes shipped inside the package."""
    dirs = [Path(p) for p in os.environ.get(RECIPES_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(str(importlib.resources.files("litevision") / "recipes")))
    return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def find_recipe(name_or_path: str | os.PathLike[str]) -> Path:
    """A YAML path, or a recipe name such as ``quick`` or ``lsnet/lsnet_t`` found in :func:`recipe_dirs`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = str(name_or_path).removesuffix(".yaml").removesuffix(".yml")
    for d in recipe_dirs():
        for candidate in (d / f"{stem}.yaml", d / f"{stem}.yml"):
            if candidate.is_file():
                return candidate
    known = list_recipes()
    close = difflib.get_close_matches(stem, known, n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UserError(f"recipe not found: {name_or_path!s}.{hint} Known recipes: {', '.join(known) or 'none'}")


def list_recipes() -> list[str]:
    names = set()
    for d in recipe_dirs():
        names.update(str(p.relative_to(d).with_suffix("")) for p in d.rglob("*.yaml"))
    return sorted(names)


def load_config(
    recipe: str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Defaults <- recipe (path or name) <- ``key=value`` overrides."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if recipe is not None:
        path = find_recipe(recipe)
        origin = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of sections (model:, data:, optim:, ...)")
    cfg = apply_overrides(config_from_dict(data, origin=origin), overrides)
    validate_config(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------------------
# values: checked when the config is loaded, so --print-config and a run refuse the same things


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: {expected}")


def _number(key: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    ok = value is not None and value == value  # NaN fails every comparison
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    _check(ok, key, value, "must be " + " and ".join(parts) + (" (or null)" if optional else ""))


def _choice(key: str, value: Any, choices: Sequence[str], *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}={value!r}: choose one of {', '.join(choices)}.{hint}")


SCHEDULERS = ("cosine", "tanh", "step", "multistep", "plateau", "poly", "wsd", "rsqrt", "constant", "none",
              "inverse_time")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")


def validate_config(cfg: TrainConfig) -> None:
    """Check every value's range and choices (and that the device exists); raise :class:`ConfigError` naming the
    key. Names (model, dataset, optimizer, task) are checked against their registries when they are built."""
    d, a, o, s, r = cfg.data, cfg.aug, cfg.optim, cfg.sched, cfg.run
    _number("data.batch_size", d.batch_size, low=1)
    _number("data.eval_batch_size", d.eval_batch_size, low=1, optional=True)
    _number("data.workers", d.workers, low=0)
    _number("data.input_size", d.input_size, low=1, optional=True)
    _number("data.in_chans", d.in_chans, low=1, optional=True)
    _number("data.crop_pct", d.crop_pct, low=0, high=1, low_open=True, optional=True)
    _choice("data.interpolation", d.interpolation, INTERPOLATIONS, optional=True)
    _choice("data.norm", d.norm, ("auto", "model", "dataset"))
    _choice("data.val_split", d.val_split, ("val", "test", "none"))
    for name in ("mean", "std"):
        values = getattr(d, name)
        _check(values is None or (len(values) > 0 and (name == "mean" or all(v > 0 for v in values))),
               f"data.{name}", values, "one value per input channel" + (", all > 0" if name == "std" else ""))
    _choice("aug.crop", a.crop, ("rrc", "pad", "none", "iou"))
    _check(0 < a.scale[0] <= a.scale[1] <= 1, "aug.scale", list(a.scale),
           "must be [low, high] with 0 < low <= high <= 1")
    _check(0 < a.ratio[0] <= a.ratio[1], "aug.ratio", list(a.ratio), "must be [low, high] with 0 < low <= high")
    _number("aug.pad", a.pad, low=0)
    for key in ("hflip", "vflip", "re_prob", "mixup_prob", "mixup_switch_prob", "photometric", "zoom_out"):
        _number(f"aug.{key}", getattr(a, key), low=0, high=1)
    _number("aug.zoom_out_max", a.zoom_out_max, low=1)
    _number("aug.re_count", a.re_count, low=1)
    _choice("aug.re_mode", a.re_mode, ("const", "rand", "pixel"))
    _number("aug.mixup", a.mixup, low=0)
    _number("aug.cutmix", a.cutmix, low=0)
    _choice("aug.mixup_mode", a.mixup_mode, ("batch", "pair", "elem"))
    _number("aug.smoothing", a.smoothing, low=0, high=1, high_open=True)
    _number("optim.lr", o.lr, low=0, low_open=True, optional=True)
    _number("optim.lr_base", o.lr_base, low=0, low_open=True)
    _number("optim.lr_base_size", o.lr_base_size, low=1)
    _choice("optim.lr_base_scale", o.lr_base_scale, ("linear", "sqrt"))
    _number("optim.weight_decay", o.weight_decay, low=0)
    _number("optim.eps", o.eps, low=0, low_open=True, optional=True)
    _number("optim.momentum", o.momentum, low=0, high=1, high_open=True)
    _number("optim.clip_grad", o.clip_grad, low=0, low_open=True, optional=True)
    _choice("optim.clip_mode", o.clip_mode, ("norm", "value", "agc"))
    _number("optim.accum_steps", o.accum_steps, low=1)
    _choice("sched.name", s.name, SCHEDULERS)
    _number("sched.epochs", s.epochs, low=1)
    for key in ("warmup_epochs", "warmup_lr", "min_lr", "cooldown_epochs", "decay_rate"):
        _number(f"sched.{key}", getattr(s, key), low=0)
    _number("sched.decay_epochs", s.decay_epochs, low=0, low_open=True, optional=True)
    _number("ema.decay", cfg.ema.decay, low=0, high=1, low_open=True, high_open=True)
    _choice("distill.type", cfg.distill.type, ("none", "hard", "soft"))
    _number("distill.alpha", cfg.distill.alpha, low=0, high=1)
    _number("distill.tau", cfg.distill.tau, low=0, low_open=True)
    _number("model.aux_loss_weight", cfg.model.aux_loss_weight, low=0)
    _number("model.checkpoint_num_classes", cfg.model.checkpoint_num_classes, low=1, optional=True)
    _choice("run.amp", r.amp, ("auto", "none", "bf16", "fp16"))
    for key in ("seed", "checkpoint_every", "max_steps", "bn_recalibration", "threads"):
        _number(f"run.{key}", getattr(r, key), low=0)
    _number("run.keep_checkpoints", r.keep_checkpoints, low=1)
    _number("run.log_every", r.log_every, low=1)
    check_device("run.device", r.device)
    if r.amp == "fp16" and not r.device.startswith("cuda") and not (r.device == "auto" and torch.cuda.is_available()):
        raise ConfigError(f"run.amp=fp16 needs CUDA (run.device={r.device}); on CPU use run.amp=bf16 or none")


def check_device(key: str, name: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (an existing GPU), ``mps`` where available."""
    kind, _, index = name.partition(":")
    if name == "auto" or name == "cpu":
        return
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name!r}: CUDA is not available on this machine; use cpu (or auto)")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ConfigError(f"{key}={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return
    if name == "mps" and torch.backends.mps.is_available():
        return
    raise ConfigError(f"{key}={name!r}: use auto, cpu, cuda or cuda:N")


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None))
