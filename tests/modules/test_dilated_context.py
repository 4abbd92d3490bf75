"""Reference check for ``src/litevision/modules/dilated_context.py``: the basic context module of "Multi-Scale
Context Aggregation by Dilated Convolutions" (Yu & Koltun, ICLR 2016, arXiv 1511.07122): identity
initialisation and the 67 x 67 receptive field."""

from __future__ import annotations

import torch

import litevision as lv


def test_dilated_context_identity_init_and_receptive_field() -> None:
    m = lv.create_module("dilated_context", 4).double().eval()
    x = torch.rand(1, 4, 80, 80, dtype=torch.float64)  # positive input and weights: no ReLU blocks a path
    with torch.no_grad():
        torch.testing.assert_close(m(x - 0.5), torch.relu(x - 0.5))  # identity initialisation
        for layer in m.layers:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.add_(0.1)
        base = m(x)
        for dist, reaches in ((33, True), (34, False)):  # receptive field 67 x 67
            x2 = x.clone()
            x2[0, :, 40 + dist, 40] += 5.0
            assert bool((m(x2) - base)[0, :, 40, 40].abs().max() > 0) == reaches
