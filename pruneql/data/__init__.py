"""Data for data-driven criteria, sensitivity analysis and fine-tuning.

The recipe's ``data SOURCE ["path"] [batch N] [val F] [test F] [seed S] [resize N]
[normalize imagenet|none];`` statement (or the CLI's ``--data SOURCE[:PATH]``) becomes a
:class:`Dataset`: train, validation and (optionally) test DataLoaders plus what a pass needs
to know about the examples. Sources: ``digits`` (bundled), ``npz``, ``cifar10``,
``imagefolder`` (:mod:`pruneql.data.folder`), ``tokens`` (:mod:`pruneql.data.tokens`, with a
bundled corpus) and ``python``.

    >>> ds = load_data(source="digits", batch=32)
    >>> ds.name, ds.num_classes, ds.input_shape, len(ds.train.dataset), len(ds.val.dataset)
    ('digits', 10, (1, 8, 8), 1438, 359)
    >>> x, y = next(iter(ds.train))
    >>> tuple(x.shape), x.dtype, y.dtype, 0.0 <= x.min().item() <= x.max().item() <= 1.0
    ((32, 1, 8, 8), torch.float32, torch.int64, True)

Inputs and targets are checked when an in-memory source loads; for the rest the training
and scoring loops call :func:`check_batch` on each batch.
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from pruneql.data import cifar, folder, sources, tokens
from pruneql.data.base import NORMALIZE, Options
from pruneql.data.checks import check_batch
from pruneql.data.split import nonempty, split, split_indices, split_three
from pruneql.errors import DataError
from pruneql.lang import data_sources

if TYPE_CHECKING:
    from pruneql.lang import ast

__all__ = ["Dataset", "DataError", "SOURCES", "check_batch", "load_data", "parse_cli",
           "split_indices", "split_three"]

SOURCES = data_sources.NAMES        # the language's registry of sources
DEFAULT_BATCH = 64
DEFAULT_VAL = 0.2
DEFAULT_TEST = 0.0
DEFAULT_SPLIT_SEED = 0
_READERS = {"digits": sources.digits, "npz": sources.npz, "cifar10": cifar.cifar10,
            "imagefolder": folder.imagefolder, "tokens": tokens.tokens,
            "python": sources.python}
_NO_PATH = ("digits", "tokens")   # bundled data: the path is optional or refused
_PATH_HINTS = {"npz": 'data npz "train.npz";', "cifar10": 'data cifar10 "cifar-10-batches-py";',
               "imagefolder": 'data imagefolder "images/";',
               "python": 'data python "mypkg.data:load";'}
# keyword of load_data -> field of ast.Data (the statement's `seed` is the split's seed)
_FIELDS = {"source": "source", "path": "path", "batch": "batch", "val": "val", "test": "test",
           "split_seed": "seed", "resize": "resize", "normalize": "normalize"}


@dataclass
class Dataset:
    """What passes consume: batches of ``(x, y)``, float32 ``x`` (int64 token ids for
    ``tokens``).

    ``input_shape`` is one example's shape without the batch dimension; ``num_classes`` is
    None when unknown (float targets, or a python source that does not say); for language
    modelling it is the vocabulary size. ``train_sampler`` is the DistributedSampler when
    sharded: call ``set_epoch`` on it. ``test`` is the held-out test set (None unless asked
    for with ``test`` or brought by the source): select on ``val``, report on ``test``.
    ``skipped`` lists the files left out as unreadable (an image folder's damaged images);
    ``task`` is what the targets fit ("classification", "segmentation", "lm", or None);
    ``ignore_index`` the target value the loss must ignore (255 in segmentation maps that
    use it, -100 in token targets); ``vocab_size`` the number of token ids. ``scoring``
    draws the training set unsharded, in the order one process's ``train`` would: under
    torchrun, data-driven criteria score on it so every rank (and a single process) sees
    the same batches.
    """

    train: DataLoader
    val: DataLoader
    num_classes: int | None
    input_shape: tuple
    name: str
    train_sampler: DistributedSampler | None = None
    test: DataLoader | None = None
    skipped: list[str] = field(default_factory=list)
    task: str | None = "classification"
    ignore_index: int | None = None
    vocab_size: int | None = None
    scoring: DataLoader | None = None     # the whole training set, one process's order


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
                        hint="write SOURCE:PATH, or just SOURCE for digits or tokens")
    return source, path or None


def load_data(stmt: "ast.Data | None" = None, *, source: str | None = None,
              path: str | None = None, batch: int | None = None, val: float | None = None,
              test: float | None = None, split_seed: int | None = None,
              resize: int | None = None, normalize: str | None = None,
              task: str | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
              progress=None) -> Dataset:
    """Build the :class:`Dataset` a ``data`` statement asks for.

    Keywords override the statement's fields (a new ``source`` drops the statement's path);
    ``split_seed`` overrides its ``seed``. ``val`` and ``test`` are the fractions held out,
    chosen by ``split_seed`` alone; ``seed`` only orders the training shuffles. With
    ``world_size > 1`` each ``rank`` trains on its own shard and evaluates on everything.
    ``task`` (the recipe's task) decides which targets are valid; None infers it from them.
    ``progress`` (``start``/``advance``/``end``) hears about slow steps such as indexing
    an image folder.

    >>> a = load_data(source="digits", val=0.5, split_seed=1, seed=0)
    >>> b = load_data(source="digits", val=0.5, split_seed=1, seed=7)
    >>> torch.equal(a.val.dataset.tensors[1], b.val.dataset.tensors[1])
    True
    >>> load_data(source="digits", test=0.1).test.dataset.tensors[0].shape[0]
    180
    """
    overrides = dict(source=source, path=path, batch=batch, val=val, test=test,
                     split_seed=split_seed, resize=resize, normalize=normalize)
    wanted, given = _merge(stmt, **overrides)
    span = stmt.span if stmt is not None else None

    def blame(*fields):   # point at the recipe only when the recipe supplied the value
        return span if not given.intersection(fields) else None

    settings = _settings(wanted, blame)
    _check_rank(rank, world_size)
    with _spanned(blame("source", "path", "resize", "normalize")):
        name = _check_source(wanted["source"], wanted["path"], settings["resize"])
        opts = Options(settings["resize"], settings["normalize"], task, progress)
        raw = _READERS[wanted["source"]](wanted["path"], opts)
        sets = split(raw, settings["val"], settings["test"], settings["split_seed"])
        return _dataset(sets, raw, name, settings["batch"], seed, rank, world_size)


# ---- settings ---------------------------------------------------------------------------

def _merge(stmt, **overrides) -> tuple[dict, set]:
    """The settings in force, and the names of those given as keywords."""
    given = {key for key, value in overrides.items() if value is not None}
    if stmt is None:
        return overrides, given
    wanted = {key: value if value is not None else getattr(stmt, _FIELDS[key], None)
              for key, value in overrides.items()}
    if "source" in given and "path" not in given and overrides["source"] != stmt.source:
        wanted["path"] = None   # the recipe's path belongs to the recipe's source
    return wanted, given


def _settings(wanted: dict, blame) -> dict:
    """The checked numeric and named settings, defaults filled in."""
    checked = {}
    for key, check in (("batch", _check_batch), ("val", _check_val), ("test", _check_test),
                       ("split_seed", _check_seed), ("resize", _check_resize),
                       ("normalize", _check_normalize)):
        with _spanned(blame(key)):
            checked[key] = check(wanted[key])
    if checked["val"] + checked["test"] >= 1:
        with _spanned(blame("val", "test")):
            raise DataError(f"val {checked['val']:g} and test {checked['test']:g} leave "
                            f"nothing to train on", hint="keep val + test below 1")
    return checked


@contextmanager
def _spanned(span):
    """Attach ``span`` to a DataError that has none."""
    try:
        yield
    except DataError as exc:
        if span is None or exc.span is not None:
            raise
        raise DataError(exc.message, span, exc.hint) from exc


def _whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _check_batch(batch) -> int:
    batch = DEFAULT_BATCH if batch is None else batch
    if not _whole(batch) or batch < 1:
        raise DataError(f"batch must be a whole number >= 1, got {batch!r}",
                        hint=f"e.g. `batch {DEFAULT_BATCH}`")
    return int(batch)


def _fraction(value, name: str, default: float, meaning: str) -> float:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DataError(f"{name} must be a fraction in [0, 1), got {value!r}",
                        hint=f"the share of examples held out for {meaning}, e.g. "
                             f"`{name} 0.2`")
    return float(value)


def _check_val(val) -> float:
    return _fraction(val, "val", DEFAULT_VAL, "validation")


def _check_test(test) -> float:
    return _fraction(test, "test", DEFAULT_TEST, "the final test")


def _check_seed(seed) -> int:
    seed = DEFAULT_SPLIT_SEED if seed is None else seed
    if not _whole(seed) or seed < 0:
        raise DataError(f"the data seed must be a whole number >= 0, got {seed!r}",
                        hint="e.g. `seed 0`; it chooses which examples are held out")
    return int(seed)


def _check_resize(resize) -> int | None:
    if resize is not None and (not _whole(resize) or resize < 1):
        raise DataError(f"resize must be a whole number of pixels >= 1, got {resize!r}",
                        hint="e.g. `resize 224`: shorter side to 224, then the centre "
                             "224 x 224")
    return None if resize is None else int(resize)


def _check_normalize(normalize) -> str | None:
    if normalize is not None and normalize not in NORMALIZE:
        raise DataError(f"unknown normalize '{normalize}'",
                        hint="one of " + ", ".join(NORMALIZE))
    return normalize


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in a world of size {world_size}",
                        hint="need world_size >= 1 and 0 <= rank < world_size")


def _check_source(source: str | None, path: str | None, resize: int | None) -> str:
    """Validate the source, its path and whether it resizes; returns the display name."""
    if source is None:
        raise DataError("no data source: the recipe has no 'data' statement and none was given",
                        hint="add `data digits;` to the recipe, or pass --data SOURCE[:PATH]")
    if source not in SOURCES:
        raise DataError(f"unknown data source '{source}'", hint=_source_hint(source))
    if source not in _NO_PATH and not path:
        raise DataError(f"the {source} data source needs a path",
                        hint=f"e.g. `{_PATH_HINTS[source]}` or --data {source}:PATH")
    if resize is not None and source != "imagefolder":
        raise DataError(f"`resize` applies to image folders, not to the {source} source",
                        hint="leave `resize` out, or resize the data before saving it")
    return f"{source}:{path}" if path else source


def _source_hint(source: str) -> str:
    near = difflib.get_close_matches(source, SOURCES, n=1)
    return (f"did you mean {near[0]}? " if near else "") + "one of " + ", ".join(SOURCES)


# ---- loaders ----------------------------------------------------------------------------

def _dataset(sets: tuple, raw, name: str, batch: int, seed: int, rank: int,
             world_size: int) -> Dataset:
    train_set, val_set, test_set = sets
    train, sampler = _train_loader(train_set, batch, raw.collate, seed, rank, world_size)
    scoring = train if sampler is None else \
        _train_loader(train_set, batch, raw.collate, seed, 0, 1)[0]
    val, test = (_eval_loader(part, batch, raw.collate) for part in (val_set, test_set))
    shape = getattr(raw, "input_shape", None) or _input_shape(train)
    return Dataset(train, val, raw.num_classes, tuple(shape), name, sampler, test,
                   skipped=getattr(raw, "skipped", []), task=raw.task,
                   ignore_index=raw.ignore_index, vocab_size=getattr(raw, "vocab_size", None),
                   scoring=scoring)


def _eval_loader(part, batch: int, collate) -> DataLoader | None:
    """Held-out sets are not sharded: every rank evaluates all of them, in one order."""
    if part is None or isinstance(part, DataLoader):
        return part
    return DataLoader(part, batch_size=batch, shuffle=False, num_workers=0, collate_fn=collate)


def _train_loader(train_set, batch: int, collate, seed: int, rank: int, world_size: int):
    """The train DataLoader and its DistributedSampler (None unless sharded)."""
    nonempty(train_set)
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
