"""tests/golden.py cannot be blinded: a missing golden fails, and a regenerating run fails."""
from __future__ import annotations

import pytest

from tests.golden import check_golden


@pytest.fixture
def golden(tmp_path, monkeypatch):
    monkeypatch.delenv("PRUNEQL_REGEN", raising=False)
    return tmp_path / "sub" / "case.txt"


def test_equal_passes(golden):
    golden.parent.mkdir()
    golden.write_text("a\n", encoding="utf-8")
    check_golden(golden, "a\n")


def test_different_fails(golden):
    golden.parent.mkdir()
    golden.write_text("a\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="differs from golden"):
        check_golden(golden, "b\n")


def test_missing_fails_and_creates_nothing(golden):
    with pytest.raises(pytest.fail.Exception, match="missing golden"):
        check_golden(golden, "a\n")
    assert not golden.exists()


@pytest.mark.parametrize("existing", [None, "old\n", "a\n"])
def test_regenerating_writes_and_fails(golden, monkeypatch, existing):
    if existing is not None:
        golden.parent.mkdir()
        golden.write_text(existing, encoding="utf-8")
    monkeypatch.setenv("PRUNEQL_REGEN", "1")
    with pytest.raises(pytest.fail.Exception,
                       match=f"regenerated {golden}; re-run without PRUNEQL_REGEN"):
        check_golden(golden, "a\n")
    assert golden.read_text(encoding="utf-8") == "a\n"
    monkeypatch.delenv("PRUNEQL_REGEN")
    check_golden(golden, "a\n")


@pytest.mark.parametrize("value", ["", "0"])
def test_an_empty_or_zero_regen_does_not_regenerate(golden, monkeypatch, value):
    monkeypatch.setenv("PRUNEQL_REGEN", value)
    with pytest.raises(pytest.fail.Exception, match="missing golden"):
        check_golden(golden, "a\n")
