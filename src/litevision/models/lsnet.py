"""LSNet (Wang et al., "LSNet: See Large, Focus Small", CVPR 2025) — seed 002.

https://arxiv.org/abs/2503.23135, official code https://github.com/THU-MIG/lsnet (``model/lsnet.py``).
The module tree, attribute names and state-dict keys are the official ones (``patch_embed``,
``blocks1..4``, ``head``, ``head_dist``, ``Conv2d_BN`` children ``c`` / ``bn``), so the published
checkpoints (``lsnet_t.pth`` ... and the timm-hub ``pytorch_model.bin`` files, same keys) load strictly.

What differs from the official code, on purpose:

* SKA runs through :func:`litevision.ops.ska` (CPU kernels, custom op with a registered MAC formula,
  standard-op decomposition for ONNX / tracing) instead of a Triton-only GPU kernel.
* The stage-4 attention bias table is built for 224 input (4×4 tokens). At other input sizes the
  expanded (heads, N, N) bias is resized bicubically, as the official detection/segmentation backbones
  do; at 224 nothing is resized, so outputs are the official ones.
* Distilled variants return the mean of the two heads in train mode too (one logits tensor, like every
  other model here); ``set_distilled_training(True)`` restores the official (head, head_dist) pair.
* Stochastic depth (``drop_path_rate``) and dropout before the head (``drop_rate``) are available; both
  default to 0 as in the official recipe.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.layers import DropPath, SqueezeExcite, drop_path_rates, fuse_bn_linear, fuse_conv_bn
from litevision.models._builder import Variant, register_family
from litevision.models._card import DataConfig, Paper, PaperFigures
from litevision.models._contract import LiteModel, feature
from litevision.ops.ska import SKA, ska_weight_norm

_ATTN_STAGE = 3  # stage index (0-based) whose odd blocks are attention instead of LS convolution


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm; children ``c`` and ``bn`` are the official checkpoint keys."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def fuse(self) -> nn.Conv2d:
        return fuse_conv_bn(self.c, self.bn)


class BNLinear(nn.Sequential):
    """BatchNorm1d + Linear classifier (official ``BN_Linear``: children ``bn`` and ``l``)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.l = nn.Linear(in_features, out_features)  # noqa: E741 - official key name
        nn.init.trunc_normal_(self.l.weight, std=0.02)
        nn.init.zeros_(self.l.bias)

    def fuse(self) -> nn.Linear:
        return fuse_bn_linear(self.bn, self.l)


class Residual(nn.Module):
    """``x + drop_path(m(x))``."""

    def __init__(self, m: nn.Module, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.m(x))


