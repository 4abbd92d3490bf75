"""Export: ONNX / INT8 ONNX / TorchScript, standard-domain scan, parity at batch 1 and batch > 1, CLI."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from litevision.cli.main import main
from litevision.export import ExportError, check_standard_ops, export_model, se_gate_nodes
from litevision.export.onnx import export_onnx
from litevision.export.quantize import quantize_int8
from litevision.models import DataConfig, list_models

CFG = DataConfig(input_size=(1, 32, 32), mean=(0.5,), std=(0.25,), interpolation="bilinear", crop_pct=1.0)


class TinyNet(nn.Module):
    """Conv-BN-act stem, an optional squeeze-excite gate, pooled linear head: logits of order 1."""

    def __init__(self, in_chans: int = 1, num_classes: int = 10, se: bool = False) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                                   nn.Hardswish())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1),
                                nn.Hardsigmoid()) if se else None
        self.fc = nn.Linear(16, num_classes)
        with torch.no_grad():
            for bn in (self.stem[1], self.block[1]):
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        if self.se is not None:
            x = x * self.se(x)
        return self.fc(x.mean((2, 3)))


class BakedBatch(TinyNet):
    """Right in eager mode at any batch, but tracing turns ``int(x.shape[0])`` into the constant 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        return self.fc(x.reshape(int(x.shape[0]), 16, -1).mean(-1))


