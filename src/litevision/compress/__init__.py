"""Model compression. Structured pruning to a MAC budget (Torch-Pruning's DepGraph, the ``compress`` extra), with
the pruned architecture stored as data next to the weights:

    result = prune(model, target_macs=0.5)        # a pruned copy: half the MACs, same inputs and classes
    save_pruned("pruned.safetensors", result)     # load_trained_model / create_model(checkpoint_path=) rebuild it
"""

from litevision.compress.prune import (
    IMPORTANCES,
    MACS_TOLERANCE,
    PruneResult,
    check_prune_request,
    prune,
    save_pruned,
)

__all__ = ["IMPORTANCES", "MACS_TOLERANCE", "PruneResult", "check_prune_request", "prune", "save_pruned"]
