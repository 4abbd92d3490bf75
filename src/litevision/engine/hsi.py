"""HybridSN on a hyperspectral scene with the paper's protocol, in plain PyTorch.

Protocol of the authors' code (Roy et al. 2020): Adam, lr 1e-3 with Keras' per-iteration decay 1e-6
(lr / (1 + 1e-6 · step)), batch 256, 100 epochs, cross-entropy, 30% stratified random training pixels,
30 PCA bands, 25×25 patches. Evaluation is deterministic: ``model.eval()`` (dropout off), no gradient,
the test pixels in a fixed order; the same weights always give the same predictions (the seed 001 note
about results changing between test runs came from dropout left on and shuffled test loaders).

The weights evaluated are those after the last epoch (the authors kept the checkpoint with the best
*training* accuracy; we do no selection at all, so the test set never influences the model).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from litevision.data.registry import DataBundle, build_dataset
from litevision.engine.hsi_metrics import hsi_report, label_map, save_classification_maps
from litevision.errors import UserError
from litevision.models import create_model

# Roy et al. 2020, Table II (Indian Pines, 30% random training pixels)
PAPER_INDIAN_PINES = {"oa": 0.9975, "aa": 0.9963, "kappa": 0.9971, "split": "random, 30% training pixels"}


@dataclass(frozen=True)
class HSIProtocol:
    """Training settings; defaults are the paper's."""

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    lr_decay: float = 1e-6  # Keras' Adam(decay=...): lr_t = lr / (1 + decay * t), t = optimizer steps
    seed: int = 0


def predict(model: nn.Module, dataset: Dataset, batch_size: int = 256) -> np.ndarray:
    """Class index for every sample of ``dataset`` in order; eval mode and no gradient (deterministic)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    out = []
    try:  # fork the RNG: a DataLoader draws a seed from it, which would shift later dropout masks
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            for x, _ in loader:
                out.append(model(x.to(device)).argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def train_model(
    model: nn.Module,
    dataset: Dataset,
    protocol: HSIProtocol,
    log: Callable[[str], None] = print,
    state_path: str | os.PathLike[str] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place with Adam and Keras-style lr decay; returns per-epoch loss / accuracy / time.

    With ``state_path`` the full training state (weights, optimizer, schedule, shuffling generator,
    history) is saved after every epoch and a run finding that file resumes where it stopped, with the
    same result as an uninterrupted run. ``on_epoch_end(row)`` may add entries to the epoch's history row.
    """
    generator = torch.Generator().manual_seed(protocol.seed)
    loader = DataLoader(dataset, batch_size=protocol.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=protocol.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + protocol.lr_decay * step))
    device = next(model.parameters()).device
    history: list[dict[str, Any]] = []
    state_file = Path(state_path) if state_path is not None else None
    if state_file is not None and state_file.is_file():
        state = torch.load(state_file, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])  # dropout masks
        history = json.loads(state["history"])
        log(f"resumed from {state_file} after epoch {len(history)}")
    model.train()
    for epoch in range(len(history) + 1, protocol.epochs + 1):
        start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        row = {"epoch": epoch, "loss": loss_sum / seen, "train_acc": correct / seen,
               "seconds": time.perf_counter() - start}
        if on_epoch_end is not None:
            on_epoch_end(row)
            model.train()
        history.append(row)
        log(f"epoch {epoch}/{protocol.epochs}  " + "  ".join(
            f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds")) + f"  {row['seconds']:.0f}s")
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "generator": generator.get_state(),
                        "rng": torch.get_rng_state(),
                        "history": json.dumps(history)}, state_file.with_suffix(".tmp"))
            state_file.with_suffix(".tmp").replace(state_file)
    return history


def evaluate_bundle(model: nn.Module, bundle: DataBundle, batch_size: int = 256) -> tuple[dict[str, Any], np.ndarray]:
    """Test-set report (OA, AA, kappa, per class) and the test predictions."""
    test = bundle.test
    pred = predict(model, test, batch_size)
    return hsi_report(test.labels, pred, bundle.class_names), pred


def write_maps(
    path: str | os.PathLike[str],
    model: nn.Module,
    bundle: DataBundle,
    test_pred: np.ndarray,
    batch_size: int = 256,
    title: str = "",
) -> Path:
    """Ground truth next to the predicted classes of all labelled pixels (train pixels predicted too)."""
    train_pred = predict(model, bundle.train, batch_size)
    positions = np.concatenate([bundle.train.positions, bundle.test.positions])
    predicted = label_map(bundle.extra["scene_shape"], positions, np.concatenate([train_pred, test_pred]))
    return save_classification_maps(path, bundle.extra["ground_truth"], predicted, bundle.class_names, title)


