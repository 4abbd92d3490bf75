"""Benchmark: timing statistics, timm-loop cross-check, peak memory, backends, peers, output files, CLI."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from litevision.bench import count_complexity, time_calls, timing, timm_style_throughput
from litevision.bench.benchmark import bench_model, prepare_for_deploy, write_results
from litevision.bench.memory import peak_rss_increase_mb
from litevision.cli.main import main
from litevision.models import create_any_model


def _sleeper(ms: float):
    def fn() -> None:
        time.sleep(ms / 1e3)

    return fn


def test_time_calls_statistics_are_ordered_and_plausible():
    stats = time_calls(_sleeper(2.0), warmup=1, iters=12)
    assert stats.iters == 12
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    assert stats.min_ms >= 2.0 and stats.mean_ms >= stats.min_ms
    with pytest.raises(ValueError):
        time_calls(_sleeper(0.1), iters=0)


def test_timm_loop_reports_step_time_and_samples_per_second():
    res = timm_style_throughput(_sleeper(2.0), batch_size=8, warmup=1, iters=10)
    assert res["step_time_ms"] >= 2.0
    assert res["samples_per_sec"] == pytest.approx(8e3 / res["step_time_ms"], rel=0.2)


def test_our_statistics_and_timms_loop_agree_on_a_virtual_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both loops read the clock the same way: on a clock that only the measured call advances (1..5 ms in
    turn), our per-call statistics and timm benchmark.py's step time and throughput are exact (no machine
    timing is asserted)."""
    clock = {"t": 0.0, "n": 0}

    def work() -> None:
        clock["n"] += 1
        clock["t"] += 1e-3 * (1 + (clock["n"] - 1) % 5)

    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock["t"]))
    stats = time_calls(work, warmup=5, iters=10)
    assert (stats.min_ms, stats.median_ms, stats.max_ms, stats.iters) == pytest.approx((1.0, 3.0, 5.0, 10))
    assert stats.mean_ms == pytest.approx(3.0)
    theirs = timm_style_throughput(work, 8, warmup=5, iters=10)
    assert theirs["step_time_ms"] == pytest.approx(stats.mean_ms)
    assert theirs["samples_per_sec"] == pytest.approx(8 / 3e-3)


