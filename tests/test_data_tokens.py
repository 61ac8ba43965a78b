"""Token data for transformer models: npz token files and the bundled corpus."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pruneql.data import check_batch, load_data, make_corpus, parse_cli, tokens
from tests.test_data import fails, write_npz


# ---- the bundled corpus -----------------------------------------------------------------

def test_bundled_corpus_windows():
    ds = load_data(source="tokens", batch=16)
    assert ds.name == "tokens" and ds.task == "lm" and ds.input_shape == (64,)
    assert ds.vocab_size == 256 and ds.num_classes == 256 and ds.ignore_index is None
    x, y = next(iter(ds.train))
    assert x.shape == y.shape == (16, 64) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])   # next-token targets
    assert 0 <= x.min() and x.max() < 128     # ASCII text
    assert len(ds.train.dataset) + len(ds.val.dataset) == (tokens.CORPUS_FILE.stat().st_size
                                                           - 1) // 64
    check_batch(x, y, "train batch 1", ds.num_classes, "lm")
    assert parse_cli("tokens") == ("tokens", None)


def test_bundled_corpus_is_small_and_regenerates_byte_for_byte():
    data = tokens.CORPUS_FILE.read_bytes()
    assert 50_000 < len(data) < 300_000
    assert make_corpus.corpus().encode("ascii") == data
    text = data.decode("ascii")
    assert "Two cats run" in text or "two cats" in text.lower()
    assert all(line.endswith(".") for line in text.splitlines())


def test_bundled_corpus_is_learnable():
    """A bigram model (one table of next-byte logits) gets well below the ~2.9 nats of
    English letter frequencies alone within 30 steps; random bytes would stay near 5.5."""
    torch.manual_seed(0)
    ds = load_data(source="tokens", batch=32)
    table = torch.zeros(256, 256, requires_grad=True)
    opt = torch.optim.Adam([table], lr=0.5)

    def loss_of(x, y):
        return F.cross_entropy(F.embedding(x, table).reshape(-1, 256), y.reshape(-1))

    first = None
    for _, (x, y) in zip(range(30), ds.train):
        loss = loss_of(x, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        val = torch.stack([loss_of(x, y) for x, y in ds.val]).mean().item()
    assert first > 5.0 and val < 2.5


# ---- token npz files --------------------------------------------------------------------

def test_language_model_npz(tmp_path):
    x = np.arange(40).reshape(4, 10) % 7
    y = np.roll(x, -1, axis=1)
    y[:, -1] = -100   # nothing to predict after the last token
    ds = load_data(source="tokens", path=write_npz(tmp_path, x=x, y=y), val=0.25)
    assert ds.task == "lm" and ds.vocab_size == 7 and ds.num_classes == 7
    assert ds.ignore_index == -100 and ds.input_shape == (10,)
    ds = load_data(source="tokens", path=write_npz(tmp_path, "v.npz", x=x, y=y,
                                                   vocab_size=np.int64(50)))
    assert ds.vocab_size == 50


def test_sequence_classification_npz(tmp_path):
    x = np.arange(24).reshape(6, 4).astype(np.uint16)
    ds = load_data(source="tokens", path=write_npz(tmp_path, x=x, y=np.arange(6) % 3),
                   val=0.0)
    assert ds.task == "classification" and ds.num_classes == 3 and ds.vocab_size == 24
    x_batch, y_batch = next(iter(ds.train))
    assert x_batch.dtype == torch.int64 and y_batch.shape == (6,)


def test_token_errors(tmp_path):
    x = np.arange(12).reshape(3, 4)
    fails(r"tokens file '.*', x: token id 8 at example 2 is out of range for a vocabulary "
          r"of 8", source="tokens",
          path=write_npz(tmp_path, x=x, y=np.zeros(3, int), vocab_size=np.int64(8)))
    negative = x.copy()
    negative[1, 2] = -4
    fails(r"x: negative token id -4 at example 1", source="tokens",
          path=write_npz(tmp_path, "n.npz", x=negative, y=np.zeros(3, int)))
    fails(r"x: token ids must be integers, got float32", source="tokens",
          path=write_npz(tmp_path, "f.npz", x=x.astype(np.float32), y=np.zeros(3, int)))
    fails(r"y: lm needs integer token ids, got torch.float32 \(e.g. 0.5 at example 0\)",
          source="tokens",
          path=write_npz(tmp_path, "fy.npz", x=x, y=x + 0.5))
    fails(r"y: classification needs integer labels", source="tokens",
          path=write_npz(tmp_path, "fl.npz", x=x, y=np.zeros(3)))
    fails(r"y: token id 20 at example 0 is out of range for a vocabulary of 12|"
          r"y: token id 20 at example 0 is out of range for 12 tokens", source="tokens",
          path=write_npz(tmp_path, "t.npz", x=x, y=np.full((3, 4), 20), vocab_size=np.int64(12)))
    fails(r"'x' has shape \(3, 2, 2\); expected \(N, T\) token ids", source="tokens",
          path=write_npz(tmp_path, "r.npz", x=x.reshape(3, 2, 2), y=np.zeros(3, int)))
    fails("targets of shape .* do not fit lm", source="tokens", task="lm",
          path=write_npz(tmp_path, "c.npz", x=x, y=np.zeros(3, int)))
    fails("`normalize none` applies to 8-bit images", source="tokens", normalize="none")
    fails("tokens file '.*missing.npz' does not exist", source="tokens",
          path=str(tmp_path / "missing.npz"))
