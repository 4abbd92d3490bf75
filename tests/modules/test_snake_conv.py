"""Reference checks for ``src/litevision/modules/snake_conv.py``: Dynamic Snake Convolution of DSCNet (Qi et
al., ICCV 2023, arXiv 2307.08388): offsets accumulated from the kernel centre, a plain 1 x K convolution
without offsets, and samples of a batch kept apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import litevision as lv


def test_snake_offsets_accumulate_from_the_centre() -> None:
    from litevision.modules.snake_conv import snake_offsets

    off = torch.randn(2, 9, 3, 4)
    acc = snake_offsets(off)
    assert torch.equal(acc[:, 4], torch.zeros_like(acc[:, 4]))
    for i in range(1, 5):
        torch.testing.assert_close(acc[:, 4 + i], off[:, 5:5 + i].sum(1))
        torch.testing.assert_close(acc[:, 4 - i], off[:, 4 - i:4].sum(1))


def test_snake_conv_without_offsets_is_a_1xk_conv_and_keeps_samples_apart() -> None:
    m = lv.create_module("dynamic_snake_conv", 8, morph="x", kernel_size=5).double().eval()
    snake = m.snake
    with torch.no_grad():
        snake.offset_conv.weight.zero_()
        snake.offset_conv.bias.zero_()
    x = torch.randn(3, 8, 6, 7, dtype=torch.float64)
    w = snake.conv.weight.view(snake.conv.out_channels, 8, 1, 5)  # (O, C*K) -> (O, C, 1, K)
    ref = snake.act(snake.norm(F.conv2d(x, w, snake.conv.bias, padding=(0, 2))))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref)
        # random offsets: sample 1 must not see sample 0 (the seed's gather read sample 0 for everyone)
        snake.offset_conv.weight.normal_()
        x2 = x.clone()
        x2[0] = 100 * torch.randn_like(x2[0])
        torch.testing.assert_close(m(x2)[1:], m(x)[1:])
        torch.testing.assert_close(m(x[1:2]), m(x)[1:2])
