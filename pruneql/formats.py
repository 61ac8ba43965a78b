"""Output formats: TorchScript (``.pt``), torch.export programs (``.pt2``) and ONNX (``.onnx``).

One function per step: :func:`check_destination` refuses a bad output path before any
compile work; :func:`serialize` turns a module into the bytes of a format (the same module
and example input give the same bytes, in any process); :func:`write_atomic` puts bytes in
place all at once or not at all; :func:`load` reads a written file back as something callable;
:func:`check_file` compares that with the module on two batch sizes. :func:`save` chains them.

>>> from torch import nn
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.pt")
>>> written = save(nn.Linear(4, 2), torch.randn(1, 4), path)
>>> written["format"], written["check"]["batch_sizes"]
('torchscript', [1, 2])
>>> load(path)(torch.ones(3, 4)).shape
torch.Size([3, 2])
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import os
import re
import stat
import struct
import tempfile
import warnings
import zipfile

import torch
from torch.utils._pytree import tree_flatten

from pruneql.errors import EmitError

FORMATS = ("torchscript", "export", "onnx")
EXTENSIONS = {".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript",
              ".pt2": "export", ".onnx": "onnx"}
# the file against the module it was written from, each output relative to its own max-abs:
# TorchScript and torch.export run PyTorch's own kernels; onnxruntime's differ (fusions,
# accumulation order) by at most 1.9e-6 over the zoo (UNet; ConvNeXt-T 1.2e-6, ResNet-50 7e-7)
TOLERANCE = {"torchscript": 1e-5, "export": 1e-5, "onnx": 1e-4}
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
ONNX_HINT = 'pip install "pruneql[onnx]"'

SUFFIXES = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx"}    # for default names
_KNOWN = ".pt, .pth, .ts (TorchScript), .pt2 (torch.export program), .onnx (ONNX)"


# --- destinations ---------------------------------------------------------------------------

def format_for(path, fmt: str | None = None) -> str:
    """The format an output path asks for: its extension decides, an explicit ``fmt`` must agree.

    >>> format_for("small.pt"), format_for("small.pt2"), format_for("small.onnx", "onnx")
    ('torchscript', 'export', 'onnx')
    >>> try:
    ...     format_for("small.onnx", "torchscript")
    ... except EmitError as err:
    ...     print(err.message)
    output 'small.onnx' names an onnx file, but the format asked for is torchscript
    """
    if fmt is not None and fmt not in FORMATS:
        raise EmitError(f"unknown output format '{fmt}'", hint=f"one of {', '.join(FORMATS)}")
    ext = os.path.splitext(os.fspath(path))[1]
    implied = EXTENSIONS.get(ext.lower())
    if implied is None:
        raise EmitError(f"output '{os.fspath(path)}' has an unknown extension "
                        f"'{ext or '(none)'}'", hint=f"known extensions: {_KNOWN}")
    if fmt is not None and fmt != implied:
        raise EmitError(f"output '{os.fspath(path)}' names an {implied} file, but the format "
                        f"asked for is {fmt}",
                        hint=f"name the output *{SUFFIXES[fmt]}, or drop the format")
    return implied


def check_destination(path, force: bool = False, inputs=(), fmt: str | None = None
                      ) -> tuple[str, str]:
    """Refuse a model output path before any work: ``(absolute path, format)`` or EmitError.

    The format follows the extension (see :func:`format_for`); ONNX needs its extra
    installed; the path itself passes :func:`check_target`.

    >>> folder = tempfile.mkdtemp()
    >>> path, fmt = check_destination(os.path.join(folder, "small.pt2"))
    >>> fmt, path == os.path.join(folder, "small.pt2")
    ('export', True)
    """
    fmt = format_for(path, fmt)
    if fmt == "onnx":
        require_onnx()
    return check_target(path, force, inputs), fmt


def check_target(path, force: bool = False, inputs=()) -> str:
    """Refuse an output path (any kind of file) that cannot or must not be written.

    Refused: one of ``inputs`` (even with ``force``); a directory, device, FIFO or socket
    (even with ``force``); an existing file without ``force``; a missing parent directory;
    a directory where a file cannot be created. Returns the absolute path.

    >>> try:
    ...     check_target("/dev/null", force=True)
    ... except EmitError as err:
    ...     print(err.message)
    output '/dev/null' exists and is a character device, not a regular file
    """
    path = os.path.abspath(os.fspath(path))
    for source in inputs:
        if source and _same_file(os.fspath(source), path):
            raise EmitError(f"refusing to overwrite the input '{os.fspath(source)}' with the "
                            "pruned model", hint="choose another output path with -o")
    _refuse_existing(path, force)
    _check_directory(os.path.dirname(path))
    return path


def _same_file(source: str, path: str) -> bool:
    with contextlib.suppress(OSError):
        if os.path.exists(source) and os.path.exists(path):
            return os.path.samefile(source, path)
    return os.path.realpath(source) == os.path.realpath(path)


def _refuse_existing(path: str, force: bool) -> None:
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path) and not force:    # a dangling link is still someone's file
            raise EmitError(f"output '{path}' already exists (a broken symbolic link)",
                            hint="pass --force to replace it") from None
        return
    except OSError as exc:
        raise _os_error(f"cannot inspect the output '{path}'", exc) from exc
    if stat.S_ISDIR(mode):
        raise EmitError(f"output '{path}' is a directory", hint="give a file name with -o")
    if not stat.S_ISREG(mode):
        raise EmitError(f"output '{path}' exists and is a {_kind(mode)}, not a regular file",
                        hint="choose another output path with -o; --force only replaces "
                             "regular files")
    if not force:
        raise EmitError(f"output '{path}' already exists", hint="pass --force to replace it")


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
             (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def _check_directory(folder: str) -> None:
    """The folder exists and a file can be created in it (tried, not guessed from mode bits)."""
    if not os.path.isdir(folder):
        what = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise EmitError(f"directory '{folder}' {what}",
                        hint="create it first or choose another output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".pruneql-probe-", dir=folder)
    except OSError as exc:
        raise _os_error(f"cannot write in '{folder}'", exc) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _os_error(message: str, exc: OSError) -> EmitError:
    return EmitError(f"{message}: {exc.strerror or exc}",
                     hint="choose a writable location with -o (check permissions and free space)")


# --- writing --------------------------------------------------------------------------------

def write_atomic(path, data: bytes, check=None) -> str:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    ``check(temporary_path)``, when given, runs on the complete temporary file before the
    rename and may raise to stop it. Whatever happens (an OS error, a failed check,
    KeyboardInterrupt), no temporary file is left; the file gets the umask's permissions.

    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> write_atomic(path, b"hello") == path, open(path, "rb").read()
    (True, b'hello')
    """
    path = os.path.abspath(os.fspath(path))
    folder, suffix = os.path.dirname(path), os.path.splitext(path)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pruneql-", suffix=suffix, dir=folder)
    except OSError as exc:
        raise _os_error(f"cannot write '{path}'", exc) from exc
    try:
        _fill(fd, tmp, data)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise _os_error(f"cannot write '{path}'", exc) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)       # gone already after a successful rename
    return path


