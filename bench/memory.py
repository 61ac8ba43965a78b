"""Peak extra memory of one compile, each measured in a fresh process.

The probe (``python bench/memory.py --tool pq --model resnet50``) imports both tools, builds
the model and input, ``gc.collect()``s, resets the kernel's peak-RSS counter
(``/proc/self/clear_refs`` ← 5), compiles once and prints one JSON line: VmHWM − VmRSS
before the compile, the extra resident memory the compile needed at its peak. For PruneQL a
hook does the same around every pass (peak during the pass and RSS after it, both above
the start), so the report shows where the peak is. ``--warm``: the process first compiled
the tiny ``digits_cnn`` with the same tool and ran the model once on the example input, so
lazy imports and one-time per-process state are paid (a 224×224 ResNet-50's first forward
leaves ~20 MiB resident that ``malloc_trim`` does not return: oneDNN and allocator state).
``--tool orig`` measures that first forward alone, in a cold process.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch                            # noqa: E402

from bench.tools import TOOLS, Spec, run_tool   # noqa: E402
from pruneql import passes              # noqa: E402

RUNS = (("pq", True), ("pqv", True), ("tp", True), ("pq", False), ("pqv", False),
        ("tp", False), ("orig", False))
# ``orig``: no tool, the model's own first forward on the example input in a fresh process
# (torch's one-time state, which a cold compile that runs the model pays too)
PROBES = TOOLS + ("orig",)
MIB = 1024                              # KiB per MiB: /proc reports KiB


def status_kib(key: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakPerPass(passes.Hook):
    """Per pass: the peak RSS during it and the RSS after it, in MiB above ``base_kib``.
    ``outside`` is the peak between passes (and before the first)."""

    def __init__(self, base_kib: int):
        self.base, self.outside, self.passes = base_kib, 0.0, {}

    def before(self, name, ctx):
        self.outside = max(self.outside, self._above("VmHWM"))
        reset_peak()

    def after(self, name, ctx, seconds):
        peak = self._above("VmHWM")
        entry = self.passes.setdefault(name, {"peak": peak, "held": 0.0})
        entry["peak"] = max(entry["peak"], peak)
        entry["held"] = self._above("VmRSS")

    def peak(self) -> float:
        return max([self.outside, self._above("VmHWM")]
                   + [p["peak"] for p in self.passes.values()])

    def _above(self, key: str) -> float:
        return (status_kib(key) - self.base) / MIB


def probe(tool: str, spec: Spec, keep, round_to, warm: bool) -> dict:
    """One compile in this process; peak extra RSS in MiB (and per pass for PruneQL)."""
    model, x = spec.build(), spec.inputs(1)
    if warm:    # one-time state of the process: lazy imports, oneDNN/allocator caches
        tiny = Spec("digits_cnn")
        run_tool(tool, tiny, tiny.build(), tiny.inputs(1), keep, None)
        with torch.no_grad():
            model(x)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    gc.collect()
    per_pass = reset_peak() and status_kib("VmRSS") is not None
    base, base_max = status_kib("VmRSS"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hook = PeakPerPass(base) if per_pass else None
    error = None
    try:
        if tool == "orig":
            with torch.no_grad():
                model(x)
        else:
            run_tool(tool, spec, model, x, keep, round_to, hooks=(hook,) if hook else ())
    except Exception as exc:                                    # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    if per_pass:
        peak = hook.peak() if tool not in ("tp", "orig") else \
            (status_kib("VmHWM") - base) / MIB
        method = "VmHWM-VmRSS"
    else:       # no clear_refs: ru_maxrss since process start, less the peak before
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_max) / MIB
        method = "ru_maxrss delta"
    return {"tool": tool, "warm": warm, "peak_mib": peak, "method": method,
            "weights_mib": weights / 2 ** 20, "error": error,
            "passes": hook.passes if hook and tool not in ("tp", "orig") else {}}


def peak_memory(spec: Spec, keep, round_to, threads: int, samples: int = 1,
                reverse: bool = False) -> dict:
    """``{"pq/warm": result, ...}`` for every run in RUNS, each sample in its own fresh
    process (the runs interleaved); the result is the median sample, with every sample's
    peak in ``samples``."""
    found: dict = {}
    for _ in range(samples):
        for tool, warm in (RUNS[::-1] if reverse else RUNS):
            found.setdefault(f"{tool}/{'warm' if warm else 'cold'}", []).append(
                _fresh_process(tool, warm, spec, keep, round_to, threads))
    return {key: _median_sample(runs) for key, runs in found.items()}


def _fresh_process(tool: str, warm: bool, spec: Spec, keep, round_to, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--tool", tool, "--model", spec.label,
           "--keep", repr(keep), "--threads", str(threads)]
    cmd += (["--warm"] if warm else []) + (["--round", str(round_to)] if round_to else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "PRUNEQL_LINT"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines() or ["no output"]
        return {"peak_mib": None, "error": tail[-1]}
    return json.loads(lines[-1])


def _median_sample(runs: list) -> dict:
    ok = sorted((r for r in runs if r.get("peak_mib") is not None), key=lambda r: r["peak_mib"])
    if not ok:
        return runs[-1]
    return dict(ok[(len(ok) - 1) // 2], samples=[r["peak_mib"] for r in ok])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", choices=PROBES, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--round", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warm", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = probe(args.tool, Spec.parse(args.model), args.keep, args.round, args.warm)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
