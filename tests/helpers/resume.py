"""Kill a training run with SIGKILL after its first mid-run checkpoint, resume it, and let a reference run of
the same command finish: the tests then compare the two run folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_resume_and_reference(run_root: Path, command: list[str], *, at_step: int = 2) -> None:
    """``command --name reference`` runs to the end; ``command --name killed`` is killed once its checkpoint
    pointer (``last.json``) reaches ``at_step``, then resumed with ``litevision train --resume``. Both end under
    ``run_root``; asserts the kill landed before the end and that the resume and the reference succeeded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = subprocess.Popen([*command, "--name", "reference"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    killed = subprocess.Popen([*command, "--name", "killed"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    pointer = run_root / "killed" / "last.json"
    deadline = time.monotonic() + 300
    while killed.poll() is None and time.monotonic() < deadline:
        try:
            step = json.loads(pointer.read_text())["step"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            step = 0
        if step >= at_step:
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert killed.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run_root / "killed" / "results.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "litevision.cli.main", "train", "--resume",
                              str(run_root / "killed")], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed" in resumed.stderr
    _, err = reference.communicate()
    assert reference.returncode == 0, err[-3000:]
