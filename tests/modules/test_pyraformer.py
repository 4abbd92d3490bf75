"""Reference check for ``src/litevision/modules/pyraformer.py``: the pyramidal attention mask of Pyraformer
(Liu et al., ICLR 2022) against a loop transcription of the authors' ``get_mask`` (intra-scale window on
every scale, parent <-> children links)."""

from __future__ import annotations

import pytest
import torch

from litevision.modules.pyraformer import pyramid_mask, pyramid_sizes


def _pyraformer_mask_loops(length: int, window: tuple[int, ...], inner: int) -> torch.Tensor:
    """The authors' get_mask (intra-scale window on every scale, parent <-> children), True = may attend."""
    sizes = [length]
    for w in window:
        sizes.append(sizes[-1] // w)
    mask = torch.zeros(sum(sizes), sum(sizes), dtype=torch.bool)
    for s, n in enumerate(sizes):
        start = sum(sizes[:s])
        for i in range(start, start + n):
            mask[i, max(i - inner // 2, start):min(i + inner // 2 + 1, start + n)] = True
    for s in range(1, len(sizes)):
        start, prev = sum(sizes[:s]), sizes[s - 1]
        for i in range(start, start + sizes[s]):
            left = start - prev + (i - start) * window[s - 1]
            right = start if i == start + sizes[s] - 1 else left + window[s - 1]
            mask[i, left:right] = True
            mask[left:right, i] = True
    return mask


@pytest.mark.parametrize(("length", "window", "inner"), [(8, (2, 2, 2), 3), (13, (2, 2), 3), (29, (2, 3), 5)])
def test_pyraformer_mask_matches_reference_loops(length: int, window: tuple[int, ...], inner: int) -> None:
    mask = pyramid_mask(pyramid_sizes(length, window), window, inner, torch.device("cpu"))
    assert torch.equal(mask, _pyraformer_mask_loops(length, window, inner))
