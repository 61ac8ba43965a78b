"""Data for data-driven criteria, sensitivity analysis and fine-tuning.

The recipe's ``data SOURCE ["path"] [batch N] [val FRACTION];`` statement (or the CLI's
``--data SOURCE[:PATH]``) becomes a :class:`Dataset`: a train and a validation DataLoader
plus what a pass needs to know about the examples.

    >>> ds = load_data(source="digits", batch=32)
    >>> ds.name, ds.num_classes, ds.input_shape, len(ds.train.dataset), len(ds.val.dataset)
    ('digits', 10, (1, 8, 8), 1438, 359)
    >>> x, y = next(iter(ds.train))
    >>> tuple(x.shape), x.dtype, y.dtype, 0.0 <= x.min().item() <= x.max().item() <= 1.0
    ((32, 1, 8, 8), torch.float32, torch.int64, True)
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from pruneql.data import cifar, sources
from pruneql.data.base import Tensors
from pruneql.errors import DataError

if TYPE_CHECKING:
    from pruneql.lang import ast

__all__ = ["Dataset", "DataError", "SOURCES", "load_data", "parse_cli", "split_indices"]

SOURCES = ("digits", "npz", "cifar10", "imagefolder", "python")
DEFAULT_BATCH = 64
DEFAULT_VAL = 0.2
_READERS = {"digits": sources.digits, "npz": sources.npz, "cifar10": cifar.cifar10,
            "imagefolder": sources.imagefolder, "python": sources.python}
_PATH_HINTS = {"npz": 'data npz "train.npz";', "cifar10": 'data cifar10 "cifar-10-batches-py";',
               "imagefolder": 'data imagefolder "images/";',
               "python": 'data python "mypkg.data:load";'}


@dataclass
class Dataset:
    """What passes consume: batches of ``(x, y)`` with float32 ``x``.

    ``input_shape`` is one example's shape without the batch dimension; ``num_classes`` is
    None when unknown (float targets, or a python source that does not say).
    ``train_sampler`` is the DistributedSampler when sharded: call ``set_epoch`` on it.
    """

    train: DataLoader
    val: DataLoader
    num_classes: int | None
    input_shape: tuple
    name: str
    train_sampler: DistributedSampler | None = None


def parse_cli(text: str) -> tuple[str, str | None]:
    """Split the CLI's ``--data SOURCE[:PATH]`` at the first colon.

    >>> parse_cli("digits")
    ('digits', None)
    >>> parse_cli("python:mypkg.data:load")
    ('python', 'mypkg.data:load')
    """
    source, colon, path = text.strip().partition(":")
    if source not in SOURCES:
        raise DataError(f"unknown data source '{source}'", hint=_source_hint(source))
    if colon and not path:
        raise DataError(f"--data '{text}' names no path after the colon",
                        hint="write SOURCE:PATH, or just SOURCE for digits")
    return source, path or None


def load_data(stmt: "ast.Data | None" = None, *, source: str | None = None,
              path: str | None = None, batch: int | None = None, val: float | None = None,
              seed: int = 0, rank: int = 0, world_size: int = 1) -> Dataset:
    """Build the :class:`Dataset` a ``data`` statement asks for.

    Keywords override the statement's fields (a new ``source`` drops the statement's path).
    ``val`` is the fraction held out, split the same way for the same ``seed``; with
    ``world_size > 1`` each ``rank`` trains on its own shard and validates on everything.

    >>> a = load_data(source="digits", val=0.5, seed=1)
    >>> b = load_data(source="digits", val=0.5, seed=1)
    >>> torch.equal(a.val.dataset.tensors[1], b.val.dataset.tensors[1])
    True
    """
    wanted, given = _merge(stmt, source=source, path=path, batch=batch, val=val)
    span = stmt.span if stmt is not None else None

    def blame(*fields):   # point at the recipe only when the recipe supplied the value
        return span if not given.intersection(fields) else None

    with _spanned(blame("batch")):
        size = _check_batch(wanted["batch"])
    with _spanned(blame("val")):
        fraction = _check_val(wanted["val"])
    _check_rank(rank, world_size)
    with _spanned(blame("source", "path")):
        name = _check_source(wanted["source"], wanted["path"])
        raw = _READERS[wanted["source"]](wanted["path"])
        sets = _datasets(raw, fraction, seed)
        return _dataset(sets, raw, name, size, seed, rank, world_size)


def split_indices(n: int, val: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, val) indices of ``n`` examples; ``round(n * val)`` (at least 1) held out.

    >>> train, held = split_indices(10, 0.2, seed=0)
    >>> len(train), len(held), sorted(train.tolist() + held.tolist()) == list(range(10))
    (8, 2, True)
    """
    if n == 0:
        raise DataError("the data set is empty", hint="check the data source")
    n_val = max(1, round(n * val)) if val > 0 else 0
    if n_val >= n:
        raise DataError(f"val {val:g} holds out {n_val} of {n} examples, leaving none to "
                        f"train on", hint="lower `val`, or add data")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


# ---- settings ---------------------------------------------------------------------------

def _merge(stmt, **overrides) -> tuple[dict, set]:
    """The settings in force, and the names of those given as keywords."""
    given = {key for key, value in overrides.items() if value is not None}
    if stmt is None:
        return overrides, given
    wanted = {key: value if value is not None else getattr(stmt, key)
              for key, value in overrides.items()}
    if "source" in given and "path" not in given and overrides["source"] != stmt.source:
        wanted["path"] = None   # the recipe's path belongs to the recipe's source
    return wanted, given


