"""PruneQL side by side with Torch-Pruning (DepGraph), at the same uniform L1 ratio.

For every model: compile time (PruneQL with and without verify, Torch-Pruning's pruner
construction + ``step()``), peak memory of one compile in a fresh process, FLOPs/params
after pruning counted by one neutral counter for every model, whether Torch-Pruning's
model still runs, and the CPU speedup of each pruned model at batch 1 and 8 against its
FLOPs ratio.

    python bench/compare.py                    # full run, prints tables, writes bench/RESULTS.md
    python bench/compare.py --quick            # 1-repeat smoke run, prints only
    python bench/compare.py --models resnet50,mobilenet_v2 --repeats 5 --keep 0.5 --round 8

Models are zoo names; ``resnet56_cifar:inner`` prunes only the first conv of every block
(the residual streams left alone), which is what Torch-Pruning can do on option-A ResNets.
Needs ``pip install -e ".[bench]"`` (torch-pruning). Timing conventions: tools alternate
run by run, every run gets a fresh model built outside the timed region, medians are
reported, and tools are compared by ratios measured in the same process.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import math
import os
import platform
import random
import pstats
import re
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:               # measure this working tree's pruneql
    sys.path.insert(0, ROOT)

import torch                            # noqa: E402
from torch import nn                    # noqa: E402

import pruneql                          # noqa: E402
from pruneql import passes, zoo         # noqa: E402

try:
    import torch_pruning as tp
except ImportError:                     # pragma: no cover - a benchmark-only dependency
    sys.exit("bench/compare.py needs Torch-Pruning: pip install -e \".[bench]\" "
             "(or pip install torch-pruning)")

OUT = os.path.join(ROOT, "bench", "RESULTS.md")
DEFAULT_MODELS = "resnet50,mobilenet_v2,densenet121,resnet56_cifar,resnet56_cifar:inner"
HEAVY = {"densenet121": 3}              # repeat caps: keeps the default run near 10 minutes
INNER = re.compile(r"layer\d+\.\d+\.conv1")
MIN_SAMPLE_S = 0.04                     # a latency sample loops until about this long
TOOLS = ("pq", "tp", "pqv")
LABEL = {"pq": "PruneQL", "pqv": "PruneQL + verify", "tp": "Torch-Pruning",
         "pq_r8": "PruneQL round 8", "orig": "original",
         "tp_fx": "Torch-Pruning's model traced by torch.fx (control)"}


# ---------------------------------------------------------------------------------------
# the two tools


@dataclass(frozen=True)
class Spec:
    """A benchmark model: a zoo name, optionally ``:inner`` (block-internal convs only)."""

    name: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> "Spec":
        name, _, variant = text.strip().partition(":")
        if name not in zoo.names():
            raise SystemExit(f"unknown zoo model {name!r}; one of {', '.join(zoo.names())}")
        if variant not in ("", "inner"):
            raise SystemExit(f"unknown variant {variant!r} (only ':inner')")
        if variant and not name.endswith("_cifar"):
            raise SystemExit("':inner' is for the CIFAR ResNets (layer*.N.conv1)")
        return cls(name, variant)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name

    def build(self) -> nn.Module:
        return zoo.build(self.name).eval()      # seeded: identical weights every time

    def inputs(self, batch: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch, *zoo.entry(self.name).input_shape, generator=g)

    def recipe(self, keep: float, round_to: int | None) -> str:
        select = "conv1 in layer{1..3}" if self.variant == "inner" else "**"
        return f"prune {select} by l1 keep {keep:g}" + (f" round {round_to}" if round_to else "")

    def tp_ignored(self, model: nn.Module) -> list:
        """Torch-Pruning's ``ignored_layers``: the classifier (PruneQL freezes it because it
        reaches the model output); for ``:inner`` every layer PruneQL's recipe leaves out."""
        layers = [(n, m) for n, m in model.named_modules()
                  if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
        if self.variant == "inner":
            return [m for n, m in layers if not INNER.fullmatch(n)]
        linears = [m for _, m in layers if isinstance(m, nn.Linear)]
        return [linears[-1] if linears else layers[-1][1]]


_OUT_FNS = None


class ProducerL1(tp.importance.Importance):
    """PruneQL's ``l1`` expressed with Torch-Pruning's group API: a channel's score is the
    mean, over the conv/linear layers that *write* it, of its filter's L1 norm (consumers'
    input weights and BatchNorm are not counted). Used only for the decision cross-check;
    the timed runs use Torch-Pruning's stock ``MagnitudeImportance(p=1)``."""

    @torch.no_grad()
    def __call__(self, group):
        global _OUT_FNS
        if _OUT_FNS is None:
            f = tp.pruner.function
            _OUT_FNS = (f.prune_conv_out_channels, f.prune_depthwise_conv_out_channels,
                        f.prune_linear_out_channels)
        n = len(group[0][1])
        total, count = torch.zeros(n), torch.zeros(n)
        for i, (dep, idxs) in enumerate(group):
            if dep.pruning_fn not in _OUT_FNS:
                continue
            scores = dep.layer.weight.data[idxs].flatten(1).abs().sum(1).float()
            root = torch.as_tensor(group[i].root_idxs)
            total.scatter_add_(0, root, scores)
            count.scatter_add_(0, root, torch.ones_like(scores))
        return total / count.clamp(min=1) if count.any() else None


def run_pq(spec: Spec, model, x, keep, round_to, verify: bool):
    """Seconds and Result of ``pruneql.compile`` (trace, groups, score, rewrite[, verify])."""
    t0 = time.perf_counter()
    result = pruneql.compile(spec.recipe(keep, round_to), model, example_inputs=x,
                             verify=verify)
    return time.perf_counter() - t0, result


def run_tp(spec: Spec, model, x, keep, round_to, importance=None):
    """Seconds and the (in place) pruned model: DependencyGraph/pruner construction + step.
    ``pruning_ratio = 1 - keep``: Torch-Pruning keeps ``int(n * (1 - ratio))`` channels per
    group (local pruning), PruneQL ``floor(n * keep)`` -- the same count."""
    ignored = spec.tp_ignored(model)
    importance = importance or tp.importance.MagnitudeImportance(p=1)
    t0 = time.perf_counter()
    pruner = tp.pruner.MagnitudePruner(model, x, importance=importance,
                                       pruning_ratio=1.0 - keep, ignored_layers=ignored,
                                       round_to=round_to)
    pruner.step()
    return time.perf_counter() - t0, model


def run_tool(tool: str, spec: Spec, model, x, keep, round_to):
    if tool == "tp":
        return run_tp(spec, model, x, keep, round_to)
    seconds, result = run_pq(spec, model, x, keep, round_to, verify=(tool == "pqv"))
    return seconds, result


# ---------------------------------------------------------------------------------------
# measurements


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
        return False, f"forward fails: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    if tuple(out.shape) != tuple(want_shape):
        return False, f"output shape {tuple(out.shape)}, expected {tuple(want_shape)}"
    return True, f"runs, output {tuple(out.shape)}"


def max_rel_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float | None:
    try:
        with torch.inference_mode():
            ya, yb = a(x), b(x)
    except Exception:                                           # noqa: BLE001
        return None
    if ya.shape != yb.shape:
        return None
    return float((ya - yb).abs().max() / ya.abs().max().clamp(min=1e-12))


def latency(models: dict, x: torch.Tensor, runs: int, warmup: int = 3) -> dict:
    """Per-model forward latency samples, every model once per round in a shuffled (seeded)
    order. A sample is one untimed forward, then a timed loop of forwards sized so the
    original takes ~MIN_SAMPLE_S (the same loop count for every model)."""
    names = list(models)
    with torch.inference_mode():
        for m in models.values():
            for _ in range(warmup):
                m(x)
        t0 = time.perf_counter()
        models[names[0]](x)
        inner = max(1, round(MIN_SAMPLE_S / max(time.perf_counter() - t0, 1e-6)))
        samples = {n: [] for n in names}
        rng = random.Random(0)
        for _ in range(runs):
            order = names[:]
            rng.shuffle(order)
            for n in order:
                models[n](x)            # untimed: no cache state carried over from the last model
                t0 = time.perf_counter()
                for _ in range(inner):
                    models[n](x)
                samples[n].append((time.perf_counter() - t0) / inner)
    return samples


def paired_speedup(samples: dict, base: str, name: str) -> float:
    """Median over rounds of base/name: both were timed back to back in each round."""
    return statistics.median(b / p for b, p in zip(samples[base], samples[name]))


# ---------------------------------------------------------------------------------------
# peak memory: one compile in a fresh process


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def one(args) -> None:
    """``--one TOOL``: build the model, reset the peak RSS, compile once, print JSON."""
    import resource
    torch.set_num_threads(args.threads)
    spec = Spec.parse(args.model)
    if args.warm:       # first compile of the process on a tiny model: lazy imports, caches
        tiny = Spec("digits_cnn")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_tool(args.one, tiny, tiny.build(), tiny.inputs(1), args.keep, None)
    model, x = spec.build(), spec.inputs(1)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    gc.collect()
    reset = _reset_peak()
    base = _status_kib("VmRSS")
    base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = None
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_tool(args.one, spec, model, x, args.keep, args.round)
    except Exception as exc:                                    # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    if reset and base is not None:
        peak_kib, method = _status_kib("VmHWM") - base, "VmHWM-VmRSS"
    else:       # no clear_refs: ru_maxrss since process start, less the peak before
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_maxrss
        method = "ru_maxrss delta"
    print(json.dumps({"tool": args.one, "peak_mib": peak_kib / 1024, "method": method,
                      "weights_mib": weights / 2 ** 20, "cold_s": seconds, "error": error}))


MEMORY_RUNS = (("pq", True), ("pqv", True), ("tp", True), ("pq", False), ("tp", False))


def peak_memory(spec: Spec, args, reverse: bool) -> dict:
    """``{(tool, "warm"|"cold"): result}``, each from its own fresh process. Warm: after one
    compile of the tiny digits_cnn by the same tool (lazy imports and one-time set-up paid);
    cold: the first compile of the process."""
    found = {}
    for tool, warm in (MEMORY_RUNS[::-1] if reverse else MEMORY_RUNS):
        cmd = [sys.executable, os.path.abspath(__file__), "--one", tool, "--model", spec.label,
               "--keep", repr(args.keep), "--threads", str(args.threads)]
        cmd += ["--warm"] if warm else []
        cmd += ["--round", str(args.round)] if args.round else []
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        key = f"{tool}/{'warm' if warm else 'cold'}"
        if proc.returncode or not lines:
            found[key] = {"peak_mib": None, "error": (proc.stderr.strip().splitlines()
                                                      or ["no output"])[-1]}
        else:
            found[key] = json.loads(lines[-1])
    return found


# ---------------------------------------------------------------------------------------
# per-pass profile of PruneQL's compile


def profile_passes(spec: Spec, keep, round_to, repeats: int) -> dict:
    """Median seconds per pass (compile with verify) over ``repeats`` fresh models after one
    warm-up, plus the top functions of one cProfile'd compile without verify."""
    import cProfile
    original = passes.COMPILE
    times: dict = {}

    def timed(step):
        def wrapper(ctx):
            t0 = time.perf_counter()
            try:
                return step(ctx)
            finally:
                times.setdefault(step.__name__, []).append(time.perf_counter() - t0)
        wrapper.__name__ = step.__name__
        return wrapper

    x = spec.inputs(1)
    passes.COMPILE = tuple(timed(step) for step in original)
    try:
        run_pq(spec, spec.build(), x, keep, round_to, verify=True)      # warm-up
        times.clear()
        for _ in range(repeats):
            model = spec.build()
            gc.collect()
            run_pq(spec, model, x, keep, round_to, verify=True)
    finally:
        passes.COMPILE = original
    per_pass = {name: statistics.median(v) for name, v in times.items()}
    prof = cProfile.Profile()
    model = spec.build()
    gc.collect()
    prof.enable()
    run_pq(spec, model, x, keep, round_to, verify=False)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _) in stats.stats.items():
        short = re.sub(r".*site-packages/", "", filename.replace(ROOT + os.sep, ""))
        short = re.sub(r"^/.*/lib/python3\.\d+/", "", short)
        rows.append({"func": f"{short}:{line}({func})", "calls": nc, "tottime": tt,
                     "cumtime": ct})
    top_tot = sorted(rows, key=lambda r: -r["tottime"])[:12]
    top_cum = sorted((r for r in rows if "pruneql" in r["func"]),
                     key=lambda r: -r["cumtime"])[:15]
    return {"per_pass": per_pass, "top_tottime": top_tot, "top_cumtime": top_cum,
            "repeats": repeats}


