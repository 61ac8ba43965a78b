"""Files shipped inside the package: the bundled recipes (``pruneql specs``) and the demo's
checkpoint. In a wheel they live under ``pruneql/``; in a source checkout at the repo root.

>>> os.path.basename(spec_path("vgg16")), os.path.basename(spec_path("vgg16.yaml"))
('vgg16.prune', 'vgg16.yaml')
>>> spec_path("no-such-recipe") is None
True
"""
from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_SUFFIXES = (".prune", ".yaml")


def resource(*parts: str) -> str:
    """A file shipped inside the package, or (in a source checkout) at the repo root."""
    inside = os.path.join(_HERE, *parts)
    return inside if os.path.exists(inside) else os.path.join(os.path.dirname(_HERE), *parts)


def spec_files() -> dict:
    """Bundled recipes by name: ``vgg16`` for ``vgg16.prune``, ``vgg16.yaml`` for its twin."""
    folder = resource("specs")
    if not os.path.isdir(folder):
        return {}
    found = {}
    for file in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(file)
        if ext in SPEC_SUFFIXES:
            found[stem if ext == ".prune" else file] = os.path.join(folder, file)
    return found


def spec_path(name: str) -> str | None:
    """The bundled recipe called ``name`` (``vgg16``, ``vgg16.prune``, ``vgg16.yaml``)."""
    files = spec_files()
    stem, ext = os.path.splitext(name)
    return files.get(name) or (files.get(stem) if ext == ".prune" else None)


def spec_summary(path: str) -> str:
    """What configuration a recipe file is: its leading comment, up to the colon that
    starts the details (``VGG-16-A of Li et al. 2017 (Table 1)``)."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    head = text.split(": ", 1)[0]
    return head if len(head) >= 15 else text
