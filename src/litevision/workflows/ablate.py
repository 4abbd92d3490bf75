"""Ablation: the same model trained and evaluated with and without a plug-in module.

``run_ablation("mobilenetv2_050", "eca", where="stages", data="fashion_mnist_subset")`` trains two runs
with one recipe, one seed and one data split through :func:`litevision.engine.train` - the baseline, and
the model with ``model.kwargs.stitch = [{module, where, kwargs}]`` (the module inserted by
:func:`litevision.modules.stitch.stitch`) - then measures both trained models with the same code: params,
MACs at the training input size, CPU latency (batch 1, BN-fused, the two arms timed in alternating
rounds so machine noise hits both alike), and test top-1 / top-5. The report gives each arm and the
deltas (variant - baseline); ``train=False`` compares params / MACs / latency only.

This is the seed's "ablation-style verification" for modules whose papers publish no code: the same
pipeline with the module as the only difference.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from litevision.bench import count_complexity
from litevision.bench.timing import fixed_threads, time_calls
from litevision.data import data_config_for, load_bundle
from litevision.engine import load_config
from litevision.engine import train as train_run
from litevision.errors import UserError
from litevision.layers import fuse_model
from litevision.models import create_any_model, load_trained_model


@dataclass
class ArmResult:
    """One side of the ablation."""

    label: str
    model_kwargs: dict[str, Any]
    params: int
    macs: int
    latency_ms: float | None = None  # median per image, batch 1, CPU, BN fused
    top1: float | None = None  # test top-1 (%), last weights
    top5: float | None = None
    run_dir: str | None = None
    train_seconds: float | None = None
    stitched: list[dict[str, Any]] = field(default_factory=list)  # where the module went, with its channels


@dataclass
class AblationReport:
    model: str
    module: str
    where: Any
    data: str
    recipe: str
    seed: int
    input_size: tuple[int, ...]
    baseline: ArmResult
    variant: ArmResult
    threads: int | None = None
    latency_rounds: int = 0

    @property
    def delta_params(self) -> int:
        return self.variant.params - self.baseline.params

    @property
    def delta_macs(self) -> int:
        return self.variant.macs - self.baseline.macs

    @property
    def delta_latency_ms(self) -> float | None:
        b, v = self.baseline.latency_ms, self.variant.latency_ms
        return None if b is None or v is None else v - b

    @property
    def delta_top1(self) -> float | None:
        b, v = self.baseline.top1, self.variant.top1
        return None if b is None or v is None else v - b

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(delta_params=self.delta_params, delta_macs=self.delta_macs,
                 delta_latency_ms=self.delta_latency_ms, delta_top1=self.delta_top1)
        return d

    def format(self) -> str:
        """A plain-text table: baseline, variant and delta."""
        def f(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)

        def pct(d: float | None, base: float | None) -> str:
            return "" if d is None or not base else f" ({d / base * 100:+.1f}%)"

        b, v = self.baseline, self.variant
        rows = [
            ("params", f"{b.params:,}", f"{v.params:,}", f"{self.delta_params:+,}" + pct(self.delta_params, b.params)),
            ("MACs", _count(b.macs), _count(v.macs), _count(self.delta_macs, sign=True) + pct(self.delta_macs, b.macs)),
            ("latency (ms, bs 1)", f(b.latency_ms, ".3f"), f(v.latency_ms, ".3f"),
             f(self.delta_latency_ms, "+.3f") + pct(self.delta_latency_ms, b.latency_ms)),
            ("test top-1 (%)", f(b.top1, ".2f"), f(v.top1, ".2f"), f(self.delta_top1, "+.2f")),
            ("test top-5 (%)", f(b.top5, ".2f"), f(v.top5, ".2f"),
             "-" if b.top5 is None or v.top5 is None else f"{v.top5 - b.top5:+.2f}"),
        ]
        head = ("", "baseline", f"+ {self.module}", "delta")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = [f"ablation: {self.model} with / without {self.module} at where={self.where!r}; data {self.data}, "
                 f"recipe {self.recipe}, seed {self.seed}, input {'x'.join(map(str, self.input_size))}"]
        lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                  for r in [head, *rows]]
        if v.stitched:
            spots = ", ".join(f"{s['after']}({s['channels']})" for s in v.stitched[:6])
            more = f" and {len(v.stitched) - 6} more" if len(v.stitched) > 6 else ""
            lines.append(f"{self.module} inserted after: {spots}{more}")
        if self.latency_rounds:
            lines.append(f"latency: median of {self.latency_rounds} alternating rounds, {self.threads} thread(s)")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return p


def _count(n: int, sign: bool = False) -> str:
    """1234567 -> 1.23M, 4321 -> 4.32K (explicit sign for deltas)."""
    s = "+" if sign and n >= 0 else ""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{s}{n / scale:.2f}{unit}"
    return f"{s}{n}"


def stitch_kwargs(module: str, where: str | Sequence[str], module_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``model.kwargs`` entry that makes ``create_model`` insert ``module`` (kept in configs and weights)."""
    where_value: Any = where if isinstance(where, str) else list(where)
    return {"stitch": [{"module": module, "where": where_value, "kwargs": dict(module_kwargs or {})}]}


