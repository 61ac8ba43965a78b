""""Did you mean" suggestions for hints; shared by every part of the language."""
from __future__ import annotations

import difflib
from typing import Iterable


def closest(word: str, candidates: Iterable[str], n: int = 3,
            cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` candidates that look like ``word``, best first, for "did you mean" hints
    (``difflib.get_close_matches``: ties go to the later string).

    >>> closest("kep", ["keep", "remove"])
    ['keep']
    """
    # difflib is quadratic in the word's length; a typo worth suggesting for is short
    return difflib.get_close_matches(word[:64], list(candidates), n=n, cutoff=cutoff)


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """``"did you mean 'x'? "`` for the closest candidate, or ``""`` when none is close.

    >>> did_you_mean("head", ["head_dims", "heads"]), did_you_mean("zzz", ["keep"])
    ("did you mean 'heads'? ", '')
    """
    found = closest(word, candidates, 1, cutoff)
    return f"did you mean '{found[0]}'? " if found and found[0] != word else ""
