"""Image folders with real files: JPEG, 16-bit PNG, WebP; resizing, normalisation, streaming
from disk, indexing progress, and damaged files."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pruneql.data import folder, images, load_data
from pruneql.data.base import IMAGENET_MEAN, IMAGENET_STD
from tests.test_data import decoder, encode_png, examples_of, fails   # noqa: F401 (fixture)


def gradient(h: int, w: int, colour: bool = True) -> np.ndarray:
    """A smooth image (JPEG keeps it nearly intact): uint8 (h, w, 3) or (h, w)."""
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), (xx + yy) * 4 % 256]
    pixels = np.stack(planes, -1).astype(np.uint8)
    return pixels if colour else pixels[..., 0]


def save(path: Path, pixels: np.ndarray, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    return path


def png16(pixels: np.ndarray, colour: int) -> bytes:
    """A 16-bit PNG (filter 0 on every row), which Pillow cannot write in colour."""
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes()
                   for row in pixels.reshape(height, -1))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return (images.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def decoded(ds) -> dict:
    """{file name: image} of every example of a Dataset's train set."""
    subset = ds.train.dataset
    files = [subset.dataset.entries[i].file.name for i in subset.indices]
    return {name: image for name, (image, _) in zip(files, examples_of(subset))}


# ---- formats ----------------------------------------------------------------------------

def test_jpeg_webp_and_png_through_pillow(tmp_path):
    rgb = gradient(12, 16)
    jpeg = save(tmp_path / "a" / "x.jpg", rgb, quality=95)
    save(tmp_path / "a" / "y.webp", rgb, lossless=True)
    save(tmp_path / "b" / "z.png", rgb)
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert ds.input_shape == (3, 12, 16) and ds.num_classes == 2 and ds.skipped == []
    got = decoded(ds)
    exact = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    assert torch.equal(got["y.webp"], exact) and torch.equal(got["z.png"], exact)
    with Image.open(jpeg) as image:   # JPEG is lossy: compare with Pillow's own decoding
        assert torch.equal(got["x.jpg"], torch.from_numpy(np.array(image)).permute(2, 0, 1)
                           .float() / 255)
    assert (got["x.jpg"] - exact).abs().max() < 0.1


def test_sixteen_bit_png_scales_by_65535(tmp_path, decoder):
    grey = np.array([[0, 1, 256, 65535], [32768, 4095, 65534, 7]], np.uint16)
    save(tmp_path / "a" / "grey16.png", grey)   # Pillow writes 16-bit grey PNG
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert ds.input_shape == (1, 2, 4)
    image = decoded(ds)["grey16.png"]
    assert torch.allclose(image[0], torch.from_numpy(grey.astype(np.float32)) / 65535)
    assert image[0, 0, 1].item() > 0   # 1/65535: an 8-bit reading would give 0


def test_sixteen_bit_colour_png_keeps_its_precision(tmp_path, decoder):
    rgb = np.array([[[0, 1000, 65535], [300, 40000, 257]]], np.uint16)
    grey_alpha = np.array([[[5, 65535], [60000, 0]]], np.uint16)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "rgb16.png").write_bytes(png16(rgb, 2))
    (tmp_path / "a" / "la16.png").write_bytes(png16(grey_alpha, 4))
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert ds.input_shape == (3, 1, 2)
    got = decoded(ds)
    want = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1) / 65535
    assert torch.allclose(got["rgb16.png"], want)
    assert torch.allclose(got["la16.png"], torch.tensor([5.0, 60000.0]).view(1, 1, 2)
                          .expand(3, 1, 2) / 65535)   # grey repeated, alpha dropped


def test_grey_rgba_palette_and_jpeg_mix_become_rgb(tmp_path):
    grey = gradient(8, 8, colour=False)
    save(tmp_path / "a" / "g.png", grey)
    save(tmp_path / "a" / "l.jpg", grey, quality=100)
    (tmp_path / "b").mkdir()
    Image.fromarray(gradient(8, 8)).convert("P").save(tmp_path / "b" / "p.png")
    rgba = np.dstack([gradient(8, 8), np.full((8, 8), 7, np.uint8)])
    save(tmp_path / "b" / "t.png", rgba)
    save(tmp_path / "b" / "m.png", (grey > 128))   # 1-bit
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert ds.input_shape == (3, 8, 8)
    got = decoded(ds)
    assert torch.equal(got["g.png"][0], got["g.png"][2])   # grey repeated into RGB
    assert torch.equal(got["t.png"], torch.from_numpy(gradient(8, 8)).permute(2, 0, 1) / 255)
    assert set(got["m.png"].unique().tolist()) == {0.0, 1.0}
    assert got["p.png"].shape == (3, 8, 8) and not torch.equal(got["p.png"][0], got["p.png"][1])


