"""Deploy-time re-parameterization: one protocol and one walker.

Protocol: a module that can be simplified for inference defines ``fuse() -> nn.Module`` returning its
replacement (possibly itself, changed in place). ``fuse_model`` walks the tree top-down, replaces each
such module by what its ``fuse()`` returns and continues into the replacement, so a parent decides how
its children are folded (e.g. a RepVGG block folds its branches' BatchNorms itself).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d | nn.Conv3d | nn.Conv1d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """Fold an eval-mode BatchNorm into the preceding convolution and return a new convolution."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std if bn.affine else 1.0 / std
    shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
    fused = type(conv)(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    view = (-1,) + (1,) * (conv.weight.dim() - 1)
    fused.weight.copy_(conv.weight * scale.reshape(view))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_(bias * scale + shift)
    return fused


@torch.no_grad()
def fuse_bn_linear(bn: nn.BatchNorm1d, linear: nn.Linear) -> nn.Linear:
    """Fold a BatchNorm1d that *precedes* a Linear layer into that Linear layer."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    shift = bn.bias - bn.running_mean * scale
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    fused.weight.copy_(linear.weight * scale[None, :])
    bias = linear.bias if linear.bias is not None else torch.zeros_like(fused.bias)
    fused.bias.copy_(linear.weight @ shift + bias)
    return fused


def _fuse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        fuse = getattr(child, "fuse", None)
        if callable(fuse):
            replacement = fuse()
            if replacement is not child:
                setattr(module, name, replacement)
            child = replacement
        _fuse_children(child)


@torch.no_grad()
def fuse_model(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and fold every fusable module (Conv+BN, BN+Linear, RepVGG branches).

    Works in place and returns the model. Eval outputs are unchanged up to float rounding.
    """
    model.eval()
    top = getattr(model, "fuse", None)
    if callable(top):  # a bare block given directly (models themselves define no ``fuse``)
        model = top()
    _fuse_children(model)
    return model
