"""Weight-magnitude criteria of Li et al. 2017: the L1 (or L2) norm of each filter."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _filters(module: nn.Module, in_mask: np.ndarray | None) -> torch.Tensor:
    """The weight as (out_channels, rest), leaving out input channels not in ``in_mask``."""
    weight = module.weight.detach()
    if isinstance(module, (nn.modules.conv._ConvTransposeNd, nn.Embedding)):
        weight = weight.transpose(0, 1)           # (in, out, ...); an embedding's columns
    grouped = getattr(module, "groups", 1) > 1    # its input dim is per group: no mask
    if in_mask is not None and not grouped and not bool(np.all(in_mask)):
        weight = weight[:, torch.from_numpy(np.asarray(in_mask, dtype=bool))]
    return weight.reshape(weight.shape[0], -1)


def l1(module: nn.Module, in_mask: np.ndarray | None = None) -> np.ndarray:
    """Sum of absolute weights per filter.

    >>> conv = nn.Conv2d(2, 3, 1, bias=False)
    >>> _ = conv.weight.data.copy_(torch.tensor([[1., -1], [0, 2], [0, 0]]).view(3, 2, 1, 1))
    >>> l1(conv).tolist(), l1(conv, np.array([False, True])).tolist()
    ([2.0, 2.0, 0.0], [1.0, 2.0, 0.0])
    """
    # accumulated in float64 without a float64 copy of the weight (plans of big models);
    # the float32 |w| is one layer at a time
    return _filters(module, in_mask).abs().sum(dim=1, dtype=torch.float64).numpy()


def l2(module: nn.Module, in_mask: np.ndarray | None = None) -> np.ndarray:
    """Euclidean norm per filter."""
    return _filters(module, in_mask).square().sum(dim=1, dtype=torch.float64).sqrt().numpy()
