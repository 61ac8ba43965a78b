"""Image decoders that need nothing beyond the standard library and numpy.

The fallback when Pillow (the ``images`` extra) is missing: PNG (grayscale, grayscale+alpha,
RGB, RGBA at 8 or 16 bits; 8-bit palette; not interlaced) and binary PGM/PPM (P5/P6).
:func:`decode` returns an array of shape (H, W, C), C in {1, 2, 3, 4}: uint8 for 8-bit
images, uint16 (on 0..65535) for 16-bit ones. :func:`probe` reads only what it takes to
learn the size and colour of an image and to check its structure, without decompressing.

    >>> import zlib, struct
    >>> def chunk(kind, data):
    ...     body = kind + data
    ...     return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    >>> png = (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 0, 0, 0, 0))
    ...        + chunk(b"IDAT", zlib.compress(b"\\x00\\x07\\xff")) + chunk(b"IEND", b""))
    >>> decode(png, "tiny.png")[..., 0].tolist()
    [[7, 255]]
    >>> probe(png, "tiny.png")
    Header(width=2, height=1, colour=False)
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from pruneql.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUPPORTED = ("PNG (8- or 16-bit grayscale, grayscale+alpha, RGB, RGBA; 8-bit palette; not "
             "interlaced) and binary PGM/PPM (P5/P6)")
PILLOW_HINT = "install Pillow, e.g. pip install 'pruneql[images]'"
# colour type -> samples per pixel
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_COLOUR = {2, 3, 6}
# magic bytes of real image formats only Pillow decodes, so the error can name them
_KNOWN = {b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF", b"RIFF": "WebP", b"P1": "ASCII PBM", b"P2": "ASCII PGM",
          b"P3": "ASCII PPM", b"P4": "binary PBM"}


class BadImage(DataError):
    """A file that is not a readable image (corrupt, truncated, or no image at all)."""


class NeedsPillow(DataError):
    """A well-formed image in a format the built-in decoders do not read."""


@dataclass(frozen=True)
class Header:
    """What indexing needs to know of an image."""

    width: int
    height: int
    colour: bool


def corrupt(name: str, kind: str, what: str) -> BadImage:
    return BadImage(f"'{name}' is a corrupt {kind}: {what}",
                    hint="re-save the image with another program, or remove it")


def unsupported(name: str, what: str) -> NeedsPillow:
    return NeedsPillow(f"'{name}' is not a supported image ({what})",
                       hint=f"{PILLOW_HINT}; without it the supported formats are {SUPPORTED}")


def decode(data: bytes, name: str) -> np.ndarray:
    """Decode PNG or P5/P6 bytes into a uint8 or uint16 (H, W, C) array; ``name`` is for
    errors."""
    if data.startswith(PNG_SIGNATURE):
        return decode_png(data, name)
    if data[:2] in (b"P5", b"P6"):
        return decode_pnm(data, name)
    raise _unknown(data, name)


def probe(data: bytes, name: str) -> Header:
    """Size and colour of PNG or P5/P6 bytes; checks chunk CRCs or the raster length."""
    if data.startswith(PNG_SIGNATURE):
        header = _png_header(_png_chunks(data, name)[0], name)
        return Header(header[0], header[1], header[3] in _PNG_COLOUR)
    if data[:2] in (b"P5", b"P6"):
        width, height, _, _ = _pnm_layout(data, name)
        return Header(width, height, data[:2] == b"P6")
    raise _unknown(data, name)


def _unknown(data: bytes, name: str) -> DataError:
    for magic, fmt in _KNOWN.items():
        if data.startswith(magic):
            return unsupported(name, fmt)
    return BadImage(f"'{name}' is not an image (unrecognised format)",
                    hint="keep only images in the class folders")


# ---- PNG --------------------------------------------------------------------------------

def decode_png(data: bytes, name: str) -> np.ndarray:
    chunks, palette, compressed = _png_chunks(data, name)
    width, height, depth, colour = _png_header(chunks, name)
    channels, size = _PNG_CHANNELS[colour], depth // 8
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as exc:
        raise corrupt(name, "PNG", str(exc)) from exc
    stride = width * channels * size
    if len(raw) != height * (stride + 1):
        raise corrupt(name, "PNG", f"{len(raw)} bytes of pixel data, expected "
                                   f"{height * (stride + 1)}")
    flat = _unfilter(raw, height, stride, channels * size, name)
    pixels = (flat.view(">u2").astype(np.uint16) if size == 2 else flat)
    pixels = pixels.reshape(height, width, channels)
    if colour == 3:
        pixels = _apply_palette(pixels[..., 0], palette, name)
    return pixels


def _png_header(header: tuple, name: str) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) once the built-in decoder can read them."""
    width, height, depth, colour, _, _, interlace = header
    if width == 0 or height == 0:
        raise corrupt(name, "PNG", f"size {width}x{height}")
    if colour not in _PNG_CHANNELS or depth not in ((8,) if colour == 3 else (8, 16)):
        raise unsupported(name, f"PNG with bit depth {depth}, colour type {colour}")
    if interlace:
        raise unsupported(name, "interlaced PNG")
    return width, height, depth, colour


