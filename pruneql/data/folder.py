"""Image folders (``ROOT/CLASS/IMAGE``), indexed once and decoded lazily as batches are drawn.

Classes are the sorted names of ROOT's sub-folders and labels their index; hidden files
(``.DS_Store``) are ignored. Nothing is held in memory but the index: each image is decoded
when a batch that contains it is drawn.

Formats: with Pillow (``pip install 'pruneql[images]'``) whatever it reads: JPEG, PNG (8- and
16-bit, grey, RGB, RGBA, palette), WebP, BMP, GIF (first frame), TIFF, PGM/PPM. Without it
the built-in decoders of :mod:`pruneql.data.images` read PNG and PGM/PPM; a folder holding
JPEG or WebP files then stops with an error that names the extra.

Pixels: 8-bit images are divided by 255 and 16-bit ones by 65535, so every image lies on
[0, 1] (16-bit colour PNGs, which Pillow reduces to 8 bits, go to the built-in decoder);
``normalize imagenet`` then subtracts ImageNet's per-channel mean and divides by its
standard deviation (``normalize none``, the default, leaves [0, 1]). Alpha is dropped and
palette images are colour. If any image is colour, or ``normalize imagenet`` is asked for,
every image is RGB (grey ones repeated over three channels); otherwise one grey channel.

Size: without ``resize`` all images must share one size. ``resize N`` scales each image so
that its shorter side is N (bilinear, antialiased, the same code with or without Pillow),
then cuts out the centre N x N.

Bad files: the first pass reads each file's header and checks it (Pillow's ``verify`` for
PNG, a decode for the rest, at 1/8 scale for JPEG), reporting through ``progress``. Files
that fail are skipped and listed in ``Dataset.skipped``, as is a file that passed the index
but fails to decode when drawn (its batch is one example shorter). A class folder or a whole
folder left without a readable image is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate

from pruneql.data import images
from pruneql.data.base import IMAGENET_MEAN, IMAGENET_STD, Options, Parts
from pruneql.data.sources import existing
from pruneql.errors import DataError

try:
    from PIL import Image
except ImportError:    # Pillow is the optional `images` extra; PNG/PGM/PPM work without it
    Image = None

INDEX_TASK = "index images"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_KEEP_MODES = frozenset({"L", "RGB", "I", "I;16", "I;16B", "I;16L", "I;16N"})


@dataclass(frozen=True)
class Entry:
    """One readable image of the index."""

    file: Path
    label: int
    width: int
    height: int
    colour: bool


def imagefolder(path: str, opts: Options = Options()) -> Parts:
    """Index ``path`` and return its images as one lazily decoded Dataset."""
    if opts.task not in (None, "classification", "python"):
        raise DataError(f"an image folder holds class labels, not {opts.task} targets",
                        hint="use `task classification`, or npz data for other tasks")
    root = existing(path, "imagefolder", folder=True)
    classes = _classes(root, path)
    listed = [(file, label) for label, folder in enumerate(classes)
              for file in _image_files(folder, path)]
    entries, skipped = _index(listed, opts.progress)
    _check_coverage(entries, skipped, classes, path)
    channels = 3 if opts.normalize == "imagenet" or any(e.colour for e in entries) else 1
    size = (opts.resize, opts.resize) if opts.resize else _common_size(entries)
    files = ImageFiles(entries, channels, size, opts.resize, opts.normalize,
                       [name for name, _ in skipped])
    return Parts(files, None, len(classes), collate=files.collate, input_shape=(channels, *size),
                 skipped=files.skipped, task="classification")


class ImageFiles(Dataset):
    """The indexed images, decoded one by one: ``(float32 (C, H, W), label)``.

    ``__getitem__`` gives None for a file that fails to decode (and lists it in
    ``skipped``); :meth:`collate` leaves such examples out of the batch.
    """

    def __init__(self, entries: list[Entry], channels: int, size: tuple, resize: int | None,
                 normalize: str | None, skipped: list[str]):
        self.entries, self.channels, self.size = entries, channels, tuple(size)
        self.resize, self.skipped = resize, skipped
        self.stats = None
        if normalize == "imagenet":
            self.stats = (torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
                          torch.tensor(IMAGENET_STD).view(3, 1, 1))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        entry = self.entries[index]
        try:
            image = load_image(entry.file, self.channels, self.resize)
        except Exception:   # any decoder failure on a file means the same: unreadable
            image = None
        if image is None or tuple(image.shape) != (self.channels, *self.size):
            if str(entry.file) not in self.skipped:   # listed once, however often drawn
                self.skipped.append(str(entry.file))
            return None
        if self.stats is not None:
            image = (image - self.stats[0]) / self.stats[1]
        return image, entry.label

    def collate(self, batch: list) -> list:
        """Stack the examples that decoded; a batch of which none did is an error."""
        kept = [example for example in batch if example is not None]
        if not kept:
            raise DataError(f"none of the {len(batch)} images of a batch could be decoded "
                            f"(the last: '{self.skipped[-1]}')",
                            hint="the files changed or are damaged since they were indexed; "
                                 "remove them")
        return default_collate(kept)


def load_image(file: Path, channels: int, resize: int | None = None) -> torch.Tensor:
    """One image as float32 (channels, H, W) on [0, 1], resized when ``resize`` is set.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = Path(tmp) / "grey.pgm"
    ...     _ = file.write_bytes(b"P5 4 2 255 " + bytes(range(0, 255, 32)))
    ...     image = load_image(file, channels=3)
    >>> tuple(image.shape), round(image.max().item(), 3)
    ((3, 2, 4), 0.878)
    """
    if Image is None or _wide_png(file):
        pixels = images.decode(file.read_bytes(), str(file))
    else:
        pixels = _pixels_pillow(file, resize)
    image = _to_tensor(pixels, channels)
    return resize_crop(image, resize) if resize else image


def resize_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Scale (C, H, W) so its shorter side is ``size`` (bilinear, antialiased), then cut out
    the centre ``size`` x ``size``.

    >>> resize_crop(torch.rand(3, 40, 60), 20).shape
    torch.Size([3, 20, 20])
    >>> resize_crop(torch.arange(8.).view(1, 2, 4), 2).tolist()   # already 2 high: crop
    [[[1.0, 2.0], [5.0, 6.0]]]
    """
    height, width = image.shape[1:]
    scale = size / min(height, width)
    target = (max(size, round(height * scale)), max(size, round(width * scale)))
    if target != (height, width):
        image = F.interpolate(image[None], size=target, mode="bilinear", antialias=True,
                              align_corners=False)[0]
    top, left = (target[0] - size) // 2, (target[1] - size) // 2
    return image[:, top:top + size, left:left + size]


