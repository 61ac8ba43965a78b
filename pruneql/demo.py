"""`pruneql demo`: the whole pipeline on the bundled digits, with no download.

The shipped checkpoint of the digits CNN (``pruneql/zoo/digits_cnn.pt``, trained by
``bench/train_digits.py``) is compiled with ``specs/digits.prune`` — Taylor criterion,
half the channels of every conv and of fc1, fine-tuning — verified, written as
TorchScript, and measured: accuracy, FLOPs, parameters and CPU latency before and after.
"""
from __future__ import annotations

import torch

from pruneql import api, zoo
from pruneql.latency import compare
from pruneql.resources import resource
from pruneql.training import Progress

__all__ = ["demo", "resource"]


def demo(output: str, force: bool = False, progress: Progress | None = None,
         hooks: tuple = ()) -> dict:
    """Run the demo, write the pruned model to ``output``; returns the JSON-ready summary.
    ``output`` is checked before any work, so a refused path costs nothing."""
    progress = progress or Progress()
    api.check_target(output, force)
    torch.manual_seed(0)
    model = zoo.build("digits_cnn")
    model.load_state_dict(torch.load(resource("zoo", "digits_cnn.pt"), weights_only=True))
    result = api.compile(resource("specs", "digits.prune"), model, progress=progress,
                         hooks=hooks, output=output, force=force)
    report = result.report.to_dict()
    progress.start("latency (before and after, batch 1 and 256)")
    report["latency_ms"] = compare(model, result.module, result.example_inputs[0].shape[1:])
    progress.end("latency (before and after, batch 1 and 256)")
    report["output"] = result.written["path"]
    return report
