"""The words of the language: statements, their fixed choices, and one usage line each.

The grammar spells the same words as keywords; a test checks that the two agree. Usage
lines are the hints of syntax errors.

>>> USAGE["trace"]
'trace auto|symbolic|export'
"""
from __future__ import annotations

from pruneql.lang import criteria, data_sources

STATEMENTS = ("model", "input", "strategy", "prune", "skip", "target", "data", "iterate",
              "finetune", "emit", "task", "trace", "allow")
# statements a recipe may hold once (the compiler's validate pass enforces it); target is
# once per metric, prune / skip / allow any number of times
SINGLETONS = ("model", "input", "strategy", "data", "iterate", "finetune", "emit", "task",
              "trace")

STRATEGIES = ("independent", "greedy")
TARGET_METRICS = ("flops", "latency", "params")
DATA_SOURCES = data_sources.NAMES
NORMALIZATIONS = ("imagenet", "none")
OPTIMIZERS = ("adam", "sgd")
FINETUNE_SELECT = ("last", "best")
EMIT_FORMATS = ("export", "onnx", "torchscript")
TASKS = ("classification", "segmentation", "lm", "python")
TRACE_MODES = ("auto", "symbolic", "export")
ALLOWANCES = ("inexact layernorm",)
UNITS = ("channels", "heads", "head_dims")
CRITERIA = criteria.NAMES


def _alternatives(words) -> str:
    return "|".join(words)


USAGE = {
    "model": "model NAME, a zoo name (vgg16_cifar) or pkg.module:factory",
    "input": "input 3x32x32",
    "strategy": f"strategy {_alternatives(STRATEGIES)}",
    "prune": "prune SELECTORS [in SCOPE] [where PREDICATE] by CRITERION AMOUNT [round N], "
             "e.g. prune conv* in layer1 by l1 keep 0.5",
    "skip": "skip SELECTORS [in SCOPE] [where PREDICATE], skip where PREDICATE "
            "or skip sensitive [above 1%]",
    "target": f"target {_alternatives(('flops', 'params', 'latency'))} 50%",
    "data": f'data {_alternatives(DATA_SOURCES)} ["path"] [batch N] [val F] [test F] '
            f"[seed N] [resize N] [normalize {_alternatives(NORMALIZATIONS)}]",
    "iterate": "iterate N steps [finetune K steps] or "
               "iterate until target remove R per step [finetune K steps]",
    "finetune": "finetune epochs N [lr X] [momentum X] [weight_decay X] "
                f"[optimizer {_alternatives(('sgd', 'adam'))}] "
                f"[select {_alternatives(FINETUNE_SELECT)}]",
    "emit": f'emit {_alternatives(("torchscript", "export", "onnx"))} ["path"]',
    "task": f"task {_alternatives(TASKS[:-1])} or task python \"pkg.module:function\"",
    "trace": f"trace {_alternatives(TRACE_MODES)}",
    "allow": "allow " + " or allow ".join(ALLOWANCES),
}
