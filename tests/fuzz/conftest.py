"""Print what the fuzz tests ran: each run's report and the totals (under xdist too: the numbers
travel to the controller as the tests' user properties)."""

from __future__ import annotations

_totals: dict[str, int] = {}
_reports: list[str] = []


def pytest_runtest_logreport(report):
    # The teardown report carries every property the test recorded (fixtures record theirs there).
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name in ("fuzz_cases", "fuzz_examples"):
            _totals[name] = _totals.get(name, 0) + int(value)
        elif name == "fuzz_report":
            _reports.append(str(value))


def pytest_terminal_summary(terminalreporter):
    if not _totals:
        return
    terminalreporter.write_sep("-", "fuzzing")
    for line in _reports:
        terminalreporter.write_line(line)
    terminalreporter.write_line("fuzzing total: " + ", ".join(
        f"{count} {name.removeprefix('fuzz_')}" for name, count in sorted(_totals.items())))
