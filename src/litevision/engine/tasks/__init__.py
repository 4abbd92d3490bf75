"""Training tasks: the interface (:class:`Task`, :class:`Evaluator`, :class:`Report`) and the registered tasks.
See :mod:`litevision.engine.tasks.base` for what a task decides and what the trainer does for every task."""

from litevision.engine.tasks.base import TASKS, Evaluator, Report, Task, list_tasks, register_task, task_class
from litevision.engine.tasks.classification import (
    ClassificationEvaluator,
    ClassificationTask,
    DistillationLoss,
    LogitsEvaluator,
)
from litevision.engine.tasks.detection import DetectionEvaluator, DetectionReport, DetectionTask
from litevision.engine.tasks.hyperspectral import HSIEvaluator, HyperspectralTask

__all__ = [
    "TASKS",
    "ClassificationEvaluator",
    "ClassificationTask",
    "DetectionEvaluator",
    "DetectionReport",
    "DetectionTask",
    "DistillationLoss",
    "Evaluator",
    "HSIEvaluator",
    "HyperspectralTask",
    "LogitsEvaluator",
    "Report",
    "Task",
    "list_tasks",
    "register_task",
    "task_class",
]