def test_jpeg_without_pillow_names_the_extra(tmp_path, monkeypatch):
    save(tmp_path / "a" / "x.jpg", gradient(8, 8))
    save(tmp_path / "a" / "y.png", gradient(8, 8))
    save(tmp_path / "b" / "z.webp", gradient(8, 8), lossless=True)
    monkeypatch.setattr(folder, "Image", None)
    error = fails(r"x\.jpg' is not a supported image \(JPEG\)", source="imagefolder",
                  path=str(tmp_path))
    assert "pip install 'pruneql[images]'" in error.hint
    (tmp_path / "a" / "x.jpg").unlink()
    fails(r"z\.webp' is not a supported image \(WebP\)", source="imagefolder",
          path=str(tmp_path))


# ---- resize and normalize ---------------------------------------------------------------

def test_resize_scales_the_shorter_side_then_crops_the_centre(tmp_path, decoder):
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 10:30] = 255          # the centre half is white: after the crop, all of it
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "wide.png").write_bytes(encode_png(wide, 0))
    (tmp_path / "a" / "tall.png").write_bytes(encode_png(np.full((30, 10), 128, np.uint8), 0))
    fails(r"tall\.png' is 10x30 but .*wide\.png' is 40x20|wide\.png' is 40x20 but",
          source="imagefolder", path=str(tmp_path))
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0, resize=10)
    assert ds.input_shape == (1, 10, 10)
    got = decoded(ds)
    assert got["wide.png"].shape == (1, 10, 10)
    assert got["wide.png"][:, :, 1:-1].min().item() > 0.99   # edges blur a little
    assert torch.allclose(got["tall.png"], torch.full((1, 10, 10), 128 / 255))
    batch, _ = next(iter(ds.train))
    assert batch.shape == (2, 1, 10, 10)


def test_resize_crop_upscales_small_images():
    image = folder.resize_crop(torch.rand(3, 4, 6), 8)
    assert image.shape == (3, 8, 8)
    constant = folder.resize_crop(torch.full((1, 5, 9), 0.25), 3)
    assert torch.allclose(constant, torch.full((1, 3, 3), 0.25))


def test_normalize_imagenet_makes_grey_rgb(tmp_path, decoder):
    grey = np.array([[0, 255], [51, 102]], np.uint8)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "g.png").write_bytes(encode_png(grey, 0))
    plain = load_data(source="imagefolder", path=str(tmp_path), val=0.0, normalize="none")
    assert plain.input_shape == (1, 2, 2)
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0, normalize="imagenet")
    assert ds.input_shape == (3, 2, 2)
    image = decoded(ds)["g.png"]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(image * std + mean, torch.from_numpy(grey).float().expand(3, 2, 2)
                          / 255, atol=1e-6)


def test_resize_and_normalize_settings(tmp_path):
    fails("resize must be a whole number", source="imagefolder", path=str(tmp_path), resize=0)
    fails("unknown normalize 'imagnet'", source="digits", normalize="imagnet")
    fails("`resize` applies to image folders, not to the digits source", source="digits",
          resize=8)
    fails("`normalize imagenet` needs RGB images; digits has 1 channel", source="digits",
          normalize="imagenet")


# ---- streaming and indexing -------------------------------------------------------------

class Recorder:
    """A progress object that remembers every call."""

    def __init__(self):
        self.calls = []

    def start(self, task, total=None):
        self.calls.append(("start", task, total))

    def advance(self, task, steps=1, **info):
        self.calls.append(("advance", task, steps))

    def end(self, task, **info):
        self.calls.append(("end", task, info))


def test_images_are_decoded_when_drawn_not_when_loaded(tmp_path, monkeypatch, decoder):
    for i in range(6):
        save(tmp_path / ("a", "b")[i % 2] / f"{i}.png", gradient(5, 5))
    decodes = []
    real = folder.load_image
    monkeypatch.setattr(folder, "load_image", lambda *a, **k: decodes.append(a) or real(*a, **k))
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.5, batch=2)
    assert decodes == [] and ds.input_shape == (3, 5, 5)
    next(iter(ds.train))
    assert len(decodes) == 2
    assert len(ds.val.dataset) == 3 and not hasattr(ds.train.dataset, "tensors")