def run_experiment(
    bundle: DataBundle,
    out_dir: str | os.PathLike[str],
    name: str,
    protocol: HSIProtocol = HSIProtocol(),
    *,
    title: str = "",
    paper: dict[str, Any] | None = None,
    save_model: bool = False,
    eval_every: int = 0,
    state_path: str | os.PathLike[str] | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train HybridSN on ``bundle`` (from a hyperspectral dataset) and write ``<name>.json`` (metrics,
    split, protocol, timing) and ``<name>_map.png`` (ground truth vs prediction) to ``out_dir``.

    ``eval_every`` > 0 records the test OA every that many epochs as a learning curve (monitoring only:
    the evaluated weights are always the last epoch's). ``state_path`` makes the run resumable.
    ``paper`` (the published figures) is stored next to ours.
    """
    torch.manual_seed(protocol.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(bundle.description)
    n_components, patch_size = bundle.extra["n_components"], bundle.extra["patch_size"]
    model = create_model("hybridsn", num_classes=bundle.num_classes, bands=n_components, patch_size=patch_size)

    def monitor(row: dict[str, Any]) -> None:
        if eval_every > 0 and row["epoch"] % eval_every == 0 and row["epoch"] < protocol.epochs:
            row["test_oa"] = evaluate_bundle(model, bundle, protocol.batch_size)[0]["oa"]

    start = time.perf_counter()
    history = train_model(model, bundle.train, protocol, log, state_path, monitor)
    train_seconds = sum(row["seconds"] for row in history)
    wall_seconds = time.perf_counter() - start
    start = time.perf_counter()
    report, test_pred = evaluate_bundle(model, bundle, protocol.batch_size)
    eval_seconds = time.perf_counter() - start
    log(f"test OA {report['oa']:.4f}  AA {report['aa']:.4f}  kappa {report['kappa']:.4f}  ({eval_seconds:.0f}s)")
    split = bundle.extra["split"]
    title = title or f"HybridSN, {bundle.extra['scene']}, {split['split']} split"
    map_path = write_maps(out / f"{name}_map.png", model, bundle, test_pred, protocol.batch_size,
                          title=f"{title}: OA {100 * report['oa']:.2f}%")
    if save_model:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"{name}.safetensors"))
    result = {
        "model": "hybridsn",
        "dataset": bundle.extra["scene"],
        "command": command,
        "split": dict(split),
        "data": {"n_components": n_components, "patch_size": patch_size, "pca_fitted_on": "training pixels",
                 "pca_explained_variance": bundle.extra["pca_explained_variance"], "padding": "zeros"},
        "protocol": {**asdict(protocol), "optimizer": "Adam", "loss": "cross-entropy",
                     "weights_evaluated": "last epoch"},
        "metrics": report,
        "paper": paper,
        "history": history,
        "timing": {"train_seconds": train_seconds, "eval_seconds": eval_seconds, "wall_seconds": wall_seconds,
                   "seconds_per_epoch": train_seconds / max(len(history), 1)},
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "machine": platform.machine(), "python": platform.python_version()},
        "map": map_path.name,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def reproduce_indian_pines(
    split: str = "random",
    epochs: int = 100,
    out_dir: str | os.PathLike[str] = "runs/hsi",
    seed: int = 0,
    *,
    name: str | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    train_ratio: float = 0.3,
    n_components: int = 30,
    patch_size: int = 25,
    block_size: int = 10,
    save_model: bool = False,
    eval_every: int = 0,
    state_path: str | os.PathLike[str] | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """HybridSN on Indian Pines with the paper's protocol (``split="random"``) or on spatially disjoint
    blocks; writes ``hybridsn_indian_pines_<split>.json`` and ``..._map.png`` (see :func:`run_experiment`)."""
    bundle = build_dataset("indian_pines", split=split, train_ratio=train_ratio, n_components=n_components,
                           patch_size=patch_size, seed=seed, block_size=block_size)
    protocol = HSIProtocol(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return run_experiment(bundle, out_dir, name or f"hybridsn_indian_pines_{split}", protocol,
                          title=f"HybridSN, Indian Pines, {split} split", paper=PAPER_INDIAN_PINES,
                          save_model=save_model, eval_every=eval_every, state_path=state_path, command=command,
                          log=log)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    dataset: str | None = None,
    options: dict[str, Any] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """OA / AA / kappa / per-class accuracy and the classification map for weights written by
    ``litevision train`` (a run folder or its ``.safetensors``). The dataset and its options (split, seed,
    PCA, patch size) are read from the weights' metadata, so the test pixels are the run's; ``dataset`` /
    ``options`` override them. Writes ``hsi_eval.json`` and ``hsi_map.png`` to ``out_dir`` (default
    ``<run>/hsi-eval``) and returns the result."""
    from litevision.engine.pipeline import load_trained_model, resolve_weights_path

    path = resolve_weights_path(checkpoint)
    model, meta = load_trained_model(path)
    name = dataset or meta.get("dataset")
    if not name:
        raise UserError(f"{path}: no dataset recorded in the weights; pass the dataset name")
    opts = {**(meta.get("dataset_options") or {}), **(options or {})}
    bundle = build_dataset(name, **opts)
    if "scene_shape" not in bundle.extra:
        raise UserError(f"dataset {name!r} is not a hyperspectral scene (use litevision eval)")
    report, test_pred = evaluate_bundle(model, bundle, batch_size)
    out = Path(out_dir) if out_dir is not None else path.parent / "hsi-eval"
    out.mkdir(parents=True, exist_ok=True)
    split = bundle.extra["split"]
    map_path = write_maps(out / "hsi_map.png", model, bundle, test_pred, batch_size,
                          title=f"{meta.get('model')}, {name}, {split['split']} split: OA {100 * report['oa']:.2f}%")
    result = {"checkpoint": str(path), "model": meta.get("model"), "dataset": name, "options": opts,
              "split": dict(split), "metrics": report, "map": map_path.name}
    (out / "hsi_eval.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
