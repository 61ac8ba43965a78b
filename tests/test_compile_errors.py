"""Recipes that parse but cannot compile: golden tests of the exact message."""
from __future__ import annotations

import glob
import os

import pytest

import pruneql
from pruneql.errors import PruneQLError
from tests.golden import check_golden

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "compile_errors")
CASES = sorted(glob.glob(os.path.join(HERE, "*.prune")))


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-6])
def test_error_message(path):
    """``untrusted_*`` cases run without --trust-code; the others trust the recipe's code,
    so the error they show is the one after it."""
    trust = not os.path.basename(path).startswith("untrusted_")
    with pytest.raises(PruneQLError) as caught:
        pruneql.plan(pruneql.parse(open(path).read(), path=os.path.basename(path)),
                     trust_code=trust)
    check_golden(path[:-6] + ".err", str(caught.value) + "\n")
