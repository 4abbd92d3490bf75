"""What Torch-Pruning's dependency graph cannot trace, and how each family gets around it.

Torch-Pruning (DepGraph) follows channels through the autograd graph of one forward pass and treats every
operation it does not know as element-wise. That is right for convolutions, norms, residual additions and
squeeze-excite gates, and wrong for:

* **channel shuffle** (reshape - transpose - reshape: a permutation DepGraph reads as the identity);
* **LSNet's SKA** (``x`` of C channels aggregated with ``w`` of C/8 weight rows: channel c uses row c mod G);
* **attention with split / view / top-k** (LSNet's stage-4 attention, LCNet's MDAM) and **LCNet's DTConv**
  (a bank of N candidate kernels mixed by a router and applied with a grouped convolution over the batch);
* **plug-in gates that reduce over channels** (CBAM's spatial map, ECA's 1-D convolution across channels).

Each of these modules is made *opaque*: while the graph is traced its forward is a 1x1 stand-in from its
input to an output of the recorded shape, so DepGraph sees one node, and a customized pruner
(``tp.pruner.BasePruningFunc``) removes the node's input / output channels from the module's own tensors:

* :class:`DTConvPruner` - the hidden width in every one of the N candidate kernels, the router's multi-scale
  convolution (split sizes recomputed) and its linear layer; the output width in the bank and its BatchNorm;
* :class:`TokenSelectAttentionPruner` / :class:`LSNetAttentionPruner` - the projections' outer widths; heads,
  head dims and the embedding stay (the chunk / view / top-k indexing is left intact);
* :class:`SKAPruner` - SKA couples the LS block's channels to LKP's weight rows: channels are removed a whole
  weight row at a time (row r = channels {r, r + G, ...}, declared to DepGraph as channel groups), together with
  that row's k x k outputs of LKP's last convolution and its GroupNorm group; LKP's inner widths are traced;
* :class:`GatePruner` - CBAM's channel MLP input/output, ECA nothing (any width works).

*Frozen* modules are opaque and ignored: every channel that reaches them is kept. Channel shuffles (ShuffleNetV2:
the concat + shuffle + chunk of each unit chain the stage width through a permutation across the whole stage),
ShuffleNetV1 units (their inner width is pruned by :class:`ShuffleBottleneckPruner` instead) and plug-in
modules without a pruner here.

ShuffleNetV1's bottleneck crosses its shuffle between two grouped convolutions. :class:`ShuffleBottleneckPruner`
removes *shuffle rows* (position j of every group of the first conv, which the shuffle places next to each
other) lying wholly inside a group of the second conv, the same number in every group: both grouped
convolutions keep equal groups and the shuffle still lines the channels up.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.layers import ChannelShuffle
from litevision.layers.dynamic_conv import DTConv, MultiScaleConv
from litevision.layers.token_select_attention import TokenSelectAttention
from litevision.models.lsnet import LKP, Attention, LSConv
from litevision.models.shufflenetv1 import ShuffleUnitV1
from litevision.modules.cbam import CBAM
from litevision.modules.eca import ECA
from litevision.modules.se import SEModule
from litevision.ops.ska import SKA
from litevision.utils import require


def _tp() -> Any:
    """Torch-Pruning (the ``compress`` extra), imported when pruning starts."""
    return require("torch_pruning", "compress")


_PRUNER_TYPES: dict[type, type] = {}


def make_pruner(logic: type[_OpaquePruner], plan: PrunePlan) -> Any:
    """An instance of ``logic`` as a ``tp.pruner.BasePruningFunc`` subclass (built once Torch-Pruning is imported,
    so that importing this module does not need the extra)."""
    cls = _PRUNER_TYPES.get(logic)
    if cls is None:
        cls = _PRUNER_TYPES[logic] = type(logic.__name__, (logic, _tp().pruner.BasePruningFunc), {})
    return cls(plan)


def _keep(n: int, idxs: Sequence[int]) -> list[int]:
    drop = set(int(i) for i in idxs)
    return [i for i in range(n) if i not in drop]


def _select(t: Tensor, keep: list[int], dim: int) -> Tensor:
    return torch.index_select(t.data, dim, torch.tensor(keep, device=t.device)).contiguous()


def _prune_bn(bn: nn.Module, idxs: Sequence[int]) -> None:
    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
        _tp().prune_batchnorm_out_channels(bn, list(idxs))


def prune_multiscale(ms: MultiScaleConv, idxs: Sequence[int]) -> None:
    """Remove channels of LCNet's multi-scale convolution (its per-split 1x1 and depthwise convs, its BatchNorm)."""
    drop, start, splits = set(int(i) for i in idxs), 0, []
    for c, pw, dw in zip(ms.splits, ms.pw, ms.dw):
        local = [i - start for i in range(start, start + c) if i in drop]
        if len(local) >= c:
            raise RuntimeError(f"pruning would empty a split of {type(ms).__name__} (splits {ms.splits})")
        if local:
            _tp().prune_conv_out_channels(pw, local)
            _tp().prune_conv_in_channels(pw, local)
            if isinstance(dw, nn.Conv2d):
                _tp().prune_depthwise_conv_out_channels(dw, local)
        splits.append(c - len(local))
        start += c
    ms.splits = tuple(splits)
    _prune_bn(ms.bn, idxs)


