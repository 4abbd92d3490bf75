"""Workflows: what the commands do, composed from the layers below — comparison, ablation, the demo and the
hyperspectral reproduction."""

from litevision.workflows.ablate import AblationReport, run_ablation
from litevision.workflows.compare import compare_models
from litevision.workflows.demo import DEMO_MODELS, run_demo
from litevision.workflows.report import CompareReport, CompareRow
from litevision.workflows.reproduce import reproduce_indian_pines, run_hsi_experiment

__all__ = [
    "DEMO_MODELS",
    "AblationReport",
    "CompareReport",
    "CompareRow",
    "compare_models",
    "reproduce_indian_pines",
    "run_ablation",
    "run_demo",
    "run_hsi_experiment",
]
