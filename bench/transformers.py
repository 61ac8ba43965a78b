"""ViT-Ti/16 at half its heads and half its MLP width: PruneQL side by side with
Torch-Pruning's head pruning, and what the pruned model buys on the CPU.

Both tools prune the same timm ``vit_tiny_patch16_224`` (random init, nothing downloaded):
``keep 0.5 heads`` on every ``qkv`` (3 heads → 1) and ``keep 0.5`` on every ``fc1`` (768 →
384). Reported: compile time of each tool (median of alternating runs), the FLOPs ratio
(before / after, PruneQL's count, which matches ``torch.utils.flop_counter``), the measured
CPU speedup at batch 8 of each pruned model (medians of alternating runs, one thread), and
the speedup over the FLOPs ratio — the pruned model must be at least 0.8 of it.

    python bench/transformers.py                 # writes bench/TRANSFORMERS.md
    python bench/transformers.py --repeats 3     # quicker

Needs the bench extra (timm, torch-pruning).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
_lib = torch.library.Library("torchvision", "DEF")          # the registry's torchvision is
_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")   # CUDA-built:
_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")  # its ops' schemas

import timm                      # noqa: E402
import torch_pruning as tp       # noqa: E402

import pruneql                   # noqa: E402

RECIPE = "prune qkv by l2 keep 0.5 heads\nprune fc1 by l2 keep 0.5"
OUT = os.path.join(ROOT, "bench", "TRANSFORMERS.md")


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()


def run_pruneql(x) -> tuple:
    model = build()
    start = time.perf_counter()
    result = pruneql.compile(RECIPE, model, example_inputs=x)
    return time.perf_counter() - start, result.module.eval(), result.report


def run_torch_pruning(x) -> tuple:
    """Torch-Pruning's documented recipe for timm ViTs: heads and MLP width, local."""
    model = build()
    num_heads = {m.qkv: m.num_heads for m in model.modules()
                 if isinstance(m, timm.models.vision_transformer.Attention)}
    start = time.perf_counter()
    pruner = tp.pruner.MetaPruner(
        model, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=0.5, ignored_layers=[model.head], num_heads=num_heads,
        prune_head_dims=False, prune_num_heads=True, head_pruning_ratio=0.5,
        root_module_types=[torch.nn.Linear],
        pruning_ratio_dict={m.attn.proj: 0.0 for m in model.blocks})
    pruner.step()
    for m in model.modules():
        if isinstance(m, timm.models.vision_transformer.Attention):
            m.num_heads = pruner.num_heads[m.qkv]
            m.head_dim = m.qkv.out_features // (3 * m.num_heads)
            m.attn_dim = m.num_heads * m.head_dim        # timm 1.0 reshapes by it
    return time.perf_counter() - start, model.eval()


@torch.inference_mode()
def latency(models: dict, batch: int, repeats: int) -> dict:
    """Median ms per forward pass of each model, the models timed alternately."""
    x = torch.randn(batch, 3, 224, 224)
    times = {k: [] for k in models}
    for m in models.values():
        m(x)
    for _ in range(repeats):
        for key, m in models.items():
            start = time.perf_counter()
            m(x)
            times[key].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def macs(model, x) -> float:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(x)
    return counter.get_total_flops() / 2 / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    compile_pq, compile_tp = [], []
    for _ in range(max(3, args.repeats // 2)):          # tools alternate, run by run
        seconds, pq_model, report = run_pruneql(x)
        compile_pq.append(seconds)
        seconds, tp_model = run_torch_pruning(x)
        compile_tp.append(seconds)
    original = build()
    ms = latency({"original": original, "pruneql": pq_model, "torch_pruning": tp_model},
                 args.batch, args.repeats)
    flops = {k: macs(m, x) for k, m in (("original", original), ("pruneql", pq_model),
                                         ("torch_pruning", tp_model))}
    rows = _rows(flops, ms, compile_pq, compile_tp, report)
    text = _markdown(rows, args)
    print(text)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)


def _rows(flops, ms, compile_pq, compile_tp, report) -> list:
    rows = []
    for key, label, seconds in (("pruneql", "PruneQL", compile_pq),
                                ("torch_pruning", "Torch-Pruning", compile_tp)):
        ratio = flops["original"] / flops[key]
        speedup = ms["original"] / ms[key]
        rows.append({"tool": label, "compile_s": statistics.median(seconds),
                     "macs": flops[key], "flops_ratio": ratio, "ms": ms[key],
                     "speedup": speedup, "efficiency": speedup / ratio})
    rows[0]["verified"] = report.verify["passed"]
    rows[0]["report_macs"] = report.after["flops"]
    return rows


def _markdown(rows, args) -> str:
    lines = [f"# ViT-Ti/16, half the heads and half the MLP width (batch {args.batch}, "
             f"1 thread, medians of {args.repeats} alternating runs)", "",
             "| tool | compile s | MACs after | FLOPs ratio | ms/batch | speedup | "
             "speedup ÷ FLOPs ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['compile_s']:.2f} | {r['macs'] / 1e6:.1f}M | "
                     f"{r['flops_ratio']:.2f}× | {r['ms']:.1f} | {r['speedup']:.2f}× | "
                     f"{r['efficiency']:.2f} |")
    pq = rows[0]
    lines += ["", f"PruneQL verified the pruned model: {pq['verified']}; its own MAC count "
                  f"{pq['report_macs'] / 1e6:.1f}M matches torch's counter "
                  f"({pq['macs'] / 1e6:.1f}M). Compile time ratio PruneQL / Torch-Pruning: "
                  f"{pq['compile_s'] / rows[1]['compile_s']:.2f}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
