"""`pruneql demo`: the whole pipeline on the bundled digits, with no download.

The shipped checkpoint of the digits CNN (``pruneql/zoo/digits_cnn.pt``, trained by
``bench/train_digits.py``) is compiled with ``specs/digits.prune`` — Taylor criterion,
half the channels of every conv and of fc1, fine-tuning — verified, written as
TorchScript, and measured: accuracy, FLOPs, parameters and CPU latency before and after.
"""
from __future__ import annotations

import os

import torch

from pruneql import api, zoo
from pruneql.latency import compare
from pruneql.training import Progress

_HERE = os.path.dirname(os.path.abspath(__file__))


def resource(*parts: str) -> str:
    """A file shipped inside the package, or (in a source checkout) at the repo root."""
    inside = os.path.join(_HERE, *parts)
    return inside if os.path.exists(inside) else os.path.join(os.path.dirname(_HERE), *parts)


def demo(output: str, force: bool = False, progress: Progress | None = None) -> dict:
    """Run the demo, write the pruned model to ``output``; returns the JSON-ready summary."""
    torch.manual_seed(0)
    model = zoo.build("digits_cnn")
    model.load_state_dict(torch.load(resource("zoo", "digits_cnn.pt"), weights_only=True))
    result = api.compile(resource("specs", "digits.prune"), model, progress=progress)
    written = result.save(output, force=force)
    report = result.report.to_dict()
    report["latency_ms"] = compare(model, result.module, result.example_inputs[0].shape[1:])
    report["output"] = written
    return report
