"""The random baseline: seeded, so a recipe run twice removes the same channels."""
from __future__ import annotations

import numpy as np

from pruneql.criteria.base import Job, Scored
from pruneql.lang.criteria import register


def random_scores(n: int, seed: int, group_id: int) -> np.ndarray:
    """``n`` uniform scores from a generator seeded by (seed, group id).

    >>> bool((random_scores(4, 0, 1) == random_scores(4, 0, 1)).all())
    True
    """
    return np.random.default_rng([seed, group_id]).random(n)


@register("random")
def random_criterion(job: Job, *, seed: int | None) -> Scored:
    """Uniform scores seeded by ``seed`` (default: the run's seed) and the group id."""
    seed = job.seed if seed is None else int(seed)
    return Scored({g.id: random_scores(g.size, seed, g.id) for g in job.groups})
