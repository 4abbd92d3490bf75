"""Stitching: insert a plug-in module into any model, after each stage, after each block, or after named
submodules, with the channel counts inferred by a dry run.

>>> model = lv.create_model("mobilenetv2_100", num_classes=10)
>>> stitch(model, "eca", where="stages")                 # after every feature_info stage
>>> stitch(model, "cbam", where="blocks")                # after every block of every stage
>>> stitch(model, "coord_attention", where=["stages.3.*"])   # fnmatch patterns or exact paths

How the module is inserted keeps the model's contract and, where possible, its state-dict keys:

1. the target is a plain ``nn.Sequential`` (a stage): the module is appended to it (``stages.2.eca``);
2. the target sits in a plain ``nn.Sequential`` that is not the model's list of stages (a block): the
   module is inserted right after it as a sibling (``stages.2.1_eca``); existing keys do not move;
3. anywhere else the target is replaced by a :class:`Stitched` wrapper (``path.block`` = the original,
   ``path.after`` = the module): the target's keys gain a ``block.`` prefix (``load_checkpoint`` still
   loads old checkpoints by its positional fallback).

``feature_info`` is unchanged (the modules preserve shape), ``fuse_model`` still folds the original
blocks (fusing recurses into the wrapper), and the result traces and exports like the original.
The model is modified in place and returned; ``copy.deepcopy`` it first to keep the original.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from litevision.errors import UserError
from litevision.modules._registry import create_module

ModuleSpec = str | Callable[[int], nn.Module]


class Stitched(nn.Module):
    """``after(block(x))``: used where the module cannot be inserted as a sibling."""

    def __init__(self, block: nn.Module, after: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.after = after

    def forward(self, x: Tensor) -> Tensor:
        return self.after(self.block(x))


def _is_plain_sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def _base_model(model: nn.Module) -> nn.Module:
    """A features-only wrapper (``FeatureExtractor``: ``.model`` + ``.out_indices``) delegates to its model.

    Duck-typed: ``modules`` must not import ``models`` (one-way imports)."""
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) and hasattr(model, "out_indices") else model


def _stage_paths(model: nn.Module) -> list[str]:
    info = getattr(model, "feature_info", None)
    if not info:
        raise UserError(f"{type(model).__name__} has no feature_info: pass submodule paths as where=[...]")
    return [f["module"] for f in info]


def _block_paths(model: nn.Module) -> list[str]:
    paths = []
    for stage_path in _stage_paths(model):
        stage = model.get_submodule(stage_path)
        blocks = stage if isinstance(stage, nn.Sequential) else getattr(stage, "blocks", None)
        if isinstance(blocks, nn.Sequential) and len(blocks):
            prefix = stage_path if blocks is stage else f"{stage_path}.blocks"
            paths += [f"{prefix}.{name}" for name, _ in blocks.named_children()]
        else:
            paths.append(stage_path)
    return paths


def resolve_targets(model: nn.Module, where: str | Sequence[str]) -> list[str]:
    """Submodule paths for ``where``: "stages", "blocks", or exact paths / fnmatch patterns."""
    if where == "stages":
        return _stage_paths(model)
    if where == "blocks":
        return _block_paths(model)
    patterns = [where] if isinstance(where, str) else list(where)
    names = [n for n, _ in model.named_modules() if n]
    paths: list[str] = []
    for pattern in patterns:
        hits = [pattern] if pattern in names else [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            import difflib

            close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UserError(f"stitch: no submodule matches {pattern!r}.{hint} (where='stages', 'blocks', or paths "
                            "such as 'stages.1.0')")
        paths += [h for h in hits if h not in paths]
    # a module inside another target would be stitched twice over: keep the outermost
    return [p for p in paths if not any(p.startswith(q + ".") for q in paths if q != p)]


def _dry_run_input(model: nn.Module, input_size: Sequence[int] | None) -> Tensor:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if input_size is None:
        card = getattr(model, "card", None)
        sizes = getattr(card, "extra", {}).get("test_sizes") if card is not None else None
        shape = tuple(sizes[0]) if sizes else (1, getattr(model, "in_chans", 3), 96, 96)
    else:
        shape = tuple(input_size)
        if len(shape) == 3:
            shape = (1, *shape)
    return torch.zeros(shape, device=device, dtype=dtype)


@torch.no_grad()
def _output_shapes(model: nn.Module, paths: Sequence[str], x: Tensor) -> dict[str, torch.Size]:
    shapes: dict[str, torch.Size] = {}
    handles = []
    for path in paths:
        def hook(mod: nn.Module, inp: Any, out: Any, path: str = path) -> None:
            shapes[path] = out.shape if isinstance(out, Tensor) else torch.Size([])

        handles.append(model.get_submodule(path).register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def _unique_name(parent: nn.Module, name: str) -> str:
    taken = dict(parent.named_children())
    if name not in taken:
        return name
    i = 1
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


def _insert(model: nn.Module, path: str, new: nn.Module, tag: str, stage_container: str | None) -> str:
    """Insert ``new`` after the submodule at ``path``; returns the new module's path."""
    target = model.get_submodule(path)
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    if _is_plain_sequential(target):
        name = _unique_name(target, tag)
        target.add_module(name, new)
        return f"{path}.{name}"
    if _is_plain_sequential(parent) and parent_path != stage_container:
        name = _unique_name(parent, f"{attr}_{tag}")
        items = []
        for key, child in parent._modules.items():
            items.append((key, child))
            if key == attr:
                items.append((name, new))
        parent._modules = OrderedDict(items)
        return f"{parent_path}.{name}" if parent_path else name
    setattr(parent, attr, Stitched(target, new))
    return f"{path}.after"


