"""CPU (or GPU) latency: whole models timed side by side, and per-layer latency tables."""
from __future__ import annotations

import statistics
import time

import torch

from pruneql.graph.channels import layer_flops


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@torch.inference_mode()
def median_ms(fn, repeats: int = 7, warmup: int = 2) -> float:
    """Median milliseconds of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


@torch.inference_mode()
def compare(before: torch.nn.Module, after: torch.nn.Module, shape: tuple,
            batches: tuple = (1, 256), repeats: int = 15, make=None) -> dict:
    """Median ms per forward pass of two models, timed alternately in one run, on
    ``make(batch)`` (default: a random float tensor of ``(batch, *shape)``)."""
    found = {}
    for batch in batches:
        x = make(batch) if make is not None else torch.randn(batch, *shape)
        times = {"before": [], "after": []}
        for model in (before, after):       # warm-up
            model.eval()(x)
        for _ in range(repeats):
            for key, model in (("before", before), ("after", after)):
                start = time.perf_counter()
                model(x)
                times[key].append(1e3 * (time.perf_counter() - start))
        found[f"batch{batch}"] = {k: statistics.median(v) for k, v in times.items()}
    return found


def layer_table(analysis, model: torch.nn.Module, example_inputs: tuple) -> dict:
    """Per conv/linear layer, a line ``ms = a + b · MACs`` fitted through the layer timed
    alone at full and at half width (framework overhead makes small layers far from
    proportional to their FLOPs); ``"<rest>"`` is everything else in the model."""
    table = {}
    for layer in analysis.layers.values():
        if layer.kind in ("conv", "convT", "linear") and layer.in_shape is not None \
                and not layer.functional:
            table[layer.name] = _fit(layer)
    whole = median_ms(lambda: model(*example_inputs))
    table["<rest>"] = max(0.0, whole - sum(a + b * layer_flops(analysis.layers[n])
                                           for n, (a, b) in table.items()))
    return table


def _fit(layer) -> tuple:
    full = median_ms(lambda: layer.module(torch.randn(layer.in_shape)))
    half = _half(layer)
    if half is None:
        return 0.0, full / max(layer_flops(layer), 1)
    module, shape, flops = half
    small = median_ms(lambda: module(torch.randn(shape)))
    span = max(layer_flops(layer) - flops, 1)
    slope = max(0.0, (full - small) / span)
    return max(0.0, full - slope * layer_flops(layer)), slope


def _half(layer):
    """The layer at half its width, its input shape and MACs; None if it has no half."""
    m, dim = layer.module, (len(layer.in_shape) - 1 if layer.kind == "linear" else 1)
    shape = list(layer.in_shape)
    if shape[dim] < 2:
        return None
    if layer.kind == "linear":
        module = torch.nn.Linear(m.in_features // 2, max(1, m.out_features // 2))
        n_in, n_out = m.in_features // 2, max(1, m.out_features // 2)
    else:
        groups = m.groups if m.groups == 1 else max(1, m.groups // 2)
        n_in = m.in_channels // m.groups * groups if m.groups > 1 else m.in_channels // 2
        n_out = m.out_channels // m.groups * groups if m.groups > 1 else max(1, m.out_channels // 2)
        module = type(m)(n_in, n_out, m.kernel_size, stride=m.stride, padding=m.padding,
                         dilation=m.dilation, groups=groups)
    shape[dim] = n_in if layer.kind != "linear" else m.in_features // 2
    return module.eval(), tuple(shape), layer_flops(layer, n_in, n_out)
