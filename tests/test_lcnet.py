"""LCNet specifics (the contract is in test_models_contract): DTConv's batched dynamic convolution, sparse
routing, gradients and collapse guard; MDAM's column-sum key selection and α; the ONNX export with top-k."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import litevision as lv
from litevision.layers.dynamic_conv import (
    DTConv,
    MultiScaleConv,
    aggregate_kernels,
    dynamic_conv2d,
    sparse_routing,
)
from litevision.layers.token_select_attention import TokenSelectAttention


def _randomize_bn(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def per_sample_conv(x: torch.Tensor, weights: torch.Tensor, kernels: torch.Tensor, stride: int,
                    padding: int) -> torch.Tensor:
    """The definition, one sample and one kernel at a time: x[b] ⋆ Σ_i w[b, i] H_i."""
    outs = []
    for b in range(x.shape[0]):
        kernel = sum(weights[b, i] * kernels[i] for i in range(kernels.shape[0]))
        outs.append(F.conv2d(x[b:b + 1], kernel, None, stride, padding))
    return torch.cat(outs)


@pytest.mark.parametrize("formulation", ["grouped", "unfold", "mixture", "auto"])
@pytest.mark.parametrize(("stride", "size"), [(1, (9, 13)), (2, (8, 11)), (1, (2, 2))])
def test_dynamic_conv2d_formulations_equal_the_definition(formulation, stride, size):
    x = torch.randn(3, 6, *size, dtype=torch.float64)
    kernels = torch.randn(4, 5, 6, 3, 3, dtype=torch.float64)
    weights = torch.rand(3, 4, dtype=torch.float64)
    out = dynamic_conv2d(x, weights, kernels, stride, 1, formulation)
    torch.testing.assert_close(out, per_sample_conv(x, weights, kernels, stride, 1))


def test_dynamic_conv2d_rejects_unknown_formulation():
    with pytest.raises(ValueError, match="unknown formulation"):
        dynamic_conv2d(torch.randn(1, 2, 4, 4), torch.ones(1, 1), torch.randn(1, 2, 2, 3, 3), 1, 1, "loop")


@pytest.mark.parametrize("weights", [
    [[0.0, 0.7, 0.0, 0.3, 0.0]],  # batch 1, top-2 of 5: the embedding_bag path
    [[0.0, 1.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0, 0.8], [0.0, 0.0, 0.0, 0.0, 0.0]],  # uneven, an empty row
    [[0.5, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.3, 0.4]],  # as many selections as kernels: the matmul
])
def test_sparse_kernel_aggregation_equals_the_matmul_with_its_gradients(weights):
    w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
    bank = torch.randn(5, 37, dtype=torch.float64, requires_grad=True)
    out = aggregate_kernels(w, bank)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (w, bank), grad)
    expected_out = w @ bank
    expected = torch.autograd.grad(expected_out, (w, bank), grad)
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(got[1], expected[1])  # every kernel's gradient, zero for the unselected
    selected = w.detach() != 0  # the router's gradient reaches the selected weights
    torch.testing.assert_close(got[0][selected], expected[0][selected])


def test_sparse_routing_top_k_and_threshold():
    probs = torch.tensor([[0.50, 0.30, 0.15, 0.05], [0.10, 0.20, 0.30, 0.40]])
    top2 = sparse_routing(probs, 2, None)
    torch.testing.assert_close(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0], [0.0, 0.0, 3 / 7, 4 / 7]]))
    thr = sparse_routing(probs, None, 0.25)
    torch.testing.assert_close(thr, torch.tensor([[0.625, 0.375, 0.0, 0.0], [0.0, 0.0, 3 / 7, 4 / 7]]))
    only_max = sparse_routing(probs, None, 0.9)  # nothing reaches 0.9: the largest is always kept
    torch.testing.assert_close(only_max, torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))


@pytest.mark.parametrize("select", [{"top_k": 2}, {"top_k": 1}, {"threshold": 0.3}])
def test_dtconv_equals_the_mixture_of_its_kernels_outputs(select):
    conv = DTConv(12, 10, 3, num_kernels=5, temperature_anneal_steps=0, **select).eval()
    _randomize_bn(conv)
    x = torch.randn(4, 12, 11, 7)
    with torch.no_grad():
        weights, probs = conv.routing_weights(x)
        # each candidate kernel's own output, mixed by the sparse weights, then the BatchNorm
        per_kernel = torch.stack([F.conv2d(x, conv.kernels()[i], padding=1) for i in range(5)], 1)
        expected = conv.bn((weights.view(4, 5, 1, 1, 1) * per_kernel).sum(1))
        out = conv(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    kept = (weights > 0).sum(-1)
    if "top_k" in select:
        assert (kept == select["top_k"]).all()
    else:
        assert ((probs >= 0.3) | (probs == probs.amax(-1, keepdim=True))).sum(-1).equal(kept)


@pytest.mark.parametrize("select", [{"top_k": 2}, {"top_k": 1}, {"threshold": 0.4}])
def test_gradients_reach_the_router_and_only_the_selected_kernels(select):
    conv = DTConv(8, 8, 3, num_kernels=6, temperature_anneal_steps=0, **select).train()
    x = torch.randn(1, 8, 9, 9)
    weights, _ = conv.routing_weights(x)
    conv(x).square().mean().backward()
    selected = weights[0] > 0
    grad_norm = conv.weight.grad.flatten(1).norm(dim=1)
    assert (grad_norm[selected] > 0).all()
    assert (grad_norm[~selected] == 0).all()  # kernels not chosen for this sample learn nothing from it
    # the router learns in every mode, k = 1 included (straight-through normalizer)
    assert conv.router.weight.grad.abs().sum() > 0
    for name, p in conv.router_features.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_temperature_anneals_during_training_only():
    conv = DTConv(6, 6, 3, num_kernels=3, temperature_init=10.0, temperature_anneal_steps=4)
    x = torch.randn(2, 6, 5, 5)
    assert float(conv.temperature()) == 10.0
    conv.eval()(x)
    assert int(conv.num_updates) == 0
    conv.train()
    seen = []
    for _ in range(6):
        conv(x)
        seen.append(float(conv.temperature()))
    assert seen == pytest.approx([7.75, 5.5, 3.25, 1.0, 1.0, 1.0])
    assert "num_updates" in conv.state_dict()  # the schedule resumes with the checkpoint
    # high temperature: near-uniform routing (every kernel is trained early on)
    hot = DTConv(6, 6, 3, num_kernels=4, temperature_init=1e4, temperature_anneal_steps=10)
    probs = hot.router_probs(torch.randn(3, 6, 5, 5))
    torch.testing.assert_close(probs, torch.full_like(probs, 0.25), atol=1e-3, rtol=0)


def test_balance_loss_is_one_when_balanced_and_n_when_collapsed():
    conv = DTConv(4, 4, 3, num_kernels=4, top_k=1)
    uniform = torch.full((8, 4), 0.25)
    balanced = F.one_hot(torch.arange(8) % 4, 4).float()
    assert float(conv._balance_loss(balanced, uniform)) == pytest.approx(1.0)
    collapsed = F.one_hot(torch.zeros(8, dtype=torch.long), 4).float()
    assert float(conv._balance_loss(collapsed, collapsed)) == pytest.approx(4.0)
    model = lv.create_model("lcnet_t", num_classes=3).train()
    model(torch.randn(2, 3, 64, 64))
    aux = model.auxiliary_loss()
    assert aux.requires_grad and aux > 0
    aux.backward()
    assert model.stages[0].blocks[0].local_branch.router.weight.grad is not None


def test_dtconv_samples_do_not_see_their_batch_mates():
    conv = DTConv(16, 16, 3, num_kernels=4).eval()
    _randomize_bn(conv)
    x = torch.randn(5, 16, 4, 4)  # small map, wide layer: "auto" runs unfold at batch 5, grouped at batch 1
    with torch.no_grad():
        batched = conv(x)
        single = torch.cat([conv(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_multiscale_conv_fuses_exactly():
    ms = MultiScaleConv(14, (1, 3, 5)).eval()  # 14 channels: uneven splits 5 / 5 / 4
    assert ms.splits == (5, 5, 4)
    _randomize_bn(ms)
    x = torch.randn(2, 14, 9, 6)
    with torch.no_grad():
        torch.testing.assert_close(ms.fuse()(x), ms(x), rtol=1e-4, atol=1e-5)


def mdam_reference(m: TokenSelectAttention, x: torch.Tensor) -> torch.Tensor:
    """MDAM per sample and per head with an explicit 0/1 mask over the pooled key tokens."""
    b, _, h, w = x.shape
    heads, d, e = m.num_heads, m.head_dim, m.embed_dim
    feats = m.features(x)
    pooled = F.adaptive_avg_pool2d(feats, (min(m.pool_size, h), min(m.pool_size, w)))
    q_all = m.q(feats.flatten(2).transpose(1, 2))  # (B, HW, E)
    kv = m.kv(pooled.flatten(2).transpose(1, 2))  # (B, S, 2E): keys then values
    k_all, v_all = kv[..., :e], kv[..., e:]
    s = k_all.shape[1]
    keep = m.num_kept(s)
    out = torch.zeros(b, h * w, e)
    for i in range(b):
        for j in range(heads):
            cols = slice(j * d, (j + 1) * d)
            attn = (q_all[i, :, cols] @ k_all[i, :, cols].T / d ** 0.5).softmax(-1)  # (HW, S)
            mask = torch.zeros(s)
            mask[attn.sum(0).topk(keep).indices] = 1.0  # A_s: column sums rank the keys
            out[i, :, cols] = (m.alpha[j] * attn * mask) @ v_all[i, :, cols]
    return m.proj(out.transpose(1, 2).reshape(b, e, h, w))


@pytest.mark.parametrize(("size", "keep_ratio", "heads"), [((14, 14), 0.5, 2), ((10, 13), 0.3, 4), ((5, 3), 0.5, 1),
                                                          ((21, 7), 1.0, 2)])
def test_mdam_keeps_the_top_k_keys_by_column_sum(size, keep_ratio, heads):
    m = TokenSelectAttention(24, embed_dim=16, num_heads=heads, pool_size=7, key_keep_ratio=keep_ratio).eval()
    _randomize_bn(m)
    with torch.no_grad():
        m.alpha_logit.uniform_(-2, 2)
        x = torch.randn(3, 24, *size)
        torch.testing.assert_close(m(x), mdam_reference(m, x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.fuse()(x), mdam_reference(copy.deepcopy(m), x), rtol=1e-4, atol=1e-5)


def test_mdam_alpha_is_learned_inside_zero_one():
    m = TokenSelectAttention(12, embed_dim=8, num_heads=2).train()
    assert torch.equal(m.alpha, torch.full((2,), 0.5))
    m(torch.randn(2, 12, 9, 9)).sum().backward()
    assert m.alpha_logit.grad is not None and m.alpha_logit.grad.abs().sum() > 0
    with torch.no_grad():
        m.alpha_logit.copy_(torch.tensor([-8.0, 8.0]))
    assert ((m.alpha > 0) & (m.alpha < 1)).all()


def test_mdam_rejects_bad_settings():
    with pytest.raises(ValueError, match="divisible"):
        TokenSelectAttention(8, embed_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="key_keep_ratio"):
        TokenSelectAttention(8, key_keep_ratio=0.0)


def test_lcnet_block_hyper_parameters_are_configurable():
    model = lv.create_model("lcnet_t", num_kernels=(2, 3, 4, 5), top_k=1, mlp_ratio=1.0, num_heads=4,
                            pool_size=5, key_keep_ratio=0.25, threshold=0.3)
    dtconvs = [m for m in model.modules() if isinstance(m, DTConv)]
    assert [m.num_kernels for m in dtconvs[:2]] == [2, 2] and dtconvs[-1].num_kernels == 5
    assert all(m.threshold == 0.3 for m in dtconvs)
    mdams = [m for m in model.modules() if isinstance(m, TokenSelectAttention)]
    assert all((m.num_heads, m.pool_size, m.key_keep_ratio) == (4, 5, 0.25) for m in mdams)
    with pytest.raises(ValueError, match="one value per stage"):
        lv.create_model("lcnet_t", num_kernels=(2, 3))
    with pytest.raises(TypeError, match="config fields: .*num_kernels"):
        lv.create_model("lcnet_t", num_kernel=3)


def test_card_states_the_paper_gap_and_is_not_pp_lcnet():
    card = lv.get_model_card("lcnet_t")
    assert "PP-LCNet" in card.notes and "25%" in card.notes
    assert (card.figures.params_m, card.figures.macs_g) == (19.48, 1.28)
    assert not card.export_dynamic_hw  # the ONNX graph is exported for one input size


def test_onnx_export_with_top_k_matches_onnxruntime(tmp_path):
    import onnx

    from litevision.export import export_model

    result = export_model("lcnet_t", "onnx", tmp_path, num_classes=10, input_size=(64, 64), num_images=4,
                          exporter="legacy")
    assert result.passed and not result.details["dynamic_hw"] and result.details["dynamic_batch"]
    assert {(c.inputs, c.batch_size) for c in result.checks} >= {("random", 1), ("random", 4)}
    assert all(c.max_abs_diff < 1e-4 for c in result.checks)
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert "TopK" in ops  # the key-token and kernel selections are in the graph, not baked constants


def test_fresh_mdam_gates_with_one_so_a_new_block_is_its_local_branch():
    model = lv.create_model("lcnet_t", num_classes=3).eval()
    block = model.stages[1].blocks[0]
    x = torch.randn(2, 64, 12, 10)
    with torch.no_grad():
        u = block.dw_in(block.pw_in(x))
        torch.testing.assert_close(block.global_branch(u), torch.ones(2, u.shape[1], 12, 10))
        local_only = x + block.dw_out(block.pw_out(block.act(block.local_branch(u))))
        torch.testing.assert_close(block(x), local_only)


def test_top_k_routing_by_comparison_equals_the_scatter_of_the_top_k() -> None:
    """Top-k routing keeps what is >= the k-th largest probability: the selection of scattering the top-k
    (the form OpenCV DNN cannot load) on probabilities without exact ties, for any k."""
    torch.manual_seed(0)
    probs = torch.rand(64, 5).softmax(-1)
    for k in range(1, 6):
        top = probs.topk(k, dim=-1)
        expected = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
        expected = expected / expected.sum(-1, keepdim=True)
        torch.testing.assert_close(sparse_routing(probs, k, None), expected)
        assert (sparse_routing(probs, k, None) > 0).sum(-1).eq(k).all()