def _fill(fd: int, tmp: str, data: bytes) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_umask())    # mkstemp's 0600 is not what a user expects


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(module: torch.nn.Module, example_inputs, path, fmt: str | None = None,
         force: bool = False, inputs=()) -> dict:
    """Serialise ``module``, write it atomically, reload the file and compare it with ``module``.

    Returns ``{"path", "format", "size_bytes", "check": {"batch_sizes", "max_rel_error",
    "tolerance"}}``; raises EmitError (and leaves nothing behind) if the destination is
    refused, the model cannot be written in ``fmt``, or the file does not reproduce it.

    >>> from torch import nn
    >>> path = os.path.join(tempfile.mkdtemp(), "head.pt2")
    >>> written = save(nn.Linear(8, 3), torch.randn(2, 8), path)
    >>> written["format"], written["check"]["batch_sizes"], written["size_bytes"] > 0
    ('export', [2, 3], True)
    """
    path, fmt = check_destination(path, force, inputs, fmt)
    data = serialize(module, example_inputs, fmt)
    report = {}
    write_atomic(path, data, check=lambda tmp: report.update(
        check_file(tmp, module, example_inputs, fmt)))
    return {"path": path, "format": fmt, "size_bytes": len(data), "check": report}


# --- serialising ----------------------------------------------------------------------------

