"""Checks that keep bad data from poisoning the numbers.

A NaN pixel turns every loss into NaN and every Taylor score with it; a label equal to the
number of classes crashes deep inside ``cross_entropy``. These checks name the culprit
instead: the example's index and where it came from. In-memory sources are checked once
when they load (:func:`vet`); lazily read sources are checked per batch by the training and
scoring loops through :func:`check_batch`.

Targets by task:

- ``classification``: integer labels of shape (N,), ``0 <= y < num_classes``;
- ``segmentation``: integer class maps (N, H, W) matching the inputs' height and width,
  ``0 <= y < num_classes`` or ``y == ignore_index`` (255 by convention);
- ``lm``: integer next-token ids (N, T) shaped like the input ids, ``0 <= y < vocab``
  (``num_classes`` is the vocabulary size), or ``-100``, PyTorch's ignore index;
- ``python`` (a user's loss): targets are the user's business; only inputs are checked.
"""
from __future__ import annotations

import torch

from pruneql.data.base import TASKS, Tensors
from pruneql.errors import DataError

LM_IGNORE = -100          # torch.nn.functional.cross_entropy's default ignore_index
SEG_IGNORE = 255          # the segmentation convention (Pascal VOC, Cityscapes)
_RANKS = {"classification": 1, "segmentation": 3, "lm": 2}
_SHAPES = {"classification": "(N,) labels", "segmentation": "(N, H, W) class maps",
           "lm": "(N, T) token ids"}


def check_batch(x: torch.Tensor, y: torch.Tensor, where: str, num_classes: int | None,
                task: str = "classification", *, ignore_index: int | None = SEG_IGNORE) -> None:
    """Raise a DataError naming the example if a drawn batch would poison the numbers.

    Inputs must be finite; targets must fit ``task`` (see the module docstring).
    ``ignore_index`` is the value segmentation maps may hold besides the classes.

    >>> check_batch(torch.zeros(2, 3), torch.tensor([0, 1]), "train batch 1", 2)
    >>> nan = torch.tensor([[0.0], [float("nan")]])
    >>> try:
    ...     check_batch(nan, torch.tensor([0, 1]), "train batch 4", 2)
    ... except DataError as exc:
    ...     print(exc.message)
    train batch 4: example 1 has a non-finite input (nan)
    >>> try:
    ...     check_batch(torch.zeros(2, 3), torch.tensor([0, 2]), "val batch 2", 2)
    ... except DataError as exc:
    ...     print(exc.message)
    val batch 2: label 2 at example 1 is out of range for 2 classes
    """
    check_inputs(x, where)
    if task in _RANKS:
        check_targets(y, where, task, num_classes, x=x, ignore_index=ignore_index)


def check_inputs(x: torch.Tensor, where: str) -> None:
    """Every input value finite, or a DataError naming the first example that is not.

    >>> check_inputs(torch.tensor([[1.0, float("inf")]]), "npz file 'a.npz', x")
    Traceback (most recent call last):
    ...
    pruneql.errors.DataError: error: npz file 'a.npz', x: example 0 has a non-finite input (inf)
    hint: remove or repair the example; NaN or inf inputs make every loss and score NaN
    """
    if not torch.is_floating_point(x) or len(x) == 0:
        return
    finite = torch.isfinite(x.reshape(len(x), -1)).all(1)
    if bool(finite.all()):
        return
    index = int((~finite).nonzero()[0])
    value = x[index][~torch.isfinite(x[index])].flatten()[0].item()
    raise DataError(f"{where}: example {index} has a non-finite input ({value})",
                    hint="remove or repair the example; NaN or inf inputs make every loss "
                         "and score NaN")


def check_targets(y: torch.Tensor, where: str, task: str, num_classes: int | None, *,
                  x: torch.Tensor | None = None, ignore_index: int | None = None) -> None:
    """Targets of the right kind, rank (against the inputs ``x``) and range for ``task``.

    >>> check_targets(torch.tensor([[[0, 255]]]), "maps", "segmentation", 2,
    ...               x=torch.zeros(1, 3, 1, 2), ignore_index=255)
    """
    _integer(y, where, task)
    _rank(y, where, task, x)
    allowed = LM_IGNORE if task == "lm" else ignore_index if task == "segmentation" else None
    valid = y if allowed is None else y[y != allowed]
    low = valid.min().item() if valid.numel() else 0
    if low < 0:
        _bad_value(y, y == low, where, f"negative {_word(task)} {low}")
    if num_classes is not None and valid.numel() and valid.max().item() >= num_classes:
        high = valid.max().item()
        _bad_value(y, y == high, where, f"{_word(task)} {high}",
                   f" is out of range for {num_classes} {_unit(task)}")


def infer_task(x: torch.Tensor, y: torch.Tensor) -> str | None:
    """What targets of this shape are: labels, class maps, next tokens, or None (floats).

    >>> infer_task(torch.zeros(4, 1, 5, 6), torch.zeros(4, 5, 6, dtype=torch.long))
    'segmentation'
    """
    if torch.is_floating_point(y):
        return None
    if y.dim() == 3 and x.dim() == 4 and y.shape[1:] == x.shape[2:]:
        return "segmentation"
    if y.dim() == 2 and not torch.is_floating_point(x) and y.shape == x.shape:
        return "lm"
    return "classification"


