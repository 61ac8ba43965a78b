#!/usr/bin/env python
"""How well does PruneQL handle real model definitions from public libraries?

For every model in the registry — Ultralytics YOLOv8, segmentation_models_pytorch,
~50 timm CNNs and hybrids, timm ViT/DeiT, torchvision classifiers and segmenters, Hugging
Face BERT / ViT / LLaMA / GPT-2 — built from its config with random weights (nothing is
downloaded), in eval mode, on a small input, this script

1. compiles ``prune ** by l1 keep 0.5`` (uniform half width over every prunable group)
   with ``trace auto`` through the public API (``pruneql.compile``) and records the
   front-end used, groups prunable / frozen and why, FLOPs and params before → after,
   verify (passed, max relative error) and the compile time;
2. writes the result as a torch.export program (``.pt2``) and as TorchScript (``.pt``);
3. classifies the outcome:
   ``pruned+verified`` (at least one group pruned, verify passed),
   ``nothing prunable`` (compiled, every group frozen),
   ``error: STAGE: MESSAGE`` (a ``PruneQLError``: PruneQL refused, with a reason), or
   ``CRASH`` (any other exception, an ``InternalError`` — PruneQL's wrapper for an
   exception a pass did not expect — a timeout, or a dead child process);
4. for YOLOv8n detect, also prunes with ``round 8`` and runs the pruned module inside
   Ultralytics' own predict path (``YOLO.predict`` on a random 160x160 uint8 image).

Each model runs in a forked child with a timeout, so a hang or crash costs one row. A run
of the whole set takes ≈10 min on 2 shared cores.

    python bench/model_coverage.py                    # everything; rewrites docs/model_coverage.md
    python bench/model_coverage.py --models resnet18 family:smp 'tv_*'   # a subset; prints only
    python bench/model_coverage.py --models family:hf --json /tmp/mc.json --merge  # update a run
    python bench/model_coverage.py --from-json /tmp/mc.json --out docs/model_coverage.md
    python bench/model_coverage.py --list

Setup: torch (CPU), torchvision, timm, transformers, segmentation_models_pytorch,
ultralytics; a model whose library is missing is reported as ``skipped``.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

# run as `python bench/model_coverage.py`, this folder is first on sys.path, and a bench
# script named like a library (bench/transformers.py) would shadow it: take it off, and
# measure the PruneQL of this checkout, whatever copy is installed
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [p for p in sys.path
                                          if os.path.abspath(p or os.curdir) != _HERE]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import torch
from torch import nn

torch.set_num_threads(1)
for _category in (UserWarning, FutureWarning, DeprecationWarning):
    warnings.filterwarnings("ignore", category=_category)

# The installed torchvision may be a CUDA build on a CPU torch: its C++ ops do not load, and
# importing torchvision (and timm / ultralytics / smp through it) needs these schemas.
try:
    _TV_LIB = torch.library.Library("torchvision", "DEF")
    _TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except RuntimeError:            # already defined (a working torchvision build)
    pass

import pruneql                                         # noqa: E402
from pruneql import PruneQLError                       # noqa: E402
from pruneql.passes import Hook, Timings               # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "model_coverage.md")
RECIPE = "prune ** by l1 keep 0.5"
OUTPUT_REASON = "reaches a model output"


# ============================================================================ registry ==
@dataclass
class ModelSpec:
    name: str
    family: str
    build: Callable[[], nn.Module]
    inputs: Callable[[int], tuple]          # batch size -> positional example inputs
    extra: Callable | None = None           # an extra check: (spec, tmp dir) -> dict


REGISTRY: dict[str, ModelSpec] = {}


def register(name, family, build, inputs, extra=None):
    REGISTRY[name] = ModelSpec(name, family, build, inputs, extra)


def image(size=64, c=3):
    return lambda b: (torch.randn(b, c, size, size),)


def tokens(seq=16, vocab=1000):
    return lambda b: (torch.randint(0, vocab, (b, seq)),)


# --- ultralytics ----------------------------------------------------------------------------
def _yolo(cfg, export_mode=False):
    def build():
        from ultralytics import YOLO
        model = YOLO(cfg).model
        if export_mode:             # what Ultralytics' exporter sets: one decoded tensor out
            model.model[-1].export = True
        return model
    return build


register("yolov8n", "ultralytics", _yolo("yolov8n.yaml"), image(160))   # + yolo_predict_check
register("yolov8n-cls", "ultralytics", _yolo("yolov8n-cls.yaml"), image(64))
register("yolov8n-exportmode", "ultralytics", _yolo("yolov8n.yaml", export_mode=True),
         image(160))


# --- segmentation_models_pytorch ------------------------------------------------------------
def _smp(arch, encoder):
    def build():
        import segmentation_models_pytorch as smp
        return getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=3)
    return build


for _arch in ("Unet", "FPN", "DeepLabV3Plus"):
    for _enc in ("resnet34", "mobilenet_v2"):
        register(f"smp_{_arch.lower()}_{_enc}", "smp", _smp(_arch, _enc), image(64))


# --- timm -----------------------------------------------------------------------------------
def _timm(name, **kw):
    def build():
        import timm
        return timm.create_model(name, pretrained=False, num_classes=10, **kw)
    return build


TIMM_96 = ("inception_v3", "xception41", "pnasnet5large")
TIMM_CNNS = (
    "resnet18", "resnet50", "resnet18d", "resnext50_32x4d", "seresnet18", "ecaresnet26t",
    "resnetblur18", "regnetx_002", "regnety_002", "efficientnet_b0", "mobilenetv2_050",
    "mobilenetv3_small_050", "mobilenetv4_conv_small", "ghostnet_050", "ghostnetv2_100",
    "convnext_atto", "densenet121", "dla34", "dpn68", "hrnet_w18_small", "cspresnet50",
    "cspdarknet53", "darknet53", "rexnet_100", "tinynet_e", "mnasnet_050", "fbnetc_100",
    "hardcorenas_a", "lcnet_050", "mixnet_s", "res2net50_14w_8s", "resnest14d", "skresnet18",
    "nf_resnet26", "ese_vovnet19b_dw", "gernet_s", "repvgg_a0", *TIMM_96, "mobilevit_xxs",
    "efficientvit_b0", "poolformer_s12", "gcresnet33ts", "selecsls42b", "vgg11_bn",
    "edgenext_xx_small", "hgnetv2_b0",
)
for _name in TIMM_CNNS:
    register(_name, "timm", _timm(_name), image(96 if _name in TIMM_96 else 64))
register("coatnet_nano_rw_224", "timm", _timm("coatnet_nano_rw_224", img_size=64), image(64))
register("levit_128s", "timm", _timm("levit_128s", img_size=96), image(96))
for _name in ("vit_tiny_patch16_224", "deit_tiny_patch16_224"):
    register(_name, "timm-vit", _timm(_name, img_size=64), image(64))


# --- torchvision ----------------------------------------------------------------------------
def _tv(name, **kw):
    def build():
        import torchvision
        return torchvision.models.get_model(name, weights=None, **kw)
    return build


def _tv_vit():
    from torchvision.models import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                             hidden_dim=64, mlp_dim=128, num_classes=10)


for _name, _kw in (("resnet18", {}), ("mobilenet_v3_small", {}), ("efficientnet_b0", {}),
                   ("convnext_tiny", {}), ("regnet_y_400mf", {}), ("shufflenet_v2_x0_5", {}),
                   ("squeezenet1_0", {}), ("mnasnet0_5", {}),
                   ("googlenet", {"aux_logits": False, "init_weights": True}),
                   ("swin_t", {})):
    register(f"tv_{_name}", "torchvision", _tv(_name, num_classes=10, **_kw), image(64))
register("tv_vit_tiny", "torchvision", _tv_vit, image(32))
for _name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"):
    register(f"tv_{_name}", "torchvision",
             _tv(_name, num_classes=3, weights_backbone=None), image(64))


# --- Hugging Face transformers --------------------------------------------------------------
def _hf_bert():
    from transformers import BertConfig, BertModel
    return BertModel(BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=128,
                                max_position_embeddings=64), add_pooling_layer=True)


def _hf_vit():
    from transformers import ViTConfig, ViTForImageClassification
    return ViTForImageClassification(ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, num_labels=10))


def _hf_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        use_cache=False))


def _hf_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    return GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_positions=64, n_embd=64, n_layer=2,
                                      n_head=4, use_cache=False,
                                      bos_token_id=0, eos_token_id=0))


register("hf_bert", "hf", _hf_bert, tokens())
register("hf_vit", "hf", _hf_vit, image(32))
register("hf_llama", "hf", _hf_llama, tokens())
register("hf_gpt2", "hf", _hf_gpt2, tokens())

FAMILIES = ("ultralytics", "smp", "timm", "timm-vit", "torchvision", "hf")


# =========================================================================== one model ==
class TraceProbe(Hook):
    """Remembers the front-ends ``trace auto`` tried before the one that worked, and why."""

    def __init__(self):
        self.failed: list = []

    def after(self, name, ctx, seconds):
        if name == "trace":
            self.failed = [list(f) for f in (ctx.traced or {}).get("failed", [])]


def first_line(text, limit: int = 300) -> str:
    text = str(text or "").strip()
    return text.splitlines()[0][:limit] if text else ""


def where(exc: BaseException, frames: int = 3) -> list:
    """The innermost ``frames`` frames of an exception, as 'path:line in function'."""
    found = []
    for f in traceback.extract_tb(exc.__traceback__)[-frames:]:
        path = f.filename
        for marker in ("site-packages/", ROOT + "/"):
            path = path.split(marker, 1)[-1]
        found.append(f"{path}:{f.lineno} in {f.name}")
    return found


def error_record(exc: BaseException) -> dict:
    """What went wrong: a PruneQLError's stage, message and hint, or an exception's place."""
    rec = {"type": type(exc).__name__,
           "message": first_line(getattr(exc, "message", exc), limit=800)}
    if isinstance(exc, PruneQLError):
        rec.update(stage=exc.stage, hint=first_line(exc.hint))
        if exc.__cause__ is not None:
            rec["cause_at"] = where(exc.__cause__)
    else:
        rec["at"] = where(exc)
    rec["crash"] = is_crash(exc)
    return rec


def is_crash(exc: BaseException) -> bool:
    """A refusal with a reason is a PruneQLError; an InternalError is the wrapper PruneQL
    puts around an exception a pass did not expect — a bug, like any other exception."""
    return not isinstance(exc, PruneQLError) or exc.stage == "internal"


def frozen_reason(group: dict) -> str:
    """PruneQL's reason; a group it leaves unprunable without one is described here."""
    if group["frozen"]:
        return group["frozen"]
    units, channels = group["units"]["before"], group["channels"]["before"]
    return (f"(no reason given) {units} unit(s) of {channels} channels: nothing can be "
            f"removed while keeping at least one unit")