def test_onnx_export_matches_eager_at_batch_1_and_4(tmp_path):
    result = export_model("tiny", "onnx", tmp_path, model=TinyNet(), data_config=CFG, num_images=8)
    assert result.passed
    seen = {(c.inputs, c.batch_size) for c in result.checks}
    assert {("random", 1), ("random", 4), ("images", 1), ("images", 4)} <= seen
    assert any(name.startswith("random@") for name, _ in seen)  # a second, non-square size
    assert all(c.max_abs_diff < 1e-4 and c.top1_agreement == 1.0 for c in result.checks)
    assert result.details["dynamic_batch"] and result.details["dynamic_hw"]
    assert result.details["opset"] >= 17 and set(result.details["domains"]) <= {"", "ai.onnx"}
    proto = onnx.load(str(result.path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    report = json.loads((tmp_path / "tiny.onnx.export.json").read_text())
    assert report["passed"] and len(report["checks"]) == len(result.checks)


def test_exports_are_verified_in_onnxruntime_and_opencv(tmp_path):
    result = export_model("tiny", "onnx", tmp_path, model=TinyNet(se=True), data_config=CFG, num_images=8)
    runtimes = {c.target for c in result.checks}
    assert runtimes == {"onnx", "opencv"} and result.passed
    assert {c.batch_size for c in result.checks if c.target == "opencv"} == {1}  # OpenCV fixes the batch
    only_ort = export_model("tiny", "onnx", tmp_path / "ort", model=TinyNet(), data_config=CFG, num_images=8,
                            runtimes=("onnxruntime",))
    assert {c.target for c in only_ort.checks} == {"onnx"}


def _ops(path) -> dict[str, list]:
    proto = onnx.load(str(path))
    return {n.op_type: [a.name for a in n.attribute] for n in proto.graph.node}


def test_cleanup_pass_writes_the_conventional_forms_opencv_runs(tmp_path):
    """dynamo writes global pooling as ReduceMean and HardSigmoid's default beta explicitly; OpenCV DNN 5.1
    then computes MobileNetV3's squeeze-excite gates wrongly. The clean-up pass rewrites both."""
    import cv2
    import numpy as np
    import onnxruntime as ort

    import litevision as lv

    torch.manual_seed(0)
    model = lv.fuse_model(lv.create_model("mobilenetv3_small_075", num_classes=10).eval())
    raw = export_onnx(model, tmp_path / "raw.onnx", input_size=(3, 64, 64), clean=False)
    clean = export_onnx(model, tmp_path / "clean.onnx", input_size=(3, 64, 64))
    raw_ops, clean_ops = _ops(raw.path), _ops(clean.path)
    assert "ReduceMean" in raw_ops and "beta" in raw_ops["HardSigmoid"]
    assert "ReduceMean" not in clean_ops and "GlobalAveragePool" in clean_ops and "Flatten" in clean_ops
    assert "beta" not in clean_ops["HardSigmoid"] and clean.cleanup["GlobalAveragePool"] > 0
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
    for path in (raw.path, clean.path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], ref, rtol=1e-4, atol=1e-5)
    net = cv2.dnn.readNetFromONNX(str(clean.path))
    net.setInput(x[:1].numpy())
    np.testing.assert_allclose(net.forward(), ref[:1], rtol=1e-4, atol=1e-5)


def test_batch_baked_into_a_traced_graph_fails_the_export(tmp_path):
    with pytest.raises(ExportError, match="batch"):
        export_model("baked", "torchscript", tmp_path, model=BakedBatch(), data_config=CFG, num_images=8)
    report = json.loads((tmp_path / "baked.torchscript.export.json").read_text())
    failed = {(c["inputs"], c["batch_size"]) for c in report["checks"] if not c["passed"]}
    assert ("random", 1) in failed and ("random", 4) in failed  # traced at batch 2: wrong at 1 and at 4


def test_torchscript_export_passes_for_a_clean_model(tmp_path):
    result = export_model("tiny", "torchscript", tmp_path, model=TinyNet(), data_config=CFG, num_images=8)
    assert result.passed and result.path.suffix == ".pt"
    assert {c.batch_size for c in result.checks} == {1, 4}


def test_int8_static_quantization_keeps_se_gates_in_float(tmp_path):
    torch.manual_seed(1)
    result = export_model("tiny_se", "onnx-int8", tmp_path, model=TinyNet(se=True), data_config=CFG, num_images=16,
                          calibration_images=16, exporter="legacy")
    ops = result.details["domains"][""]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "Conv" in result.details["quantized_op_types"]
    gate = result.details["float_nodes"]
    assert gate, "the squeeze-excite branch must be found and kept in float"
    images = [c for c in result.checks if c.inputs == "images"]
    assert images and all(c.top1_agreement >= 0.9 and c.batch_consistency_diff < 1e-4 for c in images)
    assert (tmp_path / "tiny_se.onnx").is_file() and result.path.name == "tiny_se_int8.onnx"


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_int8_calibration_methods(tmp_path, method):
    torch.manual_seed(1)
    result = export_model("tiny", "onnx-int8", tmp_path, model=TinyNet(), data_config=CFG, num_images=16,
                          calibration_images=16, exporter="legacy", calibration_method=method)
    assert result.passed and result.details["calibration_method"] == method
    with pytest.raises(ValueError, match="unknown calibration method"):
        quantize_int8(result.files[0], tmp_path / "bad.onnx", torch.zeros(1, 1, 32, 32), calibration_method="kl")


def test_percentile_calibration_falls_back_to_minmax_on_a_flat_tensor(tmp_path):
    model = TinyNet()
    with torch.no_grad():  # a block whose outputs differ by a few float32 ulps: no room for 2048 histogram bins
        model.block[1].weight.zero_()
        model.block[1].bias.copy_(3.0 + torch.arange(16) * 2.4e-7)
    path = export_onnx(model.eval(), tmp_path / "flat.onnx", input_size=(1, 32, 32), exporter="legacy").path
    q = quantize_int8(path, tmp_path / "flat_int8.onnx", torch.rand(8, 1, 32, 32), calibration_method="percentile")
    assert q.path.is_file() and q.calibration_method == "minmax"


def test_int8_pre_processing_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    """onnxruntime's symbolic shape pass saves a debug model into the current directory when it gives up."""
    from litevision.export.quantize import _pre_process

    calls = []

    def fake_pre_process(src, dst, skip_symbolic_shape=False):
        calls.append(skip_symbolic_shape)
        if not skip_symbolic_shape:
            open("sym_shape_infer_temp.onnx", "wb").close()
            raise Exception("Incomplete symbolic shape inference")
        open(dst, "wb").close()

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _pre_process(fake_pre_process, "model.onnx", tmp_path / "pre.onnx")
    assert calls == [False, True]
    assert (tmp_path / "pre.onnx").is_file()
    assert list(work.iterdir()) == []


@pytest.mark.slow
@pytest.mark.export
def test_int8_lsnet_quantizes_without_littering(tmp_path, monkeypatch):
    """LSNet is the real case: the symbolic pass fails, ONNX shape inference takes over, the cwd stays clean."""
    from litevision.models import create_model

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    model = create_model("lsnet_t", num_classes=10).eval()
    path = export_onnx(model, tmp_path / "lsnet.onnx", input_size=(3, 64, 64)).path
    q = quantize_int8(path, tmp_path / "lsnet_int8.onnx", torch.randn(4, 3, 64, 64))
    assert q.path.is_file() and "Conv" in q.quantized_op_types
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(("flags", "lacks"), [
    ("fpu sse2 avx avx2 fma", True),  # AVX2 only (e.g. an EPYC before Zen 4): u8s8 kernels can saturate
    ("fpu sse2 avx2 avx512f avx512bw", True),  # AVX-512 without VNNI
    ("fpu sse2 avx2 avx512f avx512_vnni", False),
    ("fpu sse2 avx2 avx_vnni", False),
    (None, False),  # ARM: "Features", no x86 flags
])
def test_cpu_vnni_detection(tmp_path, flags, lacks):
    from litevision.utils.cpu import cpu_lacks_vnni

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\n" + (f"flags\t\t: {flags}\n" if flags else "Features\t: fp asimd\n"))
    assert cpu_lacks_vnni(info) is lacks
    assert cpu_lacks_vnni(tmp_path / "missing") is False


def test_int8_reduce_range_is_recorded(tmp_path):
    path = export_onnx(TinyNet().eval(), tmp_path / "tiny.onnx", input_size=(1, 32, 32), exporter="legacy").path
    for reduce, limit in ((True, 64), (False, 127)):  # 7-bit weights: symmetric range [-64, 64]
        q = quantize_int8(path, tmp_path / f"tiny_{reduce}.onnx", torch.rand(8, 1, 32, 32), reduce_range=reduce)
        assert q.reduce_range is reduce
        weights = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(q.path)).graph.initializer
                   if t.data_type == TensorProto.INT8]
        assert weights and max(int(abs(w.astype(int)).max()) for w in weights) == limit


