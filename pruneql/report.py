"""What a compilation found and did, as plain data: FLOPs/params before → after, per group
and per layer. The CLI renders it; ``to_dict()`` is the JSON contract."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    model: str
    input_shape: list
    before: dict                                  # {"flops": int, "params": int}
    after: dict
    groups: list = field(default_factory=list)    # one dict per channel group
    layers: list = field(default_factory=list)    # one dict per conv/linear/norm layer
    matmuls: list = field(default_factory=list)   # other products: {node, op, flops}
    verify: dict | None = None
    accuracy: dict = field(default_factory=dict)  # before / pruned / finetuned, in [0, 1]
    history: list = field(default_factory=list)   # fine-tuning: {epoch, loss, accuracy}
    target: dict | None = None                    # {metric, value, achieved[, *_ms]}
    weights: str = ""                             # a path, "random init", "caller's module"
    frontend: str | None = None                   # which tracer read the model
    evaluation: dict | None = None                # task, metric, split of `accuracy`

    def reduction(self, key: str) -> float:
        """Fraction of ``flops`` or ``params`` removed."""
        before = self.before[key]
        return 0.0 if not before else 1.0 - self.after[key] / before

    def to_dict(self) -> dict:
        """The JSON object `pruneql plan --json` and `pruneql run --json` print."""
        return {"model": self.model, "input": self.input_shape,
                "before": dict(self.before), "after": dict(self.after),
                "reduction": {k: round(self.reduction(k), 6) for k in ("flops", "params")},
                "weights": self.weights, "frontend": self.frontend,
                "groups": self.groups, "layers": self.layers, "matmuls": self.matmuls,
                "verify": self.verify,
                **({"accuracy": self.accuracy, "history": self.history,
                    "evaluation": self.evaluation} if self.accuracy else {}),
                **({"target": self.target} if self.target else {})}
