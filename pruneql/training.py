"""Evaluation and (distributed) fine-tuning, shared by the passes and the demo.

Under ``torchrun`` (``torch.distributed`` initialised with more than one process) training
wraps the model in DistributedDataParallel — gradients are averaged across ranks, each rank
reads its shard of the training data, on ``cuda:LOCAL_RANK`` under nccl — while evaluation
runs the full validation set on every rank, so all ranks agree on the best epoch.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pruneql.distributed import device as train_device
from pruneql.distributed import init_distributed, world
from pruneql.errors import TrainError

__all__ = ["Progress", "Hyper", "History", "evaluate", "train", "train_steps", "world",
           "init_distributed", "finite_weights", "optimizer_for"]


class Progress:
    """What passes report to; the CLI hands in one that draws progress bars."""

    def start(self, task: str, total: int | None = None) -> None:
        """A task with ``total`` steps begins."""

    def advance(self, task: str, steps: int = 1, **info) -> None:
        """``steps`` more steps of ``task`` are done; ``info`` is shown beside it."""

    def end(self, task: str, **info) -> None:
        """``task`` is finished."""


@dataclass(frozen=True)
class Hyper:
    """Optimiser settings of a ``finetune`` statement, with Li et al.'s retraining lr."""

    epochs: int = 1
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"


@dataclass
class History:
    epochs: list = field(default_factory=list)     # {"epoch", "loss", "accuracy"} per epoch
    best_accuracy: float = 0.0
    best_epoch: int = 0


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> dict:
    """Accuracy (fraction in [0, 1]) and mean cross-entropy over ``loader``.

    A model whose outputs are not finite has no accuracy: argmax of NaN logits would
    count as class 0, so this raises instead."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss = 0.0
    device = _device(model)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        if not torch.isfinite(out).all():
            raise TrainError("the model's outputs are not finite (NaN or infinity) on the "
                             "validation data",
                             hint="check the data and the weights for NaN/inf; a diverged "
                                  "fine-tuning is stopped before it gets here")
        loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss / max(total, 1)}


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def finite_weights(model: nn.Module) -> bool:
    """Whether every parameter and buffer of ``model`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in
               list(model.parameters()) + list(model.buffers()) if t.is_floating_point())


def optimizer_for(model: nn.Module, hyper: Hyper) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if hyper.optimizer == "adam":
        return torch.optim.Adam(params, lr=hyper.lr, weight_decay=hyper.weight_decay)
    return torch.optim.SGD(params, lr=hyper.lr, momentum=hyper.momentum,
                           weight_decay=hyper.weight_decay)


def train(model: nn.Module, data, hyper: Hyper, progress: Progress | None = None,
          task: str = "finetune") -> History:
    """Train ``hyper.epochs`` epochs, evaluating after each; the best epoch's weights (by
    validation accuracy) are loaded back into ``model``."""
    progress = progress or Progress()
    step = _stepper(model, hyper)
    history = History(best_accuracy=evaluate(model, data.val)["accuracy"])
    best = copy.deepcopy(model.state_dict())
    progress.start(task, hyper.epochs * len(data.train))
    for epoch in range(1, hyper.epochs + 1):
        _set_epoch(data, epoch)
        losses = [step(x, y) for x, y in _advancing(data.train, progress, task)]
        result = evaluate(model, data.val)
        history.epochs.append({"epoch": epoch, "loss": sum(losses) / max(len(losses), 1),
                               "accuracy": result["accuracy"]})
        progress.advance(task, 0, epoch=epoch, accuracy=result["accuracy"])
        if result["accuracy"] > history.best_accuracy and finite_weights(model):
            history.best_accuracy, history.best_epoch = result["accuracy"], epoch
            best = copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    if not finite_weights(model):
        raise TrainError("fine-tuning left weights that are not finite; nothing is kept",
                         hint="lower the learning rate, or check the data for NaN/inf")
    model.eval()
    progress.end(task, accuracy=history.best_accuracy)
    return history


def train_steps(model: nn.Module, data, steps: int, hyper: Hyper) -> float:
    """``steps`` minibatch updates (gradual pruning's short recoveries); mean loss."""
    step = _stepper(model, hyper)
    losses: list = []
    epoch = 0
    while len(losses) < steps:
        epoch += 1
        _set_epoch(data, epoch)
        for x, y in data.train:
            losses.append(step(x, y))
            if len(losses) == steps:
                break
    model.eval()
    return sum(losses) / max(len(losses), 1)


def _stepper(model: nn.Module, hyper: Hyper):
    rank, size = world()
    where = train_device()
    if where.type == "cuda":
        model.to(where)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[where.index])
    else:
        net = torch.nn.parallel.DistributedDataParallel(model) if size > 1 else model
    opt = optimizer_for(model, hyper)

    device = _device(model)
    count = [0]

    def step(x, y) -> float:
        net.train()
        count[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x.to(device)), y.to(device))
        if not torch.isfinite(loss):
            raise TrainError(f"the training loss became {loss.item()} at step {count[0]} "
                             f"(lr {hyper.lr:g}); training stopped and nothing is kept",
                             hint="lower the learning rate, or check the data for NaN/inf "
                                  "values")
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _set_epoch(data, epoch: int) -> None:
    sampler = getattr(data, "train_sampler", None)
    if sampler is not None:
        sampler.set_epoch(epoch)


def _advancing(loader, progress: Progress, task: str):
    for batch in loader:
        yield batch
        progress.advance(task)
