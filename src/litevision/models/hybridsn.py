"""HybridSN (Roy, Krishna, Dubey & Chaudhuri, "HybridSN: Exploring 3-D–2-D CNN Feature Hierarchy for
Hyperspectral Image Classification", IEEE GRSL 2020). https://arxiv.org/abs/1902.06701 — seed 001.

A patch classifier for hyperspectral cubes: the input is one pixel's neighbourhood in a PCA-reduced
cube, shaped (B, 1, bands, P, P) (one "cube channel", like one colour channel of a video clip). Three
unpadded 3-D convolutions learn joint spectral-spatial features (8@3×3×7, 16@3×3×5, 32@3×3×3, written
here as (bands, H, W) kernels (7, 3, 3), (5, 3, 3), (3, 3, 3)), the remaining spectral axis is folded
into channels, one unpadded 2-D convolution (64@3×3) follows, and the flattened map goes through
FC 256 → dropout 0.4 → FC 128 → dropout 0.4 → classes. ReLU everywhere, no BatchNorm (as in the authors'
Keras code; ``norm=True`` adds it, a common PyTorch variant). Weights are initialised like Keras
(Glorot-uniform, zero bias), the initialisation the paper's results were obtained with.

How the model contract maps: ``in_chans`` is the number of cube channels (1); ``feature_info`` has one
entry per convolution (the three 3-D maps (B, C, bands', H', W') and the 2-D map (B, 64, P-8, P-8)), with
``reduction`` 1 because no convolution is strided (the maps shrink by 2 pixels per layer instead);
``forward_features`` returns the 2-D map; ``num_features`` is the width before the classifier (128).
The FC input size depends on ``bands`` and ``patch_size``, so the model takes exactly that input size.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from litevision.layers import ConvNormAct, fuse_conv_bn
from litevision.models._builder import Variant, register_family
from litevision.models._card import DataConfig, Paper, PaperFigures
from litevision.models._contract import LiteModel, feature


class ConvNormAct3d(nn.Module):
    """Unpadded ``relu(bn(conv3d(x)))`` (BatchNorm only with ``norm=True``); ``fuse()`` folds the BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: tuple[int, int, int], norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_chs, out_chs, kernel_size, bias=not norm)
        self.bn = nn.BatchNorm3d(out_chs) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> nn.Module:
        if isinstance(self.bn, nn.BatchNorm3d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()
        return self


class HybridHead(nn.Module):
    """Flatten → FC → ReLU → dropout → FC → ReLU → dropout → FC (the paper's two hidden FC layers)."""

    def __init__(self, in_features: int, hidden: tuple[int, int], num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.num_features = hidden[1]
        self.fc = nn.Linear(hidden[1], num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        device = self.fc2.weight.device
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes > 0 else nn.Identity()
        _glorot(self.fc)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(self.act(self.fc1(x.flatten(1))))
        x = self.drop(self.act(self.fc2(x)))
        return x if pre_logits else self.fc(x)


@dataclass(frozen=True)
class HybridSNCfg:
    """Widths and (bands, H, W) kernels of the 3-D convolutions, the 2-D convolution and the FC layers."""

    conv3d_chs: tuple[int, ...] = (8, 16, 32)
    conv3d_kernels: tuple[tuple[int, int, int], ...] = ((7, 3, 3), (5, 3, 3), (3, 3, 3))
    conv2d_chs: int = 64
    conv2d_kernel: int = 3
    fc_dims: tuple[int, int] = (256, 128)


class HybridSN(LiteModel):
    def __init__(
        self,
        cfg: HybridSNCfg,
        num_classes: int = 16,
        in_chans: int = 1,
        bands: int = 30,
        patch_size: int = 25,
        drop_rate: float = 0.4,
        drop_path_rate: float = 0.0,
        norm: bool = False,
    ) -> None:
        super().__init__()
        if drop_path_rate:
            raise ValueError("hybridsn has no residual branches: drop_path_rate must be 0")
        depth, size = bands, patch_size
        for k in cfg.conv3d_kernels:
            depth, size = depth - k[0] + 1, size - k[1] + 1
        size -= cfg.conv2d_kernel - 1
        if depth < 1 or size < 1:
            raise ValueError(f"bands={bands}, patch_size={patch_size} are too small for HybridSN's unpadded "
                             f"convolutions (need bands >= {bands - depth + 1}, patch_size >= {patch_size - size + 1})")
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.bands, self.patch_size = bands, patch_size
        self.input_ndim = 5  # (B, 1, bands, P, P): count_complexity adds the batch dim to a 4-tuple size
        stages: list[nn.Module] = []
        self.feature_info = []
        in_chs = in_chans
        for i, (out_chs, k) in enumerate(zip(cfg.conv3d_chs, cfg.conv3d_kernels)):
            stages.append(ConvNormAct3d(in_chs, out_chs, k, norm))
            self.feature_info.append(feature(out_chs, 1, f"stages.{i}"))
            in_chs = out_chs
        # (B, C, D, H, W) -> (B, C*D, H, W): the remaining spectral axis becomes channels
        stages.append(nn.Sequential(
            nn.Flatten(1, 2),
            ConvNormAct(in_chs * depth, cfg.conv2d_chs, cfg.conv2d_kernel, padding=0, bias=not norm, norm=norm),
        ))
        self.feature_info.append(feature(cfg.conv2d_chs, 1, f"stages.{len(stages) - 1}"))
        self.stem = nn.Identity()
        self.stages = nn.Sequential(*stages)
        self.head = HybridHead(cfg.conv2d_chs * size * size, cfg.fc_dims, num_classes, drop_rate)
        self.num_features = self.head.num_features
        self.apply(_glorot)


def _glorot(m: nn.Module) -> None:
    """Keras' default initialisation (Glorot-uniform weights, zero biases)."""
    if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


VARIANTS: dict[str, Variant] = {
    "hybridsn": Variant(cfg=HybridSNCfg(), figures=PaperFigures(params_m=5.122176, complexity_tol=0.03)),
}

register_family(
    "hybridsn", HybridSN, VARIANTS,
    paper=Paper(title="HybridSN: Exploring 3-D–2-D CNN Feature Hierarchy for Hyperspectral Image Classification",
                url="https://arxiv.org/abs/1902.06701", venue="IEEE GRSL 2020"),
    data_config=DataConfig(input_size=(1, 30, 25, 25), crop_pct=1.0, mean=(0.0,), std=(1.0,), norm_source="none"),
    notes=(
        "input (B, 1, bands, P, P): a 25x25 patch of the PCA-reduced (30 bands, whitened) Indian Pines cube; "
        "the data pipeline (litevision.data.hyperspectral) normalizes, so mean/std are identity. Paper params "
        "5,122,176 = the authors' Keras summary for 16 classes (no MACs given; ours: 0.248 G). Paper OA on "
        "Indian Pines with 30% random training pixels: 99.75%, AA 99.63%, kappa 99.71."
    ),
    extra={
        "input_ndim": 5,
        "paper_num_classes": 16,
        "paper_oa": {"indian_pines": 99.75, "pavia_university": 99.98, "salinas": 100.0},
        "test_sizes": [(2, 1, 30, 25, 25), (1, 1, 30, 25, 25)],
        # (C, D, H, W) / (C, H, W) spatial sizes of the four stage outputs for the 25x25x30 test input
        "feature_sizes": [(24, 23, 23), (20, 21, 21), (18, 19, 19), (17, 17)],
        "data": "indian_pines",
    },
)
