"""Data that would poison the numbers: non-finite inputs, bad labels, segmentation maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pruneql.data import check_batch, load_data
from pruneql.errors import DataError
from tests.test_data import fails, pymod, write_npz   # noqa: F401 (pymod is a fixture)


def raises(match: str, *args, **kwargs) -> DataError:
    with pytest.raises(DataError, match=match) as caught:
        check_batch(*args, **kwargs)
    assert caught.value.hint
    return caught.value


# ---- non-finite inputs ------------------------------------------------------------------

def test_nan_pixel_in_npz_names_file_and_example(tmp_path):
    x = np.zeros((20, 1, 4, 4), np.float32)
    x[13, 0, 2, 1] = np.nan
    path = write_npz(tmp_path, x=x, y=np.arange(20) % 2)
    error = fails(r"npz file '.*d\.npz', x: example 13 has a non-finite input \(nan\)",
                  source="npz", path=path)
    assert "NaN" in error.hint


def test_inf_in_held_out_arrays_and_float64_overflow(tmp_path):
    x = np.zeros((5, 3))
    xv = np.zeros((2, 3))
    xv[1, 2] = np.inf
    fails(r"x_val: example 1 has a non-finite input \(inf\)", source="npz",
          path=write_npz(tmp_path, x=x, y=np.zeros(5, int), x_val=xv, y_val=np.zeros(2, int)))
    big = np.zeros((4, 2))
    big[2, 0] = -1e300   # finite in float64, -inf as the float32 the model sees
    fails(r"x: example 2 has a non-finite input \(-inf\)", source="npz",
          path=write_npz(tmp_path, "big.npz", x=big, y=np.zeros(4, int)))


def test_python_tensors_are_checked_at_load(pymod):
    fails(r"data function '.*:nan_train', train set: example 2 has a non-finite input",
          source="python", path=f"{pymod}:nan_train")


def test_check_batch_inputs():
    check_batch(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), "train batch 1", 3)
    x = torch.zeros(4, 2, 2)
    x[3, 1, 0] = float("-inf")
    raises(r"train batch 7: example 3 has a non-finite input \(-inf\)", x,
           torch.zeros(4, dtype=torch.long), "train batch 7", 3)
    check_batch(torch.zeros(2, 5, dtype=torch.long), torch.tensor([1, 0]), "tokens", 2)


# ---- labels -----------------------------------------------------------------------------

def test_label_equal_to_num_classes_is_an_error(tmp_path, pymod):
    y = np.arange(30) % 10
    y[17] = 10
    error = fails(r"npz file '.*', y: label 10 at example 17 is out of range for 10 classes",
                  source="npz", path=write_npz(tmp_path, x=np.zeros((30, 2)), y=y,
                                               num_classes=np.int64(10)))
    assert "num_classes" in error.hint
    fails(r"'.*:too_high', val set: label 7 at example 1 is out of range for 7 classes",
          source="python", path=f"{pymod}:too_high")
    raises("val batch 3: label 10 at example 2 is out of range for 10 classes",
           torch.zeros(3, 4), torch.tensor([0, 9, 10]), "val batch 3", 10)


def test_npz_num_classes_scalar(tmp_path):
    ds = load_data(source="npz", path=write_npz(tmp_path, x=np.zeros((6, 2)),
                                                y=np.arange(6) % 3, num_classes=np.int64(5)))
    assert ds.num_classes == 5   # more classes than the labels show
    fails("'num_classes' must be a positive whole number", source="npz",
          path=write_npz(tmp_path, x=np.zeros((6, 2)), y=np.zeros(6, int), num_classes=2.5))


def test_float_labels_for_classification(tmp_path):
    y = np.zeros(8, np.float32)
    y[5] = 0.5
    path = write_npz(tmp_path, x=np.zeros((8, 2)), y=y)
    error = fails(r"npz file '.*', y: classification needs integer labels, got torch.float32 "
                  r"\(e.g. 0.5 at example 5\)", source="npz", path=path, task="classification")
    assert "int64" in error.hint
    assert load_data(source="npz", path=path).num_classes is None   # no task: float targets
    raises("classification needs integer labels", torch.zeros(2, 3), torch.tensor([0.0, 1.0]),
           "train batch 1", 2)


def test_negative_and_wrongly_shaped_labels(tmp_path):
    fails(r"y: negative label -3 at example 1", source="npz",
          path=write_npz(tmp_path, x=np.zeros((3, 2)), y=np.array([0, -3, 1])))
    error = fails(r"y: targets of shape \(4, 2\) for inputs of shape \(4, 3\) do not fit "
                  r"classification", source="npz",
                  path=write_npz(tmp_path, x=np.zeros((4, 3)), y=np.zeros((4, 2), int)))
    assert "(N,) labels" in error.message
    raises(r"targets of shape \(2, 1\)", torch.zeros(2, 3), torch.zeros(2, 1, dtype=torch.long),
           "train batch 1", 2)
    raises("negative label -1 at example 0", torch.zeros(1, 3), torch.tensor([-1]), "b", None)


# ---- segmentation -----------------------------------------------------------------------

def segmentation_npz(tmp_path, ignore: bool = True) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 3, 6, 5), dtype=np.uint8)
    y = rng.integers(0, 4, (10, 6, 5)).astype(np.uint8)
    if ignore:
        y[2, 0, :] = 255   # an ignored border, as in Pascal VOC
    return write_npz(tmp_path, x=x, y=y), y


def test_segmentation_maps_load(tmp_path):
    path, y = segmentation_npz(tmp_path)
    ds = load_data(source="npz", path=path, val=0.2)
    assert ds.task == "segmentation" and ds.num_classes == 4 and ds.ignore_index == 255
    assert ds.input_shape == (3, 6, 5)
    x, target = next(iter(ds.train))
    assert target.dtype == torch.int64 and target.shape[1:] == (6, 5)
    assert load_data(source="npz", path=path, task="segmentation").num_classes == 4
    check_batch(x, target, "train batch 1", 4, "segmentation")
    (tmp_path / "plain").mkdir()
    plain, _ = segmentation_npz(tmp_path / "plain", ignore=False)
    assert load_data(source="npz", path=plain).ignore_index is None


def test_segmentation_errors(tmp_path):
    path, _ = segmentation_npz(tmp_path)
    error = fails("targets of shape .* do not fit classification", source="npz", path=path,
                  task="classification")
    assert "task segmentation" in error.hint
    x = np.zeros((3, 1, 4, 4), np.float32)
    fails(r"targets of shape \(3, 4, 5\) .* do not fit segmentation", source="npz",
          path=write_npz(tmp_path, "bad.npz", x=x, y=np.zeros((3, 4, 5), int)),
          task="segmentation")
    maps = torch.zeros(2, 4, 4, dtype=torch.long)
    maps[1, 2, 3] = 7
    raises("label 7 at example 1 is out of range for 5 classes", torch.zeros(2, 1, 4, 4), maps,
           "train batch 1", 5, "segmentation")
    maps[1, 2, 3] = 255
    check_batch(torch.zeros(2, 1, 4, 4), maps, "train batch 1", 5, "segmentation")
    raises("label 255", torch.zeros(2, 1, 4, 4), maps, "b", 5, "segmentation",
           ignore_index=None)


def test_unknown_task():
    fails("unknown task 'regression'", source="digits", task="regression")
