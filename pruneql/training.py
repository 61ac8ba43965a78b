"""Evaluation and (distributed) fine-tuning, shared by the passes and the demo.

Every loss and metric comes from the recipe's task (:mod:`pruneql.tasks`); every batch
drawn is checked (non-finite inputs, labels that do not fit the task) and a non-finite
loss stops training with an error, so a poisoned run never writes a model.

Under ``torchrun`` (``torch.distributed`` initialised with more than one process) training
wraps the model in DistributedDataParallel — gradients are averaged across ranks, each rank
reads its shard of the training data, on ``cuda:LOCAL_RANK`` under nccl — while evaluation
runs the full validation set on every rank, so all ranks agree on the selected epoch.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from pruneql.data.checks import check_batch
from pruneql.distributed import device as train_device
from pruneql.distributed import init_distributed, world
from pruneql.errors import TrainError
from pruneql.tasks import Task, to_device

__all__ = ["Progress", "Hyper", "History", "evaluate", "train", "train_steps", "world",
           "init_distributed", "finite_weights", "optimizer_for"]

CLASSIFICATION = Task.named("classification")


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
    """Optimiser settings of a ``finetune`` statement, with Li et al.'s retraining lr;
    ``select``: keep the ``last`` epoch (Li et al.) or the ``best`` on validation."""

    epochs: int = 1
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    select: str = "last"


@dataclass
class History:
    epochs: list = field(default_factory=list)   # {"epoch", "loss", <metric>} per epoch
    kept_epoch: int = 0                          # the epoch whose weights were kept
    selected_on: str = "last epoch"              # or "val" (select best)


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: Task = CLASSIFICATION, data=None,
             split: str = "val") -> dict:
    """The task's metrics over ``loader`` (``{"accuracy": …, "loss": …}`` for
    classification). A model whose outputs are not finite has no metric: argmax of NaN
    logits would count as class 0, so this raises instead."""
    was_training = model.training
    model.eval()
    meter = task.meter()
    device = _device(model)
    for i, (x, y) in enumerate(loader):
        _check(x, y, f"{split} batch {i + 1}", task, data)
        out = model(x.to(device))
        _finite_outputs(out)
        meter.add(out, to_device(y, device))
    model.train(was_training)
    return meter.result()


def _finite_outputs(out) -> None:
    tensors = [out] if isinstance(out, torch.Tensor) else \
        [t for t in (out.values() if isinstance(out, dict) else out)
         if isinstance(t, torch.Tensor)]
    if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
        raise TrainError("the model's outputs are not finite (NaN or infinity) on the "
                         "evaluation data",
                         hint="check the data and the weights for NaN/inf; a diverged "
                              "fine-tuning is stopped before it gets here")


def _check(x, y, where: str, task: Task, data) -> None:
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        check_batch(x, y, where, getattr(data, "num_classes", None), task.name,
                    ignore_index=task.ignore_index)


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
          task: Task = CLASSIFICATION, label: str = "finetune") -> History:
    """Train ``hyper.epochs`` epochs, evaluating on the validation split after each; the
    last epoch's weights are kept, or with ``select best`` the best epoch's."""
    progress = progress or Progress()
    step = _stepper(model, hyper, task, data)
    history = History(selected_on="val" if hyper.select == "best" else "last epoch")
    best_score, best = None, None
    if hyper.select == "best":
        best_score = evaluate(model, data.val, task, data)[task.metric]
        best = copy.deepcopy(model.state_dict())
    progress.start(label, hyper.epochs * len(data.train))
    for epoch in range(1, hyper.epochs + 1):
        _set_epoch(data, epoch)
        losses = [step(x, y) for x, y in _advancing(data.train, progress, label)]
        result = evaluate(model, data.val, task, data)
        history.epochs.append({"epoch": epoch, "loss": sum(losses) / max(len(losses), 1),
                               task.metric: result[task.metric]})
        progress.advance(label, 0, epoch=epoch, loss=history.epochs[-1]["loss"],
                         **{task.metric: result[task.metric]})
        if hyper.select == "best" and task.drop(best_score, result[task.metric]) < 0:
            best_score, best, history.kept_epoch = result[task.metric], \
                copy.deepcopy(model.state_dict()), epoch
    if best is not None:
        model.load_state_dict(best)
    else:
        history.kept_epoch = hyper.epochs
    if not finite_weights(model):
        raise TrainError("fine-tuning left weights that are not finite; nothing is kept",
                         hint="lower the learning rate, or check the data for NaN/inf")
    model.eval()
    progress.end(label)
    return history


def train_steps(model: nn.Module, data, steps: int, hyper: Hyper,
                task: Task = CLASSIFICATION) -> float:
    """``steps`` minibatch updates (gradual pruning's short recoveries); mean loss."""
    step = _stepper(model, hyper, task, data)
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


def _stepper(model: nn.Module, hyper: Hyper, task: Task, data):
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
        _check(x, y, f"train batch {count[0]}", task, data)
        opt.zero_grad(set_to_none=True)
        loss = task.loss(net(x.to(device)), to_device(y, device))
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


def _advancing(loader, progress: Progress, label: str):
    for batch in loader:
        yield batch
        progress.advance(label)
