"""The data sources other than CIFAR-10: bundled digits, npz, image folders, python.

Each reader takes the statement's path and returns :class:`Tensors` (the whole set in
memory) or :class:`Parts` (what a user's function returned); splitting and batching happen
in :mod:`pruneql.data`.

    >>> t = digits(None)
    >>> tuple(t.x.shape), t.x.dtype, t.num_classes
    ((1797, 1, 8, 8), torch.uint8, 10)
"""
from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from pruneql.data import images
from pruneql.data.base import Normalise, Parts, Tensors
from pruneql.errors import DataError

DIGITS_FILE = Path(__file__).with_name("digits.npz")
NPZ_HINT = "write it with numpy.savez(path, x=inputs, y=labels[, x_val=..., y_val=...])"


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

def digits(path: str | None) -> Tensors:
    """The bundled UCI digits: 1,797 8x8 images, pixel values 0..16 (scaled per batch)."""
    if path is not None:
        raise DataError(f"the digits source is bundled and takes no path (got '{path}')",
                        hint="write `data digits;`, or `data npz \"FILE\";` for your own data")
    with np.load(DIGITS_FILE) as arrays:
        x, y = arrays["x"], arrays["y"]
    return Tensors(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long(),
                   num_classes=10, collate=Normalise(16))


# ---- npz --------------------------------------------------------------------------------

def npz(path: str) -> Tensors:
    """Arrays ``x``, ``y`` and optionally ``x_val``, ``y_val`` from a numpy ``.npz`` file."""
    arrays = _read_npz(existing(path, "npz", folder=False), path)
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(f"npz file '{path}' has no {' or '.join(map(repr, missing))} array "
                        f"(it holds {sorted(arrays) or 'nothing'})", hint=NPZ_HINT)
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"npz file '{path}' has only one of 'x_val' and 'y_val'",
                        hint="give both validation arrays, or neither (then `val` splits)")
    pairs = [("x", "y")] + ([("x_val", "y_val")] if "x_val" in arrays else [])
    for xkey, ykey in pairs:
        _check_pair(arrays[xkey], arrays[ykey], xkey, ykey, path)
    keep_uint8 = all(arrays[xkey].dtype == np.uint8 for xkey, _ in pairs)
    xs = [_inputs(arrays[xkey], keep_uint8) for xkey, _ in pairs]
    ys = [_targets(arrays[ykey], ykey, path) for _, ykey in pairs]
    if len(xs) == 2 and xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(f"npz file '{path}': 'x' examples have shape {tuple(xs[0].shape[1:])}"
                        f" but 'x_val' examples {tuple(xs[1].shape[1:])}", hint=NPZ_HINT)
    labelled = ys[0].dtype == torch.long
    num_classes = int(max(int(y.max()) for y in ys if len(y)) + 1) if labelled else None
    val = (xs[1], ys[1]) if len(xs) == 2 else (None, None)
    return Tensors(xs[0], ys[0], *val, num_classes=num_classes,
                   collate=Normalise(255) if keep_uint8 else None)


def _read_npz(file: Path, path: str) -> dict:
    try:
        # allow_pickle=False: an .npz must never run code when it is read
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):   # a plain .npy gives one ndarray
            raise DataError(f"'{path}' holds a single array, not named 'x' and 'y' arrays",
                            hint=NPZ_HINT)
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read npz file '{path}': {exc}", hint=NPZ_HINT) from exc


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


def _targets(y: np.ndarray, key: str, path: str) -> torch.Tensor:
    """Integer labels become int64 class indices; float targets stay float (no classes)."""
    if y.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(y)).float()
    if y.dtype.kind not in "uib" or y.ndim != 1:
        raise DataError(f"npz file '{path}': '{key}' must be 1-D integer labels "
                        f"(got dtype {y.dtype}, shape {y.shape})", hint=NPZ_HINT)
    if len(y) and y.min() < 0:
        raise DataError(f"npz file '{path}': '{key}' has negative label {y.min()}",
                        hint="labels are class indices 0..num_classes-1")
    return torch.from_numpy(y.astype(np.int64))