def group_stats(groups: list) -> dict:
    frozen = [g for g in groups if not g["prunable"]]
    reasons = Counter(frozen_reason(g) for g in frozen)
    pruned = sum(1 for g in groups if g["channels"]["after"] < g["channels"]["before"])
    return {"groups": len(groups), "prunable": len(groups) - len(frozen),
            "frozen": len(frozen), "pruned": pruned, "frozen_reasons": dict(reasons)}


def report_record(report) -> dict:
    verify = report.verify or {}
    return {"frontend": report.frontend, **group_stats(report.groups),
            "before": dict(report.before), "after": dict(report.after),
            "verify": {"passed": verify.get("passed"),
                       "max_rel_error": verify.get("max_rel_error"),
                       "eager_vs_traced": (verify.get("eager_vs_traced") or {})
                       .get("max_rel_error")} if verify else None}


def plan_record(model, inputs, trace: str) -> dict:
    """The channel analysis alone (a recipe without prune statements): which front-end
    reads the model and which groups it finds, for a model whose compile failed."""
    try:
        report = pruneql.plan("", model, example_inputs=inputs, trace=trace)
    except Exception as exc:                                # noqa: BLE001
        return {"error": error_record(exc)}
    return {"frontend": report.frontend, **group_stats(report.groups),
            "before": dict(report.before)}