# ---- indexing ---------------------------------------------------------------------------

def _classes(root: Path, path: str) -> list[Path]:
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"image folder '{path}' has no class sub-folders",
                        hint="put each class's images in its own folder: ROOT/cat/1.png, "
                             "ROOT/dog/2.png")
    return classes


def _image_files(folder: Path, path: str) -> list[Path]:
    # hidden files (.DS_Store, editor droppings) are not images anyone meant to include
    files = sorted(f for f in folder.rglob("*") if f.is_file()
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    if not files:
        raise DataError(f"class folder '{folder.name}' in '{path}' holds no images",
                        hint="remove the empty folder, or add its images")
    return files


def _index(listed: list, progress) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Entries of the readable files, and (file, reason) of the others."""
    progress = progress or _Quiet()
    progress.start(INDEX_TASK, len(listed))
    entries, skipped = [], []
    for file, label in listed:
        try:
            header = probe(file)
        except images.NeedsPillow:
            raise
        except Exception as exc:   # unreadable, whatever the decoder's exception says
            skipped.append((str(file), _reason(exc)))
        else:
            entries.append(Entry(file, label, header.width, header.height, header.colour))
        progress.advance(INDEX_TASK, 1)
    progress.end(INDEX_TASK, images=len(entries), skipped=len(skipped))
    return entries, skipped


def probe(file: Path) -> images.Header:
    """Size and colour of an image file, once its structure checks out."""
    if Image is None or _wide_png(file):
        return images.probe(file.read_bytes(), str(file))
    with Image.open(file) as image:
        header = images.Header(*image.size, image.mode not in _GREY_MODES)
        if image.format == "PNG":
            image.verify()   # chunk CRCs and the end of the file, without decompressing
        else:
            image.draft(image.mode, (1, 1))   # JPEG decodes at 1/8 scale; others in full
            image.load()
    return header


def _wide_png(file: Path) -> bool:
    """A non-interlaced 16-bit colour (or grey+alpha) PNG, read from its IHDR chunk."""
    with open(file, "rb") as f:
        head = f.read(29)
    return (len(head) == 29 and head.startswith(images.PNG_SIGNATURE) and head[24] == 16
            and head[25] in (2, 4, 6) and head[28] == 0)


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"


def _check_coverage(entries: list[Entry], skipped: list, classes: list[Path],
                    path: str) -> None:
    """Every class keeps a readable image (and so the folder does)."""
    if not entries:
        name, reason = skipped[0]
        raise DataError(f"image folder '{path}' holds no readable image: all {len(skipped)} "
                        f"files failed (the first, '{name}': {reason})",
                        hint="check that the folder holds images and that they open")
    found = {entry.label for entry in entries}
    for label, folder in enumerate(classes):
        if label not in found:
            raise DataError(f"class folder '{folder.name}' in '{path}' holds no readable "
                            f"image", hint="remove the folder, or replace its damaged images")


def _common_size(entries: list[Entry]) -> tuple[int, int]:
    """(H, W) shared by every image; else an error naming two that differ."""
    first = entries[0]
    for entry in entries:
        if (entry.width, entry.height) != (first.width, first.height):
            raise DataError(f"image '{entry.file}' is {entry.width}x{entry.height} but "
                            f"'{first.file}' is {first.width}x{first.height}",
                            hint="all images must share one size: add `resize N` to the data "
                                 "statement (shorter side scaled to N, then the centre N x N)")
    return first.height, first.width


class _Quiet:
    """The progress object used when none is given."""

    def start(self, task: str, total: int | None = None) -> None:
        pass

    def advance(self, task: str, steps: int = 1, **info) -> None:
        pass

    def end(self, task: str, **info) -> None:
        pass


# ---- decoding ---------------------------------------------------------------------------

def _pixels_pillow(file: Path, resize: int | None) -> np.ndarray:
    """(H, W[, C]) pixels: uint8, or 16-bit values for 16-bit images."""
    with Image.open(file) as image:
        if resize:
            image.draft(image.mode, (resize, resize))   # JPEG: reduce, never below resize
        if image.mode == "F":
            raise images.BadImage(f"'{file}' holds floating-point pixels",
                                  hint="save it as an 8- or 16-bit image")
        if image.mode not in _KEEP_MODES:
            image = image.convert("L" if image.mode in _GREY_MODES else "RGB")
        return np.asarray(image)


def _to_tensor(pixels: np.ndarray, channels: int) -> torch.Tensor:
    """(channels, H, W) float32 on [0, 1]: alpha dropped, grey repeated to fill RGB."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    pixels = pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., :1]
    scale = 255.0 if pixels.dtype == np.uint8 else 65535.0
    image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32) / scale)
    image = image.clamp_(0, 1).permute(2, 0, 1)
    return image.expand(channels, -1, -1).contiguous() if image.shape[0] < channels else image
