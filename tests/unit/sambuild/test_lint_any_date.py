"""`make test` and CI lint the templates alike on any date.

cfn-lint's Lambda runtime rules set the runtime's end-of-support dates against today's
(``datetime.today()``): with python3.11 they pass until 2027-06-30, then fail every clone. The
Makefile's ``CFN_LINT_ANY_DATE`` (the flags of `make test`'s and `make build-check`'s cfn-lint)
leaves them out. Each test lints every template in a process of its own whose clock is set to the
dates the test names (``datetime.datetime`` replaced before cfn-lint is imported), with the flags
read from the Makefile itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = [str(ROOT / "template.yaml"), *sorted(str(p) for p in (ROOT / "stacks").glob("*.yaml"))]
DATED_RULES = {"W2531", "E2531", "E2533"}  # end of support: deprecated, no creation, no update

# Lints with cfn-lint's own runner once per date, its clock at that date; prints {date: [rule ids]}
_LINT_ON_DATES = """
import datetime, json, sys

class Clock(datetime.datetime):
    at = None

    @classmethod
    def today(cls):
        return cls.at

    @classmethod
    def now(cls, tz=None):
        return cls.at if tz is None else cls.at.replace(tzinfo=tz)

datetime.datetime = Clock
from cfnlint.config import ConfigMixIn
from cfnlint.runner import Runner

dates, templates, flags = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3:]
found = {}
for day in dates:
    Clock.at = Clock.fromisoformat(day)
    matches = Runner(ConfigMixIn([*templates, *flags])).run()  # as the Makefile's command line
    found[day] = sorted({match.rule.id for match in matches})
print(json.dumps(found))
"""


def _makefile_flags() -> list[str]:
    """``CFN_LINT_ANY_DATE`` as make expands it."""
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "--eval",
         "print-cfn-lint-any-date: ; @echo $(CFN_LINT_ANY_DATE)", "print-cfn-lint-any-date"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert printed, "the Makefile defines CFN_LINT_ANY_DATE"
    return printed


def _lint_on(dates: list[str], flags: list[str]) -> dict[str, list[str]]:
    """The rule ids cfn-lint finds in every template, with its clock at each date."""
    done = subprocess.run(
        [sys.executable, "-c", _LINT_ON_DATES, json.dumps(dates), json.dumps(TEMPLATES), *flags],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


def test_make_tests_lint_finds_nothing_today_or_past_the_runtimes_end_of_support() -> None:
    # GIVEN the flags of make test's cfn-lint, and dates past each of python3.11's end-of-support
    # steps (deprecated 2027-06-30, no creation from 2027-07-31, no update from 2027-08-31)
    flags = _makefile_flags()
    dates = ["2027-07-15", "2027-08-15", "2027-09-15"]
    # WHEN every template is linted on each date
    found = _lint_on(dates, flags)
    # THEN nothing is found on any of them
    assert found == {day: [] for day in dates}


def test_without_the_flags_the_runtimes_dates_fail_the_lint_once_they_pass() -> None:
    # GIVEN cfn-lint with every rule (what make deploy runs)
    # WHEN every template is linted after python3.11's end of support
    found = _lint_on(["2027-09-15"], [])
    # THEN the lint fails, and only by the runtime rules: the ones the flags leave out
    assert found["2027-09-15"] and set(found["2027-09-15"]) <= DATED_RULES
