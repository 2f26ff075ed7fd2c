"""Every wrong input of ``docs/bad_inputs.py``, run in this process: each stops its command at
the door (exit status 2, one line naming the option or file), and ``docs/bad-inputs.md`` shows
the line each one prints today (regenerate it with ``python docs/bad_inputs.py``)."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from tests.conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("bad_inputs", REPO_ROOT / "docs" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs  # its dataclasses look their module up
_spec.loader.exec_module(bad_inputs)


def documented() -> dict[str, str]:
    """command -> the stderr line ``docs/bad-inputs.md`` shows for it."""
    rows = {}
    for line in bad_inputs.PAGE.read_text(encoding="utf-8").splitlines():
        found = re.fullmatch(r"\| .* \| `(?P<command>.*)` \| \d+ \| `(?P<said>.*)` \|", line)
        if found:
            rows[found["command"]] = found["said"].replace("\\|", "|")
    return rows


def test_the_page_lists_every_case_once():
    assert sorted(documented()) == sorted(case.shown for case in bad_inputs.CASES)
    assert len({case.shown for case in bad_inputs.CASES}) == len(bad_inputs.CASES)


@pytest.mark.slow  # imports every command (torch, uvicorn) and waits 1 s on closed ports
def test_every_wrong_input_stops_at_the_door_as_the_page_says(monkeypatch):
    monkeypatch.delenv("CROSSMATH_NO_SUCH_KEY", raising=False)
    page = documented()
    mismatched = []
    with bad_inputs.placeholders() as values:
        for case in bad_inputs.CASES:
            outcome = bad_inputs.run_in_process(case, values)
            wrong = bad_inputs.problems(case, outcome)
            assert not wrong, f"{case.shown}: {'; '.join(wrong)}\n{outcome.stderr}"
            if page[case.shown] != bad_inputs._cell(outcome.lines[0]).replace("\\|", "|"):
                mismatched.append(f"{case.shown}\n  page: {page[case.shown]}\n  now:  "
                                  f"{outcome.lines[0]}")
    assert not mismatched, ("docs/bad-inputs.md is stale (python docs/bad_inputs.py rewrites "
                            "it):\n" + "\n".join(mismatched))
