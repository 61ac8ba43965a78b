"""`pruneql demo`: the whole pipeline on the bundled digits, with no download.

The shipped checkpoint of the digits CNN (``pruneql/zoo/digits_cnn.pt``, trained by
``bench/train_digits.py``) is compiled with ``specs/digits.prune`` — Taylor criterion,
half the channels of every conv and of fc1, fine-tuning — verified, written as
TorchScript, and measured: accuracy, FLOPs, parameters and CPU latency before and after.
"""
from __future__ import annotations

import os
import statistics
import time

import torch

from pruneql import api, zoo
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
    report["latency_ms"] = latency(model, result.module, result.example_inputs[0].shape[1:])
    report["output"] = written
    return report


def latency(before: torch.nn.Module, after: torch.nn.Module, shape: tuple,
            batches: tuple = (1, 256), repeats: int = 15) -> dict:
    """Median CPU milliseconds per forward pass, both models timed alternately in one run."""
    found = {}
    for batch in batches:
        x = torch.randn(batch, *shape)
        times = {"before": [], "after": []}
        with torch.inference_mode():
            for model in (before, after):       # warm-up
                model.eval()(x)
            for _ in range(repeats):
                for key, model in (("before", before), ("after", after)):
                    start = time.perf_counter()
                    model(x)
                    times[key].append(1e3 * (time.perf_counter() - start))
        found[f"batch{batch}"] = {k: statistics.median(v) for k, v in times.items()}
    return found