def serialize(module: torch.nn.Module, example_inputs, fmt: str = "torchscript") -> bytes:
    """The bytes of ``module`` in ``fmt``, taking any batch size; the same for the same input.

    >>> from torch import nn
    >>> model = nn.Linear(4, 2)
    >>> serialize(model, torch.ones(1, 4)) == serialize(model, torch.ones(1, 4))
    True
    """
    if fmt not in FORMATS:
        raise EmitError(f"unknown output format '{fmt}'", hint=f"one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx()
    inputs = _as_tuple(example_inputs)
    with _evaluating(module), _quiet():
        if fmt == "torchscript":
            return _torchscript(module, inputs)
        program = _export(module, inputs)
        return _pt2(program) if fmt == "export" else _onnx(program)


def require_onnx() -> None:
    """Raise EmitError naming the ``onnx`` extra unless its packages import."""
    missing = [name for name in ONNX_PACKAGES if not _importable(name)]
    if missing:
        raise EmitError(f"writing ONNX needs {', '.join(ONNX_PACKAGES)} "
                        f"(missing: {', '.join(missing)})", hint=ONNX_HINT)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _evaluating(module: torch.nn.Module):
    """``module`` in eval mode for the duration, then back to the mode it was in."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _quiet():
    """No deprecation notices or exporter log lines on the user's terminal."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _torchscript(module, inputs: tuple) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(_scripted(module, inputs), buffer)
    return _canonical_zip(buffer.getvalue(), _sort_constants)


def _scripted(module, inputs: tuple):
    """Scripting keeps every shape dynamic; tracing covers what scripting cannot compile."""
    try:
        return torch.jit.script(module)
    except Exception:
        pass
    try:
        with torch.no_grad():
            return torch.jit.trace(module, inputs, check_trace=False, _store_inputs=False)
    except Exception as exc:
        raise EmitError(f"cannot write TorchScript: {_one_line(exc)}",
                        hint="write a torch.export program (.pt2) or ONNX (.onnx) instead"
                        ) from exc


_FINAL = re.compile(rb"^ +\w+ : Final\[")


def _sort_constants(name: str, data: bytes) -> bytes:
    """TorchScript lists a module's constants in Python set order, which depends on the
    process's string hash seed; sorted, the code is the same in every process."""
    if not name.endswith(".py") or b" : Final[" not in data:
        return data
    lines, out, run = data.split(b"\n"), [], []
    for line in lines:
        if _FINAL.match(line):
            run.append(line)
            continue
        out += sorted(run) + [line]
        run = []
    return b"\n".join(out + sorted(run))


def _export(module, inputs: tuple):
    """A torch.export program whose batch dimension is dynamic."""
    # an example batch of 1 makes export specialise the batch to 1 (0/1 specialisation)
    sample = _with_batch(inputs, max(2, _batch_size(inputs)))
    try:
        program = torch.export.export(module, sample, dynamic_shapes=_dynamic_batch(sample))
    except Exception as exc:
        raise _export_error(module, sample, exc) from exc
    for gm in program.graph_module.modules():
        if isinstance(gm, torch.fx.GraphModule):
            for node in gm.graph.nodes:     # object ids and file paths: not reproducible
                node.meta.pop("from_node", None)
                node.meta.pop("stack_trace", None)
    return program


def _export_error(module, sample: tuple, exc: Exception) -> EmitError:
    """Tell a batch size fixed by the model apart from a model export cannot capture."""
    fresh = tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in sample)
    try:                    # fresh tensors: export marked the others' batch dimension dynamic
        torch.export.export(module, fresh)
    except Exception:
        return EmitError(f"torch.export cannot capture the model: {_one_line(exc)}",
                         hint="write TorchScript instead (an output path ending in .pt)")
    return EmitError(f"the model cannot be exported with a dynamic batch dimension: "
                     f"{_one_line(exc)}",
                     hint="the forward fixes the batch size somewhere (e.g. a reshape to a "
                          "constant); use x.shape[0] or -1 there, or write TorchScript (.pt)")


def _dynamic_batch(inputs: tuple) -> tuple:
    batch = _batch_size(inputs)
    dim = getattr(torch.export.Dim, "DYNAMIC", None) or torch.export.Dim("batch")
    return tuple({0: dim} if _batched(x, batch) else None for x in inputs)


def _pt2(program) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return _canonical_zip(buffer.getvalue())


def _onnx(program) -> bytes:
    try:
        proto = torch.onnx.export(program, dynamo=True, verbose=False).model_proto
        _name_batch(proto)
        return proto.SerializeToString()
    except Exception as exc:
        raise EmitError(f"cannot convert the model to ONNX: {_one_line(exc)}",
                        hint="write a torch.export program (.pt2) or TorchScript (.pt) instead"
                        ) from exc


def _name_batch(proto) -> None:
    """Call the symbolic batch dimension ``batch`` (the exporter names it like ``s77``)."""
    symbols = {value.type.tensor_type.shape.dim[0].dim_param for value in proto.graph.input
               if value.type.tensor_type.shape.dim}
    symbols.discard("")
    if len(symbols) != 1:
        return
    symbol = symbols.pop()
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = "batch"