class FFN(nn.Module):
    """1x1 expand (ratio 2) -> ReLU -> 1x1 project; the projection's BN starts at 0 (identity block)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.pw1 = ConvBN(dim, hidden_dim)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden_dim, dim, bn_weight_init=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw2(self.act(self.pw1(x)))


class RepVGGDW(nn.Module):
    """Depthwise 3x3 + depthwise 1x1 + identity, folded into one depthwise 3x3 conv by ``fuse()``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)
        self.conv1 = ConvBN(dim, dim, 1, 1, 0, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv = self.conv.fuse()
        conv1 = self.conv1.fuse()
        # (C, 1, 1, 1) -> (C, 1, 3, 3) centred; the identity is a centred 1 per channel
        weight = conv.weight + F.pad(conv1.weight, [1, 1, 1, 1])
        weight[:, :, 1, 1] += 1.0
        conv.weight.copy_(weight)
        conv.bias.add_(conv1.bias)
        return conv


class LKP(nn.Module):
    """Large-Kernel Perception: predicts the per-pixel SKA weights (B, C/groups, sks², H, W).

    1x1 (C -> C/2) BN ReLU -> depthwise lks×lks BN -> 1x1 BN ReLU -> 1x1 conv (C/2 -> sks²·C/groups, bias)
    -> GroupNorm (C/groups groups, i.e. one group per weight row over its sks² taps).
    """

    def __init__(self, dim: int, large_kernel: int = 7, small_kernel: int = 3, groups: int = 8) -> None:
        super().__init__()
        hidden = dim // 2
        self.weight_rows = dim // groups
        self.small_kernel = small_kernel
        self.cv1 = ConvBN(dim, hidden)
        self.act = nn.ReLU()
        self.cv2 = ConvBN(hidden, hidden, large_kernel, padding=(large_kernel - 1) // 2, groups=hidden)
        self.cv3 = ConvBN(hidden, hidden)
        self.cv4 = nn.Conv2d(hidden, small_kernel ** 2 * self.weight_rows, kernel_size=1)
        self.norm = nn.GroupNorm(self.weight_rows, small_kernel ** 2 * self.weight_rows)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = ska_weight_norm(self.cv4(x), self.norm)  # self.norm(...), as one counted operator
        # (B, G*k*k, H, W) -> (B, G, k*k, H, W)
        return w.unflatten(1, (self.weight_rows, self.small_kernel ** 2))


class LSConv(nn.Module):
    """LS convolution: ``bn(SKA(x, LKP(x))) + x`` (the residual is part of the official module)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lkp = LKP(dim, large_kernel=7, small_kernel=3, groups=8)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.ska(x, self.lkp(x))) + x


def bicubic_resize_matrix(ruler: Tensor, n_in: int) -> Tensor:
    """(n_out, n_in) matrix ``M`` such that ``M @ v`` resizes ``v`` (n_in samples along its first axis) to
    ``n_out = len(ruler)`` samples exactly like ``F.interpolate(mode="bicubic", align_corners=False)``:
    source ``(dst + 0.5) * n_in / n_out - 0.5``, Keys' cubic with a = -0.75, indices clamped at the borders.

    ``ruler`` is any 1-D floating tensor of the target length; positions are derived from it (not from a
    Python int) so the length stays symbolic when the graph is traced for ONNX.
    """
    a = -0.75
    ones = ruler.new_ones(1).expand_as(ruler)  # not ones_like: the ONNX exporter folds that to a constant
    dst = ones.cumsum(0) - 1
    src = (dst + 0.5) * (n_in / ones.sum()) - 0.5
    base = src.floor()
    t = (src - base).unsqueeze(1)
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731 - |x| <= 1
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731 - 1 < |x| < 2
    weights = torch.cat([far(t + 1), near(t), near(1 - t), far(2 - t)], 1)  # (n_out, 4)
    taps = (base.unsqueeze(1) + torch.arange(-1, 3, device=ruler.device)).clamp(0, n_in - 1)
    hits = taps.unsqueeze(-1) == torch.arange(n_in, device=ruler.device).to(ruler.dtype)  # (n_out, 4, n_in)
    return (weights.unsqueeze(-1) * hits).sum(1)


class Attention(nn.Module):
    """Multi-head self-attention with a depthwise 3x3 on the queries and a learned relative-position bias
    (LeViT/EfficientViT style) defined on a ``resolution``×``resolution`` token grid."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.qk_dim = key_dim * num_heads
        self.value_dim = int(attn_ratio * key_dim) * num_heads
        self.qkv = ConvBN(dim, self.value_dim + 2 * self.qk_dim)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(self.value_dim, dim, bn_weight_init=0.0))
        self.dw = ConvBN(self.qk_dim, self.qk_dim, 3, 1, 1, groups=self.qk_dim)
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                idxs.append(offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs, dtype=torch.long).view(len(points), -1))

    def attention_bias(self, ruler: Tensor) -> Tensor:
        """(heads, N, N) bias for ``N = len(ruler)`` tokens, bicubically resized when N differs from the
        table's grid.

        The resize is the official detection code's ``F.interpolate(bias, (N, N), mode="bicubic")``, written
        as two matrix products so a traced graph keeps ``N`` symbolic: graph capture always emits it (an exact
        identity at the table's own size) and one exported graph serves every input size.
        """
        bias = self.attention_biases[:, self.attention_bias_idxs]
        capturing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()
        if capturing or ruler.shape[0] != bias.shape[-1]:
            resize = bicubic_resize_matrix(ruler, bias.shape[-1])
            bias = resize @ bias @ resize.transpose(0, 1)
        return bias

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = self.qkv(x).split([self.qk_dim, self.qk_dim, self.value_dim], dim=1)
        q = self.dw(q)
        # (B, heads*d, H, W) -> (B, heads, d, N)
        q, k, v = (t.flatten(2).unflatten(1, (self.num_heads, -1)) for t in (q, k, v))
        attn = (q.transpose(-2, -1) @ k) * self.scale + self.attention_bias(q[0, 0, 0])
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).flatten(1, 2).unflatten(2, (h, w))
        return self.proj(x)


