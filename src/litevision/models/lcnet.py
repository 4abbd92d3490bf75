"""LCNet (Yang et al., "LCNet: Lightweight real-time image classification network based on efficient
multipath dynamic attention mechanism and dynamic threshold convolution", Image and Vision Computing 2025,
doi 10.1016/j.imavis.2025.105576) — seed 000.

Not Baidu's PP-LCNet (timm ``lcnet_050`` ...), an unrelated network with the same acronym. No official
code is public: this follows the seed's implementation guide (Table 1 stems, widths and depths; block
formula (5)). Choices the guide leaves open are ours and are listed in ``docs/lcnet.md``:

* LCNet block: ``x + DropPath(DW3×3(PW(act(DTConv(u)) * MDAM(u))))`` with ``u = DW3×3(PW(x))``; the
  star operation is an element-wise product whose local (DTConv) branch goes through ``act_layer``
  (ReLU6, as StarNet's ``act(f1(x)) * f2(x)``); the 1×1 / depthwise convolutions carry BatchNorm only.
  The hidden width is ``mlp_ratio × stage width``.
* Stem: 3×3 stride-2 conv + BN (+ ReLU6, ``stem_act``: two linear convolutions in a row — stem and the
  first downsampler — would collapse into one); each stage starts with a 3×3 stride-2 conv + BN.
* DTConv / MDAM: :mod:`litevision.layers.dynamic_conv`, :mod:`litevision.layers.token_select_attention`.

The guide's widths cannot reproduce its own params/MACs with one block design shared by T/S/B: the
variants below fit ``mlp_ratio`` and ``num_kernels`` per variant (see ``_NOTES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litevision.layers import ClassifierHead, ConvNormAct, DropPath, create_act, drop_path_rates, make_divisible
from litevision.layers.dynamic_conv import DTConv
from litevision.layers.token_select_attention import TokenSelectAttention
from litevision.models._builder import Variant, register_family
from litevision.models._card import Paper, PaperFigures
from litevision.models._contract import LiteModel, feature


@dataclass(frozen=True)
class LCNetCfg:
    """One LCNet variant: Table 1's stem / widths / depths and every block hyper-parameter."""

    stem_chs: int = 24
    widths: tuple[int, ...] = (32, 64, 128, 192)
    depths: tuple[int, ...] = (2, 4, 8, 2)
    mlp_ratio: float = 2.0  # block hidden width = mlp_ratio × stage width
    # DTConv (local branch)
    num_kernels: int | tuple[int, ...] = 4  # candidate kernels N (one value, or one per stage)
    top_k: int = 2
    threshold: float | None = None  # set to use threshold selection instead of top-k
    dt_kernel_size: int = 3
    router_kernel_sizes: tuple[int, ...] = (3, 5, 7)
    temperature_init: float = 30.0
    temperature_anneal_steps: int = 5000
    dt_formulation: str = "auto"
    # MDAM (global branch)
    embed_dim: int = 64
    num_heads: int = 2
    pool_size: int = 7
    key_keep_ratio: float = 0.5
    ms_kernel_sizes: tuple[int, ...] = (1, 3, 5)
    # activations
    act_layer: str = "relu6"
    stem_act: str | None = "relu6"


