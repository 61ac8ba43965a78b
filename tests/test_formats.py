"""Output formats: every format round-trips on small models at two batch sizes, written files
are byte-identical across processes, bad destinations are refused before any work, and a
failed or interrupted write leaves nothing behind."""
from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import stat
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pruneql
from pruneql import formats
from pruneql.errors import EmitError
emit_module = importlib.import_module("pruneql.passes.emit")   # the module, not the pass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIX = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx"}
HAVE_ONNX = all(importlib.util.find_spec(name) for name in formats.ONNX_PACKAGES)
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason='needs pip install "pruneql[onnx]"')
FORMATS = ["torchscript", "export", pytest.param("onnx", marks=needs_onnx)]


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(x, 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6),
                               nn.ReLU(), nn.Conv2d(6, 3, 1), nn.BatchNorm2d(3))

    def forward(self, x):
        return F.relu(x + self.a(x))


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.classes = nn.Linear(8, 5)
        self.box = nn.Linear(8, 4)

    def forward(self, x):
        y = F.relu(self.conv(x)).mean((2, 3))
        return self.classes(y), 100 * torch.sigmoid(self.box(y))   # outputs on other scales


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


class NeXtBlock(nn.Module):
    """A ConvNeXt stem and block: LayerNorm over channels, depthwise 7x7, layer scale."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 2, stride=2), LayerNorm2d(dim, eps=1e-6))
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), \
            nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def forward(self, x):
        x = self.stem(x)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))))
        x = x + (self.gamma * y).permute(0, 3, 1, 2)
        return self.head(x.mean((-2, -1)))


MODELS = {"cnn": SmallCNN, "residual": Residual, "two_outputs": TwoHeads, "convnext": NeXtBlock}
BATCH = {"two_outputs": 2}      # the others are written from a batch-1 example


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = MODELS[name]()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):     # statistics a freshly built BN does not have
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def example(batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(model name, format) -> (model, save() result), each written once for the module."""
    cache, folder = {}, tmp_path_factory.mktemp("written")

    def get(name: str, fmt: str):
        if (name, fmt) not in cache:
            model = build(name)
            path = folder / f"{name}{SUFFIX[fmt]}"
            cache[name, fmt] = model, formats.save(model, example(BATCH.get(name, 1)), path)
        return cache[name, fmt]
    return get


def run_file(path: str, fmt: str, x: torch.Tensor) -> list:
    """Run a written file with the plain runtime of its format (no PruneQL involved)."""
    if fmt == "torchscript":
        out = torch.jit.load(path)(x)
    elif fmt == "export":
        out = torch.export.load(path).module()(x)
    else:
        import onnxruntime     # the onnx extra: absent, the ONNX cases are skipped
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        out = [torch.from_numpy(y) for y in session.run(None, {"x": x.numpy()})]
    return list(out) if isinstance(out, (tuple, list)) else [out]


# --- every format, two batch sizes -------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_written_file_runs_at_any_batch_size(written, name, fmt):
    model, result = written(name, fmt)
    assert result["format"] == fmt and os.path.getsize(result["path"]) == result["size_bytes"]
    check = result["check"]
    batch = BATCH.get(name, 1)
    assert check["batch_sizes"] == [batch, 3 if batch == 2 else 2]
    assert check["max_rel_error"] <= formats.TOLERANCE[fmt]
    for size in (1, 5):
        x = example(size, seed=size)
        with torch.no_grad():
            want = model(x)
        want = list(want) if isinstance(want, tuple) else [want]
        got = run_file(result["path"], fmt, x)
        assert len(got) == len(want)
        for w, g in zip(want, got):
            assert g.shape == w.shape
            assert (w - g).abs().max() <= formats.TOLERANCE[fmt] * w.abs().max()


