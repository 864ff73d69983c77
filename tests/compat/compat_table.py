"""Markdown compatibility tables from the JSON that ``run_torchdiffeq.py`` / ``run_torchsde.py`` write.

Usage::

    python tests/compat/compat_table.py torchdiffeq.json                  # the torchdiffeq table
    python tests/compat/compat_table.py sde_sdeint.json sde_adjoint.json  # torchsde, files merged

A runner given ``--markdown`` prints the same table after its run. A second JSON of the same suite written
with the runner's ``--upstream`` (upstream's own functions) fills the upstream column; without it that
column says "not run". Every number in a table is a count of upstream test cases from those files.
Not collected by pytest (the file name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

#: torchdiffeq test (class.method) -> the feature it exercises, in the order of the table
TORCHDIFFEQ_FEATURES = {
    "TestSolverError.test_odeint": "`odeint` vs exact solutions (float32/64/complex, reversed t)",
    "TestSolverError.test_adjoint": "`odeint_adjoint` against exact solutions",
    "TestNoIntegration.test_odeint": "`t` with one time point",
    "TestCollectionState.test_forward": "tuple states",
    "TestCollectionState.test_gradient": "tuple states, gradients (odeint and odeint_adjoint)",
    "TestGradient.test_odeint": "gradcheck through `odeint` (y0, t, parameters)",
    "TestGradient.test_adjoint": "gradcheck through `odeint_adjoint`",
    "TestGradient.test_adjoint_against_odeint": "`odeint_adjoint` gradients = `odeint` gradients",
    "TestCompareAdjointGradient.test_against_dopri5": "`adjoint_method`/`adjoint_options` vs dopri5",
    "TestEventHandling.test_odeint": "`event_fn` / `odeint_event` (root-finding of the event time)",
    "TestEventHandling.test_adjoint": "`odeint_event` with `odeint_adjoint` (event-time gradients)",
    "TestNorms.test_norm": "`options['norm']`",
    "TestNorms.test_adjoint_norm": "`adjoint_options['norm']` (callable, tuple states, parameters)",
    "TestNorms.test_large_norm": "a norm that rejects every step (`max_num_steps`)",
    "TestNorms.test_seminorm": "`adjoint_options={'norm': 'seminorm'}`",
    "TestScipySolvers.test_odeint": "`scipy_solver` (`options['solver']`)",
    "TestDiscontinuities.test_odeint_jump_t": "`jump_t`",
    "TestDiscontinuities.test_odeint_perturb": "`perturb`",
    "TestGridConstructor.test_grid_constructor": "`grid_constructor`",
    "TestMinMaxStep.test_min_max_step": "`min_step`, `max_step`",
    "TestCallbacks.test_wrong_callback": "callbacks not called by the wrong solver type",
    "TestCallbacks.test_steps": "`callback_step`/`callback_accept_step`/`callback_reject_step`",
}

#: torchsde test (file::function) -> the feature it exercises
TORCHSDE_FEATURES = {
    "test_sdeint.py::test_rename_methods": "`names` (custom drift/diffusion method names)",
    "test_sdeint.py::test_rename_methods_logqp": "`names` with `logqp`",
    "test_sdeint.py::test_specialised_functions": "`f_and_g`, `g_prod`, `f_and_g_prod` SDE objects",
    "test_sdeint.py::test_sdeint_run_shape_method": "every method × noise type × Itô/Stratonovich × "
    "fixed/adaptive × `logqp` × `bm` Lévy area (shapes)",
    "test_sdeint.py::test_sdeint_dependencies": "dependencies on t/y/parameters: euler/milstein/grad_free/srk"
    " × fixed/adaptive",
    "test_sdeint.py::test_reversibility": "`reversible_heun` + `extra_solver_state` round trip",
    "test_adjoint.py::test_against_numerical": "`sdeint_adjoint` gradients vs finite differences",
    "test_adjoint.py::test_against_sdeint": "`sdeint_adjoint` values and gradients = `sdeint`'s",
    "test_adjoint.py::test_basic": "`sdeint_adjoint` on basic SDEs (batch 128)",
    "test_brownian_interval.py": "`BrownianInterval` (torchsde's own class)",
    "test_brownian_path.py": "`BrownianPath` (torchsde's own class)",
    "test_brownian_tree.py": "`BrownianTree` (torchsde's own class)",
}


def _cell(counts: dict | None) -> str:
    if counts is None:
        return "not run"
    text = f"{counts['pass']}/{counts['total'] - counts['skip']}"
    return text + (f" (+{counts['skip']} skipped)" if counts["skip"] else "")


def _torchdiffeq_counts(data: dict) -> dict[str, dict]:
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for case in data["cases"]:
        if not case["offered"]:
            continue
        c = rows[case["test"]]
        c["total"] += 1
        c[{"pass": "pass", "skip": "skip"}.get(case["outcome"], "fail")] += 1
    return {k: {"pass": v["pass"], "skip": v["skip"], "total": v["total"]} for k, v in rows.items()}


def torchdiffeq_markdown(ours: dict, upstream: dict | None = None) -> str:
    """The feature × torchdiffeq × ours table (cases with methods sciml offers), then the methods."""
    mine, theirs = _torchdiffeq_counts(ours), _torchdiffeq_counts(upstream) if upstream else None
    lines = ["| feature (torchdiffeq test) | cases | torchdiffeq | ours |", "| --- | --- | --- | --- |"]
    names = list(TORCHDIFFEQ_FEATURES) + sorted(set(mine) - set(TORCHDIFFEQ_FEATURES))
    total = collections.Counter()
    for name in names:
        if name not in mine:
            continue
        c = mine[name]
        total.update(c)
        up = theirs.get(name) if theirs is not None else None
        label = TORCHDIFFEQ_FEATURES.get(name, name)
        lines.append(f"| {label} (`{name}`) | {c['total']} | {_cell(up)} | {_cell(c)} |")
    up_total = None
    if theirs is not None:
        up_total = collections.Counter()
        for c in theirs.values():
            up_total.update(c)
    lines.append(f"| **all cases with methods sciml offers** | {total['total']} | {_cell(up_total)} | "
                 f"**{_cell(total)}** |")  # fmt: skip
    per_method: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    lacking: dict[str, int] = collections.Counter()
    for case in ours["cases"]:
        method = case["method"] or "(default dopri5)"
        if not case["offered"]:
            lacking[method] += 1
            continue
        per_method[method]["total"] += 1
        per_method[method][case["outcome"] if case["outcome"] in ("pass", "skip") else "fail"] += 1
    lines += ["", "| method | ours: cases passed |", "| --- | --- |"]
    for method in sorted(per_method):
        c = per_method[method]
        lines.append(f"| `{method}` | {_cell({'pass': c['pass'], 'skip': c['skip'], 'total': c['total']})} |")
    if lacking:
        listed = ", ".join(f"`{m}` ({n})" for m, n in sorted(lacking.items()))
        lines += ["", f"Not offered (cases not run against ours): {listed}."]
    return "\n".join(lines)


def _torchsde_counts(data: dict) -> dict[str, dict]:
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, c in data["per_test"].items():
        key = name if not name.startswith("test_brownian") else name.split("::")[0]
        rows[key]["pass"] += c.get("passed", 0)
        rows[key]["skip"] += c.get("skipped", 0)
        rows[key]["total"] += sum(c.values())
    return {k: dict(v) for k, v in rows.items()}


def _merge_torchsde(datas: list[dict]) -> dict:
    merged: dict = {"per_test": {}, "failures": {}, "subset": {}}
    for data in datas:
        merged["per_test"].update(data["per_test"])
        merged["failures"].update(data.get("failures", {}))
        if data.get("selection"):
            for name in data["per_test"]:
                merged["subset"][name] = data["selection"]
    return merged


def torchsde_markdown(ours: dict, upstream: dict | None = None) -> str:
    """The feature × torchsde × ours table, one row per upstream test function."""
    mine, theirs = _torchsde_counts(ours), _torchsde_counts(upstream) if upstream else None
    lines = ["| feature (torchsde test) | cases | torchsde | ours |", "| --- | --- | --- | --- |"]
    names = list(TORCHSDE_FEATURES) + sorted(set(mine) - set(TORCHSDE_FEATURES))
    solver, brownian = collections.Counter(), collections.Counter()
    for name in names:
        if name not in mine:
            continue
        c = mine[name]
        (brownian if name.startswith("test_brownian") else solver).update(c)
        label = TORCHSDE_FEATURES.get(name, name)
        subset = ours.get("subset", {}).get(name)  # a -k selection within a test function
        label += f" — subset `{subset}`" if subset else ""
        up = theirs.get(name) if theirs is not None else None
        lines.append(f"| {label} (`{name}`) | {c['total']} | {_cell(up)} | {_cell(c)} |")
    lines.append(f"| **all solver cases run** | {solver['total']} | | **{_cell(solver)}** |")
    if brownian["total"]:
        lines.append(f"| **all Brownian cases** | {brownian['total']} | | {_cell(brownian)} |")
    return "\n".join(lines)


def markdown(paths: list[Path], upstream: list[Path] | None = None) -> str:
    """The table for one suite from one or more of its JSON files (torchsde files are merged)."""
    datas = [json.loads(Path(p).read_text()) for p in paths]
    ups = [json.loads(Path(p).read_text()) for p in upstream or []]
    if all("cases" in d and "summary" in d for d in datas):
        if len(datas) != 1:
            raise SystemExit("give one torchdiffeq JSON (the runner covers the whole suite in one run)")
        return torchdiffeq_markdown(datas[0], ups[0] if ups else None)
    if all("per_test" in d for d in datas):
        return torchsde_markdown(_merge_torchsde(datas), _merge_torchsde(ups) if ups else None)
    raise SystemExit("not a JSON written by run_torchdiffeq.py or run_torchsde.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, nargs="+", help="JSON file(s) written by one runner")
    parser.add_argument("--upstream", type=Path, nargs="*", default=None,
                        help="JSON file(s) of the same suite run with the runner's --upstream")  # fmt: skip
    args = parser.parse_args(argv)
    print(markdown(args.json, args.upstream))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