class _OpaquePruner:
    """A module DepGraph sees as one node; subclasses prune its own tensors (see :func:`make_pruner`)."""

    TARGET_MODULES = None

    def __init__(self, plan: PrunePlan) -> None:
        super().__init__()  # tp.pruner.BasePruningFunc (pruning_dim)
        self.plan = plan

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        return 1

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return 1


class DTConvPruner(_OpaquePruner):
    """LCNet's DTConv: input width across the N candidate kernels and the router, output width of the bank."""

    def prune_in_channels(self, layer: DTConv, idxs: Sequence[int]) -> DTConv:
        keep, k2 = _keep(layer.in_chs, idxs), layer.kernel_size ** 2
        # (N, C_out, C_in·k·k) -> (N, C_out, C_in, k·k): the same input channels go from every candidate kernel
        w = layer.weight.data.view(layer.num_kernels, layer.out_chs, layer.in_chs, k2)
        w = _select(w, keep, 2).reshape(layer.num_kernels, layer.out_chs, len(keep) * k2)
        layer.weight = nn.Parameter(w, requires_grad=layer.weight.requires_grad)
        layer.in_chs = len(keep)
        prune_multiscale(layer.router_features, idxs)
        _tp().prune_linear_in_channels(layer.router, list(idxs))
        return layer

    def prune_out_channels(self, layer: DTConv, idxs: Sequence[int]) -> DTConv:
        keep = _keep(layer.out_chs, idxs)
        layer.weight = nn.Parameter(_select(layer.weight, keep, 1), requires_grad=layer.weight.requires_grad)
        if layer.bias is not None:
            layer.bias = nn.Parameter(_select(layer.bias, keep, 0))
        _prune_bn(layer.bn, idxs)
        layer.out_chs = len(keep)
        return layer

    def get_in_channels(self, layer: DTConv) -> int:
        return layer.in_chs

    def get_out_channels(self, layer: DTConv) -> int:
        return layer.out_chs