@needs_onnx
def test_onnx_names_the_batch_dimension(written):
    import onnxruntime
    _, result = written("two_outputs", "onnx")
    session = onnxruntime.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    assert [value.shape[0] for value in session.get_inputs() + session.get_outputs()] == \
        ["batch"] * 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_reload_check_catches_a_corrupted_file(written, fmt, tmp_path):
    model, result = written("cnn", fmt)
    data = open(result["path"], "rb").read()
    weight = model.fc.weight.detach()
    at = data.find(weight.numpy().tobytes())
    assert at >= 0, "the weights are stored as raw bytes"
    corrupted = tmp_path / f"bad{SUFFIX[fmt]}"
    end = at + weight.numel() * weight.element_size()
    corrupted.write_bytes(data[:at] + (weight + 1).numpy().tobytes() + data[end:])
    with pytest.raises(EmitError, match="written .* file"):
        formats.check_file(corrupted, model, example())
    formats.check_file(result["path"], model, example())      # the original passes


def test_a_file_failing_its_check_is_never_put_in_place(tmp_path, monkeypatch):
    real = formats.serialize

    def corrupting(module, inputs, fmt):
        data = real(module, inputs, fmt)
        weight = module.fc.weight.detach()
        return data.replace(weight.numpy().tobytes(), (weight * 2).numpy().tobytes())
    monkeypatch.setattr(formats, "serialize", corrupting)
    out = tmp_path / "m.pt"
    out.write_bytes(b"previous")
    with pytest.raises(EmitError, match="differs from the model"):
        formats.save(build("cnn"), example(), out, force=True)
    assert out.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.pt"]


def test_non_finite_outputs_fail_the_check(tmp_path):
    class Overflow(nn.Module):
        def forward(self, x):
            return x / 0
    with pytest.raises(EmitError, match="not finite"):
        formats.save(Overflow(), example(), tmp_path / "inf.pt")
    assert os.listdir(tmp_path) == []


def test_unscriptable_model_is_traced(tmp_path):
    class VarArgs(nn.Module):            # *inputs: torch.jit.script refuses the forward
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, *inputs):
            return self.conv(inputs[0])
    with pytest.raises(torch.jit.frontend.NotSupportedError):
        torch.jit.script(VarArgs())
    result = formats.save(VarArgs(), example(), tmp_path / "v.pt")
    assert result["check"]["batch_sizes"] == [1, 2]
    assert torch.jit.load(result["path"])(example(3)).shape == (3, 4, 8, 8)


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("offset", torch.arange(8.0).reshape(2, 4))

    def forward(self, x):
        return x + self.offset            # broadcasting pins the batch size to 2


def test_export_without_a_dynamic_batch_is_refused_in_one_line(tmp_path):
    with pytest.raises(EmitError, match="dynamic batch dimension") as caught:
        formats.save(FixedBatch(), torch.randn(2, 4), tmp_path / "fixed.pt2")
    assert "\n" not in caught.value.message and "x.shape[0]" in caught.value.hint
    assert os.listdir(tmp_path) == []


def test_model_failing_at_another_batch_size_is_refused(tmp_path):
    with pytest.raises(EmitError, match="model itself fails at batch size 3"):
        formats.save(FixedBatch(), torch.randn(2, 4), tmp_path / "fixed.pt")
    assert os.listdir(tmp_path) == []


def test_training_mode_is_restored_and_the_file_is_in_eval_mode(tmp_path):
    model = build("cnn").train()
    path = formats.save(model, example(), tmp_path / "m.pt")["path"]
    assert model.training and model.bn.training
    assert not torch.jit.load(path).training


def test_emit_pass_writes_and_checks_the_file(tmp_path):
    result = pruneql.compile("prune a.0 by l1 keep 0.5;", build("residual"),
                             example_inputs=example(), output=str(tmp_path / "r.pt"))
    assert result.written["path"] == str(tmp_path / "r.pt")
    assert result.written["check"]["max_rel_error"] <= formats.TOLERANCE["torchscript"]
    assert torch.jit.load(result.written["path"])(example()).shape == (1, 3, 8, 8)
    assert emit_module.check_target is formats.check_target
    assert emit_module.write_atomic is formats.write_atomic
    assert emit_module.format_for("m.pt2") == "export"


# --- determinism ---------------------------------------------------------------------------

