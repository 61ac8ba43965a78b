"""Image decoders that need nothing beyond the standard library and numpy.

PNG (8-bit grayscale, grayscale+alpha, RGB, RGBA or palette; not interlaced) and binary
PGM/PPM (P5/P6). Every decoder returns a uint8 array of shape (H, W, C), C in {1, 2, 3, 4}.

    >>> import zlib, struct
    >>> def chunk(kind, data):
    ...     body = kind + data
    ...     return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    >>> png = (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 0, 0, 0, 0))
    ...        + chunk(b"IDAT", zlib.compress(b"\\x00\\x07\\xff")) + chunk(b"IEND", b""))
    >>> decode(png, "tiny.png")[..., 0].tolist()
    [[7, 255]]
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from pruneql.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUPPORTED = ("PNG (8-bit grayscale, grayscale+alpha, RGB, RGBA or palette, not interlaced) "
             "and binary PGM/PPM (P5/P6)")
# colour type -> samples per pixel, for 8-bit PNGs
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# magic bytes of common formats we do not decode, so the error can name them
_KNOWN = {b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF", b"RIFF": "WebP/RIFF", b"P1": "ASCII PBM", b"P2": "ASCII PGM",
          b"P3": "ASCII PPM", b"P4": "binary PBM"}


def corrupt(name: str, kind: str, what: str) -> DataError:
    return DataError(f"'{name}' is a corrupt {kind}: {what}",
                     hint="re-save the image with another program, or remove it")


def unsupported(name: str, what: str) -> DataError:
    return DataError(f"'{name}' is not a supported image ({what})",
                     hint=f"supported formats: {SUPPORTED}; convert other images first")


def decode(data: bytes, name: str) -> np.ndarray:
    """Decode PNG or P5/P6 bytes into a uint8 (H, W, C) array; ``name`` is for errors."""
    if data.startswith(PNG_SIGNATURE):
        return decode_png(data, name)
    if data[:2] in (b"P5", b"P6"):
        return decode_pnm(data, name)
    for magic, fmt in _KNOWN.items():
        if data.startswith(magic):
            raise unsupported(name, fmt)
    raise unsupported(name, "unrecognised format")


# ---- PNG --------------------------------------------------------------------------------

def decode_png(data: bytes, name: str) -> np.ndarray:
    header, palette, compressed = _png_chunks(data, name)
    width, height, depth, colour, _, _, interlace = header
    if width == 0 or height == 0:
        raise corrupt(name, "PNG", f"size {width}x{height}")
    if depth != 8 or colour not in _PNG_CHANNELS:
        raise unsupported(name, f"PNG with bit depth {depth}, colour type {colour}")
    if interlace:
        raise unsupported(name, "interlaced PNG")
    channels = _PNG_CHANNELS[colour]
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as exc:
        raise corrupt(name, "PNG", str(exc)) from exc
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise corrupt(name, "PNG", f"{len(raw)} bytes of pixel data, expected "
                                   f"{height * (stride + 1)}")
    pixels = _unfilter(raw, height, stride, channels, name).reshape(height, width, channels)
    if colour == 3:
        pixels = _apply_palette(pixels[..., 0], palette, name)
    return pixels


def _png_chunks(data: bytes, name: str):
    """Walk the chunks: (IHDR fields, PLTE bytes or None, concatenated IDAT bytes)."""
    pos, header, palette, idat = len(PNG_SIGNATURE), None, None, []
    while pos + 12 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if pos + 12 + length > len(data):
            raise corrupt(name, "PNG", f"truncated {kind.decode('latin-1')} chunk")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise corrupt(name, "PNG", f"bad {kind.decode('latin-1')} chunk (CRC mismatch)")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind[:1].isupper():
            # a critical chunk we do not know changes how the image decodes: refuse it
            raise unsupported(name, f"PNG with critical chunk {kind.decode('latin-1')}")
    if header is None or not idat:
        raise corrupt(name, "PNG", "no IHDR or IDAT chunk")
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
    """Binary PGM (P5) or PPM (P6); maxval up to 65535, rescaled to 0..255."""
    channels = 1 if data[:2] == b"P5" else 3
    fields, pos = _pnm_header(data, name)
    width, height, maxval = fields
    if not (width > 0 and height > 0 and 0 < maxval < 65536):
        raise corrupt(name, "PGM/PPM", f"size {width}x{height}, maxval {maxval}")
    dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
    count = width * height * channels
    if len(data) - pos < count * dtype.itemsize:
        raise corrupt(name, "PGM/PPM", "pixel data is truncated")
    pixels = np.frombuffer(data, dtype, count, pos).astype(np.uint32)
    if maxval != 255:   # rescale to 0..255 so every image shares one range
        pixels = (pixels * 255 + maxval // 2) // maxval
    return pixels.astype(np.uint8).reshape(height, width, channels)


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
