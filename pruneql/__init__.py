"""PruneQL: a declarative structured-pruning compiler for PyTorch.

>>> import pruneql
>>> result = pruneql.compile("model vgg16_cifar; prune conv1, conv{8..13} by l1 keep 0.5")
>>> round(result.report.reduction("flops"), 3)
0.342
"""
from pruneql.api import Result, apply, compile, load_recipe, parse, plan, sensitivity
from pruneql.errors import PruneQLError
from pruneql.lang.ast import Recipe
from pruneql.report import Report

__version__ = "0.1.0"
__all__ = ["compile", "plan", "sensitivity", "parse", "load_recipe", "apply", "PruneQLError",
           "Recipe", "Report", "Result", "__version__"]