WRITE_PRUNED = """
import sys, torch, pruneql
from pruneql import formats
from tests.test_formats import build, example
result = pruneql.compile("prune a.0 by l1 keep 0.5;", build("residual"), example_inputs=example())
for suffix in sys.argv[2:]:
    formats.save(result.module, result.example_inputs, sys.argv[1] + "/pruned" + suffix)
"""


def test_files_are_byte_identical_across_processes(tmp_path):
    # other hash seeds: TorchScript used to list constants in (seeded) set order
    runs, suffixes = [], [".pt", ".pt2"] + [".onnx"] * HAVE_ONNX
    for seed in ("1", "2"):
        folder = tmp_path / seed
        folder.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT}
        command = [sys.executable, "-c", WRITE_PRUNED, str(folder), *suffixes]
        runs.append((folder, subprocess.Popen(command, cwd=ROOT, env=env,
                                              stderr=subprocess.PIPE)))
    for _, process in runs:
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()[-2000:]
    (one, _), (two, _) = runs
    for suffix in suffixes:
        first, second = (folder / f"pruned{suffix}" for folder in (one, two))
        assert first.read_bytes() == second.read_bytes(), f"{suffix} files differ"


def test_torchscript_constants_are_sorted():
    code = b"class A(Module):\n  b : Final[int] = 1\n  a : Final[int] = 2\n  def f(self):\n"
    assert formats._sort_constants("x.py", code) == \
        b"class A(Module):\n  a : Final[int] = 2\n  b : Final[int] = 1\n  def f(self):\n"


def test_archives_are_rewritten_with_fixed_metadata_and_alignment(written):
    import zipfile
    _, result = written("residual", "torchscript")
    with zipfile.ZipFile(result["path"]) as archive:
        infos = archive.infolist()
        ident = archive.read(infos[-1])
    assert infos[-1].filename.endswith(".data/serialization_id") and len(ident) == 40
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    for info in infos:
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        assert start % 64 == 0, info.filename


# --- destinations --------------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("m.pt", "torchscript"), ("m.pth", "torchscript"),
                                       ("m.ts", "torchscript"), ("M.PT", "torchscript"),
                                       ("m.pt2", "export"),
                                       pytest.param("m.onnx", "onnx", marks=needs_onnx)])
def test_format_follows_the_extension(tmp_path, name, fmt):
    assert formats.check_destination(tmp_path / name) == (str(tmp_path / name), fmt)
    assert formats.check_destination(tmp_path / name, fmt=fmt)[1] == fmt


@pytest.mark.parametrize("name, fmt, message", [
    ("m.onnx", "torchscript", "names an onnx file, but the format asked for is torchscript"),
    ("m.pt", "export", "names an torchscript file, but the format asked for is export"),
    ("m.pt", "tflite", "unknown output format 'tflite'"),
    ("m.bin", None, "unknown extension '.bin'"),
    ("model", None, "unknown extension '\\(none\\)'")])
def test_format_mismatch_or_unknown_extension_is_refused(tmp_path, name, fmt, message):
    with pytest.raises(EmitError, match=message) as caught:
        formats.check_destination(tmp_path / name, fmt=fmt)
    assert caught.value.hint
    if fmt is None:
        assert ".pt2" in caught.value.hint and ".onnx" in caught.value.hint


