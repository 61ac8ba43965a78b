"""Sándor et al.'s linear filter ensembles: a linear model of the loss over random masks.

Per group: ``samples`` random binary masks over the group's live units, each unit kept
with probability ``keep`` (a mask keeping nothing is redrawn), from a numpy Generator
seeded with (seed, group id); the mean loss over the batches with the dropped units gated
off; a fit loss ~ b + sum_j a_j mask_j. A unit whose presence lowers the loss has
a_j < 0; its importance is -a_j. Units already removed score 0 and stay out of the fit,
so in ``iterate`` rounds each ensemble is refitted on the network as it stands.

The fit's quality is measured, not assumed, and goes into the scores' notes (shown in
the report's group rows): ``fit_r2``, its R^2 on held-out masks (5-fold cross-validation
over the masks: how additive the loss is in the units, near the masks' operating point);
``halves``, the Spearman correlation of the coefficients fitted on each half of the masks
(how stable the ranking is; the full fit is steadier than either half). A group whose
held-out R^2 is below :data:`R2_WARN` raises an :class:`EnsembleFitWarning`: on the
digits CNN fits that poor ranked at Spearman 0.2-0.4 with the oracle (at most 0.57),
no better than weight norms.

``ridge`` = lambda adds lambda * ||a||^2 to the mean squared residual (the intercept is
not penalised): lambda is on the scale of a mask column's variance, keep * (1 - keep)
(0.09 at keep 0.9), so lambda = 0.01 shrinks mildly and lambda = 0.1 strongly.

Defaults (the paper does not state its sampling settings; measured on the trained
digits CNN by ``bench/ensemble_defaults.py``, table in docs/criteria.md):

* ``samples`` = 16 masks per live unit, at least 64. The fit has one coefficient per
  unit, so a fixed count under-determines wide groups: the old default (200 masks, about
  3 per unit of a 64-wide layer) gave held-out R^2 below 0.2 and two mask seeds agreeing
  at 0.3; 8 per unit at keep 0.9 reached R^2 0.30 and Spearman 0.67 with the oracle,
  16 per unit R^2 0.37, Spearman 0.69 and seed agreement 0.71.
* ``keep 0.9``: masks close to the network they rank, where the loss is closest to
  additive (at 16 per unit, keep 0.7 gave R^2 0.32 and Spearman 0.48). keep 0.95 ranked
  a little better still on 32-64-wide layers (Spearman 0.77) but leaves most masks of a
  narrow group unchanged (a 16-wide group keeps every unit in 44% of them).
* ``batches 4``: every mask of a group is measured on the same examples, so the masks
  differ by their units alone; each mask costs ``batches`` forward passes.
* ``ridge 0``: at 16 masks per unit a ridge of 0.001-0.01 changes nothing and 0.1 hurts;
  it helps when masks are few (2 per unit at keep 0.9: R^2 -0.60 -> 0.10 at 0.01).
"""
from __future__ import annotations

import warnings

import numpy as np

from pruneql.criteria.base import Job, Scored
from pruneql.criteria.evaluation import gated_loss
from pruneql.criteria.ranks import spearman
from pruneql.lang.criteria import register

SAMPLES_PER_UNIT = 16
MIN_SAMPLES = 64
R2_WARN = 0.2
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
            notes[group.id] = {"fit_r2": _rounded(r2),
                               "halves": _rounded(split_half_agreement(masks, losses, ridge)),
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


def _rounded(value: float):
    return None if np.isnan(value) else round(float(value), 4)


def split_half_agreement(masks: np.ndarray, losses: np.ndarray, ridge: float = 0.0) -> float:
    """Spearman correlation of the coefficients fitted on the first and the second half
    of the masks (NaN with fewer masks than two per coefficient and half).

    >>> rng = np.random.default_rng(0)
    >>> m = sample_masks(5, 40, 0.8, rng)
    >>> split_half_agreement(m, m @ np.arange(5.0))
    1.0
    """
    half = len(losses) // 2
    if half < masks.shape[1] + 2:
        return float("nan")
    first = fit_linear_ensemble(masks[:half], losses[:half], ridge)[1]
    second = fit_linear_ensemble(masks[half:], losses[half:], ridge)[1]
    return spearman(first, second)


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