@contextmanager
def _spanned(span):
    """Attach ``span`` to a DataError that has none."""
    try:
        yield
    except DataError as exc:
        if span is None or exc.span is not None:
            raise
        raise DataError(exc.message, span, exc.hint) from exc


def _check_batch(batch) -> int:
    batch = DEFAULT_BATCH if batch is None else batch
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise DataError(f"batch must be a whole number >= 1, got {batch!r}",
                        hint=f"e.g. `batch {DEFAULT_BATCH}`")
    return int(batch)


def _check_val(val) -> float:
    val = DEFAULT_VAL if val is None else val
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val < 1:
        raise DataError(f"val must be a fraction in [0, 1), got {val!r}",
                        hint="the share of examples held out for validation, e.g. `val 0.2`")
    return float(val)


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in a world of size {world_size}",
                        hint="need world_size >= 1 and 0 <= rank < world_size")


def _check_source(source: str | None, path: str | None) -> str:
    """Validate the source and its path; returns the data set's display name."""
    if source is None:
        raise DataError("no data source: the recipe has no 'data' statement and none was given",
                        hint="add `data digits;` to the recipe, or pass --data SOURCE[:PATH]")
    if source not in SOURCES:
        raise DataError(f"unknown data source '{source}'", hint=_source_hint(source))
    if source != "digits" and not path:
        raise DataError(f"the {source} data source needs a path",
                        hint=f"e.g. `{_PATH_HINTS[source]}` or --data {source}:PATH")
    return f"{source}:{path}" if path else source


def _source_hint(source: str) -> str:
    near = difflib.get_close_matches(source, SOURCES, n=1)
    return (f"did you mean {near[0]}? " if near else "") + "one of " + ", ".join(SOURCES)


# ---- datasets and loaders ---------------------------------------------------------------

def _datasets(raw, val: float, seed: int) -> tuple:
    """(train set, val set) as torch Datasets, or DataLoaders a python source built."""
    if isinstance(raw, Tensors):
        if raw.x_val is not None:   # the source brought its own validation set
            return TensorDataset(raw.x, raw.y), TensorDataset(raw.x_val, raw.y_val)
        train, held = split_indices(len(raw.x), val, seed)
        return (TensorDataset(raw.x[train], raw.y[train]),
                TensorDataset(raw.x[held], raw.y[held]))
    if raw.val is not None:
        return raw.train, raw.val
    if isinstance(raw.train, DataLoader):
        raise DataError("a python data function that returns a train DataLoader must also "
                        "return a val DataLoader or Dataset",
                        hint="a DataLoader cannot be split; return Datasets to split by `val`")
    _nonempty(raw.train)
    train, held = split_indices(len(raw.train), val, seed)
    return Subset(raw.train, train.tolist()), Subset(raw.train, held.tolist())


def _dataset(sets: tuple, raw, name: str, batch: int, seed: int, rank: int,
             world_size: int) -> Dataset:
    train_set, val_set = sets
    collate = raw.collate if isinstance(raw, Tensors) else None
    train, sampler = _train_loader(train_set, batch, collate, seed, rank, world_size)
    val = val_set if isinstance(val_set, DataLoader) else DataLoader(
        val_set, batch_size=batch, shuffle=False, num_workers=0, collate_fn=collate)
    return Dataset(train, val, raw.num_classes, _input_shape(train), name, sampler)


def _train_loader(train_set, batch: int, collate, seed: int, rank: int, world_size: int):
    """The train DataLoader and its DistributedSampler (None unless sharded)."""
    _nonempty(train_set)
    if isinstance(train_set, DataLoader):   # built by a python source: used as it is
        sampler = train_set.sampler
        if world_size > 1 and not isinstance(sampler, DistributedSampler):
            raise DataError(f"a python data function returned a train DataLoader, which "
                            f"cannot be sharded across {world_size} processes",
                            hint="return Datasets instead, or a DataLoader with a "
                                 "DistributedSampler")
        return train_set, sampler if isinstance(sampler, DistributedSampler) else None
    if world_size > 1:
        sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank,
                                     shuffle=True, seed=seed, drop_last=False)
        return DataLoader(train_set, batch_size=batch, sampler=sampler, num_workers=0,
                          collate_fn=collate), sampler
    # a seeded generator: the same shuffles every run (num_workers=0 keeps it that way)
    return DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=0,
                      generator=torch.Generator().manual_seed(seed), collate_fn=collate), None


def _nonempty(dataset) -> None:
    if isinstance(dataset, DataLoader):
        dataset = dataset.dataset
    if not isinstance(dataset, torch.utils.data.IterableDataset) and len(dataset) == 0:
        raise DataError("the training set is empty", hint="check the data source")


def _input_shape(loader: DataLoader) -> tuple:
    """One example's shape, read from the first example rather than a drawn batch."""
    dataset = loader.dataset
    if isinstance(dataset, TensorDataset):
        return tuple(dataset.tensors[0].shape[1:])
    try:
        example = dataset[0]
    except Exception:   # an iterable-style dataset: draw a batch instead
        return tuple(np.shape(_inputs_of(next(iter(loader)))))[1:]
    return tuple(np.shape(_inputs_of(example)))


def _inputs_of(example):
    return example[0] if isinstance(example, (tuple, list)) else example