class TokenSelectAttentionPruner(_OpaquePruner):
    """LCNet's MDAM: input width (multi-scale features, Q and K/V inputs), output width (projection); the
    embedding, heads and the key-token selection are kept."""

    def prune_in_channels(self, layer: TokenSelectAttention, idxs: Sequence[int]) -> TokenSelectAttention:
        prune_multiscale(layer.features, idxs)
        _tp().prune_linear_in_channels(layer.q, list(idxs))
        _tp().prune_linear_in_channels(layer.kv, list(idxs))
        return layer

    def prune_out_channels(self, layer: TokenSelectAttention, idxs: Sequence[int]) -> TokenSelectAttention:
        _tp().prune_conv_out_channels(layer.proj.conv, list(idxs))
        _prune_bn(layer.proj.bn, idxs)
        return layer

    def get_in_channels(self, layer: TokenSelectAttention) -> int:
        return layer.q.in_features

    def get_out_channels(self, layer: TokenSelectAttention) -> int:
        return layer.proj.conv.out_channels


class LSNetAttentionPruner(_OpaquePruner):
    """LSNet's stage-4 attention: the QKV input and the projection output; heads and key/value dims are kept."""

    def prune_in_channels(self, layer: Attention, idxs: Sequence[int]) -> Attention:
        _tp().prune_conv_in_channels(layer.qkv.c, list(idxs))
        return layer

    def prune_out_channels(self, layer: Attention, idxs: Sequence[int]) -> Attention:
        conv_bn = layer.proj[1]
        _tp().prune_conv_out_channels(conv_bn.c, list(idxs))
        _prune_bn(conv_bn.bn, idxs)
        return layer

    def get_in_channels(self, layer: Attention) -> int:
        return layer.qkv.c.in_channels

    def get_out_channels(self, layer: Attention) -> int:
        return layer.proj[1].c.out_channels


