"""PruneQL side by side with Torch-Pruning (DepGraph), at the same uniform L1 ratio.

    python bench/compare.py                    # full run, prints tables, writes bench/RESULTS.md
    python bench/compare.py --quick            # 2 repeats, 5 latency rounds, prints only
    python bench/compare.py --models resnet50,densenet121 --repeats 9 --profile resnet50

Per model: compile time of both tools and PruneQL's seconds per pass (``measure``), verify's
cost in forwards of the original, peak extra memory of one compile in a fresh process
(``memory``), FLOPs/params of the pruned models by one neutral counter, whether
Torch-Pruning's model runs, and CPU speedup against the FLOPs ratio. ``report`` writes the
tables. ``resnet56_cifar:inner`` prunes only the first conv of every block, which is what
Torch-Pruning can do on option-A ResNets.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch                            # noqa: E402

from bench import measure, memory, report          # noqa: E402
from bench.tools import ProducerL1, Spec, prune_tp  # noqa: E402

OUT = os.path.join(ROOT, "bench", "RESULTS.md")
DEFAULT_MODELS = "resnet50,mobilenet_v2,densenet121,resnet56_cifar,resnet56_cifar:inner"
DETAIL = "resnet50,densenet121"         # per-pass tables (time and memory)


@dataclass
class ModelResult:
    spec: Spec
    runs: measure.CompileRuns | None = None
    counts: dict = field(default_factory=dict)          # variant -> {flops, params, out_shape}
    pq_report: dict = field(default_factory=dict)       # PruneQL's own before/after
    tp_health: tuple = (None, "")
    cross: float | None = None                          # TP(ProducerL1) vs PruneQL output
    cross_note: str = ""
    latency: dict = field(default_factory=dict)         # batch -> {variant -> samples}
    memory: dict = field(default_factory=dict)          # "tool/warm|cold" -> probe result
    errors: dict = field(default_factory=dict)


def bench_model(spec: Spec, args, log) -> ModelResult:
    res = ModelResult(spec=spec)
    x1, x8 = spec.inputs(1), spec.inputs(8, seed=1)
    res.runs = measure.compile_times(spec, args.keep, args.round, args.repeats, log=log)
    res.errors.update(res.runs.errors)
    variants = pruned_models(res, x1, x8)
    if "pq" in variants:
        cross_check(res, variants["pq"], args, x1, x8)
    if not args.no_latency:
        for batch, x in ((1, x1), (8, x8)):
            log(f"[{spec.label}] latency batch {batch}: {', '.join(variants)}")
            res.latency[batch] = measure.latency(variants, x, args.lat_runs)
    if not args.no_memory:
        log(f"[{spec.label}] peak memory (fresh processes)")
        samples = args.memory_samples if spec.label in args.detail else 1
        res.memory = memory.peak_memory(spec, args.keep, args.round, args.threads, samples,
                                        reverse=bool(len(spec.label) % 2))
    return res


def pruned_models(res: ModelResult, x1, x8) -> dict:
    """The original and every pruned model that runs, each counted by the same counter."""
    last, variants = res.runs.last, {"orig": res.spec.build()}
    if "pq" in last:
        variants["pq"] = last["pq"].module.eval()
        rep = last["pq"].report.to_dict()
        res.pq_report = {"before": rep["before"], "after": rep["after"]}
    if "tp" in last:
        variants["tp"] = last["tp"]
    for name, model in variants.items():
        try:
            res.counts[name] = measure.count(model, x1)
        except Exception as exc:                                # noqa: BLE001
            res.errors.setdefault(name, measure.first_line(exc))
    if "tp" in variants:
        res.tp_health = measure.health(variants["tp"], x8, _want(res, 8))
        if not res.tp_health[0]:
            variants.pop("tp")
        else:   # control: the same model as an fx GraphModule, the form PruneQL returns
            try:
                variants["tp_fx"] = torch.fx.symbolic_trace(variants["tp"])
                res.counts["tp_fx"] = res.counts["tp"]
            except Exception as exc:                            # noqa: BLE001
                res.errors["tp_fx"] = measure.first_line(exc)
    return variants


def cross_check(res: ModelResult, pruned, args, x1, x8) -> None:
    """Torch-Pruning driven by PruneQL's l1 must build PruneQL's model (max rel. diff 0)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            twin = prune_tp(res.spec, res.spec.build(), x1, args.keep, args.round,
                            importance=ProducerL1())[1]
        ok, msg = measure.health(twin, x8, _want(res, 8))
        res.cross = measure.max_rel_diff(pruned, twin, x8) if ok else None
        res.cross_note = "" if ok else msg
    except Exception as exc:                                    # noqa: BLE001
        res.cross_note = measure.first_line(exc)


def _want(res: ModelResult, batch: int) -> tuple:
    return (batch,) + res.counts["orig"]["out_shape"][1:]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--detail", default=DETAIL,
                    help="models with per-pass tables and --memory-samples memory samples")
    ap.add_argument("--memory-samples", type=int, default=3,
                    help="fresh-process samples per memory figure of the --detail models")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--round", type=int, default=None, help="round kept counts to N (both)")
    ap.add_argument("--lat-runs", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help="2 repeats, 5 latency rounds; prints only unless --out is given")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--profile", default="", help="models to cProfile (one compile each)")
    ap.add_argument("--out", default=None, help=f"report path (default {OUT})")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if not 0 < args.keep <= 1:
        ap.error("--keep must be in (0, 1]")
    if args.quick:
        args.repeats, args.lat_runs, args.memory_samples = 2, 5, 1
    args.detail = [m.strip() for m in args.detail.split(",") if m.strip()]
    return args


def main(argv=None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    os.environ.pop("PRUNEQL_LINT", None)        # graph lint after every pass skews timings
    out = None if args.no_write else (args.out or (None if args.quick else OUT))
    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start, load_start = time.perf_counter(), os.getloadavg()
    results = []
    for spec in (Spec.parse(s) for s in args.models.split(",") if s.strip()):
        try:
            results.append(bench_model(spec, args, log))
        except Exception:                                       # noqa: BLE001
            log(f"[{spec.label}] benchmark failed:\n{traceback.format_exc()}")
    profiles = {s: measure.profile_compile(Spec.parse(s), args.keep, args.round)
                for s in args.profile.split(",") if s.strip()}
    run = report.Run(args=args, argv=argv, elapsed=time.perf_counter() - start,
                     load=(load_start, os.getloadavg()), detail=args.detail)
    text = report.write(out, results, run, profiles)
    print(text)
    log(f"done in {run.elapsed / 60:.1f} min" + (f"; wrote {os.path.relpath(out)}" if out else ""))
    return text


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