# --- reproducible archives ------------------------------------------------------------------

_EPOCH = (1980, 1, 1, 0, 0, 0)
_ALIGN = 64          # PyTorch aligns every record to 64 bytes so tensors can be memory-mapped
_ID = "/.data/serialization_id"


def _canonical_zip(data: bytes, edit=None) -> bytes:
    """Rewrite a PyTorch zip archive so the same content always gives the same bytes: fixed
    timestamps and attributes, records 64-byte aligned, a serialization id derived from the
    content instead of the writer's."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        records = [(info.filename, archive.read(info)) for info in archive.infolist()]
    if edit is not None:
        records = [(name, edit(name, payload)) for name, payload in records]
    digest = hashlib.sha256()
    for name, payload in records:
        if not name.endswith(_ID):
            digest.update(hashlib.sha256(name.encode() + b"\0" + payload).digest())
    ident = str(int.from_bytes(digest.digest()[:16], "big")).zfill(40)[-40:].encode()
    records = [(name, ident if name.endswith(_ID) else payload) for name, payload in records]
    return _zipped(records)


def _zipped(records: list) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, payload in records:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system, info.external_attr = 0, 0
            info.extra = _padding(out.tell(), name, len(payload))
            archive.writestr(info, payload)
    return out.getvalue()


def _padding(offset: int, name: str, size: int) -> bytes:
    """An extra field that makes the record's data start on a 64-byte boundary."""
    header = 30 + len(name.encode()) + (20 if size > zipfile.ZIP64_LIMIT else 0)
    pad = -(offset + header + 4) % _ALIGN
    return b"FB" + struct.pack("<H", pad) + b"Z" * pad


# --- reading back ---------------------------------------------------------------------------

def load(path, fmt: str | None = None):
    """A written file as a callable taking and returning torch tensors.

    TorchScript: ``torch.jit.load``; ``.pt2``: ``torch.export.load(path).module()``; ONNX: an
    onnxruntime session wrapped by :class:`OnnxModule`.

    >>> from torch import nn
    >>> path = save(nn.Linear(4, 2), torch.randn(1, 4), os.path.join(tempfile.mkdtemp(), "l.pt"))
    >>> load(path["path"])(torch.ones(5, 4)).shape
    torch.Size([5, 2])
    """
    fmt = format_for(path, fmt)
    path = os.fspath(path)
    with _quiet():
        if fmt == "torchscript":
            return torch.jit.load(path, map_location="cpu")
        if fmt == "export":
            return torch.export.load(path).module()
        return OnnxModule(path)


class OnnxModule:
    """An onnxruntime session called like a module: torch tensors in, torch tensors out."""

    def __init__(self, path: str):
        require_onnx()
        import onnxruntime    # an optional dependency: only imported when asked for
        self.session = onnxruntime.InferenceSession(os.fspath(path),
                                                    providers=["CPUExecutionProvider"])
        self.input_names = [value.name for value in self.session.get_inputs()]

    def __call__(self, *args):
        tensors = [x for x in tree_flatten(args)[0] if isinstance(x, torch.Tensor)]
        if len(tensors) != len(self.input_names):
            raise TypeError(f"the ONNX model takes {len(self.input_names)} tensors, "
                            f"got {len(tensors)}")
        feed = {name: x.detach().cpu().numpy() for name, x in zip(self.input_names, tensors)}
        outputs = tuple(torch.from_numpy(y) for y in self.session.run(None, feed))
        return outputs[0] if len(outputs) == 1 else outputs


def check_file(path, module: torch.nn.Module, example_inputs, fmt: str | None = None) -> dict:
    """Reload a written file and compare it with ``module`` on the example batch and a fresh
    random batch of another size (at least 2): every output relative to its own max-abs,
    non-finite values failing. Returns the batch sizes, the worst error and the tolerance.

    >>> from torch import nn
    >>> model, x = nn.Linear(4, 2), torch.randn(1, 4)
    >>> path = os.path.join(tempfile.mkdtemp(), "l.pt")
    >>> write_atomic(path, serialize(model, x)) == path
    True
    >>> check_file(path, model, x)["batch_sizes"]
    [1, 2]
    >>> try:                      # another Linear: other random weights
    ...     check_file(path, nn.Linear(4, 2), x)
    ... except EmitError as err:
    ...     print(err.message[:50])
    the written torchscript file differs from the mode
    """
    fmt = format_for(path, fmt)
    inputs = _as_tuple(example_inputs)
    try:
        loaded = load(path, fmt)
    except EmitError:
        raise
    except Exception as exc:
        raise EmitError(f"the written {fmt} file cannot be loaded back: {_one_line(exc)}",
                        hint=_BUG) from exc
    batch = _batch_size(inputs)
    other = _random_batch(inputs, 3 if batch == 2 else 2)
    worst = max(_compare(module, loaded, x) for x in (inputs, other))
    if worst > TOLERANCE[fmt]:
        raise EmitError(f"the written {fmt} file differs from the model (relative error "
                        f"{worst:.1e} > {TOLERANCE[fmt]:.0e})", hint=_BUG)
    return {"batch_sizes": [batch, _batch_size(other)], "max_rel_error": worst,
            "tolerance": TOLERANCE[fmt]}


