"""Splits that keep numbers honest: a held-out test set, and a split chosen by the data
statement's seed rather than the run's."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pruneql
from pruneql.data import load_data, split_indices, split_three
from pruneql.lang import ast
from pruneql.passes.context import Context, Options
from pruneql.passes.data import data as data_pass
from pruneql.zoo.digits import digits_cnn
from tests.test_data import fails, labels_of, pymod, write_cifar, write_npz   # noqa: F401


def rows(dataset) -> set:
    """The examples of a TensorDataset, as hashable bytes."""
    return {bytes(x.numpy().tobytes()) for x in dataset.tensors[0]}


def statement(**fields) -> SimpleNamespace:
    """A `data` statement with the fields ast.Data gains (test, seed, resize, normalize)."""
    base = dict(source="digits", path=None, batch=None, val=None, test=None, seed=None,
                resize=None, normalize=None, span=None)
    return SimpleNamespace(**{**base, **fields})


# ---- three-way split --------------------------------------------------------------------

def test_split_three_partitions_and_keeps_val():
    train, val, test = split_three(100, 0.2, 0.15, seed=3)
    assert (len(train), len(val), len(test)) == (65, 20, 15)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(100))
    assert torch.equal(val, split_indices(100, 0.2, seed=3)[1])   # test leaves val alone
    assert len(split_three(5, 0.01, 0.01, seed=0)[2]) == 1
    with pytest.raises(pruneql.errors.DataError, match="leaving none to train on"):
        split_three(3, 0.5, 0.4, seed=0)


def test_digits_with_a_test_split():
    plain = load_data(source="digits")
    ds = load_data(source="digits", test=0.1)
    assert plain.test is None
    assert (len(ds.train.dataset), len(ds.val.dataset), len(ds.test.dataset)) == (1258, 359,
                                                                                  180)
    assert torch.equal(ds.val.dataset.tensors[0], plain.val.dataset.tensors[0])
    train, val, test = (rows(part.dataset) for part in (ds.train, ds.val, ds.test))
    assert not (train & test) and not (val & test)
    x, y = next(iter(ds.test))
    assert x.dtype == torch.float32 and x.max() <= 1 and ds.test.batch_size == 64


def test_fraction_settings():
    fails(r"test must be a fraction in \[0, 1\), got 1.5", source="digits", test=1.5)
    fails("val 0.6 and test 0.4 leave nothing to train on", source="digits", val=0.6, test=0.4)
    fails("the data seed must be a whole number >= 0, got -1", source="digits", split_seed=-1)


def test_npz_brings_its_own_test_and_val(tmp_path):
    x, y = np.zeros((20, 3), np.float32), np.arange(20) % 2
    xt, yt = np.ones((4, 3), np.float32), np.array([0, 1, 1, 0])
    path = write_npz(tmp_path, x=x, y=y, x_test=xt, y_test=yt)
    ds = load_data(source="npz", path=path, val=0.25)   # no `test`: the file's own is used
    assert len(ds.train.dataset) == 15 and len(ds.val.dataset) == 5
    assert torch.equal(ds.test.dataset.tensors[1], torch.from_numpy(yt))
    assert len(load_data(source="npz", path=path, test=0.5).test.dataset) == 4   # file wins
    both = write_npz(tmp_path, "both.npz", x=x, y=y, x_val=xt, y_val=yt, x_test=xt[:2],
                     y_test=yt[:2])
    ds = load_data(source="npz", path=both)
    assert (len(ds.train.dataset), len(ds.val.dataset), len(ds.test.dataset)) == (20, 4, 2)
    ds = load_data(source="npz", path=write_npz(tmp_path, "v.npz", x=x, y=y, x_val=xt,
                                                y_val=yt), test=0.1)
    assert (len(ds.train.dataset), len(ds.val.dataset), len(ds.test.dataset)) == (18, 4, 2)
    fails("only one of 'x_test' and 'y_test'", source="npz",
          path=write_npz(tmp_path, "half.npz", x=x, y=y, x_test=xt))
    fails(r"y_test: label 3 at example 0 is out of range for 2 classes", source="npz",
          path=write_npz(tmp_path, "high.npz", x=x, y=y, x_test=xt[:1], y_test=np.array([3]),
                         num_classes=np.int64(2)))


def test_cifar_test_split_comes_from_training_batches(tmp_path):
    write_cifar(tmp_path)
    ds = load_data(source="cifar10", path=str(tmp_path), test=0.1)
    assert (len(ds.train.dataset), len(ds.val.dataset), len(ds.test.dataset)) == (90, 20, 10)


def test_python_test_sets(pymod):
    ds = load_data(source="python", path=f"{pymod}:with_test")
    assert labels_of(ds.test).tolist() == [1, 0]
    ds = load_data(source="python", path=f"{pymod}:unsplit", val=0.2, test=0.2)
    assert (len(ds.train.dataset), len(ds.val.dataset), len(ds.test.dataset)) == (6, 2, 2)
    ds = load_data(source="python", path=f"{pymod}:sets", test=0.3)   # val given, test split
    assert (len(ds.train.dataset), len(ds.val.dataset), len(ds.test.dataset)) == (7, 3, 3)
    fails("must also return a test DataLoader or Dataset", source="python",
          path=f"{pymod}:loaders", test=0.2)


def test_test_set_is_not_sharded():
    ranks = [load_data(source="digits", test=0.1, rank=r, world_size=2) for r in (0, 1)]
    assert torch.equal(labels_of(ranks[0].test), labels_of(ranks[1].test))
    assert len(ranks[0].test.dataset) == 180


# ---- the split's seed is the data statement's -------------------------------------------

def test_run_seed_changes_the_shuffle_not_the_split():
    a, b = (load_data(source="digits", seed=s, test=0.1) for s in (0, 3))
    for part in ("val", "test"):
        assert torch.equal(getattr(a, part).dataset.tensors[0],
                           getattr(b, part).dataset.tensors[0])
    assert torch.equal(a.train.dataset.tensors[0], b.train.dataset.tensors[0])
    assert not torch.equal(next(iter(a.train))[1], next(iter(b.train))[1])
    c = load_data(source="digits", seed=0, split_seed=1, test=0.1)
    assert not torch.equal(a.val.dataset.tensors[0], c.val.dataset.tensors[0])


def test_statement_seed_chooses_the_split():
    four = load_data(statement(seed=4, test=0.1))
    assert torch.equal(four.val.dataset.tensors[0],
                       load_data(source="digits", split_seed=4).val.dataset.tensors[0])
    assert len(four.test.dataset) == 180
    zero = load_data(statement(seed=4), split_seed=0)   # the keyword overrides the recipe
    assert torch.equal(zero.val.dataset.tensors[0],
                       load_data(source="digits").val.dataset.tensors[0])
    assert load_data(ast.Data("digits")).test is None   # today's statement: no new fields


def test_seed_3_run_validates_on_the_seed_0_examples():
    recipe = pruneql.parse("model digits_cnn;\ninput 1x8x8;\ndata digits;\n"
                           "prune conv1 by taylor keep 0.5;")
    runs = []
    for seed in (0, 3):
        ctx = Context(recipe, Options(seed=seed), gm=digits_cnn().eval(),
                      example_inputs=(torch.zeros(1, 1, 8, 8),))
        runs.append(data_pass(ctx).data)
    assert torch.equal(labels_of(runs[0].val), labels_of(runs[1].val))
    assert torch.equal(runs[0].val.dataset.tensors[0], runs[1].val.dataset.tensors[0])
    assert not torch.equal(next(iter(runs[0].train))[1], next(iter(runs[1].train))[1])