def compile_model(model, inputs, trace: str, recipe: str = RECIPE) -> tuple:
    """(record, Result or None): ``recipe`` compiled with timings per pass."""
    timings, probe = Timings(), TraceProbe()
    start = time.perf_counter()
    try:
        result = pruneql.compile(recipe, model, example_inputs=inputs, trace=trace,
                                 hooks=(timings, probe))
        rec = report_record(result.report)
    except Exception as exc:                                # noqa: BLE001
        result, rec = None, {"error": error_record(exc)}
    rec["compile_seconds"] = round(time.perf_counter() - start, 2)
    rec["pass_seconds"] = {k: round(v, 2) for k, v in timings.seconds.items()}
    rec["symbolic_failed"] = [why for front, why in probe.failed if front == "symbolic"]
    return rec, result


def save_checks(result, folder: str) -> dict:
    """Write the pruned model as .pt2 and .pt: 'ok' or the error."""
    found = {}
    for suffix in ("pt2", "pt"):
        start = time.perf_counter()
        try:
            path = result.save(os.path.join(folder, f"m.{suffix}"))
            found[suffix] = {"ok": True, "bytes": os.path.getsize(path)}
        except Exception as exc:                            # noqa: BLE001
            found[suffix] = {"ok": False, "error": error_record(exc)}
        found[suffix]["seconds"] = round(time.perf_counter() - start, 2)
    return found


NOTHING = "matches only layers that cannot be pruned"


def classify(rec: dict) -> tuple:
    """(kind, outcome text) of a record, as the module docstring defines them."""
    err = rec.get("error")
    if err is not None:
        if err["crash"]:
            return "CRASH", f"CRASH: {err.get('stage', err['type'])}: {err['message']}"
        if err["stage"] == "plan" and NOTHING in err["message"]:
            return "nothing prunable", "nothing prunable"
        return "error", f"error: {err['stage']}: {err['message']}"
    if not rec.get("pruned"):
        return "nothing prunable", "nothing prunable"
    if not (rec.get("verify") or {}).get("passed"):
        return "error", "error: verify: compiled, but verify did not pass"
    return "pruned+verified", "pruned+verified"


