"""The data layer: bundled digits, npz, CIFAR-10 folders, image folders, python sources."""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import pruneql
from pruneql.data import Dataset, cifar, folder, load_data, parse_cli, split_indices
from pruneql.data.sources import DIGITS_FILE
from pruneql.errors import DataError, PruneQLError, Span
from pruneql.lang import ast

DATA_DIR = Path(DIGITS_FILE).parent


def fails(match: str, *args, **kwargs) -> DataError:
    """load_data(*args, **kwargs) must raise a DataError whose message matches."""
    with pytest.raises(DataError, match=match) as caught:
        load_data(*args, **kwargs)
    assert caught.value.stage == "data" and caught.value.hint
    return caught.value


def labels_of(loader: DataLoader) -> torch.Tensor:
    return torch.cat([y for _, y in loader])


# ---- digits -----------------------------------------------------------------------------

def test_digits_shape_classes_and_range():
    ds = load_data(source="digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    assert len(ds.train.dataset) + len(ds.val.dataset) == 1797
    xs = torch.cat([x for x, _ in ds.train] + [x for x, _ in ds.val])
    assert xs.shape == (1797, 1, 8, 8) and xs.dtype == torch.float32
    assert xs.min().item() == 0.0 and xs.max().item() == 1.0
    assert (xs * 16 == (xs * 16).round()).all()   # exactly the 0..16 counts, scaled
    ys = torch.cat([labels_of(ds.train), labels_of(ds.val)])
    assert ys.dtype == torch.int64 and sorted(ys.unique().tolist()) == list(range(10))
    assert ds.train_sampler is None


def test_digits_checksums_match_attribution():
    text = (DATA_DIR / "DIGITS_LICENSE.txt").read_text()
    assert "CC BY 4.0" in text and "10.24432/C50P49" in text and "Alpaydin" in text
    file_sum, array_sum = re.findall(r"\b[0-9a-f]{64}\b", text)[:2]
    assert hashlib.sha256(DIGITS_FILE.read_bytes()).hexdigest() == file_sum
    with np.load(DIGITS_FILE) as arrays:
        x, y = arrays["x"], arrays["y"]
    assert x.shape == (1797, 8, 8) and y.shape == (1797,)
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest() == array_sum
    assert os.path.getsize(DIGITS_FILE) < 100_000


def test_split_is_deterministic_and_seeded():
    a, b, c = (load_data(source="digits", split_seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val.dataset.tensors[0], b.val.dataset.tensors[0])
    assert torch.equal(a.train.dataset.tensors[1], b.train.dataset.tensors[1])
    assert not torch.equal(a.val.dataset.tensors[0], c.val.dataset.tensors[0])
    # the training shuffle is seeded too: same batches in the same order
    assert torch.equal(next(iter(a.train))[1], next(iter(b.train))[1])


def test_split_indices_partition():
    train, held = split_indices(101, 0.3, seed=5)
    assert len(held) == 30 and len(train) == 71
    assert sorted(train.tolist() + held.tolist()) == list(range(101))
    assert torch.equal(held, split_indices(101, 0.3, seed=5)[1])
    assert len(split_indices(3, 0.01, seed=0)[1]) == 1   # asked for validation: get some


@pytest.mark.parametrize("val, held", [(0.2, 359), (0.5, 898), (0.0, 0), (0.9, 1617)])
def test_val_fraction_sizes(val, held):
    ds = load_data(source="digits", val=val)
    assert len(ds.val.dataset) == held and len(ds.train.dataset) == 1797 - held


def test_batch_size():
    ds = load_data(source="digits", batch=100)
    sizes = [len(y) for _, y in ds.train]
    assert sizes[0] == 100 and sizes[-1] == 1438 % 100 and sum(sizes) == 1438
    assert ds.val.batch_size == 100
    assert load_data(source="digits").train.batch_size == 64


def test_statement_and_keyword_overrides():
    stmt = ast.Data("digits", batch=16, val=0.5)
    ds = load_data(stmt)
    assert ds.train.batch_size == 16 and len(ds.val.dataset) == 898
    ds = load_data(stmt, batch=8)
    assert ds.train.batch_size == 8 and len(ds.val.dataset) == 898
    # a new source drops the recipe's path, which belonged to the recipe's source
    ds = load_data(ast.Data("npz", path="nowhere.npz"), source="digits")
    assert ds.name == "digits"


def test_loads_from_a_parsed_recipe():
    recipe = pruneql.parse("model vgg16_cifar;\ndata digits batch 32 val 0.1;")
    stmt = next(s for s in recipe.statements if isinstance(s, ast.Data))
    ds = load_data(stmt)
    assert ds.train.batch_size == 32 and len(ds.val.dataset) == 180


# ---- npz --------------------------------------------------------------------------------

def write_npz(tmp_path: Path, name: str = "d.npz", **arrays) -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_npz_images_get_a_channel_and_are_scaled(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 5, 6), dtype=np.uint8)
    y = np.arange(50) % 4
    ds = load_data(source="npz", path=write_npz(tmp_path, x=x, y=y), val=0.2)
    assert ds.input_shape == (1, 5, 6) and ds.num_classes == 4
    assert len(ds.train.dataset) == 40 and len(ds.val.dataset) == 10
    batch, labels = next(iter(ds.val))
    assert batch.dtype == torch.float32 and batch.shape[1:] == (1, 5, 6)
    idx = split_indices(50, 0.2, 0)[1]
    assert torch.allclose(batch, torch.from_numpy(x[idx.numpy()]).float().unsqueeze(1) / 255)
    assert labels.tolist() == y[idx.numpy()].tolist()


def test_npz_features_and_explicit_val(tmp_path):
    x = np.linspace(-3, 3, 60, dtype=np.float64).reshape(20, 3)
    xv = np.ones((7, 3), np.float32)
    path = write_npz(tmp_path, x=x, y=np.arange(20) % 3, x_val=xv, y_val=np.full(7, 5))
    ds = load_data(source="npz", path=path, val=0.5)   # val arrays win over the fraction
    assert ds.input_shape == (3,) and ds.num_classes == 6   # max label over both sets
    assert len(ds.train.dataset) == 20 and len(ds.val.dataset) == 7
    got = torch.cat([b for b, _ in ds.train])
    assert got.dtype == torch.float32
    assert sorted(got[:, 0].tolist()) == pytest.approx(sorted(x[:, 0].tolist()))
    assert torch.equal(next(iter(ds.val))[0], torch.from_numpy(xv))


def test_npz_nchw_kept_and_float_targets(tmp_path):
    x = np.zeros((10, 2, 4, 4), np.float32)
    ds = load_data(source="npz", path=write_npz(tmp_path, x=x, y=np.ones(10, np.float32)))
    assert ds.input_shape == (2, 4, 4) and ds.num_classes is None
    assert next(iter(ds.train))[1].dtype == torch.float32


# ---- CIFAR-10 ---------------------------------------------------------------------------

def write_cifar(folder: Path, per_batch: int = 20, test: bool = True) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + (["test_batch"] if test else [])
    for i, name in enumerate(names):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": [(i + j) % 10 for j in
                                                              range(per_batch)],
                 b"data": data, b"filenames": [b"x.png"] * per_batch}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=(2, 4, 5)[i % 3])   # every protocol must load
        written.append(data)
    return written


