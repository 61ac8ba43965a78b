"""Splitting a source's examples into train, validation and test sets.

The split depends only on the number of examples, the fractions and the *split* seed (the
data statement's ``seed``), never on the run's training seed: a run with ``--seed 3``
validates and tests on the same examples as one with ``--seed 0``. A held-out set the
source brings itself (npz ``x_val``/``x_test``, CIFAR-10's ``test_batch``) is used as it is.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from pruneql.data.base import Parts, Tensors
from pruneql.errors import DataError


def split_indices(n: int, val: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, val) indices of ``n`` examples; ``round(n * val)`` (at least 1) held out.

    >>> train, held = split_indices(10, 0.2, seed=0)
    >>> len(train), len(held), sorted(train.tolist() + held.tolist()) == list(range(10))
    (8, 2, True)
    """
    train, held, _ = split_three(n, val, 0.0, seed)
    return train, held


def split_three(n: int, val: float, test: float, seed: int) -> tuple[torch.Tensor, ...]:
    """Sorted (train, val, test) indices; each asked-for fraction holds at least one example.

    The validation examples do not depend on ``test``, so adding a test split leaves the
    validation set as it was.

    >>> train, val, test = split_three(10, 0.2, 0.3, seed=0)
    >>> len(train), len(val), len(test), torch.equal(val, split_indices(10, 0.2, 0)[1])
    (5, 2, 3, True)
    """
    if n == 0:
        raise DataError("the data set is empty", hint="check the data source")
    n_val, n_test = _count(n, val), _count(n, test)
    if n_val + n_test >= n:
        raise DataError(f"val {val:g} and test {test:g} hold out {n_val + n_test} of {n} "
                        f"examples, leaving none to train on",
                        hint="lower `val` or `test`, or add data")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    return tuple(part.sort().values for part in parts)


def split(raw, val: float, test: float, seed: int) -> tuple:
    """(train, val, test) torch Datasets (or a python source's DataLoaders); test may be
    None when no test set is asked for and the source has none."""
    if isinstance(raw, Tensors):
        return _split_tensors(raw, val, test, seed)
    return _split_parts(raw, val, test, seed)


def _count(n: int, fraction: float) -> int:
    return max(1, round(n * fraction)) if fraction > 0 else 0


def _split_tensors(raw: Tensors, val: float, test: float, seed: int) -> tuple:
    own_val, own_test = raw.x_val is not None, raw.x_test is not None
    train, held, tested = split_three(len(raw.x), 0.0 if own_val else val,
                                      0.0 if own_test else test, seed)

    def subset(index):
        return TensorDataset(raw.x[index], raw.y[index])

    val_set = TensorDataset(raw.x_val, raw.y_val) if own_val else subset(held)
    if own_test:
        return subset(train), val_set, TensorDataset(raw.x_test, raw.y_test)
    return subset(train), val_set, subset(tested) if test > 0 else None


def _split_parts(raw: Parts, val: float, test: float, seed: int) -> tuple:
    need_val, need_test = raw.val is None, raw.test is None and test > 0
    if not (need_val or need_test):
        return raw.train, raw.val, raw.test
    if isinstance(raw.train, DataLoader):
        missing = "val" if need_val else "test"
        raise DataError(f"a python data function that returns a train DataLoader must also "
                        f"return a {missing} DataLoader or Dataset",
                        hint=f"a DataLoader cannot be split; return Datasets to split by "
                             f"`{missing}`")
    nonempty(raw.train)
    train, held, tested = split_three(len(raw.train), val if need_val else 0.0,
                                      test if need_test else 0.0, seed)
    held_val = Subset(raw.train, held.tolist()) if need_val else raw.val
    held_test = Subset(raw.train, tested.tolist()) if need_test else raw.test
    return Subset(raw.train, train.tolist()), held_val, held_test


def nonempty(dataset) -> None:
    """Raise a DataError when the training set (a dataset or its loader) is empty."""
    if isinstance(dataset, DataLoader):
        dataset = dataset.dataset
    if not isinstance(dataset, torch.utils.data.IterableDataset) and len(dataset) == 0:
        raise DataError("the training set is empty", hint="check the data source")
