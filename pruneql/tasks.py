"""What the model is trained and measured for: the loss and the metric of data-driven passes.

``task classification`` (the default): cross-entropy on class labels, accuracy.
``task segmentation``: per-pixel cross-entropy on (N, H, W) class maps (255 ignored),
mean IoU and pixel accuracy. ``task lm``: next-token cross-entropy on (N, T) targets,
token accuracy and perplexity. ``task python "pkg.mod:fn"``: ``fn(model)`` returns a loss
``loss(outputs, targets) -> tensor`` or a pair ``(loss, metric)`` with
``metric(outputs, targets) -> float`` (higher is better) — a detector brings its own
detection loss this way. Without a metric, the loss is the metric (lower is better).

Every pass that trains or measures goes through :class:`Task`: fine-tuning, scoring with
Taylor/oracle/ensemble, sensitivity analysis, and every report, which names the metric.

>>> task = Task.named("classification")
>>> meter = task.meter()
>>> meter.add(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
>>> result = meter.result()
>>> result["accuracy"], task.metric, round(result["loss"], 4)
(0.5, 'accuracy', 0.7201)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pruneql.errors import DataError

SEGMENT_IGNORE = 255
TOKEN_IGNORE = -100


def to_device(value, device):
    """``value`` (a tensor, or a dict/list/tuple holding tensors) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def first_tensor(outputs) -> torch.Tensor:
    """The main output of a model: itself, or the first tensor of a tuple/list/dict."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    values = outputs.values() if isinstance(outputs, dict) else outputs
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise DataError(f"the model returns {type(outputs).__name__} with no tensor in it",
                    hint="use `task python \"pkg.mod:fn\"` to say how its outputs are scored")


@dataclass(frozen=True)
class Task:
    """A loss and a metric; ``higher_is_better`` orients the metric."""

    name: str
    metric: str
    higher_is_better: bool = True
    ignore_index: int | None = None
    custom_loss: object = None
    custom_metric: object = None

    @classmethod
    def named(cls, name: str, ignore_index: int | None = None) -> "Task":
        """A built-in task: classification, segmentation or lm."""
        if name == "segmentation":
            return cls(name, "miou", True, SEGMENT_IGNORE if ignore_index is None
                       else ignore_index)
        if name == "lm":
            return cls(name, "token_accuracy", True, TOKEN_IGNORE if ignore_index is None
                       else ignore_index)
        return cls("classification", "accuracy")

    @classmethod
    def custom(cls, made) -> "Task":
        """A python task from what ``fn(model)`` returned."""
        loss, metric = made if isinstance(made, tuple) else (made, None)
        if not callable(loss) or (metric is not None and not callable(metric)):
            raise DataError("a python task must return loss(outputs, targets) or "
                            "(loss, metric)", hint="see `task python` in the README")
        return cls("python", "metric" if metric else "loss", metric is not None,
                   custom_loss=loss, custom_metric=metric)

    # ---- the loss --------------------------------------------------------------------------
    def loss(self, outputs, targets, reduction: str = "mean") -> torch.Tensor:
        """The training loss of a batch (``reduction="sum"``: summed over examples)."""
        if self.custom_loss is not None:
            value = self.custom_loss(outputs, targets)
            value = value[0] if isinstance(value, (tuple, list)) else value
            return value * _batch_size(targets, outputs) if reduction == "sum" else value
        out = first_tensor(outputs)
        if self.name == "lm":
            out, targets = out.flatten(0, -2), targets.flatten()
        if self.ignore_index is not None:
            return F.cross_entropy(out, targets, reduction=reduction,
                                   ignore_index=self.ignore_index)
        return F.cross_entropy(out, targets, reduction=reduction)

    def drop(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before`` (positive: worse)."""
        return before - after if self.higher_is_better else after - before

    def meter(self) -> "Meter":
        return Meter(self)


def _batch_size(targets, outputs) -> int:
    if isinstance(targets, torch.Tensor) and targets.dim() > 0:
        return len(targets)
    return len(first_tensor(outputs))


def _loss_terms(task: Task, targets, n: int) -> int:
    """How many terms ``task.loss(..., reduction="sum")`` added: the targets that count
    (not ``ignore_index``) for ``lm`` and ``segmentation``, else the examples."""
    if task.name in ("lm", "segmentation") and task.custom_loss is None:
        if task.ignore_index is not None:
            return int((targets != task.ignore_index).sum())
        return int(targets.numel())
    return n


class Meter:
    """Accumulates a task's metrics over batches: ``add(outputs, targets)``, ``result()``."""

    def __init__(self, task: Task):
        self.task = task
        self.loss = 0.0
        self.count = 0
        self.terms = 0          # what the summed loss averages over: examples, tokens, pixels
        self.correct = 0
        self.custom = 0.0
        self.confusion = None

    @torch.no_grad()
    def add(self, outputs, targets) -> None:
        task = self.task
        n = _batch_size(targets, outputs)
        self.loss += float(task.loss(outputs, targets, reduction="sum"))
        self.terms += _loss_terms(task, targets, n)
        if task.custom_metric is not None:
            self.custom += float(task.custom_metric(outputs, targets)) * n
        elif task.name == "segmentation":
            self._confusion(first_tensor(outputs), targets)
        elif task.name != "python":
            self._correct(first_tensor(outputs), targets)
        self.count += n

    def _correct(self, out: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = out.argmax(-1)
        valid = targets != self.task.ignore_index if self.task.ignore_index is not None \
            else torch.ones_like(targets, dtype=torch.bool)
        self.correct += int(((predicted == targets) & valid).sum())
        self.tokens = getattr(self, "tokens", 0) + int(valid.sum())

    def _confusion(self, out: torch.Tensor, targets: torch.Tensor) -> None:
        classes = out.shape[1]
        valid = targets != self.task.ignore_index
        index = targets[valid] * classes + out.argmax(1)[valid]
        counts = torch.bincount(index, minlength=classes * classes).view(classes, classes)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def result(self) -> dict:
        """``{metric: value, "loss": mean loss, ...}`` (the task's metric first); the loss
        is the mean per example, per token (``lm``) or per pixel (``segmentation``), as
        training minimises it."""
        loss = self.loss / max(self.terms, 1)
        task = self.task
        if task.custom_metric is not None:
            return {"metric": self.custom / max(self.count, 1), "loss": loss}
        if task.name == "python":
            return {"loss": loss}
        if task.name == "segmentation":
            return {**_segmentation(self.confusion), "loss": loss}
        accuracy = self.correct / max(getattr(self, "tokens", 0), 1)
        if task.name == "lm":
            return {"token_accuracy": accuracy, "loss": loss,
                    "perplexity": math.exp(min(loss, 50.0))}
        return {"accuracy": accuracy, "loss": loss}


def _segmentation(confusion) -> dict:
    """Mean IoU over the classes present (in targets or predictions), pixel accuracy."""
    if confusion is None:
        return {"miou": 0.0, "pixel_accuracy": 0.0}
    confusion = confusion.double()
    hits = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - hits
    present = union > 0
    miou = float((hits[present] / union[present]).mean()) if present.any() else 0.0
    return {"miou": miou, "pixel_accuracy": float(hits.sum() / confusion.sum().clamp(min=1))}
