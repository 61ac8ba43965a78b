"""Token ids for transformer models: ``data tokens ["file.npz"];``.

An npz file holds ``x``, integer token ids of shape (N, T), and ``y``: either one label per
sequence, (N,), for sequence classification, or next-token targets shaped like ``x``,
(N, T), for language modelling (``-100`` marks a position the loss ignores). Optional:
``x_val``/``y_val`` and ``x_test``/``y_test`` (held-out sets), ``vocab_size`` (ids must
be below it; without it, the largest id + 1) and ``num_classes`` (for labels).

Without a path, the bundled corpus (``corpus.txt``, made by :mod:`make_corpus`): bytes of
generated English-like text cut into windows of :data:`WINDOW` tokens, each with the next
token as its target, over a vocabulary of 256 byte ids.

    >>> t = tokens(None)
    >>> tuple(t.x.shape[1:]), t.vocab_size, t.task, torch.equal(t.x[0, 1:], t.y[0, :-1])
    ((64,), 256, 'lm', True)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pruneql.data import checks
from pruneql.data.base import Options, Tensors, renormalise
from pruneql.data.sources import existing, pairs, read_npz, scalar, targets
from pruneql.errors import DataError

CORPUS_FILE = Path(__file__).with_name("corpus.txt")
WINDOW = 64
BYTE_VOCAB = 256
TOKENS_HINT = ("write it with numpy.savez(path, x=ids, y=labels_or_next_ids[, vocab_size=V])"
               "; ids are integers in 0..V-1")


def tokens(path: str | None, opts: Options = Options()) -> Tensors:
    """The bundled corpus, or the token npz at ``path``."""
    if opts.normalize is not None:
        renormalise(None, opts.normalize, 0, "token data")   # always refuses
    if path is None:
        return checks.vet(corpus(), opts.task, "the bundled corpus")
    arrays = read_npz(existing(path, "tokens", folder=False), path, TOKENS_HINT)
    where = f"tokens file '{path}'"
    sets = {xkey: (_ids(arrays[xkey], f"{where}, {xkey}"), targets(arrays[ykey], ykey, path))
            for xkey, ykey in pairs(arrays, path, _shapes)}
    vocab = scalar(arrays, "vocab_size", path) or _largest(sets) + 1
    for key, (x, _) in sets.items():
        check_ids(x, f"{where}, {key}", vocab)
    raw = Tensors(*sets["x"], *sets.get("x_val", (None, None)),
                  *sets.get("x_test", (None, None)), vocab_size=vocab)
    # float targets are no task of their own here: they are bad labels or bad ids
    task = checks.resolve_task(opts.task, "lm" if raw.y.dim() == 2 else "classification")
    raw.num_classes = vocab if task == "lm" else scalar(arrays, "num_classes", path)
    return checks.vet(raw, task, where)


def corpus(window: int = WINDOW) -> Tensors:
    """The bundled corpus as non-overlapping windows: ``y`` is ``x`` one byte on."""
    data = np.frombuffer(CORPUS_FILE.read_bytes(), np.uint8).astype(np.int64)
    n = (len(data) - 1) // window
    x = torch.from_numpy(data[:n * window].reshape(n, window))
    y = torch.from_numpy(data[1:n * window + 1].reshape(n, window))
    return Tensors(x, y, num_classes=BYTE_VOCAB, vocab_size=BYTE_VOCAB, task="lm")


def check_ids(x: torch.Tensor, where: str, vocab: int) -> None:
    """Token ids in ``0 .. vocab - 1``, or a DataError naming the first that is not.

    >>> check_ids(torch.tensor([[1, 2], [3, 0]]), "x", 4)
    >>> try:
    ...     check_ids(torch.tensor([[1, 2], [3, 4]]), "x", 4)
    ... except DataError as exc:
    ...     print(exc.message)
    x: token id 4 at example 1 is out of range for a vocabulary of 4
    """
    bad = (x < 0) | (x >= vocab)
    if not bool(bad.any()):
        return
    index, position = (int(i) for i in bad.nonzero()[0])
    value = int(x[index, position])
    what = "negative token id" if value < 0 else "token id"
    tail = "" if value < 0 else f" is out of range for a vocabulary of {vocab}"
    raise DataError(f"{where}: {what} {value} at example {index}{tail}",
                    hint="ids index the embedding: 0..vocab_size-1 (store `vocab_size` in "
                         "the npz when the data does not use every id)")


def _shapes(x: np.ndarray, y: np.ndarray, xkey: str, ykey: str, path: str) -> None:
    if x.ndim != 2:
        raise DataError(f"tokens file '{path}': '{xkey}' has shape {x.shape}; expected "
                        f"(N, T) token ids", hint=TOKENS_HINT)
    if y.ndim < 1 or len(y) != len(x):
        raise DataError(f"tokens file '{path}': '{xkey}' has {len(x)} sequences but "
                        f"'{ykey}' has {len(y) if y.ndim else 'a scalar'}",
                        hint="x and y must pair up")
    if xkey == "x" and len(x) == 0:
        raise DataError(f"tokens file '{path}' holds no sequences", hint=TOKENS_HINT)


def _ids(x: np.ndarray, where: str) -> torch.Tensor:
    if x.dtype.kind not in "ui":
        flat = x.reshape(-1)
        shown = f" (e.g. {flat[0]!r} at example 0)" if flat.size else ""
        raise DataError(f"{where}: token ids must be integers, got {x.dtype}{shown}",
                        hint=TOKENS_HINT)
    return torch.from_numpy(x.astype(np.int64))


def _largest(sets: dict) -> int:
    """The largest id among the inputs (and next-token targets)."""
    largest = 0
    for x, y in sets.values():
        largest = max(largest, int(x.max()) if x.numel() else 0)
        if y.shape == x.shape and y.numel():
            largest = max(largest, int(y.max()))
    return largest
