"""`pruneql demo`: the whole pipeline on bundled data, with no download.

``--model digits_cnn`` (the default): the shipped checkpoint of the digits CNN
(``pruneql/zoo/digits_cnn.pt``, trained by ``bench/train_digits.py``) is compiled with
``specs/digits.prune`` — Taylor criterion, half the channels of every conv and of fc1,
fine-tuning — verified, written as TorchScript, and measured: accuracy, FLOPs, parameters
and CPU latency before and after.

``--model llama_tiny``: a Llama-style language model (RMSNorm, RoPE, SwiGLU, grouped-query
attention) is first trained for two epochs on the bundled corpus (no checkpoint ships),
then half its heads, half its MLP width and a quarter of its hidden width are removed —
verified exactly — and the pruned model is fine-tuned for one epoch; token accuracy and
perplexity on the validation windows before, after pruning and after fine-tuning.
"""
from __future__ import annotations

import torch

from pruneql import api, zoo
from pruneql.errors import RecipeError
from pruneql.latency import compare
from pruneql.resources import resource
from pruneql.training import Progress

__all__ = ["LLAMA_RECIPE", "MODELS", "demo", "resource"]

MODELS = ("digits_cnn", "llama_tiny")
# the language-model demo's recipe (its dense model is trained first: see _pretrained_llama)
LLAMA_RECIPE = """\
model llama_tiny
input 64
data tokens batch 32
task lm
prune q_proj by l2 keep 0.5 heads
prune gate_proj by l2 keep 0.5
prune embed_tokens by l2 keep 0.75
finetune epochs 1 lr 0.002 optimizer adam
"""


def demo(output: str, force: bool = False, progress: Progress | None = None,
         hooks: tuple = (), model: str = "digits_cnn") -> dict:
    """Run the demo, write the pruned model to ``output``; returns the JSON-ready summary.
    ``output`` is checked before any work, so a refused path costs nothing."""
    progress = progress or Progress()
    if model not in MODELS:
        raise RecipeError(f"there is no demo of '{model}'",
                          hint=f"choose one of: {', '.join(MODELS)}")
    api.check_target(output, force)
    if model == "llama_tiny":
        return _llama(output, force, progress, hooks)
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


def _llama(output: str, force: bool, progress: Progress, hooks: tuple) -> dict:
    from pruneql.data import load_data
    from pruneql.tasks import Task
    from pruneql.training import Hyper, evaluate, train

    torch.manual_seed(0)
    model = zoo.build("llama_tiny")
    data, task = load_data(source="tokens", batch=32, seed=0), Task.named("lm")
    history = train(model, data, Hyper(epochs=2, lr=0.003, optimizer="adam"), progress,
                    task, label="train the dense model (2 epochs)")
    dense = evaluate(model, data.val, task, data)
    result = api.compile(LLAMA_RECIPE, model, progress=progress, hooks=hooks,
                         output=output, force=force)
    report = result.report.to_dict()
    report["pretraining"] = {"epochs": history.epochs, "val": dense}
    progress.start("latency (before and after, batch 1 and 32)")
    report["latency_ms"] = compare(model, result.module, (64,), batches=(1, 32), make=_tokens)
    progress.end("latency (before and after, batch 1 and 32)")
    report["output"] = result.written["path"]
    return report


def _tokens(batch: int) -> torch.Tensor:
    """Random byte ids, (batch, 64): the latency table's input for the language model."""
    return torch.randint(0, 256, (batch, 64), generator=torch.Generator().manual_seed(batch))
