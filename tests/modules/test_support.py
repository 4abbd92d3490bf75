"""Checks of the shared helpers in ``src/litevision/modules/_support.py`` (no paper of their own): the
export-friendly adaptive average pooling equals ``F.adaptive_avg_pool2d``, and ``PooledBatchNorm`` trains at
batch 1 and matches ``nn.BatchNorm2d`` otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from litevision.modules._support import PooledBatchNorm, adaptive_avg_pool2d


@pytest.mark.parametrize("size", [(13, 29), (7, 7), (5, 3), (1, 9), (56, 40)])
def test_adaptive_pool_matrices_equal_adaptive_avg_pool(size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(adaptive_avg_pool2d(x, (7, 7)), F.adaptive_avg_pool2d(x, (7, 7)))


def test_pooled_batch_norm_trains_at_batch_one_and_matches_bn_otherwise() -> None:
    bn, ref = PooledBatchNorm(4), torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.bias.copy_(torch.arange(4.0))
        ref.load_state_dict(bn.state_dict())
    x = torch.randn(1, 4, 1, 1, requires_grad=True)
    out = bn.train()(x)
    torch.testing.assert_close(out.flatten(), torch.arange(4.0))  # single-value batch: normalised to 0
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(bn.running_mean, torch.zeros(4)) and int(bn.num_batches_tracked) == 0
    x2 = torch.randn(3, 4, 1, 1)
    torch.testing.assert_close(bn(x2), ref.train()(x2))
