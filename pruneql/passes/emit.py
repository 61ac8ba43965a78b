"""Write the pruned model. The formats themselves live in :mod:`pruneql.formats`; this module
keeps the names the API and CLI import.

>>> from torch import nn
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.pt")
>>> emit(nn.Linear(4, 2), (torch.randn(1, 4),), path) == path
True
"""
from __future__ import annotations

import os
import tempfile

import torch

from pruneql.formats import (FORMATS, check_destination, check_target, format_for, save,
                             write_atomic)

__all__ = ["FORMATS", "check_destination", "check_target", "emit", "format_for",
           "write_atomic"]


def emit(module: torch.nn.Module, example_inputs: tuple, path, fmt: str | None = None,
         force: bool = False, inputs: tuple = ()) -> str:
    """Write ``module`` to ``path`` (format from the extension), verified by reloading it;
    returns the absolute path written. :func:`pruneql.formats.save` returns the details."""
    return save(module, example_inputs, path, fmt, force, inputs)["path"]