def _png_chunks(data: bytes, name: str):
    """Walk the chunks: (IHDR fields, PLTE bytes or None, concatenated IDAT bytes)."""
    pos, header, palette, idat = len(PNG_SIGNATURE), None, None, []
    ended = False
    while pos + 12 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if pos + 12 + length > len(data):
            raise corrupt(name, "PNG", f"truncated {kind.decode('latin-1')} chunk")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise corrupt(name, "PNG", f"bad {kind.decode('latin-1')} chunk (CRC mismatch)")
        pos += 12 + length
        if kind == b"IHDR" and length == 13:
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
        elif kind[:1].isupper() and kind != b"IHDR":
            # a critical chunk we do not know changes how the image decodes: refuse it
            raise unsupported(name, f"PNG with critical chunk {kind.decode('latin-1')}")
    if header is None or not idat or not ended:
        raise corrupt(name, "PNG", "no IHDR, IDAT or IEND chunk (truncated?)")
    return header, palette, b"".join(idat)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int, name: str) -> np.ndarray:
    """Undo the per-row PNG filters (None, Sub, Up, Average, Paeth)."""
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, np.uint8, stride, start + 1)
        if kind == 0:
            cur = line.copy()
        elif kind == 1:   # Sub: a running sum per channel, mod 256
            cur = _sub(line, bpp)
        elif kind == 2:   # Up
            cur = line + prev
        elif kind in (3, 4):
            cur = _sequential(line, prev, bpp, kind)
        else:
            raise corrupt(name, "PNG", f"unknown filter {kind} in row {row}")
        out[row] = cur
        prev = cur
    return out.reshape(-1)


def _sub(line: np.ndarray, bpp: int) -> np.ndarray:
    # a row holds whole pixels, so it reshapes to (width, bpp); uint8 sums wrap mod 256
    return np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)


def _sequential(line: np.ndarray, prev: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Average (3) and Paeth (4) depend on the byte just decoded, so they run byte by byte."""
    cur, up = bytearray(line.tobytes()), prev.tobytes()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            cur[i] = (cur[i] + _paeth(a, b, c)) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _apply_palette(index: np.ndarray, palette: bytes | None, name: str) -> np.ndarray:
    if not palette or len(palette) % 3:
        raise corrupt(name, "PNG", "palette image without a valid PLTE")
    table = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    if index.max(initial=0) >= len(table):
        raise corrupt(name, "PNG", "palette index out of range")
    return table[index]


# ---- PGM / PPM --------------------------------------------------------------------------

def decode_pnm(data: bytes, name: str) -> np.ndarray:
    """Binary PGM (P5) or PPM (P6): maxval below 256 is rescaled to 0..255 (uint8), above
    to 0..65535 (uint16), so each image's values share one range per bit depth."""
    width, height, maxval, pos = _pnm_layout(data, name)
    channels = 1 if data[:2] == b"P5" else 3
    dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
    pixels = np.frombuffer(data, dtype, width * height * channels, pos).astype(np.uint32)
    top, out = (255, np.uint8) if maxval < 256 else (65535, np.uint16)
    if maxval != top:
        pixels = (pixels * top + maxval // 2) // maxval
    return pixels.astype(out).reshape(height, width, channels)


def _pnm_layout(data: bytes, name: str) -> tuple[int, int, int, int]:
    """(width, height, maxval, raster offset) of a P5/P6 file whose raster is all there."""
    (width, height, maxval), pos = _pnm_header(data, name)
    if not (width > 0 and height > 0 and 0 < maxval < 65536):
        raise corrupt(name, "PGM/PPM", f"size {width}x{height}, maxval {maxval}")
    count = width * height * (1 if data[:2] == b"P5" else 3) * (1 if maxval < 256 else 2)
    if len(data) - pos < count:
        raise corrupt(name, "PGM/PPM", "pixel data is truncated")
    return width, height, maxval, pos


def _pnm_header(data: bytes, name: str) -> tuple[list[int], int]:
    """Three integers after the magic, with # comments; returns them and the raster offset."""
    fields, pos = [], 2
    while len(fields) < 3:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            end = data.find(b"\n", pos)
            pos = len(data) if end < 0 else end + 1
            continue
        start = pos
        while pos < len(data) and data[pos:pos + 1].isdigit():
            pos += 1
        if start == pos:
            raise corrupt(name, "PGM/PPM", "bad header")
        fields.append(int(data[start:pos]))
    if not data[pos:pos + 1].isspace():
        raise corrupt(name, "PGM/PPM", "bad header")
    return fields, pos + 1   # exactly one whitespace byte separates header and raster