class Block(nn.Module):
    """Token mixer (even index: RepVGG-DW + SE; odd: LS conv, or attention in the last stage) + FFN."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int, stage: int,
                 index: int, se_ratio: float, ffn_ratio: float, drop_path_rate: float) -> None:
        super().__init__()
        if index % 2 == 0:
            self.mixer = RepVGGDW(dim)
            self.se = SqueezeExcite(dim, rd_ratio=se_ratio, rd_divisor=8)
        else:
            self.se = nn.Identity()
            if stage == _ATTN_STAGE:
                self.mixer = Residual(Attention(dim, key_dim, num_heads, attn_ratio, resolution), drop_path_rate)
            else:
                self.mixer = LSConv(dim)
        self.ffn = Residual(FFN(dim, int(dim * ffn_ratio)), drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.se(self.mixer(x)))


@dataclass(frozen=True)
class LSNetCfg:
    """Per-stage widths/depths/heads; stage 1 runs at stride 8 (three stride-2 stem convs)."""

    embed_dim: tuple[int, int, int, int]
    depth: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (3, 3, 3, 4)
    key_dim: int = 16
    ffn_ratio: float = 2.0
    se_ratio: float = 0.25
    img_size: int = 224  # the attention-bias table is sized for this input (4×4 tokens at stride 64)
    stem_stride: int = 8


class LSNet(LiteModel):
    def __init__(
        self,
        cfg: LSNetCfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        distillation: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.distillation = distillation
        self.distilled_training = False
        dims = cfg.embed_dim
        self.patch_embed = nn.Sequential(
            ConvBN(in_chans, dims[0] // 4, 3, 2, 1), nn.ReLU(),
            ConvBN(dims[0] // 4, dims[0] // 2, 3, 2, 1), nn.ReLU(),
            ConvBN(dims[0] // 2, dims[0], 3, 2, 1),
        )
        resolution = cfg.img_size // cfg.stem_stride
        dprs = drop_path_rates(drop_path_rate, list(cfg.depth))
        stages: list[nn.Sequential] = []
        self.feature_info = []
        for i, (dim, depth, heads) in enumerate(zip(dims, cfg.depth, cfg.num_heads)):
            stage = nn.Sequential()
            if i > 0:  # downsample at the start of the stage: depthwise 3x3 stride 2, then 1x1 widening
                stage.append(ConvBN(dims[i - 1], dims[i - 1], 3, 2, 1, groups=dims[i - 1]))
                stage.append(ConvBN(dims[i - 1], dim, 1))
                resolution = (resolution - 1) // 2 + 1
            attn_ratio = dim / (cfg.key_dim * heads)
            for d in range(depth):
                stage.append(Block(dim, cfg.key_dim, heads, attn_ratio, resolution, stage=i, index=d,
                                   se_ratio=cfg.se_ratio, ffn_ratio=cfg.ffn_ratio, drop_path_rate=dprs[i][d]))
            stages.append(stage)
            self.feature_info.append(feature(dim, cfg.stem_stride * 2 ** i, f"blocks{i + 1}"))
        self.blocks1, self.blocks2, self.blocks3, self.blocks4 = stages
        self.num_features = dims[-1]
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = BNLinear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        if distillation:
            self.head_dist = BNLinear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

    def stage_list(self) -> list[nn.Module]:
        return [self.blocks1, self.blocks2, self.blocks3, self.blocks4]

    def forward_intermediates(self, x: Tensor, indices: list[int] | tuple[int, ...] | None = None) -> list[Tensor]:
        stages = self.stage_list()
        wanted = set(range(len(stages)) if indices is None else indices)
        x = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(stages[:max(wanted) + 1]):
            x = stage(x)
            if i in wanted:
                outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for stage in self.stage_list():
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        x = self.head_drop(x.mean((2, 3)))
        if pre_logits:
            return x
        if not self.distillation:
            return self.head(x)
        logits, logits_dist = self.head(x), self.head_dist(x)
        if self.distilled_training and self.training and not torch.jit.is_scripting():
            return logits, logits_dist
        return (logits + logits_dist) / 2

    def set_distilled_training(self, enable: bool = True) -> None:
        """Train-mode forward returns ``(head, head_dist)`` logits for hard distillation (timm's name)."""
        if enable and not self.distillation:
            raise ValueError("set_distilled_training needs a distilled variant (lsnet_*_distill)")
        self.distilled_training = enable

    def get_classifier(self) -> nn.Module:
        return self.head.l if isinstance(self.head, BNLinear) else self.head

    def reset_classifier(self, num_classes: int) -> None:
        device = self.patch_embed[0].c.weight.device
        self.num_classes = num_classes
        make = lambda: BNLinear(self.num_features, num_classes).to(device) if num_classes > 0 else nn.Identity()  # noqa: E731
        self.head = make()
        if self.distillation:
            self.head_dist = make()

    def remap_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Official checkpoints saved without the derived buffers (``attention_bias_idxs``, BN
        ``num_batches_tracked``) get ours; anything else must already match key for key."""
        own = self.state_dict()
        out = dict(state_dict)
        for key, value in own.items():
            if key not in out and (key.endswith("attention_bias_idxs") or key.endswith("num_batches_tracked")):
                out[key] = value
        return out

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {k for k in self.state_dict() if "attention_biases" in k}


_T = LSNetCfg(embed_dim=(64, 128, 256, 384), depth=(0, 2, 8, 10))
_S = LSNetCfg(embed_dim=(96, 192, 320, 448), depth=(1, 2, 8, 10))
_B = LSNetCfg(embed_dim=(128, 256, 384, 512), depth=(4, 6, 8, 10))


def _variant(cfg: LSNetCfg, distilled: bool, params_m: float, macs_g: float, top1: float,
             complexity_tol: float) -> Variant:
    return Variant(cfg=cfg, model_kwargs={"distillation": distilled},
                   figures=PaperFigures(params_m=params_m, macs_g=macs_g, top1=top1, complexity_tol=complexity_tol,
                                        params_fused=True))


# paper Table 1 (params are deploy / fused counts); the paper gives MACs to 0.1 G: T/S within that rounding,
# B see _NOTES
_TABLE: dict[str, Variant] = {
    "lsnet_t": _variant(_T, distilled=False, params_m=11.4, macs_g=0.3, top1=74.9, complexity_tol=0.17),
    "lsnet_s": _variant(_S, distilled=False, params_m=16.1, macs_g=0.5, top1=77.8, complexity_tol=0.10),
    "lsnet_b": _variant(_B, distilled=False, params_m=23.2, macs_g=1.3, top1=80.3, complexity_tol=0.05),
    "lsnet_t_distill": _variant(_T, distilled=True, params_m=11.4, macs_g=0.3, top1=76.1, complexity_tol=0.17),
    "lsnet_s_distill": _variant(_S, distilled=True, params_m=16.1, macs_g=0.5, top1=79.0, complexity_tol=0.10),
    "lsnet_b_distill": _variant(_B, distilled=True, params_m=23.2, macs_g=1.3, top1=81.6, complexity_tol=0.05),
}
VARIANTS: dict[str, Variant] = {
    name: replace(v, reference=(f"official:THU-MIG/lsnet {name}.pth", f"hf_hub:jameslahm/{name}"))
    for name, v in _TABLE.items()
}

_NOTES = (
    "Params are the paper's deploy counts: Conv-BN, BN-Linear and RepVGG-DW folded by fuse() (T 11,370,488, "
    "S 16,098,232, B 23,249,320; unfused 11,409,832 / 16,146,304 / 23,313,608, as the official code). MACs at "
    "224 count convolutions, matmuls, SKA (B*C*H*W*9) and LKP's GroupNorm (5 per element, fvcore's rule): "
    "T 0.316 G, S 0.538 G, B 1.247 G. The paper gives 0.3 / 0.5 / 1.3 G (fvcore, one decimal); B's 1.247 G "
    "rounds to 1.2, so its tolerance is 5% instead of the rounding half-unit (3.8%). Inputs other than 224 "
    "resize the stage-4 attention bias bicubically (official detection code). Distilled variants return the "
    "mean of both heads in train mode too unless set_distilled_training(True)."
)

register_family(
    "lsnet", LSNet, VARIANTS,
    paper=Paper(title="LSNet: See Large, Focus Small", url="https://arxiv.org/abs/2503.23135", venue="CVPR 2025"),
    data_config=DataConfig(crop_pct=0.9, interpolation="bicubic"),
    notes=_NOTES,
)