def test_indexing_reports_progress(tmp_path, decoder):
    for i in range(3):
        save(tmp_path / "a" / f"{i}.png", gradient(4, 4))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    progress = Recorder()
    ds = load_data(source="imagefolder", path=str(tmp_path), progress=progress)
    assert progress.calls[0] == ("start", folder.INDEX_TASK, 4)
    assert [c for c in progress.calls if c[0] == "advance"] == [
        ("advance", folder.INDEX_TASK, 1)] * 4
    assert progress.calls[-1] == ("end", folder.INDEX_TASK, {"images": 3, "skipped": 1})
    assert [Path(name).name for name in ds.skipped] == ["notes.txt"]


# ---- damaged files ----------------------------------------------------------------------

def test_truncated_and_garbage_files_are_skipped_and_listed(tmp_path, decoder):
    good = save(tmp_path / "a" / "good.png", gradient(6, 6))
    png = good.read_bytes()
    (tmp_path / "a" / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "b" / "ok.png").parent.mkdir()
    (tmp_path / "b" / "ok.png").write_bytes(png)
    (tmp_path / "b" / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert sorted(Path(name).name for name in ds.skipped) == ["cut.png", "empty.png",
                                                              "junk.png"]
    assert len(ds.train.dataset) == 2
    assert sum(len(y) for _, y in ds.train) == 2


def test_truncated_jpeg_is_skipped(tmp_path):
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    jpeg = save(tmp_path / "a" / "whole.jpg", noisy, quality=90).read_bytes()
    cut = jpeg[: len(jpeg) * 3 // 4]   # headers intact, scan data cut short
    with Image.open(tmp_path / "a" / "whole.jpg") as image:
        assert image.size == (64, 64)
    (tmp_path / "a" / "cut.jpg").write_bytes(cut)
    webp = save(tmp_path / "b" / "whole.webp", gradient(64, 64)).read_bytes()
    (tmp_path / "b" / "cut.webp").write_bytes(webp[: len(webp) // 2])
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0)
    assert sorted(Path(name).name for name in ds.skipped) == ["cut.jpg", "cut.webp"]
    assert ds.num_classes == 2 and len(ds.train.dataset) == 2


def test_file_damaged_after_indexing_leaves_its_batch(tmp_path, decoder):
    for name in ("a", "b", "c", "d"):
        save(tmp_path / "k" / f"{name}.png", gradient(4, 4))
    ds = load_data(source="imagefolder", path=str(tmp_path), val=0.0, batch=4)
    (tmp_path / "k" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken since")
    x, y = next(iter(ds.train))
    assert x.shape == (3, 3, 4, 4) and len(y) == 3
    assert sum(len(y) for _, y in ds.train) == 3   # a second epoch: listed once
    assert [Path(name).name for name in ds.skipped] == ["c.png"]


def test_folder_of_bad_files_is_an_error(tmp_path, decoder):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"nothing")
    (tmp_path / "a" / "y.txt").write_text("hello")
    error = fails(r"image folder '.*' holds no readable image: all 2 files failed",
                  source="imagefolder", path=str(tmp_path))
    assert "x.png" in error.message
    save(tmp_path / "b" / "ok.png", gradient(4, 4))
    fails("class folder 'a' in '.*' holds no readable image", source="imagefolder",
          path=str(tmp_path))


def test_image_folder_refuses_other_tasks(tmp_path):
    save(tmp_path / "a" / "ok.png", gradient(4, 4))
    fails("an image folder holds class labels, not segmentation targets",
          source="imagefolder", path=str(tmp_path), task="segmentation")
    assert load_data(source="imagefolder", path=str(tmp_path), task="classification",
                     val=0.0).task == "classification"


def test_builtin_decoder_reads_sixteen_bit_pngs():
    rgba = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4) * 2000
    got = images.decode(png16(rgba, 6), "x.png")
    assert got.dtype == np.uint16 and np.array_equal(got, rgba)
    assert images.probe(png16(rgba, 6), "x.png") == images.Header(3, 2, True)
    with pytest.raises(images.BadImage, match="truncated"):
        images.probe(png16(rgba, 6)[:-12], "x.png")
