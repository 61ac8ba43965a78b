"""Does `plan` scale? Plans a wide VGG (hundreds of millions of parameters) and reports the
wall time and the peak memory the plan adds on top of the model itself.

    python bench/plan_scale.py [--width 4]     # width 4: ~240M parameters, ~0.96 GB fp32

Run in a fresh process per measurement; peak memory is ru_maxrss (Linux, kB) after the plan
minus ru_maxrss after building the model.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

import pruneql
from pruneql.zoo.vgg import VGGCifar

WIDTHS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=4)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    widths = [w if w == "M" else w * args.width for w in WIDTHS]
    model = VGGCifar(widths).eval()
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    base = rss_mb()
    start = time.perf_counter()
    report = pruneql.plan("prune ** by l1 keep 0.5", model,
                          example_inputs=torch.randn(1, 3, 32, 32))
    seconds = time.perf_counter() - start
    print(f"params {report.before['params'] / 1e6:.1f}M ({size_mb:.0f} MB fp32) -> "
          f"{report.after['params'] / 1e6:.1f}M; plan {seconds:.1f} s; peak memory added "
          f"{rss_mb() - base:.0f} MB ({(rss_mb() - base) / size_mb:.2f}x the model)")


if __name__ == "__main__":
    main()
