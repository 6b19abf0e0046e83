"""One timeline line per event (``events tail``/``replay``): what it leaves out."""

from __future__ import annotations

from events.describe import describe_event
from events.types import Diagnostic, SelfTestPassed


def test_a_passed_self_test_without_warnings_has_no_empty_warnings_field() -> None:
    line = describe_event(SelfTestPassed(incarnation=3, components=("database",)))
    assert "warnings" not in line


def test_a_passed_self_test_with_a_warning_shows_it() -> None:
    warning = Diagnostic(component="outbox", level="warning", message="row 7 refused")
    line = describe_event(SelfTestPassed(3, ("database",), (warning,)))
    assert "warnings=" in line
    assert "row 7 refused" in line