def measure(spec: ModelSpec, trace: str, recipe: str = RECIPE) -> dict:
    """Everything about one model (runs inside the child process)."""
    torch.manual_seed(0)
    rec = {"name": spec.name, "family": spec.family}
    try:
        model = spec.build().eval()
        inputs = spec.inputs(1)
    except ImportError as exc:
        return {**rec, "kind": "skipped", "outcome": f"skipped: {first_line(exc)}"}
    rec["input"] = [list(t.shape) for t in inputs]
    rec["model_params"] = sum(p.numel() for p in model.parameters())
    compiled, result = compile_model(model, inputs, trace, recipe)
    rec.update(compiled)
    if result is None:
        rec["plan"] = plan_record(model, inputs, trace)
        if NOTHING in rec["error"]["message"] and "groups" in rec["plan"]:
            rec.update({k: rec["plan"][k] for k in ("frontend", "groups", "prunable",
                                                    "frozen", "pruned", "frozen_reasons",
                                                    "before")})
            rec["after"] = rec["before"]          # nothing removed: the model as it was
    rec["kind"], rec["outcome"] = classify(rec)
    with tempfile.TemporaryDirectory(prefix="pruneql-mc-") as folder:
        if result is not None:
            rec["save"] = save_checks(result, folder)
        if spec.extra is not None:
            rec["extra"] = spec.extra(spec, folder)
    return rec


# ================================================================== YOLOv8 predict path ==
class UltralyticsModule(nn.Module):
    """A pruned GraphModule as Ultralytics' predictor takes a foreign ``nn.Module``:
    ``AutoBackend`` reads ``stride``, ``names`` and ``yaml['channels']`` and calls
    ``model(im)``; it calls ``fuse()`` only where the module has one."""

    def __init__(self, graph_module: nn.Module, original: nn.Module):
        super().__init__()
        self.graph_module = graph_module
        self.stride = original.stride
        self.names = original.names
        self.yaml = original.yaml

    def forward(self, im, *args, **kwargs):
        return self.graph_module(im)


