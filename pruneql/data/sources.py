"""The data sources other than CIFAR-10, image folders and tokens: digits, npz, python.

Each reader takes the statement's path and :class:`Options` and returns :class:`Tensors`
(the whole set in memory, checked by :func:`pruneql.data.checks.vet`) or :class:`Parts`
(what a user's function returned); splitting and batching happen in :mod:`pruneql.data`.

    >>> t = digits(None)
    >>> tuple(t.x.shape), t.x.dtype, t.num_classes, t.task
    ((1797, 1, 8, 8), torch.uint8, 10, 'classification')
"""
from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from pruneql.data import checks
from pruneql.data.base import Normalise, Options, Parts, Tensors, renormalise
from pruneql.errors import DataError

DIGITS_FILE = Path(__file__).with_name("digits.npz")
NPZ_HINT = ("write it with numpy.savez(path, x=inputs, y=targets[, x_val=..., y_val=..., "
            "x_test=..., y_test=..., num_classes=C])")
_HELD_OUT = (("x_val", "y_val"), ("x_test", "y_test"))


def existing(path: str, source: str, folder: bool) -> Path:
    """``path`` as a Path, or a DataError saying it is missing or of the wrong kind."""
    found = Path(path).expanduser()
    kind = "folder" if folder else "file"
    if not found.exists():
        raise DataError(f"{source} {kind} '{path}' does not exist",
                        hint="check the path; relative paths are taken from the current "
                             "directory")
    if found.is_dir() != folder:
        raise DataError(f"{source} path '{path}' is not a {kind}",
                        hint=f"the {source} source reads a {kind}")
    return found


# ---- digits -----------------------------------------------------------------------------

def digits(path: str | None, opts: Options = Options()) -> Tensors:
    """The bundled UCI digits: 1,797 8x8 images, pixel values 0..16 (scaled per batch)."""
    if path is not None:
        raise DataError(f"the digits source is bundled and takes no path (got '{path}')",
                        hint="write `data digits;`, or `data npz \"FILE\";` for your own data")
    with np.load(DIGITS_FILE) as arrays:
        x, y = arrays["x"], arrays["y"]
    collate = renormalise(Normalise(16), opts.normalize, 1, "digits")
    raw = Tensors(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long(),
                  num_classes=10, collate=collate)
    return checks.vet(raw, opts.task, "digits")


# ---- npz --------------------------------------------------------------------------------

def npz(path: str, opts: Options = Options()) -> Tensors:
    """Arrays ``x``, ``y``; optionally ``x_val``/``y_val`` and ``x_test``/``y_test`` (held-out
    sets used instead of splitting) and a scalar ``num_classes`` (labels are checked
    against it; without it, the largest label + 1)."""
    arrays = read_npz(existing(path, "npz", folder=False), path)
    keys = pairs(arrays, path)
    keep_uint8 = all(arrays[xkey].dtype == np.uint8 for xkey, _ in keys)
    sets = {xkey: (_inputs(arrays[xkey], keep_uint8), targets(arrays[ykey], ykey, path))
            for xkey, ykey in keys}
    _same_example_shape(sets, path)
    collate = Normalise(255) if keep_uint8 else None
    if opts.normalize is not None:
        collate = renormalise(collate, opts.normalize, _channels(sets["x"][0]), f"'{path}'")
    raw = Tensors(*sets["x"], *sets.get("x_val", (None, None)),
                  *sets.get("x_test", (None, None)),
                  num_classes=scalar(arrays, "num_classes", path), collate=collate)
    return checks.vet(raw, opts.task, f"npz file '{path}'")


def scalar(arrays: dict, key: str, path: str) -> int | None:
    """An optional positive integer stored as a 0-d array (``num_classes``, ``vocab_size``)."""
    if key not in arrays:
        return None
    value = arrays[key]
    if value.ndim != 0 or value.dtype.kind not in "ui" or int(value) < 1:
        raise DataError(f"npz file '{path}': '{key}' must be a positive whole number, got "
                        f"{value!r}", hint=f"e.g. numpy.savez(path, ..., {key}=10)")
    return int(value)


def pairs(arrays: dict, path: str, check=None) -> list[tuple[str, str]]:
    """The (x, y) key pairs present, each checked by ``check(x, y, xkey, ykey, path)``
    (by default, as npz inputs and targets)."""
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(f"npz file '{path}' has no {' or '.join(map(repr, missing))} array "
                        f"(it holds {sorted(arrays) or 'nothing'})", hint=NPZ_HINT)
    found = [("x", "y")]
    for xkey, ykey in _HELD_OUT:
        if (xkey in arrays) != (ykey in arrays):
            raise DataError(f"npz file '{path}' has only one of '{xkey}' and '{ykey}'",
                            hint="give both arrays of a held-out set, or neither (then "
                                 "`val`/`test` split the training examples)")
        if xkey in arrays:
            found.append((xkey, ykey))
    for xkey, ykey in found:
        (check or _check_pair)(arrays[xkey], arrays[ykey], xkey, ykey, path)
    return found


def _same_example_shape(sets: dict, path: str) -> None:
    shape = tuple(sets["x"][0].shape[1:])
    for key, (x, _) in sets.items():
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"npz file '{path}': 'x' examples have shape {shape} but '{key}' "
                            f"examples {tuple(x.shape[1:])}", hint=NPZ_HINT)


def _channels(x: torch.Tensor) -> int:
    return x.shape[1] if x.dim() == 4 else 1


def read_npz(file: Path, path: str, hint: str = NPZ_HINT) -> dict:
    """Every array of an ``.npz`` file, read without unpickling anything."""
    try:
        # allow_pickle=False: an .npz must never run code when it is read
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):   # a plain .npy gives one ndarray
            raise DataError(f"'{path}' holds a single array, not named 'x' and 'y' arrays",
                            hint=hint)
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read npz file '{path}': {exc}", hint=hint) from exc