class LCNetBlock(nn.Module):
    """Formula (5): 1×1 + DW → DTConv ‖ MDAM → star (act(local) · global) → 1×1 + DW3×3 → residual."""

    def __init__(self, chs: int, cfg: LCNetCfg, num_kernels: int, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        hidden = make_divisible(chs * cfg.mlp_ratio, 8)
        self.pw_in = ConvNormAct(chs, hidden, 1, act_layer=None)
        self.dw_in = ConvNormAct(hidden, hidden, 3, groups=hidden, act_layer=None)
        self.local_branch = DTConv(
            hidden, hidden, cfg.dt_kernel_size, num_kernels=num_kernels, top_k=cfg.top_k,
            threshold=cfg.threshold, router_kernel_sizes=cfg.router_kernel_sizes, act_layer=cfg.act_layer,
            temperature_init=cfg.temperature_init, temperature_anneal_steps=cfg.temperature_anneal_steps,
            formulation=cfg.dt_formulation)
        self.global_branch = TokenSelectAttention(
            hidden, cfg.embed_dim, cfg.num_heads, cfg.pool_size, cfg.key_keep_ratio, cfg.ms_kernel_sizes,
            act_layer=cfg.act_layer)
        self.act = create_act(cfg.act_layer)
        self.pw_out = ConvNormAct(hidden, chs, 1, act_layer=None)
        self.dw_out = ConvNormAct(chs, chs, 3, groups=chs, act_layer=None)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        u = self.dw_in(self.pw_in(x))
        y = self.act(self.local_branch(u)) * self.global_branch(u)  # star operation
        return x + self.drop_path(self.dw_out(self.pw_out(y)))


class LCNetStage(nn.Module):
    """A stride-2 3×3 conv + BN downsampler followed by ``depth`` LCNet blocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, cfg: LCNetCfg, num_kernels: int,
                 drop_path_rates: Sequence[float]) -> None:
        super().__init__()
        self.downsample = ConvNormAct(in_chs, out_chs, 3, stride=2, act_layer=None)
        self.blocks = nn.Sequential(*[LCNetBlock(out_chs, cfg, num_kernels, rate) for rate in drop_path_rates])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class LCNet(LiteModel):
    def __init__(self, cfg: LCNetCfg, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if len(cfg.widths) != len(cfg.depths):
            raise ValueError(f"widths {cfg.widths} and depths {cfg.depths} must have the same length")
        kernels = (cfg.num_kernels,) * len(cfg.widths) if isinstance(cfg.num_kernels, int) else cfg.num_kernels
        if len(kernels) != len(cfg.widths):
            raise ValueError(f"num_kernels {cfg.num_kernels} needs one value per stage ({len(cfg.widths)})")
        self.cfg = cfg
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.stem = ConvNormAct(in_chans, cfg.stem_chs, 3, stride=2, act_layer=cfg.stem_act)
        dprs = drop_path_rates(drop_path_rate, list(cfg.depths))
        stages, self.feature_info, in_chs, reduction = [], [], cfg.stem_chs, 2
        for i, (width, depth) in enumerate(zip(cfg.widths, cfg.depths)):
            stages.append(LCNetStage(in_chs, width, depth, cfg, kernels[i], dprs[i]))
            in_chs, reduction = width, reduction * 2
            self.feature_info.append(feature(width, reduction, f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate=drop_rate)
        _init_weights(self)

    def auxiliary_loss(self) -> Tensor:
        """Sum of the DTConv load-balancing losses of the last training forward (0 if none was run).

        The trainer adds ``model.aux_loss_weight ×`` this to the task loss when that weight is set."""
        losses = [m.aux_loss for m in self.modules() if isinstance(m, DTConv) and m.aux_loss is not None]
        return torch.stack(losses).sum() if losses else torch.zeros(())

    def router_temperature(self) -> float:
        """The DTConv softmax temperature now (all DTConvs anneal in step)."""
        return next(float(m.temperature()) for m in self.modules() if isinstance(m, DTConv))


def _init_weights(model: nn.Module) -> None:
    """Truncated-normal linear layers (ViT/StarNet style); convs keep PyTorch's default init.

    Every MDAM starts as a constant gate of 1 (its output BatchNorm γ = 0, β = 1), so each block starts
    as its local branch alone and learns the global modulation. With the default γ = 1, β = 0 the
    near-uniform attention of a fresh MDAM is a spatially constant, zero-mean, unit-variance map: the star
    product multiplied the local features by random-signed per-sample scalars, and LCNet-T needed
    > 25 steps to make progress fitting one batch of 64 Fashion-MNIST images that MobileNetV3 fits in 10
    (with this init: loss 2.41 -> 0.04 in 13 steps).
    """
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, TokenSelectAttention) and isinstance(m.proj.bn, nn.BatchNorm2d):
            nn.init.zeros_(m.proj.bn.weight)
            nn.init.ones_(m.proj.bn.bias)


_PAPER = ("LCNet: Lightweight real-time image classification network based on efficient multipath dynamic "
          "attention mechanism and dynamic threshold convolution")

_NOTES = (
    "Not Baidu's PP-LCNet (timm lcnet_050 ...): an unrelated network with the same acronym. No official code; "
    "built from the seed's implementation guide (Table 1 stems/widths/depths, block formula (5)). The block "
    "hyper-parameters the guide does not give are fitted per variant to Table 1: T mlp_ratio 4/3, N=5 kernels; "
    "S mlp_ratio 1.375, N=(3,3,3,4) per stage; B mlp_ratio 1.0, N=5 (top-2 routing, MDAM embedding 64, 2 heads, "
    "keys from a 7x7 pooled grid, top 50% kept). Measured at 224 vs paper: T 19.73M/1.252G (+1.3%/-2.2%), "
    "S 38.63M/3.417G (-3.9%/+0.8%), B 71.26M/4.876G (-5.5%/-0.9%). With ONE block design shared by T/S/B the "
    "guide's widths are at best ~25% off (mlp_ratio 1.125, N=5: T -25%/-22%, S -2%/-26%, B +18%/+20%): B is "
    "2x wider than T and params grow with width^2, so the paper's variants must differ in settings the guide "
    "omits. Most parameters are DTConv's N dense candidate kernels (one convolution's MACs per sample). No "
    "ImageNet top-1 is published (the paper reports Tiny-/Mini-ImageNet, CIFAR-10/100 and a wood CT set). "
    "ONNX: exported for one input size (dynamic batch), since MDAM's pooled key grid and its top-k count "
    "follow the input size; the TopK selections stay in the graph."
)

# the guide's Table 1
VARIANTS: dict[str, Variant] = {
    "lcnet_t": Variant(cfg=LCNetCfg(stem_chs=24, widths=(32, 64, 128, 192), depths=(2, 4, 8, 2), mlp_ratio=4 / 3,
                                    num_kernels=5),
                       figures=PaperFigures(params_m=19.48, macs_g=1.28, complexity_tol=0.06)),
    "lcnet_s": Variant(cfg=LCNetCfg(stem_chs=32, widths=(48, 96, 192, 256), depths=(2, 4, 12, 2), mlp_ratio=1.375,
                                    num_kernels=(3, 3, 3, 4)),
                       figures=PaperFigures(params_m=40.21, macs_g=3.39, complexity_tol=0.06)),
    "lcnet_b": Variant(cfg=LCNetCfg(stem_chs=32, widths=(64, 128, 256, 256), depths=(4, 6, 16, 4), mlp_ratio=1.0,
                                    num_kernels=5),
                       figures=PaperFigures(params_m=75.42, macs_g=4.92, complexity_tol=0.06)),  # per-variant fit
}

register_family(
    "lcnet", LCNet, VARIANTS,
    paper=Paper(title=_PAPER, url="https://doi.org/10.1016/j.imavis.2025.105576",
                venue="Image and Vision Computing 2025"),
    export_dynamic_hw=False,  # MDAM's pooled key grid (and its top-k count) depend on the input size
    notes=_NOTES,
)