# ---- image folders ----------------------------------------------------------------------

def imagefolder(path: str) -> Tensors:
    """ROOT/CLASS/IMAGE: classes are the sorted sub-folder names, labels their index."""
    root = existing(path, "imagefolder", folder=True)
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"image folder '{path}' has no class sub-folders",
                        hint="put each class's images in its own folder: ROOT/cat/1.png, "
                             "ROOT/dog/2.png")
    pictures, labels = [], []
    for label, folder in enumerate(classes):
        files = _image_files(folder, path)
        pictures += [(file, images.decode(file.read_bytes(), str(file))) for file in files]
        labels += [label] * len(files)
    x = _stack(pictures)
    return Tensors(x, torch.tensor(labels, dtype=torch.long), num_classes=len(classes),
                   collate=Normalise(255))


def _image_files(folder: Path, path: str) -> list[Path]:
    # hidden files (.DS_Store, editor droppings) are not images anyone meant to include
    files = sorted(f for f in folder.rglob("*") if f.is_file()
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    if not files:
        raise DataError(f"class folder '{folder.name}' in '{path}' holds no images",
                        hint="remove the empty folder, or add its images")
    return files


def _stack(pictures: list) -> torch.Tensor:
    """(N, C, H, W) uint8: alpha dropped, grayscale widened to RGB if any image is colour."""
    first_file, first = pictures[0]
    for file, picture in pictures:
        if picture.shape[:2] != first.shape[:2]:
            raise DataError(f"image '{file}' is {picture.shape[1]}x{picture.shape[0]} but "
                            f"'{first_file}' is {first.shape[1]}x{first.shape[0]}",
                            hint="all images must share one size; resize them first")
    opaque = [p[..., :3] if p.shape[2] >= 3 else p[..., :1] for _, p in pictures]
    channels = max(p.shape[2] for p in opaque)
    widened = [np.repeat(p, channels // p.shape[2], axis=2) for p in opaque]
    return torch.from_numpy(np.stack(widened)).permute(0, 3, 1, 2).contiguous()


# ---- python -----------------------------------------------------------------------------

PYTHON_HINT = ("the function takes no arguments and returns (train, val[, num_classes]) or "
               "{'train': ..., 'val': ..., 'num_classes': ...}, with torch Datasets or "
               "DataLoaders")


def python(target: str) -> Parts:
    """Call ``pkg.mod:fn`` and check what it returned."""
    fn = _function(target)
    try:
        result = fn()
    except Exception as exc:
        raise DataError(f"data function '{target}' failed: {type(exc).__name__}: {exc}",
                        hint=PYTHON_HINT) from exc
    return _parts(result, target)


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
        parts = Parts(result["train"], result.get("val"), result.get("num_classes"))
    elif isinstance(result, (tuple, list)) and len(result) in (2, 3):
        parts = Parts(*result)
    else:
        raise DataError(f"data function '{target}' returned {_describe(result)}",
                        hint=PYTHON_HINT)
    for role, part in (("train", parts.train), ("val", parts.val)):
        if not (isinstance(part, DataLoader) or _map_style(part) or (role, part) == ("val", None)):
            raise DataError(f"data function '{target}' returned {_describe(part)} as its "
                            f"{role} part, not a torch Dataset or DataLoader",
                            hint="wrap tensors in torch.utils.data.TensorDataset(x, y)")
    nc = parts.num_classes
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise DataError(f"data function '{target}' returned num_classes={nc!r}",
                        hint="num_classes must be a positive int, or left out")
    return parts


def _map_style(part) -> bool:
    # an IterableDataset has no length to split or shard: it must come inside a DataLoader
    return isinstance(part, Dataset) and not isinstance(part, IterableDataset)


def _describe(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