def test_peak_memory_sees_native_allocations():
    def alloc() -> None:
        buf = np.ones(64 * 2**20 // 8)  # 64 MiB touched by a C-level allocation (invisible to tracemalloc)
        assert buf.sum() > 0

    mb = peak_rss_increase_mb(alloc)
    if mb is None:
        pytest.skip("peak RSS cannot be reset on this system")
    assert 48 <= mb <= 512


def test_bench_model_eager_and_onnxruntime(tmp_path):
    results = bench_model("mobilenetv2_035", backends=("eager", "channels_last", "ort"), input_size=(1, 32, 32),
                          num_classes=10, batch_size=4, threads=1, warmup=1, iters=3, batch_iters=2,
                          exporter="legacy")
    assert [r.backend for r in results] == ["eager", "channels_last", "ort"]
    model = create_any_model("mobilenetv2_035", num_classes=10, in_chans=1)
    expected = count_complexity(model, (1, 32, 32))
    for r in results:
        assert r.status == "ok", r.reason
        assert (r.params, r.macs) == (expected.params, expected.macs) and r.fused
        assert r.latency.iters == 3 and r.batch.iters == 2 and r.throughput > 0
        assert r.latency.min_ms <= r.latency.median_ms <= r.latency.max_ms
    paths = write_results(results, tmp_path)
    data = json.loads(paths[0].read_text())
    assert data[0]["latency_ms"]["median_ms"] == pytest.approx(results[0].latency.median_ms)
    with paths[1].open() as f:
        rows = list(csv.DictReader(f))
    assert [r["backend"] for r in rows] == ["eager", "channels_last", "ort"] and float(rows[2]["throughput_ips"]) > 0


def test_failed_backend_is_reported_not_raised(monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    (result,) = bench_model("mobilenetv2_035", backends=("compile",), input_size=(1, 32, 32), num_classes=10,
                            batch_size=2, threads=1, warmup=1, iters=2, batch_iters=1)
    assert result.status == "n/a" and "no C++ compiler here" in result.reason and result.latency is None


@pytest.mark.parametrize("spec", ["timm:mobilenetv3_small_050", "tv:mobilenet_v3_small"])
def test_peers_are_measured_by_the_same_code(spec):
    (result,) = bench_model(spec, backends=("eager",), input_size=(3, 32, 32), num_classes=10, batch_size=2,
                            threads=1, warmup=1, iters=2, batch_iters=1, crosscheck=True)
    model = create_any_model(spec, num_classes=10)
    assert result.status == "ok" and result.model == spec
    assert result.params == sum(p.numel() for p in model.parameters())
    assert result.macs == count_complexity(model, (3, 32, 32)).macs
    assert result.extra["timm_style"]["samples_per_sec"] > 0


def test_peer_batchnorm_is_folded_for_a_fair_comparison():
    model = create_any_model("tv:resnet18", num_classes=10).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_mean, -0.1, 0.1)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        fused, folded = prepare_for_deploy(model, "tv:resnet18")
        assert folded and not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        torch.testing.assert_close(fused(x), ref, rtol=1e-4, atol=1e-4)


def test_unknown_names_and_backends_are_user_errors():
    from litevision.errors import UserError

    with pytest.raises(UserError, match="Did you mean"):
        bench_model("timm:mobilenetv3_smal", backends=("eager",))
    with pytest.raises(UserError, match="unknown backend"):
        bench_model("mobilenetv2_035", backends=("tensorrt",))


def test_cli_bench(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    rc = main(["bench", "mobilenetv2_035", "--backends", "eager", "--input-size", "1", "32", "32", "--num-classes",
               "10", "--batch-size", "2", "--threads", "1", "--warmup", "1", "--iters", "2", "--batch-iters", "1",
               "--output", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "mobilenetv2_035" in text and "median" in text and out.is_file()
    assert main(["bench", "mobilenetv2_035", "--backends", "eager,nope"]) == 2


def test_cpu_description_names_the_simd_level(tmp_path):
    from litevision.utils.cpu import cpu_description, cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx avx2 avx512f "
                    "avx512_vnni amx_int8\n")
    assert {"avx2", "avx512_vnni"} <= cpu_flags(info)
    assert cpu_description(info).startswith("Test CPU 9000, ")
    assert cpu_description(info).endswith(", avx512, VNNI, AMX")
    info.write_text("model name\t: Older CPU\nflags\t\t: fpu sse2 avx avx2\n")
    assert cpu_description(info).endswith(", avx2")
    assert cpu_flags(tmp_path / "missing") == set()


def test_interleaved_timing_leaves_out_rounds_under_foreign_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A round during which other processes kept CPUs busy is left out of the statistics (and recorded); when
    most rounds are loaded, nothing is left out but the result is marked untrusted."""
    busy = iter([])

    def run(foreign_per_round: list[float]) -> timing.InterleavedStats:
        nonlocal busy
        hz = os.sysconf("SC_CLK_TCK")
        readings = []
        machine = 0
        for f in foreign_per_round:  # (machine busy ticks, own ticks) at the start and end of each round
            readings += [(machine, 0), (machine + int(f * hz), 0)]
            machine += int(f * hz)
        busy = iter(readings)
        clock = iter(range(10_000))
        monkeypatch.setattr(timing, "cpu_ticks", lambda: next(busy))
        # a round reads the clock 4 times: start, call start / end, end: each read advances 1/3 s, a round 1 s
        monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(clock) / 3))
        return timing.time_interleaved({"a": lambda: None}, rounds=len(foreign_per_round), warmup=0)

    quiet_but_one = run([0.0, 1.5, 0.0, 0.0])
    assert quiet_but_one.load["rounds_left_out"] == [1] and quiet_but_one.load["trusted"]
    assert quiet_but_one["a"].iters == 3
    loaded = run([1.0, 1.0, 1.0, 0.0])
    assert loaded.load["rounds_left_out"] == [] and not loaded.load["trusted"] and loaded["a"].iters == 4


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_freed_memory_stops_the_page_faults_of_large_tensors() -> None:
    """Each 64 MB tensor is a fresh mmap by default (its pages fault in again); once freed memory is kept, the
    same allocations reuse the heap."""
    script = ("import resource, sys, torch\nfrom litevision.utils.cpu import keep_freed_memory\n"
              "if sys.argv[1] == 'keep':\n    assert keep_freed_memory()\n"
              "torch.empty(16 << 20).fill_(1)\nstart = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
              "for _ in range(10):\n    torch.empty(16 << 20).fill_(1)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)\n")
    faults = {mode: int(subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    assert faults["default"] >= 10 and faults["keep"] < faults["default"] / 4, faults
