"""Reference check for ``src/litevision/modules/scconv.py``: the Spatial Reconstruction Unit of SCConv (Li et
al., CVPR 2023): GN-scale importance, sigmoid gates thresholded at 0.5, cross reconstruction."""

from __future__ import annotations

import torch


def test_scconv_sru_gates_follow_the_paper() -> None:
    from litevision.modules.scconv import SRU

    sru = SRU(8, group_num=4).double()
    with torch.no_grad():
        sru.gn.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    gn_x = sru.gn(x)
    wts = torch.sigmoid(gn_x * (sru.gn.weight / sru.gn.weight.sum()).view(1, -1, 1, 1))
    hi = wts > 0.5
    x1 = torch.where(hi, 1.0, wts) * x
    x2 = torch.where(hi, 0.0, wts) * x
    ref = torch.cat([x1[:, :4] + x2[:, 4:], x1[:, 4:] + x2[:, :4]], dim=1)
    torch.testing.assert_close(sru(x), ref)
