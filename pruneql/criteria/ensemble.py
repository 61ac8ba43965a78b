"""Sándor et al.'s linear filter ensembles: a linear model of the loss over random masks.

Per group: ``samples`` random binary masks over the group's live units, each unit kept
with probability ``keep`` (a mask keeping nothing is redrawn), from a numpy Generator
seeded with (seed, group id); the mean loss over the batches with the dropped units gated
off; a fit loss ~ b + sum_j a_j mask_j. A unit whose presence lowers the loss has
a_j < 0; its importance is -a_j. Units already removed score 0 and stay out of the fit,
so in ``iterate`` rounds each ensemble is refitted on the network as it stands.

The fit's quality is measured, not assumed: its R^2 on held-out masks (5-fold
cross-validation over the masks) goes into the scores' notes (``fit_r2``, shown in the
report's group rows), and a group whose held-out R^2 is below :data:`R2_WARN` raises an
:class:`EnsembleFitWarning`: its loss is not additive in its units at these settings,
and the coefficients rank little better than chance.

``ridge`` = lambda adds lambda * ||a||^2 to the mean squared residual (the intercept is
not penalised): lambda is on the scale of a mask column's variance, keep * (1 - keep)
(0.09 at keep 0.9), so lambda = 0.01 shrinks mildly and lambda = 0.1 strongly.

Defaults (the paper does not state its sampling settings; measured on the digits CNN,
``bench/ensemble_defaults.py``, see docs/criteria.md): ``keep 0.9`` — masks near the
network they rank, where the loss is close to additive; ``samples`` = 16 masks per live
unit, at least 64 — the fit has one coefficient per unit, so a fixed number of masks
under-determines wide groups; ``batches 4`` — one fixed set of examples for every mask
of a group, so the masks differ by their units alone.
"""
from __future__ import annotations

import warnings

import numpy as np

from pruneql.criteria.base import Job, Scored
from pruneql.criteria.evaluation import gated_loss
from pruneql.lang.criteria import register

SAMPLES_PER_UNIT = 16
MIN_SAMPLES = 64
R2_WARN = 0.5
FOLDS = 5


class EnsembleFitWarning(UserWarning):
    """The linear fit of an ensemble explains little of the held-out masks' losses."""


@register("ensemble")
def ensemble(job: Job, *, samples: int | None, keep: float, ridge: float) -> Scored:
    """-a_j of the fitted linear model, per group; notes carry the held-out R^2."""
    scores, notes = {}, {}
    for group in job.groups:
        live = np.nonzero(~job.gone(group))[0]
        s = np.zeros(group.size)
        if len(live):
            count = default_samples(len(live)) if samples is None else int(samples)
            masks, losses = _measure(job, group, live, count, keep)
            _, coef = fit_linear_ensemble(masks, losses, ridge)
            s[live] = -coef
            r2 = held_out_r2(masks, losses, ridge)
            notes[group.id] = {"fit_r2": None if np.isnan(r2) else round(r2, 4),
                               "masks": count}
            _warn_if_poor(group, r2)
        scores[group.id] = s
    return Scored(scores, notes=notes)


def default_samples(live: int) -> int:
    """Masks per group when ``samples`` is not given: 16 per live unit, at least 64.

    >>> default_samples(2), default_samples(64)
    (64, 1024)
    """
    return max(MIN_SAMPLES, SAMPLES_PER_UNIT * live)


def _measure(job: Job, group, live: np.ndarray, count: int, keep: float) -> tuple:
    masks = sample_masks(len(live), count, keep, np.random.default_rng([job.seed, group.id]))
    losses = np.empty(len(masks))
    for i, mask in enumerate(masks):
        trial = job.removed.copy()
        trial[group.classes[live[~mask]]] = True
        losses[i] = gated_loss(job, trial)
    return masks, losses


def _warn_if_poor(group, r2: float) -> None:
    what = f"ensemble: the linear fit of group {group.id} ({', '.join(group.producers)})"
    if np.isnan(r2):
        problem = f"cannot be checked: too few masks to hold {FOLDS} folds out"
    elif r2 < R2_WARN:
        problem = f"explains {r2:.2f} of the held-out loss variance (R^2 < {R2_WARN})"
    else:
        return
    warnings.warn(f"{what} {problem}; its ranking may be no better than chance — use more "
                  f"samples, keep closer to 1, or another criterion", EnsembleFitWarning,
                  stacklevel=2)


def sample_masks(n: int, samples: int, keep: float, rng: np.random.Generator) -> np.ndarray:
    """``samples`` bool masks over ``n`` units, each kept with probability ``keep``;
    a mask keeping nothing is redrawn."""
    masks = rng.random((samples, n)) < keep
    empty = ~masks.any(axis=1)
    while empty.any():
        masks[empty] = rng.random((int(empty.sum()), n)) < keep
        empty = ~masks.any(axis=1)
    return masks


def fit_linear_ensemble(masks: np.ndarray, losses: np.ndarray,
                        ridge: float = 0.0) -> tuple[float, np.ndarray]:
    """Fit losses ~ b + masks @ a, minimising mean((residual)^2) + ridge * ||a||^2;
    returns (b, a). ``ridge=0`` is least squares (minimum-norm when under-determined).

    >>> m = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    >>> b, a = fit_linear_ensemble(m, 1.0 + m @ np.array([-0.5, 0.25]))
    >>> round(b, 6), np.round(a, 6).tolist()
    (1.0, [-0.5, 0.25])
    """
    x = np.asarray(masks, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    if ridge > 0:       # the penalty as extra rows: sqrt(S * ridge) * I against zeros
        xc = np.vstack([xc, np.sqrt(len(y) * ridge) * np.eye(x.shape[1])])
        yc = np.concatenate([yc, np.zeros(x.shape[1])])
    coef, *_ = np.linalg.lstsq(xc, yc, rcond=None)
    return float(y_mean - x_mean @ coef), coef


def held_out_r2(masks: np.ndarray, losses: np.ndarray, ridge: float = 0.0,
                folds: int = FOLDS) -> float:
    """R^2 of the fit on masks it did not see: ``folds``-fold cross-validation, the
    squared errors of every held-out prediction over the losses' total variance (NaN
    with fewer than two masks per fold; 0 when every mask has the same loss).

    >>> rng = np.random.default_rng(0)
    >>> m = sample_masks(6, 60, 0.8, rng)
    >>> round(held_out_r2(m, 2.0 + m @ np.arange(6.0)), 6)
    1.0
    """
    y = np.asarray(losses, dtype=np.float64)
    if len(y) < 2 * folds:
        return float("nan")
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:
        return 0.0
    error = 0.0
    for test in np.array_split(np.arange(len(y)), folds):
        train = np.ones(len(y), dtype=bool)
        train[test] = False
        b, a = fit_linear_ensemble(masks[train], y[train], ridge)
        error += float(np.sum((y[test] - b - masks[test] @ a) ** 2))
    return 1.0 - error / total
