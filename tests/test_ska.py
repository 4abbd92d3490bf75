"""SKA operator: every implementation against the definition, gradients, dispatch and MAC counting."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import litevision as lv
from litevision.ops.ska import SKA, ska, ska_decomposed, ska_reference, ska_shift, ska_weight_norm

ska_mod = importlib.import_module("litevision.ops.ska")  # the package re-exports the function `ska`


def _definition(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """out[b,c,i,j] = sum_{u,v} x_pad[b,c,i+u,j+v] * w[b, c mod G, u*k+v, i, j], written with loops."""
    b, c, h, wd = x.shape
    groups, ks = w.shape[1], int(round(w.shape[2] ** 0.5))
    pad = ks // 2
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    out = torch.zeros_like(x)
    for ch in range(c):
        for u in range(ks):
            for v in range(ks):
                out[:, ch] += xp[:, ch, u:u + h, v:v + wd] * w[:, ch % groups, u * ks + v]
    return out


def _inputs(shape: tuple[int, int, int, int], ks: int = 3, groups: int | None = None, dtype=torch.float64,
            grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    b, c, h, wd = shape
    groups = groups or c // 8
    x = torch.randn(shape, dtype=dtype, requires_grad=grad)
    w = torch.randn(b, groups, ks * ks, h, wd, dtype=dtype, requires_grad=grad)
    return x, w


SHAPES = [((2, 16, 5, 7), 3, None), ((1, 8, 1, 1), 3, None), ((3, 24, 2, 9), 3, None), ((1, 16, 6, 4), 5, 4),
          ((2, 12, 3, 3), 3, 12)]


@pytest.mark.parametrize("shape,ks,groups", SHAPES)
def test_every_implementation_matches_the_definition(shape, ks, groups) -> None:
    x, w = _inputs(shape, ks, groups)
    expected = _definition(x, w)
    for fn in (ska_reference, ska_shift, ska_decomposed, ska, SKA()):
        torch.testing.assert_close(fn(x, w), expected, msg=lambda m, fn=fn: f"{fn}: {m}")


def test_weight_rows_are_interleaved_not_blocked() -> None:
    # only weight row 1 is non-zero: channels 1, 1+G, 1+2G, ... respond; c // 8 == 1 would pick 8..15
    x = torch.ones(1, 32, 3, 3)
    w = torch.zeros(1, 4, 9, 3, 3)
    w[:, 1, 4] = 1.0  # centre tap
    out = ska(x, w)
    active = out[0, :, 1, 1].nonzero().flatten().tolist()
    assert active == [1, 5, 9, 13, 17, 21, 25, 29]


@pytest.mark.parametrize("shape,ks,groups", [((2, 16, 3, 4), 3, None), ((1, 8, 2, 3), 5, 4), ((1, 8, 3, 2), 3, 1)])
def test_gradcheck_float64(shape, ks, groups) -> None:
    x, w = _inputs(shape, ks, groups, grad=True)
    assert torch.autograd.gradcheck(ska, (x, w))


def test_backward_matches_autograd_of_reference_float32() -> None:
    x, w = _inputs((4, 64, 14, 14), dtype=torch.float32, grad=True)
    grad = torch.randn(4, 64, 14, 14)
    expected = torch.autograd.grad(ska_reference(x, w), (x, w), grad)
    got = torch.autograd.grad(ska(x, w), (x, w), grad)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    # only one input needing a gradient
    gx, = torch.autograd.grad(ska(x, w.detach()), (x,), grad)
    torch.testing.assert_close(gx, expected[0], rtol=1e-4, atol=1e-4)


def test_custom_ops_pass_opcheck() -> None:
    x, w = _inputs((1, 16, 3, 4), grad=True)
    torch.library.opcheck(torch.ops.litevision.ska.default, (x, w))
    raw = torch.randn(1, 18, 3, 4, dtype=torch.float64, requires_grad=True)
    gamma = torch.randn(18, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(18, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.litevision.ska_weight_norm.default, (raw, gamma, beta, 2, 1e-5))


def test_weight_norm_equals_group_norm_with_gradients() -> None:
    norm = nn.GroupNorm(2, 18).double()
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    raw = torch.randn(2, 18, 2, 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(ska_weight_norm(raw, norm), norm(raw))
    op = lambda r, g, b: torch.ops.litevision.ska_weight_norm(r, g, b, 2, 1e-5)[0]  # noqa: E731
    assert torch.autograd.gradcheck(op, (raw, norm.weight, norm.bias))


def test_low_precision_and_strided_inputs() -> None:
    x, w = _inputs((2, 16, 6, 6), dtype=torch.float32)
    expected = ska_reference(x, w)
    torch.testing.assert_close(ska(x.bfloat16(), w.bfloat16()).float(), expected, rtol=0.05, atol=0.1)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    w_t = w.transpose(3, 4).contiguous().transpose(3, 4)  # same values, non-contiguous strides
    torch.testing.assert_close(ska(x_cl, w_t), expected)


@pytest.mark.parametrize("bad", ["rank", "taps", "even", "batch", "groups"])
def test_shape_errors(bad: str) -> None:
    x, w = torch.randn(2, 16, 5, 5), torch.randn(2, 2, 9, 5, 5)
    if bad == "rank":
        w = w[0]
    elif bad == "taps":
        w = torch.randn(2, 2, 8, 5, 5)
    elif bad == "even":
        w = torch.randn(2, 2, 16, 5, 5)
    elif bad == "batch":
        w = torch.randn(1, 2, 9, 5, 5)
    else:
        w = torch.randn(2, 3, 9, 5, 5)
    with pytest.raises(ValueError, match="ska"):
        ska(x, w)


class _Aggregate(nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ska(x, w) * 2


def test_graph_capture_uses_standard_ops_only() -> None:
    x, w = _inputs((1, 16, 5, 5), dtype=torch.float32)
    traced = torch.jit.trace(_Aggregate(), (x, w))
    assert not [n.kind() for n in traced.graph.nodes() if n.kind().startswith("litevision::")]
    x2, w2 = _inputs((2, 16, 7, 3), dtype=torch.float32)  # the traced graph is size-independent
    torch.testing.assert_close(traced(x2, w2), 2 * ska_reference(x2, w2))
    exported = torch.export.export(_Aggregate(), (x, w))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert not any("litevision" in t for t in targets), targets
    assert ska_mod._use_decomposition() is False


def test_count_complexity_counts_ska_and_weight_norm() -> None:
    class LSLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cv = nn.Conv2d(16, 18, 1)
            self.norm = nn.GroupNorm(2, 18)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w = ska_weight_norm(self.cv(x), self.norm).unflatten(1, (2, 9))
            return ska(x, w)

    c = lv.count_complexity(LSLike(), (16, 10, 12))
    ska_macs = 16 * 10 * 12 * 9
    norm_macs = 5 * 18 * 10 * 12
    conv_macs = 18 * 16 * 10 * 12
    assert c.by_operator["litevision.ska"] == ska_macs
    assert c.by_operator["litevision.ska_weight_norm"] == norm_macs
    assert c.macs == ska_macs + norm_macs + conv_macs


def test_triton_path_is_lazy_and_optional() -> None:
    # importing the operator must not import our Triton kernel (CPU users may not have Triton; note that
    # torchvision itself may import the `triton` package when it is installed, so check our module)
    code = "import sys, litevision.ops.ska, litevision.models; print('litevision.ops._ska_triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_triton_kernels_in_interpreter_mode() -> None:
    """The Triton kernels on CPU through TRITON_INTERPRET=1 (slow: numpy emulation of every program)."""
    pytest.importorskip("triton")
    code = textwrap.dedent("""
        import torch
        from litevision.ops import _ska_triton as T
        from litevision.ops.ska import ska_reference
        torch.manual_seed(0)
        for shape, ks in [((2, 16, 5, 7), 3), ((1, 24, 3, 4), 5)]:
            x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
            w = torch.randn(shape[0], shape[1] // 8, ks * ks, *shape[2:], dtype=torch.float64, requires_grad=True)
            ref = ska_reference(x, w)
            grad = torch.randn_like(ref)
            gx_ref, gw_ref = torch.autograd.grad(ref, (x, w), grad)
            torch.testing.assert_close(T.forward(x.detach(), w.detach()), ref.detach())
            gx, gw = T.backward(grad, x.detach(), w.detach(), True, True)
            torch.testing.assert_close(gx, gx_ref)
            torch.testing.assert_close(gw, gw_ref)
        print("ok")
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_forward_backward_parity(dtype) -> None:
    pytest.importorskip("triton")
    x, w = _inputs((4, 128, 14, 14), dtype=torch.float32)
    grad = torch.randn_like(x)
    xc, wc = (t.cuda().to(dtype).requires_grad_() for t in (x, w))
    out = ska(xc, wc)
    gx, gw = torch.autograd.grad(out, (xc, wc), grad.cuda().to(dtype))
    x, w = x.requires_grad_(), w.requires_grad_()
    ref = ska_reference(x, w)
    gx_ref, gw_ref = torch.autograd.grad(ref, (x, w), grad)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(out.float().cpu(), ref.detach(), **tol)
    torch.testing.assert_close(gx.float().cpu(), gx_ref, **tol)
    torch.testing.assert_close(gw.float().cpu(), gw_ref, **tol)


@cuda
def test_cuda_uses_triton_when_available() -> None:
    triton_mod = pytest.importorskip("litevision.ops._ska_triton")
    if not triton_mod.available():
        pytest.skip("Triton disabled")
    x, w = _inputs((2, 16, 5, 5), dtype=torch.float32)
    out = triton_mod.forward(x.cuda(), w.cuda())
    torch.testing.assert_close(out.cpu(), ska_reference(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_gpu_benchmark_script_runs_on_cpu_with_the_triton_interpreter(tmp_path) -> None:
    """benchmarks/gpu.py is prepared for one call on a lent GPU; --smoke runs every code path here."""
    pytest.importorskip("triton")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(script), "--smoke", "--device", "cpu", "--output", str(out)],
                          env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["model"] for r in result["models"]] == ["lsnet_t", "lsnet_s", "lsnet_b"]
    assert all(r["max_abs_err"] < 1e-4 for r in result["ska"])
