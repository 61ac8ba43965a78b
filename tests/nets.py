"""Small networks built from random blocks, for property tests of the channel analysis."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("conv", "residual", "cat", "depthwise", "shortcut_a", "pool", "mul", "grouped",
          "shuffle", "channels_last", "groupnorm", "upsample")


class Block(nn.Module):
    """One block; ``kind`` decides the topology, ``c_in``/``c_out`` the widths."""

    def __init__(self, kind: str, c_in: int, width: int):
        super().__init__()
        self.kind = kind
        self.c_out = {"conv": width, "residual": c_in, "cat": 2 * width, "depthwise": c_in,
                      "shortcut_a": 2 * c_in, "pool": c_in, "mul": c_in, "grouped": 2 * width,
                      "shuffle": 2 * max(width, 2), "channels_last": c_in, "groupnorm": 2 * width,
                      "upsample": width}[kind]
        if kind == "conv":
            self.a = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width),
                                   nn.ReLU())
        elif kind in ("residual", "mul"):
            self.a = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, c_in, 1), nn.BatchNorm2d(c_in))
        elif kind == "cat":
            self.a = nn.Conv2d(c_in, width, 1)
            self.b = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU())
        elif kind == "depthwise":
            self.a = nn.Sequential(nn.Conv2d(c_in, width, 1), nn.BatchNorm2d(width), nn.ReLU6(),
                                   nn.Conv2d(width, width, 3, padding=1, groups=width),
                                   nn.BatchNorm2d(width), nn.ReLU6(), nn.Conv2d(width, c_in, 1))
        elif kind == "grouped":    # expand to 2 groups, grouped 3x3 with a channel multiplier
            self.a = nn.Sequential(nn.Conv2d(c_in, 2 * width, 1), nn.ReLU(),
                                   nn.Conv2d(2 * width, 4 * width, 3, padding=1, groups=2),
                                   nn.BatchNorm2d(4 * width),
                                   nn.Conv2d(4 * width, 2 * width, 3, padding=1, groups=2 * width))
        elif kind == "shuffle":    # split the input, convolve one half, cat, shuffle
            width = self.c_out // 2       # a shuffle of single channels is no shuffle
            self.a = nn.Conv2d(c_in, width, 1)
            self.b = nn.Sequential(nn.Conv2d(c_in, width, 1), nn.ReLU(), nn.Conv2d(width, width, 1))
        elif kind == "channels_last":
            self.a = nn.Sequential(nn.Linear(c_in, 2 * width), nn.GELU(), nn.Linear(2 * width, c_in))
            self.gamma = nn.Parameter(torch.rand(c_in) + 0.5)
        elif kind == "groupnorm":
            self.a = nn.Sequential(nn.Conv2d(c_in, 2 * width, 3, padding=1), nn.GroupNorm(2, 2 * width),
                                   nn.PReLU(2 * width))
        elif kind == "upsample":   # down, then back up by a transposed conv
            self.a = nn.Sequential(nn.Conv2d(c_in, width, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.ConvTranspose2d(width, width, 2, stride=2))
        elif kind == "shortcut_a":
            self.front, self.back = c_in // 2, c_in - c_in // 2   # uneven on purpose
            self.a = nn.Sequential(nn.Conv2d(c_in, 2 * c_in, 3, stride=2, padding=1),
                                   nn.BatchNorm2d(2 * c_in))

    def forward(self, x):
        if self.kind in ("conv", "grouped", "groupnorm", "upsample"):
            return self.a(x)
        if self.kind == "shuffle":
            y = torch.cat([self.a(x), self.b(x)], dim=1)
            first, second = y.chunk(2, dim=1)
            y = torch.cat([first, second], dim=1)
            n, c, h, w = y.size()
            return y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        if self.kind == "channels_last":
            y = self.a(x.permute(0, 2, 3, 1)) * self.gamma
            return x + y.permute(0, 3, 1, 2)
        if self.kind == "residual":
            return F.relu(x + self.a(x))
        if self.kind == "mul":
            return x * torch.sigmoid(self.a(x))
        if self.kind == "cat":
            return torch.cat([self.a(x), self.b(x)], dim=1)
        if self.kind == "depthwise":
            return x + self.a(x)
        if self.kind == "shortcut_a":
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.front, self.back))
            return F.relu(self.a(x) + short)
        return F.max_pool2d(x, 2, ceil_mode=True)


class RandomNet(nn.Module):
    """stem conv → blocks → (flatten → linear | global pool → linear)."""

    def __init__(self, kinds, widths, stem: int = 4, flatten: bool = True, classes: int = 3,
                 size: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, padding=1), nn.BatchNorm2d(stem), nn.ReLU())
        blocks, c = [], stem
        for kind, width in zip(kinds, widths):
            blocks.append(Block(kind, c, width))
            c = blocks[-1].c_out
            size = (size + 1) // 2 if kind in ("pool", "shortcut_a") else size
            size = 2 * ((size + 1) // 2) if kind == "upsample" else size
        self.blocks = nn.Sequential(*blocks)
        self.flatten = flatten
        self.head = nn.Linear(c * (size * size if flatten else 1), classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(x, 1) if self.flatten else F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


# ---- factories named by recipes in tests (the trust model) -------------------------------

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def marking_factory() -> nn.Module:
    """Leaves a file at $PRUNEQL_TEST_MARKER: proof that it ran."""
    import os

    marker = os.environ.get("PRUNEQL_TEST_MARKER")
    if marker:
        open(marker, "w").close()
    return Small()


def exiting_factory() -> nn.Module:
    """An argparse-style builder that exits instead of returning."""
    raise SystemExit(2)
