"""``litevision modules``: the table over the registry, cards, latency read from the benchmark JSON."""

from __future__ import annotations

import json

import litevision as lv
from litevision.bench.module_table import benchmark_modules, module_rows
from litevision.cli.main import main


def test_modules_table_lists_every_module(capsys) -> None:
    assert main(["modules"]) == 0
    out = capsys.readouterr().out
    for name in lv.list_modules():
        assert name in out
    assert "category" in out and "MACs" in out


def test_modules_card_and_unknown_name(capsys) -> None:
    assert main(["modules", "halo_attention", "--card"]) == 0
    out = capsys.readouterr().out
    assert "deviations_fixed" in out and "inverted" in out
    assert main(["modules", "halo_atention"]) == 2
    assert "halo_attention" in capsys.readouterr().err  # the miss suggests the close name


def test_latency_comes_from_the_benchmark_json(tmp_path, capsys) -> None:
    result = benchmark_modules(["eca", "simam"], batch=2, size=(16, 16), iters=2, warmup=1)
    assert set(result["modules"]) == {"eca", "simam"}
    assert result["modules"]["eca"]["ratio_to_conv3x3"] > 0
    path = tmp_path / "modules_cpu.json"
    path.write_text(json.dumps(result))
    rows = {r.name: r for r in module_rows("*", latency_json=path)}
    assert rows["eca"].latency_ms == result["modules"]["eca"]["latency_ms"]
    assert rows["se"].latency_ms is None
    assert main(["modules", "eca", "--latency-json", str(path), "--measure"]) == 0
    assert f"{result['modules']['eca']['latency_ms']:.2f}" in capsys.readouterr().out
