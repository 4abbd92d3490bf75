"""Reference checks for ``src/litevision/modules/deform_conv.py``: modulated deformable convolution, DCNv2 (Zhu
et al., CVPR 2019, arXiv 1811.11168): the pure-PyTorch operator against ``torchvision.ops.deform_conv2d``
(forward and backward), and the zero-initialised offset branch (dp = 0, dm = 0.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import litevision as lv


def test_deform_conv_reference_matches_torchvision_forward_and_backward() -> None:
    from torchvision.ops import deform_conv2d

    from litevision.modules.deform_conv import deform_conv2d_reference

    torch.manual_seed(0)
    for n, c, h, w, out, stride, dil, groups, og in ((2, 8, 9, 11, 16, 1, 1, 1, 1), (2, 8, 7, 6, 8, 2, 2, 2, 2)):
        pad = dil
        ho, wo = (h + 2 * pad - 2 * dil - 1) // stride + 1, (w + 2 * pad - 2 * dil - 1) // stride + 1
        args = [torch.randn(n, c, h, w), 2 * torch.randn(n, 2 * og * 9, ho, wo), torch.rand(n, og * 9, ho, wo),
                torch.randn(out, c // groups, 3, 3), torch.randn(out)]
        args = [a.double().requires_grad_() for a in args]
        x, off, mask, weight, bias = args
        a = deform_conv2d(x, off, weight, bias, stride=stride, padding=pad, dilation=dil, mask=mask)
        r = deform_conv2d_reference(x, off, mask, weight, bias, stride, pad, dil)
        torch.testing.assert_close(r, a)
        for ga, gr in zip(torch.autograd.grad(a.sum(), args), torch.autograd.grad(r.sum(), args), strict=True):
            torch.testing.assert_close(gr, ga)


def test_deform_conv_starts_as_half_a_regular_conv() -> None:
    """Zero-initialised offset branch: dp = 0 and dm = sigmoid(0) = 0.5 (DCNv2 initialisation)."""
    m = lv.create_module("deform_conv_v2", 8, out_channels=12, stride=2).eval()
    x = torch.randn(2, 8, 9, 10)
    with torch.no_grad():
        ref = 0.5 * F.conv2d(x, m.weight, None, stride=2, padding=1) + m.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(m(x), ref)
