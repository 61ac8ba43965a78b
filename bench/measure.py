"""Measurements, in one process: compile times (per pass, from ``pruneql.passes.Timings``),
forward time of the original, FLOPs and parameters, model health, latency.

Timing conventions: the things compared alternate within every repeat (the order reverses
from one repeat to the next), every compile gets a freshly built model outside the timed
region, and comparisons are medians of per-repeat ratios, never single absolute times.
"""
from __future__ import annotations

import cProfile
import gc
import math
import os
import pstats
import random
import re
import statistics
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.tools import ROOT, TOOLS, Spec, run_tool
from pruneql import passes

MIN_SAMPLE_S = 0.04                     # a latency sample loops until about this long


# ---- compile time ---------------------------------------------------------------------------

@dataclass
class CompileRuns:
    """Per repeat: seconds of each tool, PruneQL's seconds per pass, and the median forward
    time of the original at the example batch, all measured in one alternating loop."""

    seconds: dict = field(default_factory=dict)     # tool -> [s]
    passes: dict = field(default_factory=dict)      # "pq"/"pqv" -> [{pass: s}]
    forward: list = field(default_factory=list)     # [s], original at batch 1
    last: dict = field(default_factory=dict)        # tool -> its last output
    errors: dict = field(default_factory=dict)
    tp_warnings: list = field(default_factory=list)

    def paired(self, a: str, b: str) -> float | None:
        """Median over repeats of ``a / b`` (a tool name or ``"fwd"``)."""
        xs, ys = self._series(a), self._series(b)
        return statistics.median(p / q for p, q in zip(xs, ys)) if xs and ys else None

    def verify_forwards(self) -> float | None:
        """Median over repeats of (compile with verify − without) ÷ forward time."""
        pq, pqv = self.seconds.get("pq"), self.seconds.get("pqv")
        if not pq or not pqv or not self.forward:
            return None
        return statistics.median((v - p) / f for p, v, f in zip(pq, pqv, self.forward))

    def pass_medians(self, tool: str) -> dict:
        """``{pass: median seconds}`` over the repeats, in pipeline order."""
        runs = self.passes.get(tool) or []
        return {name: statistics.median(r.get(name, 0.0) for r in runs)
                for name in (runs[0] if runs else {})}

    def _series(self, name: str) -> list:
        return self.forward if name == "fwd" else self.seconds.get(name, [])