def resolve_task(task: str | None, inferred: str | None) -> str | None:
    """The task whose rules apply: the one asked for, else what the targets look like.

    >>> resolve_task(None, "segmentation"), resolve_task("lm", "classification")
    ('segmentation', 'lm')
    """
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task '{task}' for the data",
                        hint="one of " + ", ".join(TASKS) + ", or None to infer it")
    return inferred if task is None else task


def vet(raw: Tensors, task: str | None, where: str) -> Tensors:
    """Check an in-memory source's every set against ``task``; fill in ``raw.task``,
    ``raw.ignore_index`` and ``raw.num_classes`` (largest target + 1 when the source did
    not say). ``where`` names the source in messages.

    >>> raw = vet(Tensors(torch.zeros(3, 2), torch.tensor([0, 4, 1])), None, "mine")
    >>> raw.task, raw.num_classes
    ('classification', 5)
    """
    raw.task = resolve_task(task, infer_task(raw.x, raw.y))
    sets = _sets(raw)
    for xkey, _, x, _ in sets:
        check_inputs(x, f"{where}, {xkey}")
    if raw.task not in _RANKS:
        return raw
    for _, ykey, _, y in sets:   # integers first: counting classes reads their values
        _integer(y, f"{where}, {ykey}", raw.task)
    ys = [y for *_, y in sets]
    raw.ignore_index = _ignore_index(raw.task, ys)
    if raw.num_classes is None:
        raw.num_classes = _count_classes(ys, raw.ignore_index)
    for _, ykey, x, y in sets:
        check_targets(y, f"{where}, {ykey}", raw.task, raw.num_classes, x=x,
                      ignore_index=raw.ignore_index)
    return raw


def _sets(raw: Tensors) -> list:
    pairs = [("x", "y", raw.x, raw.y), ("x_val", "y_val", raw.x_val, raw.y_val),
             ("x_test", "y_test", raw.x_test, raw.y_test)]
    return [pair for pair in pairs if pair[2] is not None]


def _ignore_index(task: str, ys: list) -> int | None:
    """The ignore value of ``task`` when the targets use it."""
    value = {"segmentation": SEG_IGNORE, "lm": LM_IGNORE}.get(task)
    used = value is not None and any(bool((y == value).any()) for y in ys)
    return value if used else None


def _count_classes(ys: list, ignore_index: int | None) -> int:
    high = 0
    for y in ys:
        valid = y if ignore_index is None else y[y != ignore_index]
        if valid.numel():
            high = max(high, int(valid.max()) + 1)
    return max(high, 1)


def _integer(y: torch.Tensor, where: str, task: str) -> None:
    if not (torch.is_floating_point(y) or y.dtype == torch.bool or torch.is_complex(y)):
        return
    shown = ""
    if y.numel():
        odd = y != y.round() if torch.is_floating_point(y) else torch.zeros_like(y, dtype=bool)
        index, value = _first_example(y, odd if bool(odd.any()) else torch.ones_like(odd))
        shown = f" (e.g. {value} at example {index})"
    raise DataError(f"{where}: {task} needs integer {_word(task)}s, got {y.dtype}{shown}",
                    hint="save targets as integers (e.g. y.astype(numpy.int64)); float "
                         "targets need a python task with its own loss")


def _rank(y: torch.Tensor, where: str, task: str, x: torch.Tensor | None) -> None:
    good = y.dim() == _RANKS[task]
    if good and x is not None and task == "segmentation":
        good = x.dim() >= 3 and y.shape[1:] == x.shape[-2:]
    if good and x is not None and task == "lm":
        good = y.shape == x.shape
    if good:
        return
    against = f" for inputs of shape {tuple(x.shape)}" if x is not None else ""
    raise DataError(f"{where}: targets of shape {tuple(y.shape)}{against} do not fit {task}, "
                    f"which needs {_SHAPES[task]}", hint=_rank_hint(y, task))


def _rank_hint(y: torch.Tensor, task: str) -> str:
    guess = {1: "classification", 3: "segmentation", 2: "lm"}.get(y.dim())
    if guess and guess != task:
        return f"these look like {_SHAPES[guess]}: write `task {guess};`"
    return f"{task} needs {_SHAPES[task]}, paired with the inputs"


def _bad_value(y, mask, where: str, what: str, tail: str = "") -> None:
    index, _ = _first_example(y, mask)
    raise DataError(f"{where}: {what} at example {index}{tail}",
                    hint="labels are class indices 0..num_classes-1; fix or remove the "
                         "example, or declare the right number of classes")


def _first_example(y: torch.Tensor, mask: torch.Tensor) -> tuple[int, object]:
    """(index of the first example where ``mask`` holds, the value there)."""
    position = mask.nonzero()[0]
    return int(position[0]), y[tuple(position)].item()


def _word(task: str) -> str:
    return {"classification": "label", "segmentation": "label", "lm": "token id"}[task]


def _unit(task: str) -> str:
    return "tokens in the vocabulary" if task == "lm" else "classes"