def compare_latency(models: Sequence[nn.Module], input_shape: tuple[int, ...], *, rounds: int = 5, iters: int = 20,
                    warmup: int = 5, threads: int | None = None) -> list[float]:
    """Median per-call latency (ms) of each model, measured in alternating rounds on fused copies."""
    runners = []
    x = torch.randn(input_shape)
    for m in models:
        fused = fuse_model(copy.deepcopy(m).eval())
        runners.append(fused)
    medians: list[list[float]] = [[] for _ in runners]
    with fixed_threads(threads or torch.get_num_threads()), torch.inference_mode():
        for r in range(rounds):
            for i, model in enumerate(runners):
                stats = time_calls(lambda model=model: model(x), warmup=warmup if r == 0 else 1, iters=iters)
                medians[i].append(stats.median_ms)
    return [float(torch.tensor(m).median()) for m in medians]


def ablation_folder(model: str, module: str) -> str:
    """The folder (under the ablation's output) that holds both runs and ``ablation.json``."""
    return f"{model.replace(':', '-')}-{module}"


def run_ablation(
    model: str,
    module: str,
    *,
    where: str | Sequence[str] = "stages",
    data: str | None = None,
    recipe: str = "quick",
    overrides: Sequence[str] = (),
    module_kwargs: dict[str, Any] | None = None,
    output: str | os.PathLike[str] = "runs/ablate",
    train: bool = True,
    latency: bool = True,
    latency_rounds: int = 5,
    threads: int | None = None,
) -> AblationReport:
    """Train (``train=True``) and measure ``model`` without and with ``module`` under one recipe and seed.

    ``overrides`` are ``--set``-style ``key=value`` strings applied to the recipe for both arms (the seed,
    epochs, batch size...). Runs go to ``output/<model>-<module>/{baseline,with_<module>}``; the report
    is also written there as ``ablation.json``.
    """
    cfg = load_config(recipe, list(overrides))
    cfg.model.name = model
    if data is not None:
        cfg.data.name = data
    if "stitch" in cfg.model.kwargs:
        raise UserError("the recipe already stitches modules (model.kwargs.stitch); ablate adds its own")
    base_kwargs = dict(cfg.model.kwargs)
    variant_kwargs = {**base_kwargs, **stitch_kwargs(module, where, module_kwargs)}
    out = Path(output) / ablation_folder(model, module)
    if train and any((out / label / "last.json").exists() for label in ("baseline", f"with_{module}")):
        raise UserError(f"{out} already holds this ablation's runs: remove it or choose another --output")

    bundle = load_bundle(cfg.data.name, cfg.data.options, root=cfg.data.root)
    d = cfg.data
    data_config = data_config_for(model, bundle, input_size=d.input_size, in_chans=d.in_chans, crop_pct=d.crop_pct,
                                  interpolation=d.interpolation, norm=d.norm, mean=d.mean, std=d.std,
                                  pretrained=cfg.model.checkpoint is not None)
    input_size = tuple(data_config.input_size)

    def build(kwargs: dict[str, Any]) -> nn.Module:
        try:
            return create_any_model(model, num_classes=bundle.num_classes, in_chans=input_size[0],
                                    checkpoint_path=cfg.model.checkpoint,
                                    checkpoint_num_classes=cfg.model.checkpoint_num_classes, **kwargs)
        except TypeError as e:
            raise UserError(f"model {model}: {e} (check model.kwargs)") from None

    arms = []
    built = []
    for label, kwargs in (("baseline", base_kwargs), (f"with_{module}", variant_kwargs)):
        net = build(kwargs)
        arm = ArmResult(label=label, model_kwargs=kwargs, params=0, macs=0,
                        stitched=list(getattr(net, "stitched", [])))
        if train:
            run_cfg = copy.deepcopy(cfg)
            run_cfg.model.kwargs = kwargs
            run_cfg.run.output = str(out)
            run_cfg.run.name = label
            result = train_run(run_cfg, run_dir=out / label)
            arm.run_dir = str(result.run_dir)
            arm.top1, arm.top5 = result.metrics.get("test_top1"), result.metrics.get("test_top5")
            arm.train_seconds = result.metrics.get("elapsed_s")
            net, _ = load_trained_model(result.run_dir)
        net.eval()
        cplx = count_complexity(net, input_size)
        arm.params, arm.macs = cplx.params, cplx.macs
        arms.append(arm)
        built.append(net)
    used_threads = threads or torch.get_num_threads()
    if latency:
        lat = compare_latency(built, (1, *input_size), rounds=latency_rounds, threads=used_threads)
        arms[0].latency_ms, arms[1].latency_ms = lat
    report = AblationReport(model=model, module=module, where=where if isinstance(where, str) else list(where),
                            data=cfg.data.name, recipe=recipe, seed=cfg.run.seed, input_size=input_size,
                            baseline=arms[0], variant=arms[1], threads=used_threads if latency else None,
                            latency_rounds=latency_rounds if latency else 0)
    report.save(out / "ablation.json")
    return report
