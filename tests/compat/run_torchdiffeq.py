"""Run torchdiffeq's own unittest suite against sciml's ``odeint`` / ``odeint_adjoint`` / ``odeint_event``.

Usage::

    python tests/compat/run_torchdiffeq.py /path/to/torchdiffeq/tests [--json out.json] [--markdown]
        [-k pattern] [--upstream]

The upstream test files are imported unchanged; ``import torchdiffeq`` inside them resolves to the stand-in
module of ``torchdiffeq_shim.py``. Every ``subTest`` is one case (a test without subtests is one case). A
case whose ``method`` parameter names a method sciml does not offer is counted apart as "not offered".
The summary (per test, per method, the most common failure messages) is printed and written as JSON;
``--markdown`` also prints the compatibility table of README (``compat_table.py`` prints it from the JSON).
``--upstream`` runs the same cases against the installed torchdiffeq instead (the reference column).
Not collected by pytest (the file name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import sys
import time
import traceback
import unittest
from pathlib import Path

MODULES = ("api_tests", "event_tests", "gradient_tests", "norm_tests", "odeint_tests")


def _offered(method: str) -> bool:
    api = importlib.import_module(
        "sciml.solvers.ode.odeint"
    )  # the module (the package attribute is the function)
    check = getattr(api, "method_offered", None)
    if check is not None:
        return check(method)
    from sciml.solvers.ode import get_method

    try:
        get_method(method)
    except ValueError:
        return False
    return True


def _short(err) -> str:
    """The last line of a formatted exception: its type and message (first 160 characters)."""
    text = "".join(traceback.format_exception_only(err[0], err[1])).strip().splitlines()
    return (text[-1] if text else str(err[0]))[:160]


class _Recorder(unittest.TestResult):
    """Records one outcome per subtest (or per test when it has none)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.cases: list[dict] = []
        self._with_subtests: set[str] = set()
        self.verbose = verbose
        self._started = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._started = time.perf_counter()
        if self.verbose:
            print(f"  {test.id()} ...", flush=True)

    def _add(self, test, params: dict, outcome: str, message: str = "") -> None:
        name = test.id().split(".", 1)[-1]
        method = params.get("method")
        if method is None and "solver" in params:
            method = "scipy_solver"
        self.cases.append(
            {
                "test": name,
                "params": {k: str(v) for k, v in params.items()},
                "method": method,
                "offered": True if method is None else _offered(str(method)),
                "outcome": outcome,
                "message": message,
            }
        )

    def addSubTest(self, test, subtest, err):
        self._with_subtests.add(test.id())
        params = dict(subtest.params)
        if err is None:
            self._add(test, params, "pass")
        elif issubclass(err[0], test.failureException):
            self._add(test, params, "fail", _short(err))
        elif issubclass(err[0], unittest.SkipTest):
            self._add(test, params, "skip", _short(err))
        else:
            self._add(test, params, "error", _short(err))

    def addSuccess(self, test):
        if test.id() not in self._with_subtests:
            self._add(test, {}, "pass")

    def addFailure(self, test, err):
        self._add(test, {}, "fail", _short(err))

    def addError(self, test, err):
        self._add(test, {}, "error", _short(err))

    def addSkip(self, test, reason):
        self._add(test, {}, "skip", reason)


def summarize(cases: list[dict]) -> dict:
    """Counts overall, per test and per method, and the most common failure messages."""

    def count(rows):
        c = collections.Counter(r["outcome"] for r in rows)
        return {"pass": c["pass"], "fail": c["fail"] + c["error"], "skip": c["skip"], "total": len(rows)}

    offered = [r for r in cases if r["offered"]]
    lacking = [r for r in cases if not r["offered"]]
    per_test = collections.defaultdict(list)
    per_method = collections.defaultdict(list)
    for r in offered:
        per_test[r["test"]].append(r)
        per_method[r["method"] or "-"].append(r)
    messages = collections.Counter(r["message"] for r in offered if r["outcome"] in ("fail", "error"))
    return {
        "offered": count(offered),
        "not_offered": {"total": len(lacking), "methods": sorted({str(r["method"]) for r in lacking})},
        "per_test": {k: count(v) for k, v in sorted(per_test.items())},
        "per_method": {k: count(v) for k, v in sorted(per_method.items())},
        "top_failures": messages.most_common(25),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="torchdiffeq's tests/ folder (a checkout of its repository)")
    parser.add_argument("--json", type=Path, default=None, help="write the summary and every case here")
    parser.add_argument("-k", dest="pattern", default=None, help="run only tests whose id contains this")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="print the README compatibility table")
    parser.add_argument("--upstream", action="store_true", help="run against the installed torchdiffeq")
    args = parser.parse_args(argv)
    folder = args.tests.resolve()
    if not (folder / "problems.py").is_file():
        parser.error(f"{folder} does not look like torchdiffeq's tests/ folder (no problems.py)")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(folder))
    import torchdiffeq_shim

    if not args.upstream:
        torchdiffeq_shim.install()
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for name in MODULES:
        module = importlib.import_module(name)
        for test in _flatten(loader.loadTestsFromModule(module)):
            if args.pattern is None or args.pattern in test.id():
                suite.addTest(test)
    recorder = _Recorder(args.verbose)
    started = time.perf_counter()
    suite.run(recorder)
    summary = summarize(recorder.cases)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["against"] = "torchdiffeq" if args.upstream else "sciml"
    summary["selection"] = args.pattern
    _print(summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"summary": summary, "cases": recorder.cases}, indent=1))
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")
    if args.markdown:
        from compat_table import torchdiffeq_markdown

        print("\n" + torchdiffeq_markdown({"summary": summary, "cases": recorder.cases}))
    return 0


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def _print(summary: dict) -> None:
    o = summary["offered"]
    print(
        f"\ncases with methods sciml offers: {o['pass']} passed, {o['fail']} failed, {o['skip']} skipped "
        f"of {o['total']}"
    )
    lack = summary["not_offered"]
    print(f"cases with methods not offered: {lack['total']} ({', '.join(lack['methods']) or 'none'})")
    print(f"\n{'test':58s} {'pass':>5s} {'fail':>5s} {'skip':>5s}")
    for name, c in summary["per_test"].items():
        print(f"{name:58s} {c['pass']:5d} {c['fail']:5d} {c['skip']:5d}")
    print(f"\n{'method':20s} {'pass':>5s} {'fail':>5s}")
    for name, c in summary["per_method"].items():
        print(f"{name:20s} {c['pass']:5d} {c['fail']:5d}")
    if summary["top_failures"]:
        print("\nmost common failures:")
        for message, n in summary["top_failures"]:
            print(f"{n:5d}  {message}")


if __name__ == "__main__":
    raise SystemExit(main())