def _socket(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


def _block_device():
    for entry in os.scandir("/dev"):
        if stat.S_ISBLK(entry.stat(follow_symlinks=False).st_mode):
            return entry.path
    pytest.skip("no block device in /dev")


@pytest.mark.parametrize("make, kind", [
    (lambda p: os.mkfifo(p), "FIFO"), (_socket, "socket"),
    (lambda p: "/dev/null", "character device"), (lambda p: _block_device(), "block device")])
def test_special_files_are_refused_even_with_force(tmp_path, make, kind):
    path = make(tmp_path / "out.pt")
    target = path if isinstance(path, str) else tmp_path / "out.pt"
    with pytest.raises(EmitError, match=f"is a {kind}, not a regular file"):
        formats.check_target(target, force=True)


def test_directory_is_refused(tmp_path):
    (tmp_path / "out.pt").mkdir()
    with pytest.raises(EmitError, match="is a directory"):
        formats.check_destination(tmp_path / "out.pt", force=True)


def test_existing_file_needs_force(tmp_path):
    out = tmp_path / "out.pt"
    out.write_bytes(b"keep")
    with pytest.raises(EmitError, match="already exists") as caught:
        formats.check_destination(out)
    assert "--force" in caught.value.hint
    assert formats.check_destination(out, force=True) == (str(out), "torchscript")
    assert out.read_bytes() == b"keep"


@pytest.mark.parametrize("parent, message", [("missing", "does not exist"),
                                             ("file", "is not a directory")])
def test_missing_parent_is_refused(tmp_path, parent, message):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(EmitError, match=message):
        formats.check_destination(tmp_path / parent / "out.pt")


def test_inputs_are_never_overwritten(tmp_path):
    recipe, weights = tmp_path / "r.prune", tmp_path / "w.pt"
    recipe.write_text("prune conv1 by l1 keep 0.5;")
    weights.write_bytes(b"weights")
    os.link(weights, tmp_path / "hard.pt")
    os.symlink(weights, tmp_path / "soft.pt")
    inputs = (str(recipe), weights, None)
    for path in (weights, tmp_path / "hard.pt", tmp_path / "soft.pt",
                 os.path.relpath(weights)):
        with pytest.raises(EmitError, match="refusing to overwrite the input"):
            formats.check_destination(path, force=True, inputs=inputs)
    with pytest.raises(EmitError, match="refusing to overwrite the input"):   # any extension
        formats.check_target(recipe, force=True, inputs=inputs)
    with pytest.raises(EmitError, match="refusing to overwrite the input"):   # not written yet
        formats.check_destination(tmp_path / "new.pt", inputs=(tmp_path / "sub/../new.pt",))


@pytest.mark.parametrize("path", ["/proc/pruneql-out.pt", "/sys/pruneql-out.pt"])
def test_unwritable_location_fails_before_any_work(path):
    if not os.path.isdir(os.path.dirname(path)):
        pytest.skip(f"no {os.path.dirname(path)}")
    with pytest.raises(EmitError, match="cannot write in") as caught:
        formats.check_destination(path)
    assert caught.value.hint and "Traceback" not in str(caught.value)


def test_destination_check_leaves_nothing(tmp_path):
    formats.check_destination(tmp_path / "out.pt2")
    assert os.listdir(tmp_path) == []


# --- writing -------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["write", "check", "rename"])
def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch, stage):
    def interrupt(*args):
        raise KeyboardInterrupt
    check = None
    if stage == "write":
        monkeypatch.setattr(os, "fsync", interrupt)
    elif stage == "check":
        check = interrupt
    else:
        monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        formats.write_atomic(tmp_path / "out.pt", b"data", check=check)
    assert os.listdir(tmp_path) == []


def test_os_errors_become_one_screen_emit_errors(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(EmitError, match="No space left on device") as caught:
        formats.write_atomic(tmp_path / "out.pt", b"data")
    assert caught.value.hint and os.listdir(tmp_path) == []


def test_replacement_is_atomic_and_respects_the_umask(tmp_path):
    out = tmp_path / "out.pt"
    out.write_bytes(b"old")
    seen = []
    previous = os.umask(0o027)
    try:
        formats.write_atomic(out, b"new", check=lambda tmp: seen.append(out.read_bytes()))
    finally:
        os.umask(previous)
    assert seen == [b"old"] and out.read_bytes() == b"new"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_missing_onnx_extra_is_named_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)     # import onnxscript fails
    monkeypatch.setattr(formats, "serialize", lambda *a: pytest.fail("serialised anyway"))
    with pytest.raises(EmitError, match="missing: onnxscript") as caught:
        formats.save(build("cnn"), example(), tmp_path / "m.onnx")
    assert caught.value.hint == 'pip install "pruneql[onnx]"'
    assert os.listdir(tmp_path) == []
