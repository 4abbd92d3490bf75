"""Dynamic threshold / top-k convolution (DTConv, LCNet's local branch) and its multi-scale router.

LCNet (Yang et al., Image and Vision Computing 2025; seed 000) convolves the input with a per-sample
kernel ``Σ_i w_i H_i`` built from ``N`` dense candidate kernels ``H_i``. The weights ``w`` come from a
router over multi-scale features (MSMod1: channels split in 3, per-split linear map then 3×3 / 5×5 / 7×7
convolutions, concat + BN), a softmax, and a sparse selection (top-k, or a probability threshold) that is
renormalized to sum to 1.

Batched computation (no Python loop over samples or kernels): the aggregated kernels of the whole batch
are one matrix product ``(B, N) @ (N, C_out·C_in·k·k)``, and the convolution is one grouped convolution
with the batch folded into the channel axis (``groups = B``) — one dense convolution's MACs per sample.
``benchmarks/lcnet_cpu.py`` measures it against the alternative "run the N kernels as one convolution
with N·C_out outputs and mix" (N times the MACs). A grouped convolution whose group count is the batch
size cannot be exported with a symbolic batch, so while tracing / exporting the same arithmetic runs as
``unfold`` + one batched matmul (identical result, batch- and size-generic graph). When the routing is
sparser than the kernel bank (fewer selections in the batch than candidates, e.g. top-2 of 5 at batch 1),
the aggregation is one ``embedding_bag`` (weighted sum of the selected rows) that reads only the selected
kernels instead of a matmul over all N.

Expert collapse (the router sending every sample to one kernel) is countered in two documented ways:

* **temperature annealing** (DynamicConv, Chen et al. CVPR 2020): the softmax temperature starts at
  ``temperature_init`` (30: near-uniform routing, every kernel trained) and falls linearly to 1 over
  ``temperature_anneal_steps`` training forward passes, counted by the ``num_updates`` buffer (so it is
  saved in checkpoints and needs no trainer hook);
* an optional **load-balancing loss** (Switch Transformer, Fedus et al. 2022): ``aux_loss`` holds
  ``N · Σ_i f_i · P_i`` of the last training forward (``f_i`` share of selections, ``P_i`` mean router
  probability; 1 when balanced). Add ``coef * model.auxiliary_loss()`` to the task loss to use it
  (``litevision train ... --set model.aux_loss_weight=0.01``).

Renormalizing the kept weights makes them sum to 1, which gives the router no gradient when a single
kernel is kept (k = 1, or threshold mode with one survivor). The forward pass is the exact renormalized
form; in the backward pass the normalizer is treated as a constant (straight-through), so the router
keeps learning in every mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.layers.fuse import fuse_bn_linear
from litevision.layers.helpers import create_act


def split_channels(chs: int, parts: int) -> tuple[int, ...]:
    """``chs`` split into ``parts`` near-equal groups (the first groups take the remainder)."""
    if chs < parts:
        raise ValueError(f"cannot split {chs} channels into {parts} groups")
    return tuple(chs // parts + (1 if i < chs % parts else 0) for i in range(parts))


class MultiScaleConv(nn.Module):
    """LCNet's MSMod: split channels, per split ``σ(DWConv_k(W_i X_i + b_i))``, concat, BatchNorm.

    One split per entry of ``kernel_sizes`` (MSMod1: 3, 5, 7; MSMod2: 1, 3, 5); the per-split linear
    map is a 1×1 convolution with bias and the k×k convolution is depthwise (k = 1: the linear map only).
    """

    def __init__(self, chs: int, kernel_sizes: Sequence[int] = (3, 5, 7),
                 act_layer: str | Callable[..., nn.Module] | None = "relu") -> None:
        super().__init__()
        self.splits = split_channels(chs, len(kernel_sizes))
        self.kernel_sizes = tuple(kernel_sizes)
        self.pw = nn.ModuleList(nn.Conv2d(c, c, 1) for c in self.splits)
        self.dw = nn.ModuleList(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c) if k > 1 else nn.Identity()
            for c, k in zip(self.splits, self.kernel_sizes)
        )
        self.act = create_act(act_layer)
        self.bn = nn.BatchNorm2d(chs)

    def forward(self, x: Tensor) -> Tensor:
        parts = torch.split(x, self.splits, dim=1)
        return self.bn(torch.cat([self.act(dw(pw(p))) for p, pw, dw in zip(parts, self.pw, self.dw)], dim=1))

    @torch.no_grad()
    def fuse(self) -> nn.Sequential:
        """Deploy form: one block-diagonal 1×1 conv, one depthwise conv of the largest kernel (smaller kernels
        zero-padded, k = 1 as a centred delta), the activation, the BatchNorm (if a parent has not folded it).

        Exact; 5 modules instead of ``3·len(kernel_sizes) + 2`` (fewer, larger ops run faster at batch 1).
        """
        chs, k_max = sum(self.splits), max(self.kernel_sizes)
        w0 = self.pw[0].weight
        pw = nn.Conv2d(chs, chs, 1, device=w0.device, dtype=w0.dtype)
        dw = nn.Conv2d(chs, chs, k_max, padding=k_max // 2, groups=chs, device=w0.device, dtype=w0.dtype)
        pw.weight.zero_()
        dw.weight.zero_()
        start = 0
        for c, k, pw_i, dw_i in zip(self.splits, self.kernel_sizes, self.pw, self.dw):
            end, off = start + c, (k_max - k) // 2
            pw.weight[start:end, start:end] = pw_i.weight
            pw.bias[start:end] = pw_i.bias
            if isinstance(dw_i, nn.Conv2d):
                dw.weight[start:end, :, off:off + k, off:off + k] = dw_i.weight
                dw.bias[start:end] = dw_i.bias
            else:
                dw.weight[start:end, :, k_max // 2, k_max // 2] = 1.0
                dw.bias[start:end] = 0.0
            start = end
        return nn.Sequential(pw, dw, self.act, self.bn)


def sparse_routing(probs: Tensor, top_k: int | None, threshold: float | None) -> Tensor:
    """Keep the ``top_k`` largest probabilities (or those ≥ ``threshold``, always the largest) and renormalize.

    ``probs``: (B, N). The normalizer is detached: forward values sum to 1 exactly, gradients still
    reach every kept probability (see the module docstring). Top-k keeps what is at least the k-th largest
    value — a comparison, not a scatter of the top-k indices: the same selection (more than k only on an exact
    tie, which softmax outputs of real data do not produce), and an ONNX graph OpenCV DNN runs (it cannot load
    ``ScatterElements``).
    """
    if threshold is not None:
        keep = probs >= torch.minimum(probs.amax(-1, keepdim=True), torch.full_like(probs[..., :1], threshold))
    else:
        keep = probs >= probs.topk(top_k, dim=-1).values[..., -1:]
    kept = probs * keep
    return kept / kept.sum(-1, keepdim=True).detach()


FORMULATIONS = ("auto", "grouped", "unfold", "mixture")


def dynamic_conv2d(x: Tensor, weights: Tensor, kernels: Tensor, stride: int = 1, padding: int = 0,
                   formulation: str = "auto") -> Tensor:
    """``y[b] = x[b] ⋆ Σ_i weights[b, i] · kernels[i]`` for a whole batch at once.

    x: (B, C_in, H, W); weights: (B, N); kernels: (N, C_out, C_in, k, k). ``formulation``:
    ``"grouped"`` (aggregate kernels, one grouped conv with groups = B), ``"unfold"`` (aggregate kernels,
    im2col + one batched matmul; export-friendly), ``"mixture"`` (N kernels as one conv with N·C_out
    outputs, then mix the outputs: N× the MACs, no per-sample kernels) or ``"auto"``: ``"unfold"`` when
    the batch is > 1 and the output has no more pixels than the input has channels (small maps, wide
    layers: a grouped conv over B large kernels is slow there on CPU), else ``"grouped"`` — the rule
    comes from ``benchmarks/lcnet_cpu.py --formulations``.
    """
    b, c_in, h, w = x.shape
    n, c_out, _, kh, kw = kernels.shape
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (w + 2 * padding - kw) // stride + 1
    if formulation == "auto":
        formulation = "unfold" if b > 1 and out_h * out_w <= c_in else "grouped"
    if formulation == "mixture":
        y = F.conv2d(x, kernels.reshape(n * c_out, c_in, kh, kw), None, stride, padding)
        y = y.view(b, n, c_out, y.shape[-2], y.shape[-1])
        return (y * weights.view(b, n, 1, 1, 1)).sum(1)
    agg = aggregate_kernels(weights, kernels.reshape(n, -1))  # (B, C_out·C_in·k·k): per-sample kernels
    if formulation == "grouped":
        y = F.conv2d(x.reshape(1, b * c_in, h, w), agg.view(b * c_out, c_in, kh, kw), None, stride, padding,
                     groups=b)
        return y.view(b, c_out, y.shape[-2], y.shape[-1])
    if formulation == "unfold":
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (B, C_in·k·k, L)
        return torch.bmm(agg.view(b, c_out, c_in * kh * kw), cols).view(b, c_out, out_h, out_w)
    raise ValueError(f"unknown formulation {formulation!r}: use one of {FORMULATIONS}")


def aggregate_kernels(weights: Tensor, kernels: Tensor) -> Tensor:
    """``Σ_i weights[b, i] · kernels[i]`` per sample: (B, N) × (N, M) → (B, M).

    One matmul, unless the weights have fewer non-zeros in the whole batch than there are kernels (sparse
    routing at a small batch): then one ``embedding_bag`` sums only the selected rows, reading k of the N
    kernels (LCNet-T at batch 1: 2 of 5 per layer). Tracing, exporting and compiling always take the matmul
    (no data-dependent branch in a graph)."""
    b, n = weights.shape[0], kernels.shape[0]
    # a batch at least as large as the bank selects >= N kernels in all (each sample keeps one or more):
    # no need to look at the weights
    if b >= n or _is_exporting() or torch.compiler.is_compiling() or weights.dtype != kernels.dtype:
        return weights @ kernels
    nz = weights.nonzero()  # (nnz, 2) as (sample, kernel), sorted by sample
    if nz.shape[0] >= n:
        return weights @ kernels
    counts = torch.bincount(nz[:, 0], minlength=b)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
    return F.embedding_bag(nz[:, 1], kernels, offsets, mode="sum", per_sample_weights=weights[nz[:, 0], nz[:, 1]])


def _is_exporting() -> bool:
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting())


class DTConv(nn.Module):
    """Dynamic threshold convolution: ``BN(x ⋆ Σ_i w_i(x) H_i)`` with sparse, renormalized router weights.

    Args:
        in_chs, out_chs: channels; ``kernel_size`` of every candidate kernel (dense, groups = 1).
        num_kernels: N candidate kernels (the paper's parameter budget lives here).
        top_k: kernels kept per sample (``1 ≤ top_k ≤ N``); ignored when ``threshold`` is set.
        threshold: keep every kernel whose probability is ≥ ``threshold`` (and always the largest).
        router_kernel_sizes: MSMod1's per-split kernel sizes.
        temperature_init / temperature_anneal_steps: softmax temperature schedule (0 steps: fixed 1).
        formulation: how the batched convolution runs in eager mode (see :func:`dynamic_conv2d`).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        num_kernels: int = 4,
        top_k: int = 2,
        threshold: float | None = None,
        router_kernel_sizes: Sequence[int] = (3, 5, 7),
        act_layer: str | Callable[..., nn.Module] | None = "relu",
        temperature_init: float = 30.0,
        temperature_anneal_steps: int = 5000,
        formulation: str = "auto",
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_kernels:
            raise ValueError(f"top_k must be in [1, num_kernels={num_kernels}], got {top_k}")
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if formulation not in FORMULATIONS:
            raise ValueError(f"unknown formulation {formulation!r}: use one of {FORMULATIONS}")
        self.in_chs, self.out_chs, self.kernel_size, self.stride = in_chs, out_chs, kernel_size, stride
        self.padding = kernel_size // 2
        self.num_kernels, self.top_k, self.threshold = num_kernels, top_k, threshold
        self.temperature_init, self.temperature_anneal_steps = float(temperature_init), temperature_anneal_steps
        self.formulation = formulation
        # (N, C_out, C_in·k·k): the candidate kernels flattened (a 3-D parameter, so that
        # model.to(memory_format=torch.channels_last) leaves it alone; kernels() gives the 5-D view)
        self.weight = nn.Parameter(torch.empty(num_kernels, out_chs, in_chs * kernel_size * kernel_size))
        for i in range(num_kernels):  # each candidate initialised like an ordinary convolution
            nn.init.kaiming_uniform_(self.weight[i].view(out_chs, in_chs, kernel_size, kernel_size), a=math.sqrt(5))
        self.bias: nn.Parameter | None = None  # set by fuse() when the BatchNorm is folded in
        self.router_features = MultiScaleConv(in_chs, router_kernel_sizes, act_layer)
        self.router = nn.Linear(in_chs, num_kernels)
        self.bn: nn.Module = nn.BatchNorm2d(out_chs)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.aux_loss: Tensor | None = None

    def kernels(self) -> Tensor:
        """The N candidate kernels as (N, C_out, C_in, k, k)."""
        k = self.kernel_size
        return self.weight.view(self.num_kernels, self.out_chs, self.in_chs, k, k)

    def temperature(self) -> Tensor:
        """Current softmax temperature (a 0-d tensor): linear from ``temperature_init`` down to 1."""
        if self.temperature_anneal_steps <= 0:
            return torch.ones((), device=self.num_updates.device)
        progress = (self.num_updates.float() / self.temperature_anneal_steps).clamp(max=1.0)
        return self.temperature_init + (1.0 - self.temperature_init) * progress

    def router_probs(self, x: Tensor) -> Tensor:
        """Dense router probabilities (B, N) before the sparse selection."""
        logits = self.router(self.router_features(x).mean((2, 3)))
        # eval: the temperature is a Python constant (one op less per block; a constant in traced graphs)
        temperature = self.temperature() if self.training or _is_exporting() else float(self.temperature())
        return (logits / temperature).softmax(-1)

    def routing_weights(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sparse renormalized weights, dense probabilities), both (B, N)."""
        probs = self.router_probs(x)
        return sparse_routing(probs, self.top_k, self.threshold), probs

    def forward(self, x: Tensor) -> Tensor:
        weights, probs = self.routing_weights(x)
        if self.training:
            self.num_updates += 1
            self.aux_loss = self._balance_loss(weights, probs)
        kernels = self.kernels()
        if _is_exporting():
            formulation = "unfold" if self.formulation in ("auto", "grouped") else self.formulation
        else:
            formulation = self.formulation
            if formulation == "mixture":  # convolve only with the kernels some sample selected
                used = weights.ne(0).any(0)
                if not bool(used.all()):
                    kernels, weights = kernels[used], weights[:, used]
        y = dynamic_conv2d(x, weights, kernels, self.stride, self.padding, formulation)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return self.bn(y)

    def _balance_loss(self, weights: Tensor, probs: Tensor) -> Tensor:
        chosen = (weights > 0).float()
        share = chosen.sum(0) / chosen.sum()  # f_i: fraction of all selections that went to kernel i
        return self.num_kernels * (share * probs.mean(0)).sum()

    @torch.no_grad()
    def fuse(self) -> DTConv:
        """Fold the output BatchNorm into every candidate kernel (+ a bias) and the router's MSMod1
        BatchNorm into the router's linear layer (global average pooling commutes with it)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            bn = self.bn
            scale = bn.weight / (bn.running_var + bn.eps).sqrt()
            shift = bn.bias - bn.running_mean * scale
            bias = shift if self.bias is None else self.bias * scale + shift
            self.weight.mul_(scale.view(1, -1, 1))
            self.bias = nn.Parameter(bias.clone())
            self.bn = nn.Identity()
        feats = self.router_features
        if isinstance(feats.bn, nn.BatchNorm2d):
            self.router = fuse_bn_linear(feats.bn, self.router)
            feats.bn = nn.Identity()
        return self

    def extra_repr(self) -> str:
        select = f"threshold={self.threshold}" if self.threshold is not None else f"top_k={self.top_k}"
        return (f"{self.in_chs}, {self.out_chs}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"num_kernels={self.num_kernels}, {select}, formulation={self.formulation}")
