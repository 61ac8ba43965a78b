"""Parity of the zoo's transformers with the libraries whose layouts they copy.

Builds timm's ``vit_tiny_patch16_224`` and Hugging Face's ``BertForSequenceClassification``
and ``LlamaForCausalLM`` at the zoo models' sizes with random init (nothing is downloaded),
loads each state_dict into the zoo model with ``strict=True`` and compares outputs in eval
mode on random inputs: max abs error and max error relative to the reference's max |output|.

    python bench/zoo_parity.py            # needs timm and transformers; CPU, ~1 min

Hugging Face's non-persistent buffers (``position_ids``, ``token_type_ids``, ``inv_freq``)
are not in its state_dicts, so no key is dropped; the script fails if any key is missing or
unexpected.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:               # this working tree's pruneql
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from pruneql import zoo  # noqa: E402

TOL = 1e-5


def _import_torchvision_without_ops() -> None:
    """timm and transformers import torchvision; a CUDA torchvision next to a CPU torch fails
    while registering fake kernels for ops its unloadable C extension never defined. Those
    registrations are irrelevant here, so they are skipped while torchvision imports."""
    import torch.library

    real = torch.library.register_fake
    torch.library.register_fake = lambda *a, **k: (lambda fn: fn)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    finally:
        torch.library.register_fake = real


def _errors(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    diff = float((ours - ref).abs().max())
    return diff, diff / max(float(ref.abs().max()), 1e-12)


def _compare(label: str, ours, ref, inputs, mask=None) -> dict:
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=True)
    assert not missing and not unexpected
    ours.eval(), ref.eval()
    with torch.no_grad():
        if mask is None:
            got, want = ours(inputs), _logits(ref(inputs))
        else:
            got, want = ours.forward_masked(inputs, mask), _logits(ref(inputs, attention_mask=mask))
    abs_err, rel_err = _errors(got, want)
    return {"model": label, "shape": tuple(got.shape), "keys": len(ref.state_dict()),
            "ref": float(want.abs().max()), "abs": abs_err, "rel": rel_err}


def _logits(out):
    return out if isinstance(out, torch.Tensor) else out.logits


def vit_rows(gen: torch.Generator) -> list[dict]:
    import timm

    x = torch.randn(4, 3, 224, 224, generator=gen)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    # timm's init leaves the head small but not zero; perturb the near-zero class token so the
    # comparison exercises it
    with torch.no_grad():
        ref.cls_token.normal_(std=0.02, generator=gen)
    rows = [_compare("vit_tiny (sdpa)", zoo.vit_tiny(), ref, x)]
    for blk in ref.blocks:
        blk.attn.fused_attn = False
    rows.append(_compare("vit_tiny (explicit)", zoo.vit_tiny(fused_attn=False), ref, x))
    return rows


def bert_rows(gen: torch.Generator) -> list[dict]:
    from transformers import BertConfig, BertForSequenceClassification

    rows = []
    ids = torch.randint(0, 30522, (4, 48), generator=gen)
    mask = torch.ones(4, 48, dtype=torch.long)
    mask[1, 30:], mask[3, 5:] = 0, 0
    for impl, fused in (("sdpa", True), ("eager", False)):
        config = BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=512, hidden_act="gelu",
                            max_position_embeddings=512, num_labels=2,
                            attn_implementation=impl)
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        ref = BertForSequenceClassification(config)
        rows.append(_compare(f"bert_tiny ({impl})", zoo.bert_tiny(fused_attn=fused), ref, ids))
        rows.append(_compare(f"bert_tiny ({impl}, mask)", zoo.bert_tiny(fused_attn=fused), ref,
                             ids, mask))
    return rows


def llama_rows(gen: torch.Generator) -> list[dict]:
    from transformers import LlamaConfig, LlamaForCausalLM

    rows = []
    ids = torch.randint(0, 256, (4, 96), generator=gen)
    for tie in (False, True):
        for impl, fused in (("sdpa", True), ("eager", False)):
            config = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=384,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, max_position_embeddings=256,
                                 rms_norm_eps=1e-6, rope_theta=10000.0,
                                 tie_word_embeddings=tie, attn_implementation=impl)
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
            ref = LlamaForCausalLM(config)
            _perturb_norms(ref, gen)
            ours = zoo.llama_tiny(tie_word_embeddings=tie, fused_attn=fused)
            label = f"llama_tiny ({impl}{', tied' if tie else ''})"
            rows.append(_compare(label, ours, ref, ids))
            if tie:
                assert ours.lm_head.weight is ours.model.embed_tokens.weight
    # negative control: a different RoPE base must show up as a large error
    control = _compare("control: llama theta 1e5", zoo.llama_tiny(rope_theta=1e5), ref, ids)
    assert control["rel"] > 1e-3, control
    return rows + [control]


def _perturb_norms(model, gen: torch.Generator) -> None:
    """RMSNorm weights start at 1; make them differ so a swapped norm would show."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def main() -> int:
    _import_torchvision_without_ops()
    gen = torch.Generator().manual_seed(0)
    rows = vit_rows(gen) + bert_rows(gen) + llama_rows(gen)
    print(f"{'model':28} {'output':>10} {'keys':>5} {'max |ref|':>10} {'max abs err':>12} "
          f"{'max rel err':>12}")
    for r in rows:
        print(f"{r['model']:28} {'x'.join(map(str, r['shape'])):>10} {r['keys']:>5} "
              f"{r['ref']:10.3e} {r['abs']:12.3e} {r['rel']:12.3e}")
    worst = max(r["rel"] for r in rows if not r["model"].startswith("control"))
    print(f"worst relative error {worst:.3e} ({'ok' if worst <= TOL else 'FAIL'}: <= {TOL:g})")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
