"""Reference check for ``src/litevision/modules/danet.py``: the channel attention branch of DANet (Fu et al.,
"Dual Attention Network for Scene Segmentation", CVPR 2019, arXiv 1809.02983), softmax of the Gram matrix."""

from __future__ import annotations

import torch

import litevision as lv


def test_danet_channel_attention_is_softmax_of_the_gram_matrix() -> None:
    m = lv.create_module("danet", 16).channel
    with torch.no_grad():
        m.beta.fill_(1.0)
        a = torch.randn(2, 4, 3, 5)
        flat = a.flatten(2)
        ref = torch.softmax(flat @ flat.transpose(1, 2), -1) @ flat
        torch.testing.assert_close(m(a), ref.reshape(2, 4, 3, 5) + a)