def compile_times(spec: Spec, keep, round_to, repeats: int, forwards: int = 5,
                  log=print) -> CompileRuns:
    """Warm every tool up once, then ``repeats`` rounds of: PruneQL, Torch-Pruning,
    PruneQL + verify and ``forwards`` forwards of the original (order reversed every
    other round)."""
    runs, x = CompileRuns(), spec.inputs(1)
    _warm_up(runs, spec, x, keep, round_to)
    live = [t for t in TOOLS if t not in runs.errors] + ["fwd"]
    original = spec.build()
    forward_seconds(original, x, 2)
    runs.seconds = {t: [] for t in live if t != "fwd"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(repeats):
            for job in (live if r % 2 == 0 else live[::-1]):
                if job == "fwd":
                    runs.forward.append(forward_seconds(original, x, forwards))
                else:
                    _timed_compile(runs, job, spec, x, keep, round_to)
            log(f"[{spec.label}] compile repeat {r + 1}/{repeats}: " + ", ".join(
                f"{t} {runs.seconds[t][-1]:.2f}s" for t in runs.seconds)
                + f", forward {runs.forward[-1]:.3f}s")
    return runs


def _warm_up(runs: CompileRuns, spec: Spec, x, keep, round_to) -> None:
    for tool in TOOLS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                runs.last[tool] = run_tool(tool, spec, spec.build(), x, keep, round_to)[1]
            except Exception as exc:                            # noqa: BLE001
                runs.errors[tool] = first_line(exc)
        if tool == "tp":
            runs.tp_warnings = sorted({str(w.message).splitlines()[0][:160] for w in caught})


def _timed_compile(runs: CompileRuns, tool: str, spec: Spec, x, keep, round_to) -> None:
    model = spec.build()
    gc.collect()
    timings = passes.Timings()
    seconds, out = run_tool(tool, spec, model, x, keep, round_to, hooks=(timings,))
    runs.seconds[tool].append(seconds)
    runs.last[tool] = out
    if tool != "tp":
        runs.passes.setdefault(tool, []).append(dict(timings.seconds))


@torch.no_grad()
def forward_seconds(model: nn.Module, x: torch.Tensor, n: int) -> float:
    """Median of ``n`` timed forwards (no gradients, as verify runs them)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


# ---- what the pruned models are -------------------------------------------------------------

def count(model: nn.Module, x: torch.Tensor) -> dict:
    """FLOPs (multiply-adds of conv and linear layers) and parameters, by forward hooks on a
    batch-1 input: the same neutral counter for the original and every pruned model."""
    macs = 0

    def hook(module, inputs, out):
        nonlocal macs
        if isinstance(module, nn.modules.conv._ConvNd):
            macs += out.numel() * (module.in_channels // module.groups) * math.prod(
                module.kernel_size)
        elif isinstance(module, nn.Linear):
            macs += out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        with torch.inference_mode():
            out = model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return {"flops": int(macs), "params": sum(p.numel() for p in model.parameters()),
            "out_shape": tuple(out.shape)}


def health(model: nn.Module, x: torch.Tensor, want_shape: tuple) -> tuple:
    """(ok, message): does the model run on a batch and give the original's output shape?"""
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as exc:                                    # noqa: BLE001
        return False, f"forward fails: {first_line(exc)}"
    if tuple(out.shape) != tuple(want_shape):
        return False, f"output shape {tuple(out.shape)}, expected {tuple(want_shape)}"
    return True, f"runs, output {tuple(out.shape)}"


def max_rel_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float | None:
    """max |a(x) − b(x)| ÷ max |a(x)|, or None when either fails or the shapes differ."""
    try:
        with torch.inference_mode():
            ya, yb = a(x), b(x)
    except Exception:                                           # noqa: BLE001
        return None
    if ya.shape != yb.shape:
        return None
    return float((ya - yb).abs().max() / ya.abs().max().clamp(min=1e-12))


# ---- latency -----------------------------------------------------------------------------

@torch.inference_mode()
def latency(models: dict, x: torch.Tensor, runs: int, warmup: int = 3) -> dict:
    """Per-model forward latency samples, every model once per round in a shuffled (seeded)
    order. A sample is one untimed forward (no cache state carried over from the previous
    model), then a timed loop of forwards sized so the first model takes ~MIN_SAMPLE_S."""
    names = list(models)
    for m in models.values():
        for _ in range(warmup):
            m(x)
    inner = max(1, round(MIN_SAMPLE_S / max(forward_seconds(models[names[0]], x, 1), 1e-6)))
    samples = {n: [] for n in names}
    rng = random.Random(0)
    for _ in range(runs):
        order = names[:]
        rng.shuffle(order)
        for n in order:
            models[n](x)
            t0 = time.perf_counter()
            for _ in range(inner):
                models[n](x)
            samples[n].append((time.perf_counter() - t0) / inner)
    return samples


def paired_speedup(samples: dict, base: str, name: str) -> float:
    """Median over rounds of base/name: both were timed back to back in each round."""
    return statistics.median(b / p for b, p in zip(samples[base], samples[name]))


# ---- cProfile of one compile (--profile) ----------------------------------------------------

def profile_compile(spec: Spec, keep, round_to, verify: bool = False, top: int = 15) -> dict:
    """The functions of one warm compile by own time and, PruneQL's, by cumulative time."""
    x = spec.inputs(1)
    run_tool("pqv" if verify else "pq", spec, spec.build(), x, keep, round_to)    # warm-up
    model, prof = spec.build(), cProfile.Profile()
    gc.collect()
    prof.enable()
    run_tool("pqv" if verify else "pq", spec, model, x, keep, round_to)
    prof.disable()
    rows = [{"func": _short(file, line, func), "calls": nc, "own": tt, "cum": ct}
            for (file, line, func), (_, nc, tt, ct, _) in pstats.Stats(prof).stats.items()]
    return {"own": sorted(rows, key=lambda r: -r["own"])[:top],
            "cum": sorted((r for r in rows if r["func"].startswith("pruneql/")),
                          key=lambda r: -r["cum"])[:top]}


def _short(file: str, line: int, func: str) -> str:
    file = re.sub(r".*site-packages/", "", file.replace(ROOT + os.sep, ""))
    file = re.sub(r"^/.*/lib/python3[.]\d+/", "", file)
    return f"{file}:{line}({func})"
