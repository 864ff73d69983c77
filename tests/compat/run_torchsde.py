"""Run torchsde's own test suite against sciml's ``sdeint``/``sdeint_adjoint``, assertions unchanged.

Usage (from the repository root)::

    python tests/compat/run_torchsde.py /path/to/torchsde/tests[/test_FILE.py] [--json out.json] [--upstream]
        [-k EXPR] [--markdown]

The argument is the ``tests`` folder of a torchsde checkout (0.2.6). ``torchsde.sdeint`` and
``torchsde.sdeint_adjoint`` are rebound to sciml's (``torchsde_shim.install``) before the tests import
torchsde, unless ``--upstream`` (torchsde's own functions, for reference). Prints pass/fail/skip counts per
test function and per ``method`` parameter, the failures' first error lines, and writes the same as JSON.
The Brownian-object tests (``test_brownian_*.py``) exercise torchsde's classes only; they are counted apart.
Give one test file to run the suite file by file; ``compat_table.py`` merges the files' JSON into README's
compatibility table (``--markdown`` prints it for this run).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchsde_shim  # noqa: E402


class _Collector:
    """A pytest plugin that records one outcome per test case (setup/call/teardown merged)."""

    def __init__(self) -> None:
        self.params: dict[str, dict] = {}
        self.outcome: dict[str, str] = {}
        self.error: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items):
        for item in items:
            callspec = getattr(item, "callspec", None)
            self.params[item.nodeid] = dict(callspec.params) if callspec else {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            previous = self.outcome.get(report.nodeid)
            if previous in (None, "passed"):
                self.outcome[report.nodeid] = report.outcome
                if report.outcome == "failed":
                    text = str(report.longrepr).strip().splitlines()
                    errors = [line for line in text if line.startswith("E ")]
                    self.error[report.nodeid] = (errors[0] if errors else text[-1])[:200]


def _group(nodeid: str, params: dict) -> tuple[str, str, str]:
    file, _, rest = nodeid.partition("::")
    function = rest.split("[")[0]
    method = params.get("method")
    if method is None:
        method = "-"
    elif not isinstance(method, str):
        method = str(method)
    return os.path.basename(file), function, method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", help="torchsde 0.2.6 tests/ folder, or one file in it")
    parser.add_argument("--json", default="torchsde_compat.json", help="where to write the counts")
    parser.add_argument("--upstream", action="store_true", help="run against torchsde's own functions")
    parser.add_argument("-k", default=None, help="pytest -k expression")
    parser.add_argument("--markdown", action="store_true", help="print the README compatibility table")
    args = parser.parse_args(argv)
    folder = args.tests if os.path.isdir(args.tests) else os.path.dirname(os.path.abspath(args.tests))
    if not os.path.exists(os.path.join(folder, "test_sdeint.py")) or not os.path.exists(args.tests):
        parser.error(f"{args.tests!r} is not torchsde's tests folder or a file in it (no test_sdeint.py)")
    if not args.upstream:
        torchsde_shim.install()
    collector = _Collector()
    pytest_args = [os.path.abspath(args.tests), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                   "--rootdir", os.path.dirname(os.path.abspath(folder)), "-W", "ignore::FutureWarning",
                   "--no-header", "--tb=short", "-rN"]  # fmt: skip
    if args.k:
        pytest_args += ["-k", args.k]
    pytest.main(pytest_args, plugins=[collector])

    per_test: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    per_method: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals = {"solver": collections.Counter(), "brownian": collections.Counter()}
    for nodeid, outcome in collector.outcome.items():
        file, function, method = _group(nodeid, collector.params.get(nodeid, {}))
        kind = "brownian" if file.startswith("test_brownian") else "solver"
        per_test[f"{file}::{function}"][outcome] += 1
        if kind == "solver":
            per_method[method][outcome] += 1
        totals[kind][outcome] += 1

    def row(name, counter):
        return f"{name:<55} {counter['passed']:>6} {counter['failed']:>6} {counter['skipped']:>6}"

    print(f"\n{'torchsde tests against ' + ('torchsde' if args.upstream else 'sciml'):<55} "
          f"{'passed':>6} {'failed':>6} {'skip':>6}")  # fmt: skip
    for name in sorted(per_test):
        print(row(name, per_test[name]))
    print("\nper method (sdeint/adjoint tests)")
    for name in sorted(per_method):
        print(row(name, per_method[name]))
    print()
    for kind, counter in totals.items():
        print(row(f"total {kind} tests", counter))
    failures = collections.Counter(collector.error.values())
    if failures:
        print("\nmost common failures")
        for text, count in failures.most_common(15):
            print(f"{count:>5}  {text}")
    result = {
        "against": "torchsde" if args.upstream else "sciml",
        "selection": args.k,
        "totals": {kind: dict(counter) for kind, counter in totals.items()},
        "per_test": {name: dict(counter) for name, counter in per_test.items()},
        "per_method": {name: dict(counter) for name, counter in per_method.items()},
        "failures": {nodeid: text for nodeid, text in sorted(collector.error.items())},
    }
    from sciml.checkpoint import write_json

    write_json(args.json, result)
    print(f"\nwrote {args.json}")
    if args.markdown:
        from compat_table import _merge_torchsde, torchsde_markdown

        print("\n" + torchsde_markdown(_merge_torchsde([result])))
    return 0 if not totals["solver"]["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
