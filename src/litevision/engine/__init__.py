"""Training and evaluation engine.

Library API (``litevision train`` / ``litevision eval`` are thin wrappers over these)::

    from litevision.engine import load_config, train, resume, evaluate
    cfg = load_config("quick", ["model.name=mobilenetv2_035"])   # recipe name/path + --set overrides
    result = train(cfg)                  # RunResult(run_dir, best_checkpoint, last_checkpoint, metrics, config)
    model, meta = load_trained_model(result.run_dir)
    report = evaluate(model, dataset_or_loader, class_names=meta["class_names"])   # EvalReport
"""

from litevision.engine.config import ConfigError, TrainConfig, apply_overrides, list_recipes, load_config
from litevision.engine.evaluate import (
    EvalReport,
    Predictions,
    ThresholdOptions,
    ThresholdReport,
    compute_report,
    evaluate,
    predict,
)
from litevision.engine.pipeline import (
    Preprocess,
    build_eval_dataset,
    build_model,
    load_bundle,
    load_trained_model,
    preprocess_from_metadata,
    resolve_preprocess,
)
from litevision.engine.trainer import NonFiniteLossError, RunResult, resume, train

__all__ = [
    "ConfigError",
    "EvalReport",
    "NonFiniteLossError",
    "Predictions",
    "Preprocess",
    "RunResult",
    "ThresholdOptions",
    "ThresholdReport",
    "TrainConfig",
    "apply_overrides",
    "build_eval_dataset",
    "build_model",
    "compute_report",
    "evaluate",
    "list_recipes",
    "load_bundle",
    "load_config",
    "load_trained_model",
    "predict",
    "preprocess_from_metadata",
    "resolve_preprocess",
    "resume",
    "train",
]
