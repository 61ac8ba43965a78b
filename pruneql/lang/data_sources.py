"""The data sources: one registry, torch-free, that the language and the loaders both read.

Each source says whether it takes a path (``none``, ``optional`` or ``required``) and which
``data`` options it accepts; loaders register their reader against it.

>>> SOURCES["digits"].path, SOURCES["tokens"].path, "resize" in SOURCES["npz"].options
('none', 'optional', False)
"""
from __future__ import annotations

from dataclasses import dataclass

from pruneql.lang.registry import Registry

__all__ = ["COMMON_OPTIONS", "DataSource", "NAMES", "SOURCES", "implementation", "register"]

COMMON_OPTIONS = ("batch", "val", "test", "seed")
_IMAGE_OPTIONS = ("resize", "normalize")


@dataclass(frozen=True)
class DataSource:
    """A data source as the language knows it; ``example`` is a complete statement."""

    name: str
    path: str               # "none", "optional" or "required"
    options: tuple
    description: str
    example: str

    def takes(self, option: str) -> bool:
        """Whether the ``data`` statement may give ``option`` for this source.

        >>> SOURCES["imagefolder"].takes("resize"), SOURCES["digits"].takes("normalize")
        (True, False)
        """
        return option in self.options


SOURCES: Registry[DataSource] = Registry("data source", (
    DataSource("cifar10", "required", COMMON_OPTIONS,
               "CIFAR-10 in its python batch folder", 'data cifar10 "cifar-10-batches-py"'),
    DataSource("digits", "none", COMMON_OPTIONS,
               "8x8 handwritten digits, bundled: no download", "data digits"),
    DataSource("imagefolder", "required", COMMON_OPTIONS + _IMAGE_OPTIONS,
               "images in one folder per class", 'data imagefolder "images/" resize 224'),
    DataSource("npz", "required", COMMON_OPTIONS,
               "arrays x and y in an .npz file", 'data npz "train.npz"'),
    DataSource("python", "required", COMMON_OPTIONS,
               "a function pkg.mod:fn that returns the data", 'data python "mypkg.data:load"'),
    DataSource("tokens", "optional", COMMON_OPTIONS,
               "token sequences for language models; no path: a bundled tiny corpus",
               "data tokens"),
))
NAMES = SOURCES.names
register = SOURCES.register
implementation = SOURCES.implementation
