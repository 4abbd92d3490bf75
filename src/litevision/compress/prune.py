"""Structured pruning to a MAC budget: channels are removed physically with Torch-Pruning's DepGraph
(``pip install 'litevision[compress]'``), never masked.

``prune(model, target_macs=0.5)`` returns a :class:`PruneResult` whose model is a pruned copy costing half the
MACs (within 5 %) with the same inputs and classes. One channel pruning ratio applies to every prunable width
(DepGraph's local pruning: each coupled group of channels loses that share of its least important channels);
the ratio that meets ``target_macs`` is searched for - a first guess from MACs ~ (1 - ratio)^2, then
interpolation inside the bracket - counting the MACs of each pruned candidate with
:func:`litevision.bench.count_complexity`. What Torch-Pruning cannot trace (channel shuffle, SKA, DTConv,
attention with indexing, plug-in gates) is handled per module type in :mod:`litevision.compress._custom`.

The pruned architecture is data (:func:`litevision.models.model_structure`): :func:`save_pruned` writes it next
to the weights in a ``.safetensors`` file that :func:`litevision.models.load_trained_model` and
``create_model(..., checkpoint_path=...)`` rebuild without pickle.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.bench import count_complexity
from litevision.compress._custom import ChannelScorer, GuardedImportance, build_plan, is_plugin, probe
from litevision.errors import UserError
from litevision.layers import ClassifierHead
from litevision.models import DataConfig, model_structure, save_weights, weights_metadata
from litevision.models.hybridsn import HybridHead
from litevision.utils import require

log = logging.getLogger(__name__)

IMPORTANCES = ("l1", "l2", "taylor", "random")
MACS_TOLERANCE = 0.05  # the pruned MACs are within 5 % of the requested target
Calibration = tuple[Tensor, Tensor] | Sequence[tuple[Tensor, Tensor]] | Callable[[nn.Module], Tensor]


@dataclass
class PruneResult:
    """A pruned copy of a model and what it costs; ``structure`` is its per-layer widths (JSON-able)."""

    model: nn.Module = field(repr=False)
    importance: str
    ratio: float  # the channel pruning ratio used
    target_macs: float | None  # the requested fraction of the original MACs (None: ratio mode)
    input_size: tuple[int, ...]  # what the MACs were counted at
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    structure: dict[str, Any] = field(repr=False, default_factory=dict)
    trials: list[dict[str, float]] = field(default_factory=list)  # (ratio, MACs fraction) of the search

    @property
    def macs_fraction(self) -> float:
        return self.macs_after / self.macs_before

    @property
    def params_fraction(self) -> float:
        return self.params_after / self.params_before

    def summary(self) -> dict[str, Any]:
        """Plain data for reports (no model, no structure)."""
        return {"importance": self.importance, "ratio": round(self.ratio, 4), "target_macs": self.target_macs,
                "input_size": list(self.input_size), "macs_before": self.macs_before, "macs_after": self.macs_after,
                "macs_fraction": round(self.macs_fraction, 4), "params_before": self.params_before,
                "params_after": self.params_after, "params_fraction": round(self.params_fraction, 4),
                "trials": self.trials}


def check_prune_request(target_macs: float | None, ratio: float | None, importance: str, *,
                        names: Mapping[str, str] | None = None) -> None:
    """The numbers of a prune request, checked before any work: a :class:`UserError` names the bad one by its
    name in ``names`` (the API's argument names by default; the CLI passes its flags)."""
    n = {"target_macs": "target_macs", "ratio": "ratio", "importance": "importance", **(names or {})}
    if (target_macs is None) == (ratio is None):
        raise UserError(f"give exactly one of {n['target_macs']} (fraction of the MACs to keep) or {n['ratio']} "
                        "(share of channels removed)")
    if target_macs is not None and not 0.0 < target_macs < 1.0:
        raise UserError(f"{n['target_macs']} {target_macs}: the fraction of the MACs to keep, in (0, 1)")
    if ratio is not None and not 0.0 <= ratio < 1.0:
        raise UserError(f"{n['ratio']} {ratio}: the share of channels removed, in [0, 1)")
    if importance not in IMPORTANCES:
        raise UserError(f"{n['importance']} {importance!r}: choose from {', '.join(IMPORTANCES)}")


def prune(
    model: nn.Module,
    *,
    target_macs: float | None = None,
    ratio: float | None = None,
    importance: str = "l2",
    input_size: Sequence[int] | None = None,
    example_inputs: Tensor | None = None,
    iterative_steps: int = 1,
    round_to: int | None = None,
    ignored: Sequence[nn.Module | str] = (),
    calibration: Calibration | None = None,
    max_ratio: float = 0.9,
    seed: int = 0,
) -> PruneResult:
    """Prune a copy of ``model`` (``model`` itself is left as it is) and return a :class:`PruneResult`.

    Give exactly one of ``target_macs`` (the fraction of the original MACs to keep, 0.5 = half; reached within
    5 %) or ``ratio`` (the channel pruning ratio of every prunable width). ``importance``: ``l1`` / ``l2``
    (weight magnitude), ``taylor`` (|weight x gradient| of the loss on ``calibration``: an ``(inputs, targets)``
    batch, a list of them, or ``loss_fn(model) -> loss``), ``random``. MACs are counted at ``input_size``
    ((C, H, W), default the model card's; HybridSN takes its (1, bands, P, P) cube) or on ``example_inputs``.
    ``iterative_steps`` prunes in that many steps, the importance recomputed after each; ``round_to`` keeps
    widths multiples of it (DepGraph groups); ``ignored`` modules (or submodule paths) keep their output
    channels, as the classifier does. The input channels and the class count never change.
    """
    check_prune_request(target_macs, ratio, importance)
    if importance == "taylor" and calibration is None:
        raise UserError("importance 'taylor' needs calibration data: an (inputs, targets) batch or a loss function")
    if iterative_steps < 1:
        raise UserError(f"iterative_steps must be >= 1, got {iterative_steps}")
    require("torch_pruning", "compress")
    example = _example(model, input_size, example_inputs)
    size = tuple(example.shape[1:])
    before = count_complexity(model, (1, *size) if example.dim() == 5 else size)
    pruner = _Pruner(model, example, importance, iterative_steps, round_to, ignored, calibration, seed)
    if ratio is not None:
        best, best_ratio = pruner.run(ratio), ratio
        trials = [{"ratio": ratio, "macs_fraction": round(best[1] / before.macs, 4)}]
    else:
        best, best_ratio, trials = _search(pruner, before.macs, target_macs, max_ratio)
    pruned, macs_after = best
    params_after = sum(p.numel() for p in pruned.parameters())
    return PruneResult(model=pruned, importance=importance, ratio=best_ratio, target_macs=target_macs,
                       input_size=size, macs_before=before.macs, macs_after=macs_after,
                       params_before=before.params, params_after=params_after, structure=model_structure(pruned),
                       trials=trials)


def _search(pruner: _Pruner, macs0: int, target: float, max_ratio: float
            ) -> tuple[tuple[nn.Module, int], float, list[dict[str, float]]]:
    """The pruning ratio whose MACs are closest to ``target`` (stops within 2 %; fails beyond 5 %)."""
    lo, f_lo, hi, f_hi = 0.0, 1.0, None, None
    r = min(max_ratio, 1.0 - math.sqrt(target))  # MACs of a conv net ~ (1 - ratio)^2
    best: tuple[tuple[nn.Module, int], float, float] | None = None
    trials: list[dict[str, float]] = []
    for _ in range(14):
        result = pruner.run(r)
        f = result[1] / macs0
        trials.append({"ratio": round(r, 4), "macs_fraction": round(f, 4)})
        log.debug("prune: ratio %.4f -> %.4f of the MACs", r, f)
        if best is None or abs(f - target) < abs(best[2] - target):
            best = (result, r, f)
        if abs(f - target) <= 0.02 * target:
            break
        if f > target:
            lo, f_lo = r, f
        else:
            hi, f_hi = r, f
        if hi is None:
            if r >= max_ratio:
                break
            step = (1.0 - r) * (1.0 - math.sqrt(target / f))
            # on a plateau (widths kept intact, coarse steps) the MACs barely follow the ratio: take longer strides
            r = min(max_ratio, r + max(step, 0.05, (max_ratio - r) / 3 if step < 0.05 else 0.0))
        else:
            if hi - lo < 1e-3:
                break
            # interpolate in sqrt(MACs), which is close to linear in the ratio
            t = (math.sqrt(f_lo) - math.sqrt(target)) / (math.sqrt(f_lo) - math.sqrt(f_hi))
            r = lo + (hi - lo) * min(0.9, max(0.1, t))
    assert best is not None
    (model, macs), r, f = best
    if abs(f - target) > MACS_TOLERANCE * target:
        kept = "the widths kept intact cost too much" if f > target else "the widths come in coarse steps"
        raise UserError(f"cannot prune to {target:.3g} of the MACs: the closest is {f:.3f} (ratio {r:.3f}, max "
                        f"{max_ratio}); {kept}")
    return (model, macs), r, trials


class _Pruner:
    """Prunes fresh copies of one model at a given ratio."""

    def __init__(self, model: nn.Module, example: Tensor, importance: str, steps: int, round_to: int | None,
                 ignored: Sequence[nn.Module | str], calibration: Calibration | None, seed: int) -> None:
        self.model, self.example, self.importance = model, example, importance
        self.steps, self.round_to, self.calibration, self.seed = steps, round_to, calibration, seed
        names = {m: n for n, m in model.named_modules()}
        self.ignored_paths = []
        for item in ignored:
            if isinstance(item, str):
                if item not in dict(model.named_modules()):
                    raise UserError(f"ignored: the model has no submodule {item!r}")
                self.ignored_paths.append(item)
            elif item in names:
                self.ignored_paths.append(names[item])
            else:
                raise UserError(f"ignored: {type(item).__name__} is not a submodule of the model")

    def run(self, ratio: float) -> tuple[nn.Module, int]:
        """A pruned copy at ``ratio`` and its MACs."""
        tp = require("torch_pruning", "compress")
        work = copy.deepcopy(self.model).eval()
        work.requires_grad_(True)
        modules = dict(work.named_modules())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            plan = build_plan(work, self.example, [modules[p] for p in self.ignored_paths])
            base = {"l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
                    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
                    "taylor": tp.importance.GroupTaylorImportance,
                    "random": tp.importance.RandomImportance}[self.importance]()
            with plan.tracing(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown element-wise ops, unwrapped parameters: handled above
                pruner = tp.pruner.MetaPruner(
                    work, self.example, importance=GuardedImportance(base, plan), pruning_ratio=ratio,
                    iterative_steps=self.steps, ignored_layers=plan.ignored, round_to=self.round_to,
                    customized_pruners=plan.pruners, root_module_types=plan.roots,
                    output_transform=plan.output_transform)
            scorer = ChannelScorer(self.importance, generator)
            for step in range(self.steps):
                if self.importance == "taylor":
                    self._gradients(work)
                pruner.step()
                carry = 0.0  # rounding error passed from unit to unit (see ShuffleBottleneckPruner.prune_to)
                for inner in plan.inner:
                    carry = inner.prune_to(ratio * (step + 1) / self.steps, scorer, carry)
        for p in work.parameters():
            p.grad = None
        _sync_metadata(work, self.example)
        size = tuple(self.example.shape[1:])
        macs = count_complexity(work, (1, *size) if self.example.dim() == 5 else size).macs
        return work.eval(), macs

    def _gradients(self, model: nn.Module) -> None:
        """Gradients of the calibration loss (eval mode: BatchNorm statistics and DTConv schedules untouched)."""
        for p in model.parameters():
            p.grad = None
        model.eval()
        with torch.enable_grad():
            cal = self.calibration
            if callable(cal):
                cal(model).backward()
                return
            batches = [cal] if isinstance(cal, tuple) and len(cal) == 2 and isinstance(cal[0], Tensor) else cal
            device = self.example.device
            for inputs, targets in batches:
                logits = model(inputs.to(device))
                F.cross_entropy(logits, targets.to(device)).backward()


def _example(model: nn.Module, input_size: Sequence[int] | None, example: Tensor | None) -> Tensor:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if example is not None:
        return example.to(device)
    if input_size is None:
        card = getattr(model, "card", None)
        input_size = tuple(card.input_size) if card is not None else (getattr(model, "in_chans", 3), 224, 224)
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        size = (getattr(model, "in_chans", 3), *size)
    generator = torch.Generator().manual_seed(0)
    return torch.randn((1, *size), generator=generator).to(device)


@torch.no_grad()
def _sync_metadata(model: nn.Module, example: Tensor) -> None:
    """Widths other code reads from attributes: ``num_features``, ``feature_info``, the heads' input widths, the
    plug-in modules' ``out_channels``."""
    plugins = [m for m in model.modules() if is_plugin(m) and isinstance(getattr(m, "out_channels", None), int)]
    for module, (_, out_chs, _) in probe(model, example, plugins).items():
        module.out_channels = out_chs
    for module in model.modules():
        if isinstance(module, ClassifierHead):
            fc, hidden = module.fc, module.hidden
            module.in_features = hidden.in_features if isinstance(hidden, nn.Linear) else (
                fc.in_features if isinstance(fc, nn.Linear) else module.in_features)
            module.num_features = fc.in_features if isinstance(fc, nn.Linear) else (
                hidden.out_features if isinstance(hidden, nn.Linear) else module.in_features)
        elif isinstance(module, HybridHead):
            module.num_features = module.fc2.out_features
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and callable(getattr(model, "forward_intermediates", None)):
        outs = model.forward_intermediates(example)
        model.feature_info = [{**f, "num_chs": int(o.shape[1])} for f, o in zip(info, outs)]
    if hasattr(model, "num_features") and callable(getattr(model, "forward_head", None)):
        pre = model.forward_head(model.forward_features(example), pre_logits=True)
        model.num_features = int(pre.shape[1])


def save_pruned(
    path: str | os.PathLike[str],
    result: PruneResult,
    *,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
    data_config: DataConfig | None = None,
    **extra: Any,
) -> Path:
    """Write the pruned weights with the metadata :func:`litevision.models.load_trained_model` rebuilds them from
    (``"structure"``, plus ``"pruning"``: target, MACs / params before and after, importance)."""
    model = result.model
    name = model_name or getattr(model, "model_name", None)
    if name is None:
        raise UserError("save_pruned: the model has no registered name; pass model_name")
    num_classes = int(getattr(model, "num_classes", 0))
    if data_config is None:
        card = getattr(model, "card", None)
        data_config = card.data_config if card is not None else DataConfig()
        data_config = data_config.replace(input_size=(getattr(model, "in_chans", data_config.input_size[0]),
                                                      *data_config.input_size[1:]))
    names = class_names if class_names is not None else [str(i) for i in range(num_classes)]
    meta = weights_metadata(name, dict(model_kwargs or {}), num_classes, names, data_config,
                            structure=result.structure, pruning=result.summary(), **extra)
    return save_weights(path, model.state_dict(), meta)
