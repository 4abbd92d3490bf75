"""Training and evaluation engine: one trainer for every task, checkpoints, evaluation.

Library API (``litevision train`` / ``litevision eval`` are thin wrappers over these)::

    from litevision.engine import load_config, train, resume, evaluate_checkpoint
    cfg = load_config("quick", ["model.name=mobilenetv2_035"])   # recipe name/path + --set overrides
    result = train(cfg)                  # RunResult(run_dir, best_checkpoint, last_checkpoint, metrics, config)
    report = evaluate_checkpoint(result.run_dir)   # the task's report (EvalReport for classification)
"""

from litevision.engine.config import ConfigError, TrainConfig, apply_overrides, list_recipes, load_config
from litevision.engine.draw import denormalize, detection_grid, draw_detections
from litevision.engine.evaluate import evaluate, evaluate_checkpoint, evaluate_task
from litevision.engine.inference import predict_logits, run_inference
from litevision.engine.metrics import EvalReport, ThresholdOptions, ThresholdReport, compute_report
from litevision.engine.tasks import Evaluator, Report, Task, list_tasks, register_task
from litevision.engine.trainer import NonFiniteLossError, RunResult, resume, train

__all__ = [
    "ConfigError",
    "EvalReport",
    "Evaluator",
    "NonFiniteLossError",
    "Report",
    "RunResult",
    "Task",
    "ThresholdOptions",
    "ThresholdReport",
    "TrainConfig",
    "apply_overrides",
    "compute_report",
    "denormalize",
    "detection_grid",
    "draw_detections",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_task",
    "list_recipes",
    "list_tasks",
    "load_config",
    "predict_logits",
    "register_task",
    "resume",
    "run_inference",
    "train",
]