def _leaf_shapes(value) -> list:
    from torch.utils._pytree import tree_leaves
    return [list(t.shape) for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


def _predict(yolo, image, size: int) -> dict:
    yolo.predictor = None                # a new predictor, so a new AutoBackend on yolo.model
    try:
        results = yolo.predict(image, imgsz=size, conf=1e-6, verbose=False)
    except Exception as exc:                                # noqa: BLE001
        return {"ok": False, "error": error_record(exc)}
    from ultralytics.engine.results import Results
    first = results[0]
    ok = isinstance(first, Results) and first.boxes is not None
    return {"ok": ok, "results": type(first).__name__,
            "boxes": None if first.boxes is None else len(first.boxes)}


def yolo_predict_check(spec: ModelSpec, folder: str) -> dict:
    """Prune YOLOv8n with ``round 8`` and run the pruned module through ``YOLO.predict``."""
    import numpy as np
    import torchvision
    from ultralytics import YOLO

    out = {"recipe": RECIPE + " round 8", "needed": []}
    if not torchvision.extension._has_ops():     # environment, not PruneQL: no C++ NMS
        from ultralytics.utils.nms import TorchNMS
        torchvision.ops.nms = TorchNMS.nms
        out["needed"].append("torchvision.ops.nms := ultralytics TorchNMS.nms (this "
                             "torchvision build has no C++ ops)")
    yolo = YOLO("yolov8n.yaml")
    original = yolo.model.eval()
    x = torch.randn(1, 3, 160, 160)
    try:
        result = pruneql.compile(out["recipe"], original, example_inputs=x, trace="auto")
    except Exception as exc:                                # noqa: BLE001
        return {**out, "error": error_record(exc)}
    out.update(report_record(result.report))
    with torch.no_grad():
        out["original_shapes"] = _leaf_shapes(original(x))
        out["pruned_shapes"] = _leaf_shapes(result.module(x))
    out["shapes_kept"] = out["original_shapes"] == out["pruned_shapes"]
    image = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    out["predict_original"] = _predict(yolo, image, 160)
    yolo.model = UltralyticsModule(result.module, original)
    out["needed"].append("yolo.model := an nn.Module holding the GraphModule, with the "
                         "original's stride, names and yaml; forward(im, **kw) -> gm(im)")
    out["predict_pruned"] = _predict(yolo, image, 160)
    out["predict_pruned_320"] = _predict(yolo, image, 320)   # another size than traced
    return out


REGISTRY["yolov8n"].extra = yolo_predict_check


# ============================================================================== runner ==
def warm_up() -> None:
    """Pay the first-compile costs (imports, torch.export set-up) once, before forking."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1))
    pruneql.compile("prune 0 by l1 keep 0.5", net, example_inputs=torch.randn(1, 3, 8, 8),
                    trace="export")


def _child(name: str, trace: str, recipe: str, conn) -> None:
    try:
        # a JSON round trip keeps the record picklable and plain
        conn.send(json.loads(json.dumps(measure(REGISTRY[name], trace, recipe), default=str)))
    except BaseException as exc:                    # report, never hang the parent
        conn.send({"name": name, "family": REGISTRY[name].family,
                   "error": {"type": type(exc).__name__, "message": first_line(exc),
                             "at": where(exc), "crash": True}})
    finally:
        conn.close()


def run_isolated(spec: ModelSpec, trace: str, recipe: str, timeout: float) -> dict:
    """``measure`` in a forked child; a timeout or a dead child is a CRASH record."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec.name, trace, recipe, child))
    start = time.perf_counter()
    proc.start()
    child.close()
    rec = None
    if parent.poll(timeout):
        try:
            rec = parent.recv()
        except EOFError:
            rec = None
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if rec is None:
        why = f"timeout after {timeout:.0f}s" if proc.exitcode in (None, -9) else \
            f"child died with exit code {proc.exitcode}"
        rec = {"name": spec.name, "family": spec.family,
               "error": {"type": "ChildProcess", "message": why, "crash": True}}
    if "kind" not in rec:
        rec["kind"], rec["outcome"] = classify(rec)
    rec["wall_seconds"] = round(time.perf_counter() - start, 2)
    return rec


def select(patterns: list | None) -> list:
    """Registry names matching NAME, a glob, or family:FAM; all when none are given."""
    if not patterns:
        return list(REGISTRY)
    chosen = []
    for pattern in patterns:
        if pattern.startswith("family:"):
            found = [n for n, s in REGISTRY.items() if s.family == pattern[7:]]
        else:
            found = [n for n in REGISTRY if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise SystemExit(f"no model matches {pattern!r} (see --list)")
        chosen += [n for n in found if n not in chosen]
    return chosen


def progress_line(rec: dict) -> str:
    flops = ""
    if rec.get("before"):
        flops = f" {rec['before']['flops'] / 1e6:,.1f}M→{rec['after']['flops'] / 1e6:,.1f}M"
    groups = f" {rec.get('prunable', '?')}/{rec.get('frozen', '?')}" if "groups" in rec else ""
    return (f"{rec['name']:<32} {rec.get('frontend') or '-':<8}{groups}{flops} "
            f"[{rec.get('wall_seconds', 0):.0f}s] {rec['outcome']}")


# =========================================================================== reporting ==
def normalize(reason: str) -> str:
    """A frozen reason with names and numbers taken out, so reasons aggregate."""
    reason = re.sub(r"'[^'\s]*'", "'…'", reason)
    return re.sub(r"\b\d+\b", "N", reason)


def main_reason(rec: dict) -> str:
    reasons = Counter()
    for reason, n in (rec.get("frozen_reasons") or {}).items():
        reasons[normalize(reason)] += n
    inner = [(r, n) for r, n in reasons.most_common() if r != OUTPUT_REASON]
    top = inner or reasons.most_common()
    return f"{top[0][1]}× {top[0][0]}" if top else ""


def _mega(value) -> str:
    return f"{value / 1e6:,.1f}M"


def _cell(text: str, limit: int = 110) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _save_cell(rec: dict, suffix: str) -> str:
    found = (rec.get("save") or {}).get(suffix)
    if found is None:
        return "–"
    if found["ok"]:
        return "ok"
    return "CRASH" if found["error"]["crash"] else found["error"]["type"]


def row(rec: dict) -> str:
    before, after = rec.get("before"), rec.get("after")
    size = "–"
    if rec.get("input"):
        shape = rec["input"][0][1:]
        size = f"seq {shape[0]}" if len(shape) == 1 else "x".join(map(str, shape))
    verify = rec.get("verify") or {}
    err = verify.get("max_rel_error")
    cells = [f"`{rec['name']}`", size, frontend_of(rec) or "–",
             f"{rec['prunable']} / {rec['frozen']}" if "groups" in rec else "–",
             f"{_mega(before['flops'])} → {_mega(after['flops'])}" if before and after else "–",
             f"{_mega(before['params'])} → {_mega(after['params'])}" if before and after
             else "–",
             f"{err:.1e}" if isinstance(err, float) else "–",
             f"{rec['compile_seconds']:.1f}" if "compile_seconds" in rec else "–",
             _save_cell(rec, "pt2"), _save_cell(rec, "pt"),
             _cell(outcome_cell(rec)), _cell(main_reason(rec), 90)]
    return "| " + " | ".join(cells) + " |"


def outcome_cell(rec: dict) -> str:
    """The outcome; for a model neither front-end traces, the export front-end's reason
    (the symbolic one is in the section on the fallback)."""
    text = rec["outcome"]
    if text.startswith("error: trace:") and "; export: " in text:
        return "error: trace: export: " + text.split("; export: ", 1)[1]
    return text


HEADER = ("| model | input | front-end | groups prunable / frozen | FLOPs before → after "
          "| params before → after | verify max rel err | compile s | .pt2 | .pt | outcome "
          "| main frozen reason |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def totals(records: list) -> list:
    kinds = Counter(r["kind"] for r in records)
    fronts = Counter(frontend_of(r) or "none" for r in records)
    lines = ["| outcome | models |", "|---|---|"]
    lines += [f"| {k} | {kinds.get(k, 0)} |" for k in
              ("pruned+verified", "nothing prunable", "error", "CRASH", "skipped")
              if kinds.get(k) or k != "skipped"]
    lines += [f"| **total** | **{len(records)}** |", "",
              "Front-end used (compile, or the analysis alone where compile failed): "
              + ", ".join(f"{k} {v}" for k, v in fronts.most_common()) + "."]
    for suffix, label in (("pt2", "torch.export `.pt2`"), ("pt", "TorchScript `.pt`")):
        tried = [r for r in records if (r.get("save") or {}).get(suffix)]
        ok = sum(r["save"][suffix]["ok"] for r in tried)
        lines.append(f"Writing {label}: {ok} of {len(tried)} compiled models.")
    return lines


def frontend_of(rec: dict) -> str | None:
    return rec.get("frontend") or (rec.get("plan") or {}).get("frontend")


def worklist(records: list) -> list:
    """Every CRASH and error, with the message, the hint, where it was raised, and what
    the channel analysis alone (``plan`` without prune statements) makes of the model."""
    lines = []
    for rec in records:
        err = rec.get("error")
        if rec["kind"] not in ("CRASH", "error") or err is None:
            continue
        lines.append(f"- **`{rec['name']}`** ({rec['family']}) — {rec['kind']}: "
                     f"`{err['type']}`{' (' + err['stage'] + ')' if err.get('stage') else ''}"
                     f": {_cell(err['message'], 400)}")
        if err.get("hint"):
            lines.append(f"  - hint: {_cell(err['hint'], 300)}")
        at = err.get("cause_at") or err.get("at")
        if at:
            lines.append(f"  - raised at: {' → '.join(f'`{a}`' for a in at)}")
        plan = rec.get("plan") or {}
        if "groups" in plan:
            lines.append(f"  - analysis alone: {plan['frontend']}, {plan['groups']} groups, "
                         f"{plan['prunable']} prunable, {plan['frozen']} frozen")
        elif plan.get("error"):
            lines.append(f"  - analysis alone fails too: `{plan['error']['type']}`: "
                         f"{_cell(plan['error']['message'], 300)}")
    for rec in records:
        for suffix, found in (rec.get("save") or {}).items():
            if not found["ok"]:
                e = found["error"]
                lines.append(f"- **`{rec['name']}`** writing `.{suffix}` — "
                             f"{'CRASH' if e['crash'] else 'refused'}: `{e['type']}`: "
                             f"{_cell(e['message'], 300)}")
    return lines or ["None."]


def frozen_section(records: list) -> list:
    groups, models, examples = Counter(), defaultdict(set), defaultdict(list)
    for rec in records:
        for reason, n in (rec.get("frozen_reasons") or {}).items():
            key = normalize(reason)
            groups[key] += n
            models[key].add(rec["name"])
            if len(examples[key]) < 3 and rec["name"] not in [m for m, _ in examples[key]]:
                examples[key].append((rec["name"], reason))
    lines = ["| reason (names and numbers generalised) | groups | models | examples |",
             "|---|---|---|---|"]
    for key, n in groups.most_common():
        shown = "; ".join(f"`{m}`: {_cell(r, 160)}" for m, r in examples[key])
        lines.append(f"| {_cell(key, 200)} | {n} | {len(models[key])} | {shown} |")
    return lines


def symbolic_section(records: list) -> list:
    """Why symbolic tracing gave way to torch.export (auto mode)."""
    why = defaultdict(list)
    for rec in records:
        for reason in rec.get("symbolic_failed") or ():
            why[normalize(reason)].append(rec["name"])
    lines = ["| symbolic tracing failed with | models |", "|---|---|"]
    for key, names in sorted(why.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"| {_cell(key, 240)} | {', '.join(f'`{n}`' for n in names)} |")
    return lines if why else ["No model needed the fallback."]


def yolo_section(records: list) -> list:
    rec = next((r for r in records if r["name"] == "yolov8n" and r.get("extra")), None)
    if rec is None:
        return ["Not run."]
    x = rec["extra"]
    if "error" in x:
        return [f"`{x['recipe']}` failed: `{x['error']['type']}`: {x['error']['message']}"]

    def predict(found):
        if found["ok"]:
            return f"ok: a `{found['results']}` with {found['boxes']} boxes (conf 1e-6)"
        return f"failed: `{found['error']['type']}`: {_cell(found['error']['message'], 200)}"

    return [f"`{x['recipe']}` on `yolov8n` (160x160, {x['frontend']} front-end): "
            f"{x['prunable']} of {x['groups']} groups prunable, {x['pruned']} pruned; FLOPs "
            f"{_mega(x['before']['flops'])} → {_mega(x['after']['flops'])}, params "
            f"{_mega(x['before']['params'])} → {_mega(x['after']['params'])}; verify "
            f"{'passed' if (x['verify'] or {}).get('passed') else 'FAILED'}.", "",
            f"- output shapes kept: **{x['shapes_kept']}** "
            f"(`{x['pruned_shapes']}`)",
            f"- `YOLO.predict` with the original model: {predict(x['predict_original'])}",
            f"- `YOLO.predict` with the pruned module, imgsz 160: "
            f"**{predict(x['predict_pruned'])}**",
            f"- the same at imgsz 320 (not the traced size): {predict(x['predict_pruned_320'])}",
            "- what was needed:", *[f"  - {n}" for n in x["needed"]]]


def _brief(rec: dict) -> str:
    flops = ""
    if rec.get("before"):
        flops = f", FLOPs {_mega(rec['before']['flops'])} → {_mega(rec['after']['flops'])}"
    groups = f", {rec['prunable']} / {rec['frozen']}" if "groups" in rec else ""
    return f"{frontend_of(rec) or '–'}{groups}{flops}: {_cell(outcome_cell(rec), 90)}"


def compare_section(records: list, other: list, meta: dict) -> list:
    """The models whose outcome, groups or FLOPs differ in another run (``--compare``:
    typically the same set forced through ``--trace export``)."""
    theirs = {r["name"]: r for r in other}
    lines = [f"The same models compiled with `trace {meta.get('trace', '?')}` (`--compare`): "
             "the rows below differ in outcome, groups prunable / frozen, or FLOPs; every "
             "other model gives the same result.", "",
             "| model | this run | compared run | why it differs (compared run's reasons) |",
             "|---|---|---|---|"]
    for rec in records:
        them = theirs.get(rec["name"])
        if them is None or _same(rec, them):
            continue
        mine, other_reasons = set(rec.get("frozen_reasons") or ()), \
            them.get("frozen_reasons") or {}
        new = [f"{n}× {normalize(r)}" for r, n in other_reasons.items() if r not in mine]
        lines.append(f"| `{rec['name']}` | {_brief(rec)} | {_brief(them)} "
                     f"| {_cell('; '.join(new), 200)} |")
    return lines


def _same(a: dict, b: dict) -> bool:
    key = ("kind", "prunable", "frozen")
    if any(a.get(k) != b.get(k) for k in key):
        return False
    for side in ("before", "after"):
        x, y = (a.get(side) or {}).get("flops"), (b.get(side) or {}).get("flops")
        if (x is None) != (y is None) or (x and abs(x - y) > 0.005 * x):
            return False
    return True


def markdown(records: list, meta: dict, compared: tuple | None = None) -> str:
    by_family = defaultdict(list)
    for rec in records:
        by_family[rec["family"]].append(rec)
    out = ["# Model coverage: real model definitions from public libraries", "",
           "Generated by `python bench/model_coverage.py` "
           f"({meta.get('date', '')}; {meta.get('versions', '')}). Every model is built from "
           "its config with random weights, in eval mode, on a small input (batch 1), and "
           f"compiled with `{meta.get('recipe', RECIPE)}` and `trace {meta.get('trace', 'auto')}`"
           " through `pruneql.compile`; the "
           "result is then written as `.pt2` and `.pt`. Outcomes: **pruned+verified** (a group "
           "was pruned and verify passed), **nothing prunable** (every group frozen), "
           "**error** (a `PruneQLError`: a refusal with a reason), **CRASH** (any other "
           "exception, an `InternalError`, a timeout or a dead child). FLOPs are "
           "multiply-adds (conv/linear layers plus other matmuls); groups frozen include the "
           "ones that reach a model output, which are never pruned.", "",
           "## Totals", "", *totals(records), ""]
    for family in [f for f in FAMILIES if f in by_family] + \
            [f for f in by_family if f not in FAMILIES]:
        out += [f"## {family}", "", HEADER, *map(row, by_family[family]), ""]
    out += ["## YOLOv8n inside Ultralytics' predict path", "", *yolo_section(records), "",
            "## Errors and crashes", "", *worklist(records), "",
            "## Why groups are frozen", "",
            "Across all models, frozen groups by reason (quoted names and numbers replaced, "
            "so one reason aggregates over layers and models). A group shows the first op "
            "that pinned it; an op further on may pin it too, and a group pinned by an op "
            "upstream shows that op even where a later one is the real obstacle.", "",
            *frozen_section(records), "",
            "## Why symbolic tracing gave way to torch.export", "",
            *symbolic_section(records), ""]
    if compared is not None:
        out += ["## Compared with another front-end", "", *compare_section(records, *compared),
                ""]
    return "\n".join(out)


def revision() -> str:
    """The PruneQL measured: its checkout's commit, and whether pruneql/ had local changes."""
    import subprocess
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(pruneql.__file__)))
    where = "" if checkout == ROOT else f" (imported from {checkout})"
    try:
        head = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", checkout, "status", "--porcelain", "pruneql"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"PruneQL of unknown revision{where}"
    return f"PruneQL {head}" + (" with local changes" if dirty else "") + where


def versions() -> str:
    found = [f"torch {torch.__version__}"]
    for name in ("torchvision", "timm", "transformers", "segmentation_models_pytorch",
                 "ultralytics"):
        try:
            found.append(f"{name} {__import__(name).__version__}")
        except Exception:                                   # noqa: BLE001
            found.append(f"{name} missing")
    return ", ".join(found)


# ================================================================================ main ==
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", metavar="NAME",
                    help="names, globs ('tv_*') or family:FAM (default: all)")
    ap.add_argument("--trace", default="auto", choices=("auto", "symbolic", "export"))
    ap.add_argument("--recipe", default=RECIPE,
                    help=f"the recipe every model is compiled with (default: {RECIPE!r}; "
                         "e.g. add '; allow inexact layernorm')")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per model")
    ap.add_argument("--json", metavar="PATH", help="write the records as JSON")
    ap.add_argument("--merge", action="store_true",
                    help="with --json: replace these models' records in the existing file "
                         "and render the report from all of them")
    ap.add_argument("--from-json", metavar="PATH", help="render a saved run, run nothing")
    ap.add_argument("--compare", metavar="PATH",
                    help="a saved run (--json) of another --trace, e.g. export: the report "
                         "adds the models whose results differ")
    ap.add_argument("--out", metavar="PATH",
                    help=f"write the report here (default for a full run: {DOC})")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--no-fork", action="store_true", help="run in-process (debugging)")
    ap.add_argument("--list", action="store_true", help="list the registry and exit")
    return ap.parse_args(argv)