class SKAPruner(_OpaquePruner):
    """SKA: channel c uses LKP's weight row c mod G, so channels go a whole row at a time (with the row's
    k x k outputs of LKP's last convolution and its GroupNorm group)."""

    def _lkp(self, layer: SKA) -> LKP:
        return self.plan.ska_lkp[layer]

    def prune_out_channels(self, layer: SKA, idxs: Sequence[int]) -> SKA:
        lkp, channels = self._lkp(layer), self.plan.channels[layer]
        rows_total = lkp.weight_rows
        rows = sorted({int(i) % rows_total for i in idxs})
        whole = {b * rows_total + r for b in range(channels // rows_total) for r in rows}
        if set(int(i) for i in idxs) != whole:
            raise RuntimeError("SKA channels must be pruned a whole weight row at a time")
        k2 = lkp.small_kernel ** 2
        outputs = [r * k2 + t for r in rows for t in range(k2)]
        _tp().prune_conv_out_channels(lkp.cv4, outputs)
        norm, keep = lkp.norm, _keep(lkp.norm.num_channels, outputs)
        if norm.affine:
            norm.weight = nn.Parameter(_select(norm.weight, keep, 0))
            norm.bias = nn.Parameter(_select(norm.bias, keep, 0))
        norm.num_channels, norm.num_groups = len(keep), norm.num_groups - len(rows)
        lkp.weight_rows = rows_total - len(rows)
        self.plan.channels[layer] = channels - len(idxs)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: SKA) -> int:
        return self.plan.channels[layer]

    get_in_channels = get_out_channels

    def get_out_channel_groups(self, layer: SKA) -> int:
        # channel c = block * G + row: DepGraph picks rows and removes them from every block
        return self.plan.channels[layer] // self._lkp(layer).weight_rows

    get_in_channel_groups = get_out_channel_groups


class GatePruner(_OpaquePruner):
    """A channel-preserving plug-in gate: the same channels leave its input and its output."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        if isinstance(layer, CBAM):
            _tp().prune_conv_in_channels(layer.channel.fc1, list(idxs))
            _tp().prune_conv_out_channels(layer.channel.fc2, list(idxs))
        self.plan.channels[layer] -= len(idxs)
        if isinstance(getattr(layer, "out_channels", None), int):
            layer.out_channels = self.plan.channels[layer]
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return self.plan.channels[layer]

    get_in_channels = get_out_channels


class FrozenPruner(_OpaquePruner):
    """A module whose channels are all kept: it is also an ignored layer, so no group through it is pruned."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise RuntimeError(f"{type(layer).__name__} is kept intact and cannot be pruned")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return self.plan.channels[layer]

    get_in_channels = get_out_channels


# module type -> its pruner class; the order matters for subclasses
OPAQUE: dict[type[nn.Module], type[_OpaquePruner]] = {
    DTConv: DTConvPruner,
    TokenSelectAttention: TokenSelectAttentionPruner,
    Attention: LSNetAttentionPruner,
    SKA: SKAPruner,
    CBAM: GatePruner,
    ECA: GatePruner,
}
FROZEN: tuple[type[nn.Module], ...] = (ChannelShuffle, ShuffleUnitV1)
NATIVE_PLUGINS: tuple[type[nn.Module], ...] = (SEModule,)  # plug-in modules DepGraph traces correctly
ROOTS: tuple[type[nn.Module], ...] = (DTConv, TokenSelectAttention)  # opaque modules that start a width


# ---------------------------------------------------------------------------------------------------------
# channel scores for the pruners that run outside DepGraph


@dataclass
class ChannelScorer:
    """Per-channel scores of one weight tensor along ``dim``: |w|^p (l1 / l2), |w * grad| (taylor), random."""

    importance: str
    generator: torch.Generator

    def __call__(self, weight: Tensor, dim: int, grad: Tensor | None = None) -> Tensor:
        w = weight.detach().movedim(dim, 0).reshape(weight.shape[dim], -1)
        if self.importance == "random":
            return torch.rand(w.shape[0], generator=self.generator).to(w.device)
        if self.importance == "taylor":
            grad = weight.grad if grad is None else grad
            if grad is None:
                raise RuntimeError("taylor importance: a weight has no gradient (the calibration loss missed it)")
            g = grad.detach().movedim(dim, 0).reshape(weight.shape[dim], -1)
            return (w * g).abs().sum(1)
        p = 1 if self.importance == "l1" else 2
        return w.abs().pow(p).sum(1)


def _normalized(score: Tensor) -> Tensor:
    mean = score.mean()
    return score / mean if float(mean) > 0 else score


def _equal_removal(units: Sequence[tuple[list[int], list[int], float]], size: int, groups: int, per_group: int
                   ) -> list[int] | None:
    """The cheapest set of removal units taking exactly ``per_group`` positions from every group of ``size``
    consecutive positions (None if there is none). Units come in position order and may straddle two groups (a
    shuffle row across a group boundary): a scan over the units whose state is the open group's removed count."""
    states: dict[int, tuple[float, list[int]]] = {0: (0.0, [])}  # removed in the open group -> (cost, units)
    open_group = 0
    for i, (positions, _, score) in enumerate(units):
        first, last = positions[0] // size, positions[-1] // size
        if first != open_group:  # the groups before this unit are complete: each must have lost per_group
            if first > open_group + 1 and per_group or per_group not in states:
                return None
            states, open_group = {0: states[per_group]}, first
        if last > first + 1 and per_group:  # a group lies wholly inside the unit: it can lose none or all
            return None
        in_first = sum(1 for p in positions if p // size == first)
        nxt: dict[int, tuple[float, list[int]]] = {}

        def offer(count: int, cost: float, picked: list[int], nxt: dict = nxt) -> None:
            if count <= per_group and (count not in nxt or cost < nxt[count][0]):
                nxt[count] = (cost, picked)

        for count, (cost, picked) in states.items():
            if last == first:
                offer(count, cost, picked)  # keep the unit
                offer(count + in_first, cost + score, [*picked, i])  # remove it
            elif count == per_group or count + in_first == per_group:  # the first group closes inside the unit
                if count == per_group:
                    offer(0, cost, picked)
                if count + in_first == per_group and last == first + 1:
                    offer(len(positions) - in_first, cost + score, [*picked, i])
        states = nxt
        open_group = last
        if not states:
            return None
    if open_group != groups - 1 or per_group not in states:
        return None
    return states[per_group][1]


class ShuffleBottleneckPruner:
    """ShuffleNetV1 unit: 1x1 group conv (g groups) -> BN ReLU -> shuffle(g) -> 3x3 depthwise -> BN -> 1x1 group
    conv (g groups). Output channel ``k·m + j`` of the first conv (group k, position j) lands at ``j·g + k`` after
    the shuffle, so positions j of all groups form one *row* of g neighbours. Rows lying wholly inside one group of
    the second conv are removed, the same number from each group: both group convs keep equal groups and the
    shuffled order of the kept channels is the original order. Without a shuffle (the stage's first unit, whose
    first conv is dense) single channels are removed, again equally per group of the second conv."""

    def __init__(self, unit: ShuffleUnitV1) -> None:
        self.unit = unit
        self.initial = unit.conv_pw.conv.out_channels

    @torch.no_grad()
    def prune_to(self, ratio: float, scorer: ChannelScorer, carry: float = 0.0) -> float:
        """Prune the bottleneck towards ``ratio`` of its initial width and return ``carry`` plus the channels removed
        beyond the share asked for (negative: fewer). The feasible removals come in steps (whole rows, equal per
        group); passing the carry from unit to unit lets the next unit round the other way, so a stage as a whole
        follows the ratio."""
        unit = self.unit
        pw, pw_bn = unit.conv_pw.conv, unit.conv_pw.bn
        dw, dw_bn = unit.conv_dw.conv, unit.conv_dw.bn
        pwl = unit.conv_pwl.conv
        groups, mid = pwl.groups, pw.out_channels
        m = mid // groups  # positions per group of the last conv (= rows when shuffled)
        shuffled = isinstance(unit.shuffle, ChannelShuffle)

        def position(c: int) -> int:  # first conv's output channel -> shuffled position
            return (c % m) * groups + c // m if shuffled else c

        share = ratio * self.initial - (self.initial - mid)  # channels still to remove
        wanted = share - carry
        if wanted <= 0:
            return carry - share
        # scores in position space: every tensor the position touches, each layer normalized by its mean
        by_channel = [scorer(pw.weight, 0)]
        if isinstance(pw_bn, nn.BatchNorm2d):
            by_channel.append(scorer(pw_bn.weight, 0))
        by_position = [scorer(dw.weight, 0), self._pwl_in_scores(pwl, scorer)]
        if isinstance(dw_bn, nn.BatchNorm2d):
            by_position.append(scorer(dw_bn.weight, 0))
        channel_score = sum(_normalized(s) for s in by_channel) / len(by_channel)
        position_score = sum(_normalized(s) for s in by_position) / len(by_position)
        # removal units, in position order: rows j (shuffled: channels k·m + j sit at positions j·g + k) or channels
        units = []
        for u in range(m) if shuffled else range(mid):
            channels = [k * m + u for k in range(groups)] if shuffled else [u]
            positions = sorted(position(c) for c in channels)
            score = float(position_score[positions].sum() + channel_score[channels].sum())
            units.append((positions, channels, score))
        chosen = None
        desired = wanted / groups  # positions per group of the last conv
        for per_group in sorted(range(m), key=lambda t: (abs(t - desired), t)):
            chosen = _equal_removal(units, m, groups, per_group)
            if chosen is not None:
                break
        if not chosen:
            return carry - share
        drop_positions = [p for i in chosen for p in units[i][0]]
        drop_channels = [c for i in chosen for c in units[i][1]]
        _tp().prune_conv_out_channels(pw, drop_channels)
        _prune_bn(pw_bn, drop_channels)
        _tp().prune_depthwise_conv_out_channels(dw, drop_positions)
        _prune_bn(dw_bn, drop_positions)
        self._prune_pwl_in(pwl, drop_positions, m)
        return carry + len(drop_channels) - share

    @staticmethod
    def _pwl_in_scores(pwl: nn.Conv2d, scorer: ChannelScorer) -> Tensor:
        """Scores of the last (group) conv's input positions: each group's weights score its own inputs."""
        out_g, grad = pwl.out_channels // pwl.groups, pwl.weight.grad
        parts = []
        for q in range(pwl.groups):
            rows = slice(q * out_g, (q + 1) * out_g)
            parts.append(scorer(pwl.weight[rows], 1, None if grad is None else grad[rows]))
        return torch.cat(parts)

    @staticmethod
    def _prune_pwl_in(pwl: nn.Conv2d, drop_positions: list[int], m: int) -> None:
        groups, out_g = pwl.groups, pwl.out_channels // pwl.groups
        drop = set(drop_positions)
        parts = []
        for q in range(groups):
            keep_local = [p - q * m for p in range(q * m, (q + 1) * m) if p not in drop]
            parts.append(pwl.weight.data[q * out_g:(q + 1) * out_g][:, keep_local])
        pwl.weight = nn.Parameter(torch.cat(parts).contiguous(), requires_grad=pwl.weight.requires_grad)
        pwl.in_channels = pwl.in_channels - len(drop)


# ---------------------------------------------------------------------------------------------------------
# the plan: which module of this model is opaque, frozen, ignored, pruned outside DepGraph


def is_plugin(module: nn.Module) -> bool:
    mod = type(module).__module__
    return mod.startswith("litevision.modules.") and mod != "litevision.modules.stitch"


@dataclass
class PrunePlan:
    """Everything family-specific about one model, found by module type (never by name)."""

    pruners: dict[type[nn.Module], Any] = field(default_factory=dict)
    opaque: list[nn.Module] = field(default_factory=list)  # traced as one node (stand-in forward)
    ignored: list[nn.Module] = field(default_factory=list)  # their output channels are kept
    inner: list[ShuffleBottleneckPruner] = field(default_factory=list)
    channels: dict[nn.Module, int] = field(default_factory=dict)  # widths of opaque modules without attributes
    shapes: dict[nn.Module, tuple[int, tuple[int, ...]]] = field(default_factory=dict)  # out channels, out size
    ska_lkp: dict[nn.Module, LKP] = field(default_factory=dict)
    stash: list[Tensor] = field(default_factory=list)  # SKA weights, traced as extra outputs

    @property
    def roots(self) -> list[type]:
        return [nn.modules.conv._ConvNd, nn.Linear, nn.LSTM, *ROOTS]

    def output_transform(self, out: Any) -> list[Tensor]:
        outs = list(out) if isinstance(out, tuple | list) else [out]
        return outs + list(self.stash)

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        """While DepGraph traces the model, opaque modules run a 1x1 stand-in (input -> recorded output shape)."""
        self.stash.clear()
        for module in self.opaque:
            module.forward = self._stand_in(module)  # instance attribute: nn.Module.__call__ picks it up
        try:
            yield
        finally:
            for module in self.opaque:
                del module.forward
            self.stash.clear()

    def _stand_in(self, module: nn.Module) -> Callable[..., Tensor]:
        out_chs, size = self.shapes[module]

        def forward(x: Tensor, *rest: Tensor) -> Tensor:
            self.stash.extend(r for r in rest if isinstance(r, Tensor) and r.requires_grad)
            y = F.conv2d(x, x.new_zeros(out_chs, x.shape[1], 1, 1))
            return y if tuple(y.shape[2:]) == size else F.adaptive_avg_pool2d(y, size)

        return forward


@torch.no_grad()
def probe(model: nn.Module, example: Tensor, modules: Sequence[nn.Module]) -> dict[nn.Module, tuple]:
    """(input channels, output channels, output size) of ``modules`` in one forward pass."""
    found: dict[nn.Module, tuple] = {}
    handles = []
    for module in modules:
        def hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
            out = output[0] if isinstance(output, tuple | list) else output
            found[mod] = (int(inputs[0].shape[1]), int(out.shape[1]), tuple(int(s) for s in out.shape[2:]))

        handles.append(module.register_forward_hook(hook))
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
    return found


def output_layers(model: nn.Module, example: Tensor) -> list[nn.Module]:
    """The convolutions / linear layers whose outputs reach the model's output through element-wise operations
    only (the classifier, LSNet's distillation head): their output width is the class count."""
    produced: dict[Any, nn.Module] = {}
    handles = [m.register_forward_hook(lambda mod, i, o: produced.__setitem__(o.grad_fn, mod))
               for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd | nn.Linear)]
    try:
        with torch.enable_grad():
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    outs = list(out) if isinstance(out, tuple | list) else [out]
    found, stack, seen = [], [o.grad_fn for o in outs if o.grad_fn is not None], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in produced:
            if produced[fn] not in found:
                found.append(produced[fn])
            continue
        stack += [f for f, _ in getattr(fn, "next_functions", ())]
    return found


def build_plan(model: nn.Module, example: Tensor, ignored: Sequence[nn.Module] = ()) -> PrunePlan:
    """The pruning plan of ``model`` (a working copy: pruners hold references to its modules)."""
    plan = PrunePlan()
    plugins_done: set[nn.Module] = set()
    frozen: list[nn.Module] = []
    for module in model.modules():
        if module in plugins_done:
            continue
        kind = next((k for k in OPAQUE if isinstance(module, k)), None)
        if kind is not None:
            plan.opaque.append(module)
            plan.pruners.setdefault(kind, make_pruner(OPAQUE[kind], plan))
        elif isinstance(module, FROZEN):
            frozen.append(module)
        elif is_plugin(module) and not isinstance(module, NATIVE_PLUGINS):
            frozen.append(module)
        if is_plugin(module):  # a plug-in's own submodules are its business
            plugins_done.update(module.modules())
        if isinstance(module, LSConv):
            plan.ska_lkp[module.ska] = module.lkp
            plan.ignored.append(module.lkp.cv4)  # its rows follow SKA's channels (SKAPruner)
        if isinstance(module, ShuffleUnitV1):
            plan.inner.append(ShuffleBottleneckPruner(module))
    for module in frozen:
        plan.opaque.append(module)
        plan.pruners.setdefault(type(module), make_pruner(FrozenPruner, plan))
        plan.ignored.append(module)
    shapes = probe(model, example, plan.opaque)
    missing = [type(m).__name__ for m in plan.opaque if m not in shapes]
    if missing:
        raise RuntimeError(f"modules that did not run in the forward pass: {missing[:3]}")
    for module, (in_chs, out_chs, size) in shapes.items():
        plan.shapes[module] = (out_chs, size)
        plan.channels[module] = in_chs
    plan.ignored += output_layers(model, example)
    plan.ignored += list(ignored)
    return plan


class GuardedImportance:
    """The chosen importance, with one channel of each split of LCNet's multi-scale convolutions always kept
    (an empty split would leave its 3x3 / 5x5 / 7x7 path without channels)."""

    def __init__(self, base: Any, plan: PrunePlan) -> None:
        self.base = base
        self.plan = plan

    def __call__(self, group: Any) -> Tensor | None:
        imp = self.base(group)
        if imp is None:
            return None
        for i, (dep, idxs) in enumerate(group):
            layer = dep.target.module
            if not isinstance(layer, DTConv | TokenSelectAttention):
                continue
            if dep.handler != self.plan.pruners[type(layer)].prune_in_channels:
                continue
            ms = layer.router_features if isinstance(layer, DTConv) else layer.features
            roots, start = group[i].root_idxs, 0
            for c in ms.splits:
                members = [r for ix, r in zip(idxs, roots) if start <= ix < start + c and r is not None]
                if members:
                    imp[max(members, key=lambda r: float(imp[r]))] = math.inf
                start += c
        return imp