# ---------------------------------------------------------------------------------------
# one model, start to finish


@dataclass
class ModelResult:
    spec: Spec
    repeats: int
    times: dict = field(default_factory=dict)           # tool -> [seconds]
    counts: dict = field(default_factory=dict)          # variant -> {flops, params}
    pq_report: dict = field(default_factory=dict)       # PruneQL's own before/after
    tp_health: tuple = (None, "")
    cross: float | None = None                          # TP(producer L1) vs PruneQL output
    cross_note: str = ""
    latency: dict = field(default_factory=dict)         # batch -> {variant -> samples}
    memory: dict = field(default_factory=dict)
    uneven: list = field(default_factory=list)          # PruneQL groups off the uniform keep
    widths: list = field(default_factory=list)          # (before, after) of their producers
    tp_warnings: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)


def bench_model(spec: Spec, args, log) -> ModelResult:
    repeats = min(args.repeats, HEAVY.get(spec.name, args.repeats))
    res = ModelResult(spec=spec, repeats=repeats)
    x1, x8 = spec.inputs(1), spec.inputs(8, seed=1)
    keep, rnd = args.keep, args.round

    # compile time: one untimed warm-up per tool, then alternating repeats, fresh models
    log(f"[{spec.label}] compile: warm-up")
    last = {}
    for tool in TOOLS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                last[tool] = run_tool(tool, spec, spec.build(), x1, keep, rnd)[1]
            except Exception as exc:                            # noqa: BLE001
                res.errors[tool] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        if tool == "tp":
            res.tp_warnings = sorted({str(w.message).splitlines()[0][:160] for w in caught})
    live = [t for t in TOOLS if t not in res.errors]
    res.times = {t: [] for t in live}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(repeats):
            order = live if r % 2 == 0 else live[::-1]
            for tool in order:
                model = spec.build()
                gc.collect()
                seconds, out = run_tool(tool, spec, model, x1, keep, rnd)
                res.times[tool].append(seconds)
                last[tool] = out
            log(f"[{spec.label}] compile repeat {r + 1}/{repeats}: " + ", ".join(
                f"{t} {res.times[t][-1]:.2f}s" for t in live))

    # the pruned models, counted the same way
    variants = {"orig": spec.build()}
    if "pq" in last:
        variants["pq"] = last["pq"].module.eval()
        rep = last["pq"].report.to_dict()
        res.pq_report = {"before": rep["before"], "after": rep["after"]}
        for g in rep["groups"]:
            if g.get("selected") and g["prunable"] and g["channels"]["before"] > 1:
                b, a = g["channels"]["before"], g["channels"]["after"]
                want = max(1, math.floor(b * keep))
                if rnd:
                    want = min(b, max(rnd, int(round(want / rnd)) * rnd))
                if abs(a - want) > max(1, rnd or 0):
                    res.uneven.append((g["producers"][0], len(g["producers"]), b, a, want))
                    outs = {l["name"]: tuple(l["out_channels"]) for l in rep["layers"]}
                    for p in g["producers"]:
                        if outs.get(p) and outs[p] not in res.widths:
                            res.widths.append(outs[p])
    if spec.name == "resnet50" and not rnd and "pq" in last:
        variants["pq_r8"] = run_pq(spec, spec.build(), x1, keep, 8, verify=False)[1].module
    if "tp" in last:
        variants["tp"] = last["tp"]
    ref = count(variants["orig"], x1)
    res.counts["orig"] = ref
    for name, model in variants.items():
        if name == "orig":
            continue
        try:
            res.counts[name] = count(model, x1)
        except Exception as exc:                                # noqa: BLE001
            res.counts[name] = None
            res.errors.setdefault(name, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    if "tp" in variants:
        res.tp_health = health(variants["tp"], x8, (8,) + ref["out_shape"][1:])
        if not res.tp_health[0]:
            variants.pop("tp")
        else:   # control: the same model as an fx GraphModule, the form PruneQL returns
            try:
                variants["tp_fx"] = torch.fx.symbolic_trace(variants["tp"])
                res.counts["tp_fx"] = res.counts["tp"]
            except Exception as exc:                            # noqa: BLE001
                res.errors["tp_fx"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    # decision cross-check: Torch-Pruning with PruneQL's l1 must give PruneQL's model
    if "pq" in variants:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                twin = run_tp(spec, spec.build(), x1, keep, rnd, importance=ProducerL1())[1]
            ok, msg = health(twin, x8, (8,) + ref["out_shape"][1:])
            res.cross = max_rel_diff(variants["pq"], twin, x8) if ok else None
            res.cross_note = "" if ok else msg
        except Exception as exc:                                # noqa: BLE001
            res.cross_note = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    # latency, batch 1 and 8
    if not args.no_latency:
        for batch, x in ((1, x1), (8, x8)):
            log(f"[{spec.label}] latency batch {batch}: {', '.join(variants)}")
            res.latency[batch] = latency(variants, x, args.lat_runs)

    # peak memory of one compile, fresh process per tool (order alternates by model)
    if not args.no_memory:
        log(f"[{spec.label}] peak memory (subprocesses)")
        res.memory = peak_memory(spec, args, reverse=bool(len(spec.label) % 2))
    return res


# ---------------------------------------------------------------------------------------
# tables and the report


def _fmt_s(v):
    return "—" if v is None else f"{v:.2f} s"


def _fmt_n(v, unit=1e6, suffix="M"):
    return "—" if v is None else f"{v / unit:,.2f}{suffix}"


def _mib(res, key):
    return res.memory.get(key, {}).get("peak_mib")


def _fmt_mib(v):
    return "—" if v is None else f"{v:,.0f} MiB"


def _weights_mib(res):
    return next((r["weights_mib"] for r in res.memory.values() if r.get("weights_mib")), None)


def _med(v):
    return statistics.median(v) if v else None


def _ratio_pq_tp(res: ModelResult):
    if not res.times.get("pq") or not res.times.get("tp"):
        return None
    return statistics.median(p / t for p, t in zip(res.times["pq"], res.times["tp"]))


def summary_table(results: list) -> list:
    lines = ["| model | metric | PruneQL | Torch-Pruning | PruneQL ÷ TP |",
             "|---|---|---|---|---|"]
    for res in results:
        m = res.spec.label
        pq, tpv, pqv = (_med(res.times.get(t)) for t in ("pq", "tp", "pqv"))
        ratio = _ratio_pq_tp(res)
        lines.append(f"| `{m}` | compile time, median of {res.repeats} "
                     f"| {_fmt_s(pq)} (verify: {_fmt_s(pqv)}) | {_fmt_s(tpv)} "
                     f"| {'—' if ratio is None else f'{ratio:.2f}×'} |")
        if res.memory:
            a, b, c = (_mib(res, k) for k in ("pq/warm", "tp/warm", "pqv/warm"))
            lines.append(f"| | peak extra RSS of one compile (warm) | "
                         f"{_fmt_mib(a)}{'' if c is None else f' (verify: {c:,.0f} MiB)'} "
                         f"| {_fmt_mib(b)} | {'—' if not (a and b) else f'{a / b:.2f}×'} |")
        ref, cp, ct = res.counts.get("orig"), res.counts.get("pq"), res.counts.get("tp")
        for key, name in (("flops", "FLOPs (MACs)"), ("params", "params")):
            before = ref[key] if ref else None
            after_p = cp[key] if cp else None
            after_t = ct[key] if ct else None
            same = ("=" if after_p == after_t else f"{after_p / after_t:.3f}×") \
                if after_p and after_t else "—"
            lines.append(f"| | {name} {_fmt_n(before)} → | {_fmt_n(after_p)} "
                         f"| {_fmt_n(after_t)} | {same} |")
        ok, msg = res.tp_health
        lines.append(f"| | pruned model runs, right output | "
                     f"{'yes' if cp else 'no'} | {msg if ok is not None else '—'} | |")
        for batch in sorted(res.latency):
            s = res.latency[batch]
            row = []
            for v in ("pq", "tp"):
                if v in s and cp is not None:
                    sp = paired_speedup(s, "orig", v)
                    fr = ref["flops"] / res.counts[v]["flops"]
                    row.append(f"{sp:.2f}× (eff {sp / fr:.2f})")
                else:
                    row.append("—")
            lines.append(f"| | CPU speedup, batch {batch} (speedup ÷ FLOPs ratio) "
                         f"| {row[0]} | {row[1]} | |")
    return lines


def compile_table(results: list) -> list:
    lines = ["| model | repeats | PruneQL | PruneQL + verify | Torch-Pruning "
             "| PruneQL ÷ TP (paired median) | verify overhead |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        pq, tpv, pqv = (_med(res.times.get(t)) for t in ("pq", "tp", "pqv"))
        ratio = _ratio_pq_tp(res)
        over = f"{pqv / pq:.2f}×" if pq and pqv else "—"
        rng = lambda t: (f" [{min(res.times[t]):.2f}–{max(res.times[t]):.2f}]"  # noqa: E731
                         if res.times.get(t) and len(res.times[t]) > 1 else "")
        lines.append(f"| `{res.spec.label}` | {res.repeats} | {_fmt_s(pq)}{rng('pq')} "
                     f"| {_fmt_s(pqv)}{rng('pqv')} | {_fmt_s(tpv)}{rng('tp')} "
                     f"| {'—' if ratio is None else f'{ratio:.2f}×'} | {over} |")
    return lines


def memory_table(results: list) -> list:
    lines = ["| model | weights | PruneQL warm | PruneQL + verify warm | Torch-Pruning warm "
             "| PruneQL cold | Torch-Pruning cold |", "|---|---|---|---|---|---|---|"]
    for res in results:
        if not res.memory:
            continue
        cells = []
        for key in ("pq/warm", "pqv/warm", "tp/warm", "pq/cold", "tp/cold"):
            r = res.memory.get(key, {})
            cells.append(_fmt_mib(r.get("peak_mib")) + (" (error)" if r.get("error") else ""))
        lines.append(f"| `{res.spec.label}` | {_fmt_mib(_weights_mib(res))} | "
                     + " | ".join(cells) + " |")
    return lines


def counts_table(results: list) -> list:
    lines = ["| model | FLOPs before | PruneQL after | TP after | params before "
             "| PruneQL after | TP after | PruneQL's own report agrees | TP model "
             "| TP with PruneQL's l1 vs PruneQL: max rel. output diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        ref, cp, ct = (res.counts.get(k) for k in ("orig", "pq", "tp"))
        agrees = "—"
        if res.pq_report and ref and cp:
            agrees = "yes" if (res.pq_report["before"]["flops"] == ref["flops"]
                               and res.pq_report["after"]["flops"] == cp["flops"]
                               and res.pq_report["after"]["params"] == cp["params"]) else "NO"
        cross = (f"{res.cross:.1e}" if res.cross is not None
                 else (res.cross_note or "—"))
        n = lambda d, k: "—" if not d else f"{d[k]:,}"  # noqa: E731
        lines.append(
            f"| `{res.spec.label}` | {n(ref, 'flops')} | {n(cp, 'flops')} | {n(ct, 'flops')} "
            f"| {n(ref, 'params')} | {n(cp, 'params')} | {n(ct, 'params')} "
            f"| {agrees} | {res.tp_health[1] or '—'} | {cross} |")
    return lines


def latency_table(results: list, threads: int, runs: int) -> list:
    lines = ["| model | pruned by | FLOPs ratio | b1 latency | b1 speedup | b1 eff. "
             "| b8 latency | b8 speedup | b8 eff. | ÷ TP latency, b1 / b8 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        if not res.latency:
            continue
        ref = res.counts["orig"]
        for v in ("orig", "pq", "pq_r8", "tp", "tp_fx"):
            if v not in res.latency.get(1, {}):
                continue
            fr = ref["flops"] / res.counts[v]["flops"]
            cells = [f"`{res.spec.label}`" if v == "orig" else "", LABEL[v], f"{fr:.2f}×"]
            for batch in (1, 8):
                s = res.latency[batch]
                ms = statistics.median(s[v]) * 1e3
                if v == "orig":
                    cells += [f"{ms:,.1f} ms", "1.00×", "—"]
                else:
                    sp = paired_speedup(s, "orig", v)
                    cells += [f"{ms:,.1f} ms", f"{sp:.2f}×", f"{sp / fr:.2f}"]
            if v in ("pq", "pq_r8", "tp_fx") and "tp" in res.latency[1]:
                cells.append(" / ".join(f"{paired_speedup(res.latency[b], v, 'tp'):.3f}"
                                        for b in (1, 8)))
            else:
                cells.append("")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def profile_section(prof: dict, spec: Spec) -> list:
    per = prof["per_pass"]
    total = sum(per.values())
    lines = [f"Per-pass time of `pruneql.compile` on `{spec.label}` (with verify; median of "
             f"{prof['repeats']} warm runs, each on a fresh model):", "",
             "| pass | median | share |", "|---|---|---|"]
    for name, s in per.items():
        if s >= 0.0005:
            lines.append(f"| {name} | {s * 1e3:,.0f} ms | {s / total:.0%} |")
    lines += [f"| **total** | {total * 1e3:,.0f} ms | |", "",
              "Top functions by own time (cProfile, one compile without verify; cProfile "
              "inflates Python-heavy code):", "", "| function | calls | own time | cumulative |",
              "|---|---|---|---|"]
    for r in prof["top_tottime"]:
        lines.append(f"| `{r['func']}` | {r['calls']:,} | {r['tottime'] * 1e3:,.0f} ms "
                     f"| {r['cumtime'] * 1e3:,.0f} ms |")
    lines += ["", "PruneQL functions by cumulative time:", "",
              "| function | calls | cumulative |", "|---|---|---|"]
    for r in prof["top_cumtime"]:
        lines.append(f"| `{r['func']}` | {r['calls']:,} | {r['cumtime'] * 1e3:,.0f} ms |")
    return lines


def discussion(results: list, args, prof) -> list:
    out = _summary(results)
    for res in results:
        m, ratio = res.spec.label, _ratio_pq_tp(res)
        pq, pqv, tpv = (_med(res.times.get(t)) for t in ("pq", "pqv", "tp"))
        bits = []
        if ratio is not None:
            word = "slower" if ratio > 1 else "faster"
            bits.append(f"PruneQL's compile is {max(ratio, 1 / ratio):.1f}× {word} than "
                        f"Torch-Pruning's (paired median of {res.repeats})")
        if pq and pqv:
            bits.append(f"verification adds {pqv / pq - 1:.0%}")
        ref, cp, ct = (res.counts.get(k) for k in ("orig", "pq", "tp"))
        if cp and ct:
            if cp["flops"] == ct["flops"] and cp["params"] == ct["params"]:
                bits.append("both tools keep identical channel counts (FLOPs and params "
                            "match exactly)")
            else:
                bits.append(f"FLOPs after differ (PruneQL {cp['flops']:,}, TP "
                            f"{ct['flops']:,})" + (
                                f": with `round {args.round}` PruneQL rounds each kept count "
                                f"to the *nearest* multiple of {args.round} (at least "
                                f"{args.round}), Torch-Pruning's `round_to` rounds it *down*"
                                if args.round else ""))
        if res.tp_health[0] is False:
            bits.append(f"**Torch-Pruning's pruned model is broken** ({res.tp_health[1]}), "
                        "although `step()` returned without error")
        if res.cross is not None:
            same = "exactly" if res.cross == 0 else f"within {res.cross:.0e} relative"
            bits.append("Torch-Pruning driven by PruneQL's l1 (`ProducerL1`) builds a model "
                        f"whose outputs equal PruneQL's {same} — the two tools remove the "
                        "same channels and both rewrites are correct")
        if res.uneven:
            ex = "; ".join(f"group of `{p}` (+{n - 1} producers): {b} → {a}, uniform "
                           f"would be {w}" for p, n, b, a, w in res.uneven[:3])
            bits.append(f"PruneQL's allocation is not uniform per layer here: {ex}; the "
                        "group's producers go " + ", ".join(f"{b} → {a}" for b, a in
                                                           res.widths) + " channels")
        if res.memory:
            a, b, w = _mib(res, "pq/warm"), _mib(res, "tp/warm"), _weights_mib(res)
            ac, bc = _mib(res, "pq/cold"), _mib(res, "tp/cold")
            if a and b and w:
                bits.append(f"warm peak memory: PruneQL {a:,.0f} MiB ({a / w:.1f}× the "
                            f"weights), Torch-Pruning {b:,.0f} MiB ({b / w:.1f}×)"
                            + (f"; cold (first compile in a process) {ac:,.0f} vs {bc:,.0f} MiB"
                               if ac and bc else ""))
        if res.latency and cp:
            effs = []
            for batch in sorted(res.latency):
                s = res.latency[batch]
                for v in ("pq", "tp"):
                    if v in s:
                        sp = paired_speedup(s, "orig", v)
                        effs.append(f"{LABEL[v]} b{batch} {sp:.2f}× "
                                    f"(eff {sp / (ref['flops'] / res.counts[v]['flops']):.2f})")
            bits.append("speedup " + ", ".join(effs))
        out.append(f"- **`{m}`**: " + "; ".join(bits) + ".")
        if res.tp_warnings:
            out.append("  Torch-Pruning warned: " + "; ".join(f"“{w}”" for w in
                                                            res.tp_warnings[:3]) + ".")
        for k, e in res.errors.items():
            out.append(f"  {LABEL.get(k, k)} error: `{e}`.")
    r56 = next((r for r in results if r.uneven and r.spec.name == "resnet56_cifar"
                and not r.spec.variant), None)
    if r56 is not None:
        _, _, shown_b, shown_a, _ = r56.uneven[0]
        mods = dict(zoo.build("resnet56_cifar").named_modules())
        l1 = [float(mods[f"layer{i}.0.conv2"].weight.detach().abs().flatten(1).sum(1).mean())
              for i in (1, 2, 3)]
        out.append(
            "- Why `resnet56_cifar` loses 10× its FLOPs at `keep 0.5`: with option-A "
            "shortcuts PruneQL ties the residual streams of the three stages into *one* group "
            "(stage 1's 16 channels sit at an offset inside stage 2's 32 and stage 3's 64; the "
            "zero-padded channels of stage 2 sit inside stage 3's), 64 channel classes in all. "
            "`keep 0.5` keeps 32 of those 64, ranked by the mean filter L1 of the layers "
            "writing each class, and with these seeded, untrained weights the L1 norm of a "
            f"filter grows with its fan-in (mean {l1[0]:.1f} for a stage-1 3×3 conv, "
            f"{l1[1]:.1f} for stage 2, {l1[2]:.1f} for stage 3), so nearly all kept classes "
            "are stage-3-only ones: the "
            "residual stream of stages 1 and 2 shrinks to a single channel. The model is "
            "correct (verify passes) but it is not a uniform 50% network, and the report's "
            f"`channels` for that group ({shown_b} → {shown_a}, the first producer's width) "
            "hides that the group has 64 classes. Torch-Pruning cannot model the channel padding at all: "
            "`step()` succeeds and the model it returns fails at the classifier. The "
            "`:inner` row is the like-for-like comparison.")
    same, ctrl, noise = [], [], []
    for res in results:
        s = res.latency
        if not s:
            continue
        if "pq_r8" in s.get(1, {}) and res.counts.get("pq_r8") and \
                res.counts["pq_r8"]["flops"] == res.counts["pq"]["flops"]:
            noise += [paired_speedup(s[b], "pq_r8", "pq") for b in s]
        if "tp" in s.get(1, {}) and "pq" in s.get(1, {}) and \
                res.counts["tp"]["flops"] == res.counts["pq"]["flops"]:
            same += [(res.spec.label, b, paired_speedup(s[b], "pq", "tp")) for b in s]
            if "tp_fx" in s.get(1, {}):
                ctrl += [(res.spec.label, b, paired_speedup(s[b], "tp_fx", "tp")) for b in s]
    if same:
        fmt = lambda rows: ", ".join(f"`{m}` b{b} {r:.3f}" for m, b, r in rows)  # noqa: E731
        text = ("- Same architecture, same speed? PruneQL's and Torch-Pruning's pruned models "
                "have identical layer widths; PruneQL's latency ÷ Torch-Pruning's, timed back "
                f"to back: {fmt(same)}.")
        if ctrl:
            text += (" Control — Torch-Pruning's own model traced by `torch.fx` (a "
                     "GraphModule, the form PruneQL returns) ÷ the same model run eagerly: "
                     f"{fmt(ctrl)}.")
            by = {(m, b): r for m, b, r in same}
            gap = max(abs(by[(m, b)] - r) for m, b, r in ctrl)
            text += (f" The control differs from PruneQL's ratio by at most {gap:.3f}"
                     + (": whatever latency gap there is between the two tools' models comes "
                        "from running an fx GraphModule instead of the eager module, not from "
                        "what PruneQL removed or kept." if gap < 0.03 else
                        ", so part of the gap is not explained by the GraphModule form."))
        if noise:
            text += (" Two identical PruneQL GraphModules (resnet50 with and without "
                     "`round 8`, which keeps the same counts) differ by "
                     + ", ".join(f"{abs(r - 1):.1%}" for r in noise)
                     + ": the noise floor of these paired ratios.")
            r50 = next((r for r in results if r.latency and "pq_r8" in r.latency.get(8, {})),
                       None)
            if r50 is not None:
                a, b = (paired_speedup(r50.latency[8], "orig", v) for v in ("pq", "pq_r8"))
                text += (" The speedup columns, each a ratio against the much slower original, "
                         f"scatter more: the same two models show {a:.2f}× and {b:.2f}× at "
                         "batch 8.")
        out.append(text)
    effs = [(r.spec.label, b, paired_speedup(r.latency[b], "orig", "pq")
             / (r.counts["orig"]["flops"] / r.counts["pq"]["flops"]))
            for r in results if r.latency and r.counts.get("pq") for b in r.latency]
    if effs:
        lo = [f"`{m}` b{b} ({e:.2f})" for m, b, e in effs if e < 0.6]
        hi = [f"`{m}` b{b} ({e:.2f})" for m, b, e in effs if e > 1.0]
        text = ("- FLOPs are a loose proxy for CPU latency: efficiency (speedup ÷ FLOPs "
                f"ratio) of PruneQL's models ranges {min(e for *_, e in effs):.2f}–"
                f"{max(e for *_, e in effs):.2f}.")
        if lo:
            text += (" Lowest: " + ", ".join(lo) + " — small tensors where per-op "
                     "overhead (dispatch, depthwise/1×1 convs, BatchNorm, the Python "
                     "forward) does not shrink with the channel count.")
        if hi:
            text += (" Above 1: " + ", ".join(hi) + " — likely memory-bound layers whose "
                     "activations fit the caches better once halved.")
        out.append(text)
    first = [(r.spec.label, _mib(r, "pq/cold") - _mib(r, "pq/warm"),
              _mib(r, "tp/cold") - _mib(r, "tp/warm")) for r in results
             if r.memory and all(_mib(r, k) for k in ("pq/cold", "pq/warm", "tp/cold",
                                                      "tp/warm"))]
    if first:
        out.append("- First compile in a process: cold − warm peak memory is "
                   f"{statistics.median(a for _, a, _ in first):,.0f} MiB for PruneQL and "
                   f"{statistics.median(b for *_, b in first):,.0f} MiB for Torch-Pruning "
                   "(median over models): one-time imports and set-up, paid once per process, "
                   "which dominate the cold numbers of the small models.")
    if prof:
        per = prof["per_pass"]
        top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
        tot = sum(per.values())
        out.append(f"- PruneQL's resnet50 compile ({tot:.2f} s with verify in the profile "
                   "run) is dominated by " + ", ".join(f"`{n}` ({v / tot:.0%})"
                                                        for n, v in top)
                   + "; see the profile below.")
    r8 = [r for r in results if "pq_r8" in r.counts and r.counts.get("pq")]
    for res in r8:
        same = res.counts["pq_r8"]["flops"] == res.counts["pq"]["flops"]
        out.append(f"- `round 8` on `{res.spec.label}` at keep {args.keep:g}: "
                   + ("identical channel counts to the unrounded model (every kept count is "
                      "already a multiple of 8), so its row is a second measurement of the "
                      "same architecture — the difference between the two rows is noise."
                      if same else
                      f"FLOPs {res.counts['pq_r8']['flops']:,} vs "
                      f"{res.counts['pq']['flops']:,} unrounded."))
    return out


def _summary(results: list) -> list:
    """One paragraph over all models: the headline numbers, computed."""
    ratios = [(r.spec.label, _ratio_pq_tp(r)) for r in results if _ratio_pq_tp(r)]
    if not ratios:
        return []
    bits = []
    slower = [m for m, q in ratios if q > 1]
    lo, hi = min(ratios, key=lambda t: t[1]), max(ratios, key=lambda t: t[1])
    bits.append(f"PruneQL's compile (without verify) takes {lo[1]:.2f}× (`{lo[0]}`) to "
                f"{hi[1]:.2f}× (`{hi[0]}`) Torch-Pruning's time; it is slower on "
                f"{len(slower)} of {len(ratios)} models")
    over = [_med(r.times["pqv"]) / _med(r.times["pq"]) - 1 for r in results
            if r.times.get("pq") and r.times.get("pqv")]
    if over:
        bits.append(f"verification adds {min(over):.0%}–{max(over):.0%}")
    mem = [(r.spec.label, _mib(r, "pq/warm") / _mib(r, "tp/warm")) for r in results
           if r.memory and _mib(r, "pq/warm") and _mib(r, "tp/warm")]
    if mem:
        bits.append("its warm peak memory is " + ", ".join(f"{q:.2f}×" for _, q in mem)
                    + " Torch-Pruning's (in model order)")
    ok = [r.spec.label for r in results if r.counts.get("pq") and r.counts.get("tp")
          and r.counts["pq"]["flops"] == r.counts["tp"]["flops"]
          and r.counts["pq"]["params"] == r.counts["tp"]["params"]]
    if ok:
        bits.append("where both tools produce a working model they keep identical channel "
                    f"counts ({len(ok)} models)")
    exact = [r.spec.label for r in results if r.cross == 0.0]
    if exact:
        bits.append(f"with the same importance scores they build identical models ({len(exact)}"
                    " models, outputs bit-for-bit equal)")
    broken = [f"`{r.spec.label}`" for r in results if r.tp_health[0] is False]
    if broken:
        bits.append("Torch-Pruning silently produced a broken model on " + ", ".join(broken))
    return ["- **Summary**: " + "; ".join(bits) + "."]


def write_report(path: str, results: list, args, prof, elapsed: float, argv: list) -> str:
    tp_version = _dist_version("torch-pruning") or getattr(tp, "__version__", "?")
    cpu = _cpu_name()
    lines = [
        "# PruneQL vs Torch-Pruning", "",
        f"Generated by `python bench/compare.py{(' ' + ' '.join(argv)) if argv else ''}` on "
        f"{datetime.date.today().isoformat()} in {elapsed / 60:.1f} min.", "",
        f"- torch {torch.__version__}, torch-pruning {tp_version}, pruneql "
        f"{_dist_version('pruneql') or '?'} (this working tree{_tree_state()}), Python "
        f"{platform.python_version()}",
        f"- machine: {os.cpu_count()} cores ({cpu}), {platform.system()} "
        f"{platform.release()}; `torch.set_num_threads({args.threads})` for everything "
        "(compiles and latency)",
        f"- recipe: `prune ** by l1 keep {args.keep:g}`"
        + (f" `round {args.round}`" if args.round else "")
        + "; Torch-Pruning: `tp.pruner.MagnitudePruner(model, x, importance="
          "tp.importance.MagnitudeImportance(p=1), pruning_ratio="
          f"{1 - args.keep:g}, ignored_layers=[classifier], round_to={args.round})` + "
          "`step()` (local pruning: it keeps int(n·(1−ratio)) channels per group, PruneQL "
          "keeps floor(n·keep) — the same counts)", "",
        "## Side by side", ""] + summary_table(results) + [
        "", "## How it was measured", "",
        "- **Compile time**: each tool once untimed (warm-up), then "
        f"{args.repeats} repeats (densenet121: {min(args.repeats, HEAVY['densenet121'])}) alternating the order "
        "of the tools every repeat; every run gets a fresh, seeded model built outside the "
        "timed region. PruneQL = `pruneql.compile(recipe, model, example_inputs=x, "
        "verify=False)` (every pass: trace, channel groups, score, allocate, rewrite into a "
        "new GraphModule, measure FLOPs/params); *+ verify* is the default `verify=True` "
        "(masked-original vs pruned forward). Torch-Pruning = pruner construction "
        "(DependencyGraph tracing) + `step()` (importance, in-place pruning); it computes no "
        "FLOPs report and checks nothing. Medians are reported; the ratio is the median of "
        "per-repeat ratios, both tools measured in the same process moments apart.",
        "- **Peak memory**: one compile in a fresh process per measurement (`--one`): "
        "import both tools, build the model and input, `gc.collect()`, reset the kernel's "
        "peak-RSS counter (`/proc/self/clear_refs` ← 5), compile, and report VmHWM − VmRSS "
        "before the compile: the extra resident memory the compile needed at its peak "
        "(Python objects and torch tensors alike). *Warm*: the process first compiled the "
        "tiny `digits_cnn` with the same tool, so lazy imports and one-time set-up are paid "
        "(memory freed by that warm-up and kept by the allocator can hide up to its own "
        "peak, under 1 MiB once warm); *cold*: the first compile of the process. One sample "
        "each (peak RSS varies little from run to run).",
        "- **FLOPs/params**: one neutral counter for all models — forward hooks on every "
        "conv/linear at batch 1 (multiply-adds = output elements × in-channels/groups × "
        "kernel), parameters = all parameters (BatchNorm included). PruneQL's own report "
        "is compared against it.",
        f"- **Latency**: `torch.inference_mode()`, 3 warm-up forwards per model, then "
        f"{args.lat_runs} rounds; each round times every model (original and pruned) back "
        "to back in a shuffled (seeded) order; a sample is one untimed forward (so no cache "
        "state carries over from the previous model) and then a loop of forwards long "
        f"enough for the original to take ≈{MIN_SAMPLE_S * 1e3:.0f} ms. Speedup = median "
        "over rounds of original/pruned; efficiency = speedup ÷ (FLOPs before ÷ FLOPs "
        "after), ideal 1.0. *÷ TP latency* = median over rounds of that model's latency ÷ "
        "Torch-Pruning's, timed back to back (1.000 = equally fast; above 1 = slower). "
        "Control row: Torch-Pruning's pruned model traced by `torch.fx.symbolic_trace`, "
        "i.e. the same model in the GraphModule form PruneQL returns. Latency in ms is the "
        "median per model; on this noisy 2-core machine read the ratios, not the absolute "
        "times.",
        "- **Correctness of Torch-Pruning's output**: its pruned model is run on a batch of "
        "8 and must give the original output shape. As a decision cross-check, "
        "Torch-Pruning is also run (untimed) with an importance that is PruneQL's `l1` "
        "(mean filter L1 over the layers writing each channel; `ProducerL1` in "
        "compare.py) and its outputs compared with PruneQL's pruned model.", "",
        "## Compile time", ""] + compile_table(results) + [
        "", "## Peak memory of one compile (extra RSS above the built model)", ""] + \
        memory_table(results) + [
        "", "## FLOPs and parameters (same counter for every model)", ""] + \
        counts_table(results) + [
        "", f"## CPU latency ({args.threads} thread, median of {args.lat_runs} alternating "
            "rounds)", ""] + latency_table(results, args.threads, args.lat_runs) + [
        "", "## Discussion", ""] + discussion(results, args, prof)
    if prof:
        lines += ["", "## Where PruneQL's compile time goes", ""] + \
            profile_section(prof, prof["spec"])
    lines += ["", NOTES]
    text = "\n".join(lines) + "\n"
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


NOTES = """## Notes

- Torch-Pruning's timed runs use its stock group importance `MagnitudeImportance(p=1)`
  (L1 summed over every layer of the group — the producers' filters, the consumers' input
  weights and BatchNorm — normalised by the mean), so it may choose *different* channels
  than PruneQL's `l1` (producers' filters only); counts, FLOPs, params and latency do not
  depend on which channels go. The `ProducerL1` cross-check shows that with the same scores
  both tools make the same decisions.
- PruneQL's compile does more than Torch-Pruning's `step()`: it builds a new model (the
  input model is never modified; Torch-Pruning prunes in place), measures FLOPs/params per
  layer for its report and, by default, verifies the result against the masked original.
- `resnet56_cifar` uses option-A shortcuts (strided subsample + zero channel padding via
  `F.pad`). `resnet56_cifar:inner` prunes only the first conv of each block, the part both
  tools handle; there the two tools are compared like for like.
"""


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:                                           # noqa: BLE001
        return None


def _tree_state() -> str:
    """`` at <commit>`` (read-only git queries), ``+ local changes`` if pruneql/ differs."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pruneql"], cwd=ROOT,
                               text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return (f" at commit {head}" if head else "") + (" + local changes" if dirty else "")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------------------------------


def main(argv=None) -> str | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--round", type=int, default=None, help="round kept counts to N (both)")
    ap.add_argument("--lat-runs", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help="1 repeat, 5 latency rounds; prints only unless --out is given")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--profile", choices=("auto", "yes", "no"), default="auto",
                    help="per-pass profile of PruneQL's resnet50 compile (auto: in full runs "
                         "and whenever PruneQL compiles resnet50 slower than Torch-Pruning)")
    ap.add_argument("--out", default=None, help=f"report path (default {OUT})")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--one", choices=TOOLS, help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not 0 < args.keep <= 1:
        ap.error("--keep must be in (0, 1]")
    if args.one:
        one(args)
        return
    argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.repeats, args.lat_runs = 1, 5
    out = None if args.no_write else (args.out or (None if args.quick else OUT))
    torch.set_num_threads(args.threads)
    specs = [Spec.parse(s) for s in args.models.split(",") if s.strip()]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    results = []
    for spec in specs:
        try:
            results.append(bench_model(spec, args, log))
        except Exception:                                       # noqa: BLE001
            log(f"[{spec.label}] benchmark failed:\n{traceback.format_exc()}")
    prof = None
    r50 = next((r for r in results if r.spec.label == "resnet50"), None)
    slower = r50 is not None and (_ratio_pq_tp(r50) or 0) > 1
    if args.profile == "yes" or (args.profile == "auto" and (slower or not args.quick)):
        spec = r50.spec if r50 else Spec("resnet50")
        log(f"[{spec.label}] profiling PruneQL's passes")
        prof = profile_passes(spec, args.keep, args.round, max(1, args.repeats))
        prof["spec"] = spec
    elapsed = time.perf_counter() - start
    text = write_report(out, results, args, prof, elapsed, argv)
    print("\n".join(summary_table(results)))
    if prof:
        print()
        print("\n".join(profile_section(prof, prof["spec"])))
    log(f"done in {elapsed / 60:.1f} min" + (f"; wrote {os.path.relpath(out)}" if out else ""))
    return text


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