def run_all(args) -> list:
    names = select(args.models)
    warm_up()
    for family in ("timm", "ultralytics", "segmentation_models_pytorch", "transformers"):
        try:                            # import once before forking: children inherit it
            __import__(family)
        except ImportError:
            pass
    records = []
    for i, name in enumerate(names, 1):
        spec = REGISTRY[name]
        if args.no_fork:
            start = time.perf_counter()
            rec = json.loads(json.dumps(measure(spec, args.trace, args.recipe), default=str))
            rec["wall_seconds"] = round(time.perf_counter() - start, 2)
        else:
            rec = run_isolated(spec, args.trace, args.recipe, args.timeout)
        records.append(rec)
        print(f"[{i}/{len(names)}] {progress_line(rec)}", file=sys.stderr, flush=True)
    return records


def merged(path: str, records: list, meta: dict) -> list:
    """``records`` in place of their namesakes in the run saved at ``path``; ``meta``
    notes the versions of the run merged into."""
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    fresh = {r["name"]: r for r in records}
    out = [fresh.pop(r["name"], r) for r in saved["records"]]
    meta["versions"] += (f"; {len(records)} models re-run into a run of "
                         f"{saved.get('meta', {}).get('versions', '?')}")
    return out + list(fresh.values())


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, spec in REGISTRY.items():
            print(f"{spec.family:<12} {name}")
        return 0
    meta = {"date": time.strftime("%Y-%m-%d"), "versions": f"{revision()}; {versions()}",
            "recipe": args.recipe, "trace": args.trace}
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            saved = json.load(f)
        records, meta = saved["records"], saved.get("meta", meta)
    else:
        records = run_all(args)
        if args.json and args.merge and os.path.exists(args.json):
            records = merged(args.json, records, meta)
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"meta": meta, "records": records}, f, indent=1, default=str)
    compared = None
    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            saved = json.load(f)
        compared = (saved["records"], saved.get("meta", {}))
    text = markdown(records, meta, compared)
    full = not args.models or (args.merge and args.json)
    out = None if args.no_write else args.out or (DOC if full and not args.from_json else None)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)
    kinds = Counter(r["kind"] for r in records)
    print(", ".join(f"{k} {v}" for k, v in kinds.most_common()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