def test_fake_cifar_folder(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_data(source="cifar10", path=str(tmp_path), val=0.5)   # finds the sub-folder
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert len(ds.train.dataset) == 100 and len(ds.val.dataset) == 20   # val = test_batch
    x, y = next(iter(ds.val))
    expected = torch.from_numpy(written[-1].reshape(-1, 3, 32, 32)).float() / 255
    mean = torch.tensor(cifar.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cifar.STD).view(1, 3, 1, 1)
    assert torch.allclose(x, (expected - mean) / std, atol=1e-6)
    assert y.tolist() == [(5 + j) % 10 for j in range(20)]


def test_fake_cifar_without_test_batch_splits(tmp_path):
    write_cifar(tmp_path, test=False)
    ds = load_data(source="cifar10", path=str(tmp_path), val=0.2)
    assert len(ds.train.dataset) == 80 and len(ds.val.dataset) == 20


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the real CIFAR-10 batches: str and bytes as
    BINSTRING, numpy arrays rebuilt by numpy.core.multiarray._reconstruct."""

    dispatch = dict(pickle._Pickler.dispatch)
    reconstruct = np.zeros(1).__reduce__()[0]

    def save_bytes(self, obj):
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj if len(obj) < 256
                   else pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin-1"))

    def save_global(self, obj, name=None):
        if obj is not self.reconstruct:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
        self.memoize(obj)

    dispatch[bytes], dispatch[str] = save_bytes, save_str


def test_cifar_python2_pickles(tmp_path):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for name in ("data_batch_1", "test_batch"):
        with open(tmp_path / name, "wb") as f:
            Py2Pickler(f, protocol=2).dump({b"batch_label": "training batch 1 of 5",
                                            b"labels": [7, 2], b"data": data})
    ds = load_data(source="cifar10", path=str(tmp_path))
    images, labels = ds.train.dataset.tensors
    assert torch.equal(images, torch.from_numpy(data).view(2, 3, 32, 32))
    assert labels.tolist() == [7, 2] and len(ds.val.dataset) == 2


def test_cifar_refuses_code_in_pickles(tmp_path):
    write_cifar(tmp_path)

    class Sneaky:
        def __reduce__(self):
            return (os.getcwd, ())   # harmless, but no CIFAR batch names a function

    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": Sneaky(), b"labels": []}, f)
    error = fails(r"refusing to unpickle 'posix\.getcwd'|refusing to unpickle 'nt\.getcwd'",
                  source="cifar10", path=str(tmp_path))
    assert "data_batch_2" in error.message


def test_cifar_malformed_and_missing(tmp_path):
    fails("holds no data_batch_", source="cifar10", path=str(tmp_path))
    fails("does not exist", source="cifar10", path=str(tmp_path / "nope"))
    write_cifar(tmp_path)
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"labels": [1]}, f)
    fails(r"data_batch_3' has no \(N, 3072\) uint8 'data' array", source="cifar10",
          path=str(tmp_path))
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    fails("cannot read CIFAR-10 batch", source="cifar10", path=str(tmp_path))


# ---- image folders ----------------------------------------------------------------------

def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def encode_png(pixels: np.ndarray, colour: int, palette: bytes | None = None) -> bytes:
    """A minimal PNG encoder; row i uses filter i % 5 so the decoder meets all five."""
    height, width = pixels.shape[:2]
    bpp = pixels.shape[2] if pixels.ndim == 3 else 1
    rows, prev, raw = pixels.reshape(height, -1).astype(np.int64), np.zeros(width * bpp,
                                                                            np.int64), b""
    for i, row in enumerate(rows):
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        predicted = [0, left, prev, (left + prev) // 2, _paeth(left, prev, upleft)][i % 5]
        raw += bytes([i % 5]) + ((row - predicted) % 256).astype(np.uint8).tobytes()
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + (chunk(b"PLTE", palette) if palette else b"") + chunk(b"tEXt", b"k\0v")
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def encode_pnm(pixels: np.ndarray, maxval: int = 255) -> bytes:
    magic = b"P6" if pixels.ndim == 3 else b"P5"
    height, width = pixels.shape[:2]
    header = magic + b"\n# a comment\n%d %d\n%d\n" % (width, height, maxval)
    return header + pixels.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def image_folder(tmp_path: Path, size=(6, 5)) -> dict:
    rng = np.random.default_rng(2)
    h, w = size
    made = {"gray": rng.integers(0, 256, (h, w), dtype=np.uint8),
            "rgb": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            "rgba": rng.integers(0, 256, (h, w, 4), dtype=np.uint8),
            "pgm": rng.integers(0, 256, (h, w), dtype=np.uint8),
            "ppm": rng.integers(0, 256, (h, w, 3), dtype=np.uint8)}
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(encode_png(made["gray"], 0))
    (tmp_path / "cat" / "b.png").write_bytes(encode_png(made["rgb"], 2))
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"ignored")
    (tmp_path / "dog" / "c.png").write_bytes(encode_png(made["rgba"], 6))
    (tmp_path / "dog" / "d.pgm").write_bytes(encode_pnm(made["pgm"]))
    (tmp_path / "dog" / "e.ppm").write_bytes(encode_pnm(made["ppm"]))
    return made


@pytest.fixture(params=["pillow", "builtin"])
def decoder(request, monkeypatch):
    """Run a test with Pillow, and again with the built-in decoders (as without Pillow)."""
    if request.param == "builtin":
        monkeypatch.setattr(folder, "Image", None)
    return request.param


def examples_of(dataset) -> list:
    """Every (image, label) of a lazily decoded dataset, in its order."""
    return [dataset[i] for i in range(len(dataset))]


def test_image_folder_png_and_pnm(tmp_path, decoder):
    made = image_folder(tmp_path)
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0, batch=10)
    assert ds.num_classes == 2 and ds.input_shape == (3, 6, 5)
    examples = examples_of(ds.train.dataset)   # decoded lazily, in folder order
    assert [label for _, label in examples] == [0, 0, 1, 1, 1]
    expected = [np.repeat(made["gray"][..., None], 3, 2), made["rgb"], made["rgba"][..., :3],
                np.repeat(made["pgm"][..., None], 3, 2), made["ppm"]]
    for (got, _), want in zip(examples, expected):
        assert torch.equal(got, torch.from_numpy(want).permute(2, 0, 1).float() / 255)
    batch, _ = next(iter(ds.train))
    assert batch.dtype == torch.float32 and 0 <= batch.min() and batch.max() <= 1
    assert ds.skipped == []


def test_grayscale_folder_stays_one_channel_and_palette_png(tmp_path, decoder):
    (tmp_path / "a").mkdir()
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    palette = bytes([0, 0, 0, 10, 20, 30, 255, 255, 255])
    (tmp_path / "a" / "p.png").write_bytes(encode_png(index, 3, palette))
    wide = np.array([[0, 65535, 32768]] * 2, np.uint16)
    (tmp_path / "a" / "w.pgm").write_bytes(encode_pnm(wide, maxval=65535))
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert ds.input_shape == (3, 2, 3)   # the palette image is colour
    (pal, _), (pgm, _) = examples_of(ds.train.dataset)
    assert (pal[:, 0, 1] * 255).tolist() == pytest.approx([10, 20, 30])
    assert pgm[0, 0].tolist() == pytest.approx([0, 1, 32768 / 65535])   # 16 bits: / 65535
    (tmp_path / "a" / "p.png").unlink()
    assert load_data(source="imagefolder", path=str(tmp_path), val=0.0).input_shape == (1, 2, 3)


def test_image_folder_errors(tmp_path, decoder):
    image_folder(tmp_path)
    (tmp_path / "dog" / "f.jpg").write_bytes(b"\xff\xd8\xff\xe0fake jpeg")
    if decoder == "builtin":   # a JPEG needs Pillow: an error naming the extra
        error = fails(r"'.*dog[/\\]f\.jpg' is not a supported image \(JPEG\)",
                      source="imagefolder", path=str(tmp_path))
        assert "PNG" in error.hint and "P5/P6" in error.hint and "pruneql[images]" in error.hint
    else:   # Pillow reads JPEGs, and this one is broken: skipped and listed
        ds = load_data(source="imagefolder", path=str(tmp_path))
        assert [Path(name).name for name in ds.skipped] == ["f.jpg"]
    (tmp_path / "dog" / "f.jpg").unlink()
    (tmp_path / "dog" / "g.png").write_bytes(encode_png(np.zeros((7, 5), np.uint8), 0))
    error = fails(r"image '.*dog[/\\]g\.png' is 5x7 but '.*cat[/\\]a\.png' is 5x6",
                  source="imagefolder", path=str(tmp_path))
    assert "resize N" in error.hint
    (tmp_path / "dog" / "g.png").write_bytes(encode_png(np.zeros((6, 5), np.uint8), 0)[:-20])
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert [Path(name).name for name in ds.skipped] == ["g.png"]
    assert len(ds.train.dataset) == 5


def test_image_folder_empty(tmp_path):
    fails("has no class sub-folders", source="imagefolder", path=str(tmp_path))
    (tmp_path / "cat").mkdir()
    fails("class folder 'cat' .* holds no images", source="imagefolder", path=str(tmp_path))
    fails("imagefolder folder .* does not exist", source="imagefolder",
          path=str(tmp_path / "missing"))


# ---- python -----------------------------------------------------------------------------

MODULE = '''
import torch
from torch.utils.data import DataLoader, TensorDataset

def sets():
    x = torch.arange(40.).view(10, 4)
    return TensorDataset(x, torch.arange(10) % 2), TensorDataset(x[:3], torch.zeros(3).long())

def loaders():
    train, val = sets()
    return DataLoader(train, batch_size=5), DataLoader(val, batch_size=5)

def with_classes():
    return {"train": sets()[0], "val": sets()[1], "num_classes": 7}

def three():
    return (*sets(), 2)

def unsplit():
    return sets()[0], None

def wrong():
    return 42

def bad_part():
    return [1, 2], sets()[1]

def bad_classes():
    return (*sets(), "ten")

def broken():
    raise RuntimeError("no data today")

def nan_train():
    x = torch.zeros(5, 2)
    x[2, 1] = float("nan")
    return TensorDataset(x, torch.zeros(5).long()), None

def too_high():
    return sets()[0], TensorDataset(torch.zeros(3, 4), torch.tensor([0, 7, 1])), 7

def with_test():
    train, val = sets()
    return {"train": train, "val": val, "test": TensorDataset(torch.ones(2, 4),
                                                              torch.tensor([1, 0]))}

NOT_CALLABLE = 3
'''


@pytest.fixture
def pymod(tmp_path, monkeypatch):
    name = f"pq_data_fixture_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_python_datasets_and_loaders(pymod):
    ds = load_data(source="python", path=f"{pymod}:sets", batch=4)
    assert ds.input_shape == (4,) and ds.num_classes is None
    assert ds.train.batch_size == 4 and len(ds.val.dataset) == 3
    ds = load_data(source="python", path=f"{pymod}:loaders", batch=4)
    assert ds.train.batch_size == 5   # the user's loaders are used as they are
    assert load_data(source="python", path=f"{pymod}:with_classes").num_classes == 7
    assert load_data(source="python", path=f"{pymod}:three").num_classes == 2
    ds = load_data(source="python", path=f"{pymod}:unsplit", val=0.2)
    assert len(ds.train.dataset) == 8 and len(ds.val.dataset) == 2


@pytest.mark.parametrize("fn, message", [
    ("wrong", "returned a int"),
    ("bad_part", "returned a list of 2 items as its train part"),
    ("bad_classes", "num_classes='ten'"),
    ("broken", "failed: RuntimeError: no data today"),
    ("NOT_CALLABLE", "is a int, not callable"),
    ("missing", "cannot import data function"),
])
def test_python_errors(pymod, fn, message):
    fails(message, source="python", path=f"{pymod}:{fn}")


def test_python_bad_targets(pymod):
    fails("cannot import data function 'no_such_module_xyz:f'", source="python",
          path="no_such_module_xyz:f")
    fails("is not 'pkg.module:function'", source="python", path=pymod)
    fails("cannot be sharded", source="python", path=f"{pymod}:loaders", world_size=2)


# ---- errors -----------------------------------------------------------------------------

def test_npz_errors(tmp_path):
    fails("npz file '.*nope.npz' does not exist", source="npz", path=str(tmp_path / "nope.npz"))
    fails("is not a file", source="npz", path=str(tmp_path))
    fails(r"has no 'y' array \(it holds \['x'\]\)", source="npz",
          path=write_npz(tmp_path, x=np.zeros((3, 2))))
    fails("has no 'x' or 'y' array", source="npz", path=write_npz(tmp_path, z=np.zeros(3)))
    fails("'x' has 3 examples but 'y' has 2", source="npz",
          path=write_npz(tmp_path, x=np.zeros((3, 2)), y=np.zeros(2, int)))
    fails("'x_val' has 2 examples but 'y_val' has 1", source="npz",
          path=write_npz(tmp_path, x=np.zeros((3, 2)), y=np.zeros(3, int),
                         x_val=np.zeros((2, 2)), y_val=np.zeros(1, int)))
    fails("only one of 'x_val' and 'y_val'", source="npz",
          path=write_npz(tmp_path, x=np.zeros((3, 2)), y=np.zeros(3, int), x_val=np.zeros(3)))
    fails("holds no examples", source="npz",
          path=write_npz(tmp_path, x=np.zeros((0, 2)), y=np.zeros(0, int)))
    fails(r"has shape \(3,\)", source="npz",
          path=write_npz(tmp_path, x=np.zeros(3), y=np.zeros(3, int)))
    fails("negative label", source="npz",
          path=write_npz(tmp_path, x=np.zeros((3, 2)), y=np.array([0, -1, 2])))
    (tmp_path / "junk.npz").write_bytes(b"this is no zip")
    fails("cannot read npz file", source="npz", path=str(tmp_path / "junk.npz"))
    np.save(tmp_path / "one.npy", np.zeros(3))
    fails("holds a single array", source="npz", path=str(tmp_path / "one.npy"))
    objects = np.empty(3, dtype=object)
    fails("cannot read npz file", source="npz",
          path=write_npz(tmp_path, x=objects, y=np.zeros(3, int)))


@pytest.mark.parametrize("kwargs, message", [
    ({"val": 1.0}, r"val must be a fraction in \[0, 1\), got 1.0"),
    ({"val": -0.1}, r"val must be a fraction in \[0, 1\), got -0.1"),
    ({"batch": 0}, "batch must be a whole number >= 1, got 0"),
    ({"batch": 2.5}, "batch must be a whole number >= 1, got 2.5"),
    ({"path": "x.npz"}, "the digits source is bundled and takes no path"),
    ({"source": "mnist"}, "unknown data source 'mnist'"),
    ({"source": "npz"}, "the npz data source needs a path"),
    ({"source": None}, "no data source"),
    ({"rank": 2, "world_size": 2}, "rank 2 is not in a world of size 2"),
])
def test_setting_errors(kwargs, message):
    fails(message, **{"source": "digits", **kwargs})


def test_errors_point_at_the_recipe():
    text = 'data npz "missing.npz" val 0.1;'
    stmt = ast.Data("npz", "missing.npz", val=0.1, span=Span(3, 1, len(text) + 1, text))
    error = fails("does not exist", stmt)
    assert error.span == stmt.span and " 3 | data npz" in str(error)
    assert isinstance(error, PruneQLError) and error.to_dict()["stage"] == "data"
    # a value from the command line is not the recipe's fault: no span
    assert fails("does not exist", stmt, path="other.npz").span is None
    bad = ast.Data("digits", val=1.5, span=Span(1, 1, 5, "data digits val 1.5;"))
    assert fails("val must be", bad).span == bad.span
    assert fails("val must be", stmt, val=2.0).span is None


def test_unknown_source_suggests():
    error = fails("unknown data source", source="cifar")
    assert "did you mean cifar10?" in error.hint


# ---- distributed ------------------------------------------------------------------------

def test_sharding_is_disjoint_and_covers_the_train_set():
    ranks = [load_data(source="digits", seed=3, rank=r, world_size=2) for r in (0, 1)]
    size = len(ranks[0].train.dataset)
    assert size == 1438   # even, so DistributedSampler adds no padding
    assert torch.equal(ranks[0].train.dataset.tensors[1], ranks[1].train.dataset.tensors[1])
    shards = [list(ds.train_sampler) for ds in ranks]
    assert set(shards[0]).isdisjoint(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(size))
    assert sum(len(y) for _, y in ranks[0].train) == size // 2
    # validation is not sharded: every rank evaluates all of it, in the same order
    assert torch.equal(labels_of(ranks[0].val), labels_of(ranks[1].val))
    assert len(ranks[0].val.dataset) == 359
    before = list(ranks[0].train_sampler)
    ranks[0].train_sampler.set_epoch(1)
    assert list(ranks[0].train_sampler) != before


def test_python_datasets_are_sharded_too(pymod):
    ds = load_data(source="python", path=f"{pymod}:sets", rank=1, world_size=2)
    assert ds.train_sampler is not None and len(list(ds.train_sampler)) == 5


# ---- CLI --------------------------------------------------------------------------------

def test_parse_cli():
    assert parse_cli("digits") == ("digits", None)
    assert parse_cli("npz:data/train.npz") == ("npz", "data/train.npz")
    assert parse_cli("imagefolder:C:\\images") == ("imagefolder", "C:\\images")
    assert parse_cli("python:pkg.mod:fn") == ("python", "pkg.mod:fn")
    with pytest.raises(DataError, match="unknown data source 'cifar'") as caught:
        parse_cli("cifar:x")
    assert "cifar10" in caught.value.hint
    with pytest.raises(DataError, match="names no path"):
        parse_cli("npz:")
    source, path = parse_cli("digits")
    assert load_data(source=source, path=path).name == "digits"


def test_tensor_dataset_is_in_memory():
    ds = load_data(source="digits")
    assert isinstance(ds.train.dataset, TensorDataset)
    assert ds.train.num_workers == 0 and ds.val.num_workers == 0
