"""CIFAR-10 in its "python version" layout: pickled batches in one folder.

``data_batch_1`` .. ``data_batch_5`` train, ``test_batch`` validates. Each is a pickled dict
with ``b"data"`` (N, 3072) uint8, rows holding the R, G and B planes of a 32x32 image, and
``b"labels"`` (N ints). The pickles are read by an unpickler that can only rebuild numpy
arrays and plain containers, so a tampered file cannot run code.
"""
from __future__ import annotations

import codecs
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from pruneql.data import checks
from pruneql.data.base import Normalise, Options, Tensors, renormalise
from pruneql.data.sources import existing
from pruneql.errors import DataError

# per-channel mean and standard deviation of the 50,000 training images, on [0, 1]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
HINT = ("point at the extracted 'cifar-10-batches-py' folder (the python version from "
        "https://www.cs.toronto.edu/~kriz/cifar.html)")
_TRAIN_FILE = re.compile(r"data_batch_(\d+)")


def _allowed() -> dict:
    """The only globals a CIFAR pickle may name, found via numpy so its version does not matter."""
    array = np.zeros(1, np.uint8)
    reconstruct, frombuffer = array.__reduce__()[0], array.__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    found = {}
    for core in ("numpy.core", "numpy._core"):   # numpy 1 and numpy 2 module names
        found[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{core}.multiarray", "scalar")] = scalar
        found[(f"{core}.numeric", "_frombuffer")] = frombuffer
    found[("numpy", "ndarray")] = np.ndarray
    found[("numpy", "dtype")] = np.dtype
    found[("_codecs", "encode")] = codecs.encode   # how protocol 2 spells bytes
    for builtins in ("builtins", "__builtin__"):
        for name in ("bytearray", "set", "frozenset", "complex"):
            found[(builtins, name)] = getattr(__import__("builtins"), name)
    return found


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that refuses every global outside numpy array reconstruction.

    >>> import io
    >>> SafeUnpickler(io.BytesIO(pickle.dumps({b"labels": [1, 2]})), encoding="bytes").load()
    {b'labels': [1, 2]}
    """

    ALLOWED = _allowed()

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle '{module}.{name}': a CIFAR-10 batch holds "
                            f"only numpy arrays and lists", hint=HINT) from None


def cifar10(path: str, opts: Options = Options()) -> Tensors:
    """Train on the data batches; validate on ``test_batch`` (or split when it is missing).

    A ``test`` fraction splits the test set from the training batches: ``test_batch`` stays
    the validation set, as in every PruneQL run without ``test``.
    """
    root = existing(path, "cifar10", folder=True)
    if (root / "cifar-10-batches-py").is_dir():   # the folder the archive extracts into
        root = root / "cifar-10-batches-py"
    numbered = [(int(m.group(1)), f) for f in root.iterdir()
                if (m := _TRAIN_FILE.fullmatch(f.name)) and f.is_file()]
    if not numbered:
        raise DataError(f"cifar10 folder '{path}' holds no data_batch_* files", hint=HINT)
    x, y = _concat([read_batch(f) for _, f in sorted(numbered)])
    test = root / "test_batch"
    x_val, y_val = read_batch(test) if test.is_file() else (None, None)
    collate = renormalise(Normalise(255, MEAN, STD), opts.normalize, 3, "cifar10")
    raw = Tensors(x, y, x_val, y_val, num_classes=10, collate=collate)
    return checks.vet(raw, opts.task, f"cifar10 folder '{path}'")


def read_batch(file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file as (N, 3, 32, 32) uint8 images and int64 labels."""
    try:
        with open(file, "rb") as f:
            batch = SafeUnpickler(f, encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"'{file}': {exc.message}", hint=exc.hint) from None
    except Exception as exc:   # a damaged pickle can fail in many ways; all mean "corrupt"
        raise DataError(f"cannot read CIFAR-10 batch '{file}': {type(exc).__name__}: {exc}",
                        hint=HINT) from exc
    data, labels = _field(batch, "data"), _field(batch, "labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072):
        raise DataError(f"CIFAR-10 batch '{file}' has no (N, 3072) uint8 'data' array",
                        hint=HINT)
    labels = np.asarray(labels) if labels is not None else np.zeros(0)
    if labels.shape != (len(data),) or labels.dtype.kind not in "ui" or (
            len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
        raise DataError(f"CIFAR-10 batch '{file}' needs {len(data)} labels in 0..9",
                        hint=HINT)
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.astype(np.int64))


def _field(batch, name: str):
    # the original batches use bytes keys (pickled by Python 2); accept str keys too
    if not isinstance(batch, dict):
        return None
    return batch.get(name.encode(), batch.get(name))


def _concat(parts: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