def _check_pair(x: np.ndarray, y: np.ndarray, xkey: str, ykey: str, path: str) -> None:
    if x.ndim not in (2, 3, 4):
        raise DataError(f"npz file '{path}': '{xkey}' has shape {x.shape}; expected (N, F), "
                        f"(N, H, W) or (N, C, H, W)", hint=NPZ_HINT)
    if y.ndim < 1 or len(y) != len(x):
        raise DataError(f"npz file '{path}': '{xkey}' has {len(x)} examples but '{ykey}' has "
                        f"{len(y) if y.ndim else 'a scalar'}", hint="x and y must pair up")
    if xkey == "x" and len(x) == 0:
        raise DataError(f"npz file '{path}' holds no examples ('x' has length 0)",
                        hint=NPZ_HINT)
    if x.dtype.kind not in "uifb":
        raise DataError(f"npz file '{path}': '{xkey}' has dtype {x.dtype}, not numbers",
                        hint=NPZ_HINT)


def _inputs(x: np.ndarray, keep_uint8: bool) -> torch.Tensor:
    """uint8 stays uint8 (scaled per batch) when every x array is uint8; else float32."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if not keep_uint8:
        t = t.float() / 255 if x.dtype == np.uint8 else t.float()
    return t.unsqueeze(1) if x.ndim == 3 else t   # (N, H, W) images get a channel dim


def targets(y: np.ndarray, key: str, path: str) -> torch.Tensor:
    """Integers and booleans become int64, floats float32; which the task accepts, and in
    what range, :func:`pruneql.data.checks.vet` decides."""
    if y.dtype.kind in "uib":
        return torch.from_numpy(y.astype(np.int64))
    if y.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(y)).float()
    raise DataError(f"npz file '{path}': '{key}' has dtype {y.dtype}, not numbers",
                    hint=NPZ_HINT)


# ---- python -----------------------------------------------------------------------------

PYTHON_HINT = ("the function takes no arguments and returns (train, val[, num_classes]) or "
               "{'train': ..., 'val': ..., 'test': ..., 'num_classes': ...}, with torch "
               "Datasets or DataLoaders")
_ROLES = ("train", "val", "test")


def python(target: str, opts: Options = Options()) -> Parts:
    """Call ``pkg.mod:fn`` and check what it returned; TensorDatasets are checked whole."""
    fn = _function(target)
    if opts.normalize is not None:
        renormalise(None, opts.normalize, 0, f"data function '{target}'")   # always refuses
    try:
        result = fn()
    except Exception as exc:
        raise DataError(f"data function '{target}' failed: {type(exc).__name__}: {exc}",
                        hint=PYTHON_HINT) from exc
    return _vet_parts(_parts(result, target), target, opts.task)


def _function(target: str):
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise DataError(f"python data target '{target}' is not 'pkg.module:function'",
                        hint="e.g. `data python \"mypkg.data:load\";`")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise DataError(f"cannot import data function '{target}': {exc}",
                        hint="the module must be importable (check PYTHONPATH) and define "
                             "the function") from exc
    if not callable(fn):
        raise DataError(f"data target '{target}' is a {type(fn).__name__}, not callable",
                        hint=PYTHON_HINT)
    return fn


def _parts(result, target: str) -> Parts:
    if isinstance(result, dict) and "train" in result:
        parts = Parts(result["train"], result.get("val"), result.get("num_classes"),
                      test=result.get("test"))
    elif isinstance(result, (tuple, list)) and len(result) in (2, 3):
        parts = Parts(*result)
    else:
        raise DataError(f"data function '{target}' returned {_describe(result)}",
                        hint=PYTHON_HINT)
    for role in _ROLES:
        part = getattr(parts, role)
        if not (isinstance(part, DataLoader) or _map_style(part) or
                (role != "train" and part is None)):
            raise DataError(f"data function '{target}' returned {_describe(part)} as its "
                            f"{role} part, not a torch Dataset or DataLoader",
                            hint="wrap tensors in torch.utils.data.TensorDataset(x, y)")
    nc = parts.num_classes
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise DataError(f"data function '{target}' returned num_classes={nc!r}",
                        hint="num_classes must be a positive int, or left out")
    return parts


def _vet_parts(parts: Parts, target: str, task: str | None) -> Parts:
    """Check the parts that are tensors in memory; the task is what the first of them holds
    (or the one asked for). Other datasets are checked per batch (``check_batch``)."""
    parts.task = task
    for role in _ROLES:
        pair = _tensor_pair(getattr(parts, role))
        if pair is None:
            continue
        x, y = pair
        where = f"data function '{target}', {role} set"
        checks.check_inputs(x, where)
        parts.task = checks.resolve_task(task, checks.infer_task(x, y))
        if parts.task in ("classification", "segmentation", "lm"):
            checks.check_targets(y, where, parts.task, parts.num_classes, x=x,
                                 ignore_index=checks.SEG_IGNORE)
        if parts.task == "segmentation" and bool((y == checks.SEG_IGNORE).any()):
            parts.ignore_index = checks.SEG_IGNORE
    return parts


def _tensor_pair(part) -> tuple | None:
    """(inputs, targets) of a TensorDataset of two tensors, or one inside a DataLoader."""
    dataset = part.dataset if isinstance(part, DataLoader) else part
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors
    return None


def _map_style(part) -> bool:
    # an IterableDataset has no length to split or shard: it must come inside a DataLoader
    return isinstance(part, Dataset) and not isinstance(part, IterableDataset)


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