def test_se_gate_detection_ignores_the_classifier_pooling(tmp_path):
    def export(model: nn.Module, name: str) -> str:
        return str(export_onnx(model.eval(), tmp_path / name, input_size=(1, 32, 32), exporter="legacy").path)

    assert se_gate_nodes(onnx.load(export(TinyNet(se=False), "plain.onnx"))) == set()
    path = export(TinyNet(se=True), "se.onnx")
    proto = onnx.load(str(path))
    gate = se_gate_nodes(proto)
    kinds = {n.op_type for n in proto.graph.node if n.name in gate}
    assert {"Conv", "Relu", "HardSigmoid"} <= kinds and "Gemm" not in kinds and "Mul" not in kinds


def _model_with(node: onnx.NodeProto, domain: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(domain, 1)])


def test_custom_operator_domains_are_rejected():
    ok = _model_with(helper.make_node("Relu", ["x"], ["y"]), "ai.onnx.ml")
    assert check_standard_ops(ok) == {"": ["Relu"]}
    custom = _model_with(helper.make_node("SKA", ["x"], ["y"], domain="com.example"), "com.example")
    with pytest.raises(ExportError, match="com.example: SKA"):
        check_standard_ops(custom)
    # a custom node hidden in a subgraph is found too
    inner = helper.make_graph([helper.make_node("SKA", ["x"], ["z"], domain="com.example")], "then", [],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    cond = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)
    with pytest.raises(ExportError, match="SKA"):
        check_standard_ops(_model_with(cond, "com.example"))
    assert check_standard_ops(custom, allow_domains=["com.example"])["com.example"] == ["SKA"]


def test_cli_export_registered_model(tmp_path, capsys):
    assert "mobilenetv2_035" in list_models()
    rc = main(["export", "mobilenetv2_035", "--format", "onnx", "--output", str(tmp_path), "--num-classes", "10",
               "--input-size", "1", "32", "32", "--exporter", "legacy"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "batch 1" in out and "batch 4" in out and (tmp_path / "mobilenetv2_035.onnx").is_file()


@pytest.mark.parametrize("argv", [
    ["export", "no_such_model", "--format", "onnx"],
    ["export", "mobilenetv2_035", "--format", "onnx", "--opset", "13"],
    ["export", "mobilenetv2_035", "--format", "onnx", "--input-size", "1", "2", "3", "4"],
    ["export", "mobilenetv2_035", "--format", "onnx", "--verify-batch", "1"],
    ["export", "mobilenetv2_035", "--format", "onnx", "--images", "/nonexistent/folder"],
])
def test_cli_export_user_errors_exit_2(tmp_path, argv, capsys):
    assert main([*argv, "--output", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_export_mismatch_exits_1(tmp_path, monkeypatch, capsys):
    import litevision.export.api as api

    monkeypatch.setattr(api, "create_any_model", lambda *a, **k: BakedBatch(in_chans=1, num_classes=10))
    rc = main(["export", "mobilenetv2_035", "--format", "torchscript", "--output", str(tmp_path), "--in-chans", "1",
               "--input-size", "32", "32"])
    assert rc == 1 and "does not match eager" in capsys.readouterr().err


# every registered family at a small input: heavy, run with `pytest -m export` (also marked slow: the default
# run only deselects slow)
_ONE_PER_FAMILY = sorted({n.rsplit("_", 1)[0]: n for n in list_models(task="classification")}.values())


@pytest.mark.slow
@pytest.mark.export
@pytest.mark.parametrize("name", _ONE_PER_FAMILY)
def test_export_every_family(tmp_path, name):
    from litevision.models import get_model_card

    card = get_model_card(name)
    if len(card.input_size) != 3 or card.input_size[0] not in (1, 3):
        pytest.skip(f"{name} takes {card.input_size} inputs, not images")
    result = export_model(name, "onnx", tmp_path, num_classes=10, input_size=(64, 64), num_images=8)
    assert result.passed
    # every family runs right in OpenCV DNN too (or its card says why not, and the export says so)
    assert any(c.target == "opencv" for c in result.checks) or card.runtime_limits.get("opencv")