def _compare(module, loaded, inputs: tuple) -> float:
    """The largest error of ``loaded`` against ``module`` on ``inputs``, relative per output."""
    batch = _batch_size(inputs)
    with torch.no_grad(), _evaluating(module):
        try:
            expected = tree_flatten(module(*inputs))[0]
        except Exception as exc:
            raise EmitError(f"the model itself fails at batch size {batch}: {_one_line(exc)}",
                            hint="the written model is checked at two batch sizes; make the "
                                 "forward work for any batch size") from exc
        try:
            with _quiet():
                actual = tree_flatten(loaded(*inputs))[0]
        except Exception as exc:
            raise EmitError(f"the written file fails at batch size {batch}: {_one_line(exc)}",
                            hint=_BUG) from exc
    if len(expected) != len(actual):
        raise EmitError(f"the written file returns {len(actual)} outputs, the model "
                        f"{len(expected)}", hint=_BUG)
    return max([_relative_error(i, want, got, batch)
                for i, (want, got) in enumerate(zip(expected, actual))], default=0.0)


def _relative_error(index: int, want, got, batch: int) -> float:
    if not isinstance(want, torch.Tensor):
        return 0.0 if want == got else float("inf")
    want, got = want.double(), torch.as_tensor(got).double()
    if want.shape != got.shape:
        raise EmitError(f"output {index} of the written file has shape {tuple(got.shape)} at "
                        f"batch size {batch}, the model's {tuple(want.shape)}", hint=_BUG)
    if not (torch.isfinite(want).all() and torch.isfinite(got).all()):
        raise EmitError(f"output {index} is not finite at batch size {batch}",
                        hint="a model whose outputs are NaN or infinite cannot be checked")
    scale = want.abs().max().item() if want.numel() else 0.0
    return (want - got).abs().max().item() / (scale or 1.0) if want.numel() else 0.0


_BUG = ("this is a PruneQL or PyTorch bug: please report it with the recipe; another format "
        "(.pt, .pt2, .onnx) may work meanwhile")


# --- example inputs -------------------------------------------------------------------------

def _as_tuple(example_inputs) -> tuple:
    return (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)


def _batch_size(inputs: tuple) -> int:
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            return x.shape[0]
    raise EmitError("the example input has no batch dimension",
                    hint="give example inputs shaped (batch, ...)")


def _batched(x, batch: int) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == batch


def _with_batch(inputs: tuple, size: int) -> tuple:
    """The example inputs with ``size`` samples, repeating the given ones."""
    batch = _batch_size(inputs)
    rows = torch.arange(size) % batch
    return tuple(x[rows] if _batched(x, batch) else x for x in inputs)


def _random_batch(inputs: tuple, size: int) -> tuple:
    """Fresh inputs of batch ``size`` like the example ones (same dtype, similar values)."""
    batch, generator = _batch_size(inputs), torch.Generator().manual_seed(size)
    return tuple(_random_like(x, size, generator) if _batched(x, batch) else x for x in inputs)


def _random_like(x: torch.Tensor, size: int, generator) -> torch.Tensor:
    shape = (size, *x.shape[1:])
    if x.is_floating_point():
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        spread = x.double().std().item() if x.numel() > 1 else 1.0
        return (noise * (spread or 1.0) + x.double().mean()).to(x.dtype)
    if x.dtype == torch.bool:
        return torch.rand(shape, generator=generator) < 0.5
    low, high = int(x.min()), int(x.max())
    return torch.randint(low, high + 1, shape, generator=generator, dtype=x.dtype)


def _one_line(exc: Exception) -> str:
    """An exception's reason on one screen line: its first line, or for a message that lists
    the violated constraints ("- You marked ..."), the first sentence of the first one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    bullets = [line[2:] for line in lines if line.startswith("- ")]
    text = bullets[0].split(". ")[0] if bullets else lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