def stitch(model: nn.Module, module: ModuleSpec, where: str | Sequence[str] = "stages", *,
           input_size: Sequence[int] | None = None, **module_kwargs: Any) -> nn.Module:
    """Insert ``module`` (a registered module name, or a factory ``f(channels) -> nn.Module``) after each
    target of ``where`` and return ``model`` (modified in place).

    ``where``: ``"stages"`` (after each ``feature_info`` stage), ``"blocks"`` (after each block of each
    stage), or submodule paths / fnmatch patterns (``["stages.2", "stages.3.*"]``). Channels come from a
    dry run at ``input_size`` (default: the card's first test size, else (1, in_chans, 96, 96)).
    ``module_kwargs`` go to ``create_module``. The inserted modules must preserve shape.
    """
    base = _base_model(model)
    paths = resolve_targets(base, where)
    if not paths:
        raise UserError(f"stitch: where={where!r} selects no submodule")
    x = _dry_run_input(base, input_size)
    shapes = _output_shapes(base, paths, x)
    missing = [p for p in paths if p not in shapes]
    if missing:
        raise UserError(f"stitch: {missing[:3]} did not run in the forward pass, so nothing can follow them")
    stage_paths = [f["module"] for f in getattr(base, "feature_info", [])]
    stage_container = stage_paths[0].rpartition(".")[0] if stage_paths and "." in stage_paths[0] else None
    if isinstance(module, str):
        tag = module
        factory: Callable[[int], nn.Module] = lambda c: create_module(module, c, **module_kwargs)  # noqa: E731
    else:
        if module_kwargs:
            raise TypeError("stitch: module_kwargs are only used with a registered module name")
        tag = getattr(module, "__name__", type(module).__name__).lower()
        factory = module
    param = next(base.parameters(), None)
    records = []
    for path in paths:
        shape = shapes[path]
        if len(shape) != 4:
            raise UserError(f"stitch: the output of {path!r} is not an (N, C, H, W) map ({tuple(shape)})")
        channels = int(shape[1])
        new = factory(channels)
        out_chs, stride = getattr(new, "out_channels", channels), getattr(new, "stride", 1)
        if out_chs != channels or stride != 1:
            raise ValueError(f"stitch: {tag} must preserve the shape after {path!r} (channels {channels}), but "
                             f"has out_channels={out_chs}, stride={stride}")
        if param is not None:
            new.to(device=param.device, dtype=param.dtype if param.is_floating_point() else None)
        new.train(base.training)
        new_path = _insert(base, path, new, tag, stage_container)
        records.append({"after": path, "path": new_path, "module": tag, "channels": channels,
                        "size": tuple(int(s) for s in shape[2:])})
    base.stitched = [*getattr(base, "stitched", []), *records]
    _check(base, x)
    return model


@torch.no_grad()
def _check(model: nn.Module, x: Tensor) -> None:
    """The stitched model still runs, and its stage outputs still match ``feature_info``."""
    was_training = model.training
    model.eval()
    try:
        model(x)
        info = getattr(model, "feature_info", None)
        if info and hasattr(model, "forward_intermediates"):
            outs = model.forward_intermediates(x)
            got = [int(o.shape[1]) for o in outs]
            want = [f["num_chs"] for f in info]
            if got != want:
                raise RuntimeError(f"stitch broke feature_info: stage channels {got}, expected {want}")
    finally:
        model.train(was_training)


def normalize_stitch_specs(specs: Any) -> list[dict[str, Any]]:
    """Stitch specs as a list of ``{"module", "where", "kwargs"}`` dicts.

    Accepted forms: one dict or a list of dicts (``{"module": "eca", "where": "stages", "kwargs": {...}}``,
    ``where`` defaults to "stages"), or ``(module, where)`` pairs. Unknown keys are errors.
    """
    items = [specs] if isinstance(specs, dict | str) else list(specs)
    out = []
    for item in items:
        if isinstance(item, str):
            item = {"module": item}
        elif not isinstance(item, dict):
            module, where = item
            item = {"module": module, "where": where}
        unknown = set(item) - {"module", "where", "kwargs"}
        if unknown or "module" not in item:
            raise UserError(f"stitch spec {item!r}: expected keys module, where (optional), kwargs (optional)")
        where = item.get("where", "stages")
        out.append({"module": str(item["module"]), "where": where if isinstance(where, str) else list(where),
                    "kwargs": dict(item.get("kwargs") or {})})
    return out


def apply_stitch_specs(model: nn.Module, specs: Any) -> nn.Module:
    """Apply :func:`stitch` for each spec (see :func:`normalize_stitch_specs`), in order."""
    for spec in normalize_stitch_specs(specs):
        stitch(model, spec["module"], where=spec["where"], **spec["kwargs"])
    return model
