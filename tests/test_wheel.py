"""The package as a user installs it: build the wheel, install it where the repository is not on the path, and
run the CLI from an empty directory (recipes, bundled data and the console script must come from the wheel).

The new environment reuses the dependencies already installed in the test environment (a ``.pth`` file
pointing at links to them, litevision itself left out) and installs the wheel with ``--no-index``: nothing is
downloaded, and the install fails if an installed dependency does not satisfy the wheel's declared ranges.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _site_packages_without_litevision(dest: Path) -> Path:
    """Links to every entry of this environment's site-packages except litevision's own (editable) files."""
    dest.mkdir()
    dirs = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    for site in dirs:
        for entry in site.iterdir():
            name = entry.name.lower()
            if name.startswith(("litevision", "__editable__", "_litevision")) or name.endswith(".pth"):
                continue
            link = dest / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LITEVISION_RECIPES")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(REPO)], cwd=tmp, env=env)
    wheel = next((tmp / "dist").glob("litevision-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], cwd=tmp, env=env)
    python = tmp / "venv" / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip()
    deps = _site_packages_without_litevision(tmp / "deps")
    Path(purelib, "test_deps.pth").write_text(f"{deps}\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
          f"{wheel}[export]"], cwd=tmp, env=env)
    work = tmp / "work"
    work.mkdir()
    return tmp / "venv" / "bin", {**env, "PATH": f"{tmp / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def test_the_wheel_works_outside_the_repository(installed: tuple[Path, dict[str, str]]) -> None:
    bin_dir, env = installed
    work = bin_dir.parents[1] / "work"
    where = _run([str(bin_dir / "python"), "-c", "import litevision; print(litevision.__file__)"], work, env)
    assert str(REPO) not in where and "site-packages" in where
    assert _run([str(bin_dir / "litevision"), "--version"], work, env).startswith("litevision ")
    names = _run([str(bin_dir / "litevision"), "list"], work, env).split()
    assert "lsnet_t" in names and "mobilenetv3_small_100" in names
    recipes = _run([str(bin_dir / "litevision"), "train", "--list-recipes"], work, env).split()
    assert {"quick", "hybridsn_indian_pines", "lsnet/lsnet_t"} <= set(recipes)
    _run([str(bin_dir / "litevision"), "train", "quick", "--set", "run.max_steps=2", "--set", "run.output=runs",
          "--set", "run.name=smoke", "--set", "data.val_split=none"], work, env)
    assert (work / "runs" / "smoke" / "last.safetensors").is_file()
    out = _run([str(bin_dir / "litevision"), "export", "runs/smoke", "--format", "onnx", "--output", "onnx"], work,
               env)
    assert "onnx" in out and any((work / "onnx").glob("*.onnx"))
    assert not (work / "configs").exists()  # nothing was looked up in, or written to, a repository layout
