"""``sciml bench medida``: MEDIDA on the 18 Kuramoto–Sivashinsky cases (Mojgani et al. 2022).

Table 1, noise-free, one observation pair per case: our one-step-consistent regressors with Gauss–Newton
rounds against the paper's regressors (the spectral library at the observed state), same pair, same ARD.
Table 2, 1 % observation noise: the EnKF-based pipeline (band-limited filter, regression band, filter
re-run with the corrected model), with the single-pass ablations (paper's regressors on the first round's
analyses, on all modes and on the band). Table 3, sparse observations (25 % of the points, noise-free):
periodic cubic spline vs plain MLP vs random-Fourier-feature MLP interpolation, then MEDIDA.

``--system qg``: the five two-layer QG cases × observation kinds (full noise-free pairs; 25 % sparse points
through each interpolator; 1 % noise through the EnKF), one table and JSON.

The tables answer, per case: are exactly the true terms found, with what coefficient error, noise-free
and with 1 % noise (≤ 1000 ensemble members), and in how many seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from typing import Any

import numpy as np
import torch

from sciml.bench.report import check_unique, print_table, refuse_ignored


def _control():
    """Case 0, a control: the "imperfect" model is the truth, so nothing should be found."""
    from sciml.medida.cases import MedidaCase

    return MedidaCase(0, "perfect model (control: expect no terms)", (1.0, 1.0, 1.0))


DESCRIPTION = (
    "MEDIDA on the 18 KS cases: noise-free and with 1 percent noise (EnKF), then sparse observations "
    "(RFF-MLP / cubic / plain-MLP interpolation)"
)


def _band(text: str) -> str | int:
    """``--qg-band``: ``auto``, ``all`` or a positive wavenumber index."""
    if text in ("auto", "all"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"--qg-band must be 'auto', 'all' or a positive integer, got {text!r}"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--system",
        choices=("ks", "qg"),
        default="ks",
        help="ks: the 18 Kuramoto-Sivashinsky cases (default); qg: the two-layer QG cases (full and sparse)",
    )
    parser.add_argument(
        "--cases", type=int, nargs="+", default=None, help="KS case numbers (default: all 18; not with qg)"
    )
    parser.add_argument(
        "--qg-pairs", type=int, default=None, help="--system qg: full observation pairs (default 8)"
    )
    parser.add_argument(
        "--qg-n",
        type=int,
        choices=(32, 64),
        default=None,
        help="--system qg: the grid (default 32; 64 is spun up on first use)",
    )
    parser.add_argument(
        "--qg-band",
        type=_band,
        default="auto",
        help="--system qg, sparse kinds: regress on modes max(|kx|,|ky|) <= this index only; 'auto' "
        "(default): chosen from the observations by split-half agreement; 'all': every mode",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=None,
        help="observation noise of the EnKF runs (table 2; qg: the EnKF kind), a fraction of the state's "
        "standard deviation (default 0.01)",
    )
    parser.add_argument(
        "--members", type=int, default=None, help="EnKF members of the noisy runs (default 100)"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="KS: noise seeds per case (default 1; --full: 3)"
    )
    parser.add_argument("--skip-noisy", action="store_true", help="skip the noisy (EnKF) runs: table 2")
    parser.add_argument("--skip-sparse", action="store_true", help="skip the sparse observations: table 3")
    parser.add_argument(
        "--sparse-pairs", type=int, default=None, help="KS: observation pairs of table 3 (default 4)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def _timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), wall seconds, CPU seconds of this process)`` — the machine is shared."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _errors(found: dict[str, float], true: dict[str, float]) -> float:
    """Largest relative error of a true term's coefficient (a missed term counts 1; 0 when none are due)."""
    return max((abs(found.get(k, 0.0) - v) / abs(v) for k, v in true.items()), default=0.0)


def _row(case: int, noise: float, method: str, true: dict, found: dict, seconds: float, **extra) -> dict:
    return {
        "case": case,
        "noise": noise,
        "method": method,
        "terms_true": sorted(true),
        "terms_found": sorted(found),
        "max_coef_error": _errors(found, true),
        "exact_terms": set(found) == set(true),
        "seconds": seconds,
        "coefficients": found,
        **extra,
    }


def _noise_free(cases, rows: list, table: list) -> None:
    from sciml.medida import CASES, discover, ks_lyapunov_exponent, ks_observations

    obs, _ = ks_observations(1, 2)  # one pair, t = 100.5
    lam = ks_lyapunov_exponent()
    for case in cases:
        spec = CASES[case]
        model, true = spec.model(), spec.true_correction()
        ours, t_ours, c_ours = _timed(discover, model, obs, lyapunov_exponent=lam)
        paper, t_paper, c_paper = _timed(discover, model, obs, features="library", lyapunov_exponent=lam)
        a = _row(
            case,
            0.0,
            "one-step + Gauss-Newton",
            true,
            ours.terms,
            t_ours,
            cpu_seconds=c_ours,
            iterations=len(ours.history),
        )
        b = _row(
            case, 0.0, "paper regressors (library at state)", true, paper.terms, t_paper, cpu_seconds=c_paper
        )
        rows += [a, b]
        table.append(
            {
                "case": case,
                "true terms": " ".join(a["terms_true"]),
                "ours ok": a["exact_terms"],
                "ours err": a["max_coef_error"],
                "rounds": a["iterations"],
                "ours s": t_ours,
                "ours cpu s": c_ours,
                "paper ok": b["exact_terms"],
                "paper err": b["max_coef_error"],
                "paper s": t_paper,
            }
        )


def _noisy(cases, noise: float, members: int, seeds: int, rows: list, table: list) -> None:
    from sciml.medida import CASES, discover, ks_lyapunov_exponent, ks_observations
    from sciml.medida.cli import NOISY_DEFAULTS

    control = _control()
    lam = ks_lyapunov_exponent()
    for seed in range(seeds):
        obs, clean = ks_observations(
            NOISY_DEFAULTS["windows"], NOISY_DEFAULTS["steps"], noise=noise, seed=seed
        )
        for case in [0, *cases]:  # 0: the perfect model, a control for false positives
            spec = CASES[case] if case else control
            model, true = spec.model(), spec.true_correction()
            found, seconds, cpu = _timed(
                discover,
                model,
                obs,
                members=members,
                burn_in=NOISY_DEFAULTS["burn_in"],
                lyapunov_exponent=lam,
                ablations=True,
                seed=seed,
            )
            ablations = found.history[0].get("ablations", {})
            analysis_rmse = float(
                np.sqrt(
                    np.mean(
                        (
                            found.analysis[:, NOISY_DEFAULTS["burn_in"] :]
                            - _coarse(clean)[:, NOISY_DEFAULTS["burn_in"] :]
                        )
                        ** 2
                    )
                )
            )
            row = _row(
                case,
                noise,
                "EnKF + band + re-run rounds",
                true,
                found.terms,
                seconds,
                seed=seed,
                cpu_seconds=cpu,
                members=members,
                iterations=len(found.history),
                band=found.band,
                noise_std_estimated=found.noise_std,
                analysis_rmse=analysis_rmse,
                uncertainties=found.correction.uncertainties,
                rounds=[{"terms": h["terms"], "seconds": h["seconds"]} for h in found.history],
                ablations={
                    k: {
                        "terms_found": sorted(v),
                        "exact_terms": set(v) == set(true),
                        "max_coef_error": _errors(v, true),
                    }
                    for k, v in ablations.items()
                },
            )
            rows.append(row)
            first = found.history[0]["terms"]
            table.append(
                {
                    "case": case,
                    "seed": seed,
                    "ok": row["exact_terms"],
                    "max err": row["max_coef_error"],
                    "rounds": row["iterations"],
                    "seconds": seconds,
                    "cpu s": cpu,
                    "band": found.band,
                    "round-1 ok": set(first) == set(true),
                    "round-1 err": _errors(first, true),
                    "paper-regr ok": row["ablations"].get("library_all_modes", {}).get("exact_terms"),
                    "paper-regr err": row["ablations"].get("library_all_modes", {}).get("max_coef_error"),
                    "found": " ".join(row["terms_found"]),
                }
            )
            print(
                f"  case {case} seed {seed}: {row['terms_found']} err {row['max_coef_error']:.3g} "
                f"({seconds:.0f} s wall, {cpu:.0f} s CPU, {row['iterations']} rounds)",
                flush=True,
            )


def _coarse(clean: np.ndarray, n_f: int = 256) -> np.ndarray:
    from sciml.medida import band_limit

    return band_limit(torch.as_tensor(clean), n_f).numpy()


def _sparse(cases, pairs: int, rows: list, table: list) -> None:
    from sciml.medida import CASES, Observations, discover, ks_observations, regression_band
    from sciml.medida.interpolation import INTERPOLATORS, interpolate

    obs, clean = ks_observations(pairs, 2)
    n, length = obs.n, obs.length
    x = -length / 2 + length / n * np.arange(n)
    rng = np.random.default_rng(0)
    observed = np.sort(rng.choice(n, n // 4, replace=False))
    for kind in INTERPOLATORS:
        start = time.perf_counter()
        states, holdout, errors = [], [], []
        for w in range(pairs):
            prev, nxt = clean[w, 0], clean[w, 1]
            increment = (nxt - prev) / obs.dt
            fit = interpolate(
                kind, x[observed], np.stack([prev[observed], increment[observed]]), x, length, seed=w
            )
            u0, du = fit.values
            states.append(np.stack([u0, u0 + obs.dt * du]))
            holdout.append(fit.holdout_rmse[0])
            errors.append(
                [
                    np.linalg.norm(u0 - prev) / np.linalg.norm(prev),
                    np.linalg.norm(du - increment) / np.linalg.norm(increment),
                ]
            )
        fit_seconds = time.perf_counter() - start
        interpolated = Observations(np.stack(states), obs.dt, length, noise_std=0.0)
        sigma = float(np.mean(holdout))
        band = regression_band(torch.tensor(interpolated.values), sigma, 1000.0)
        err_state, err_incr = np.mean(errors, axis=0)
        for case in cases:
            spec = CASES[case]
            true = spec.true_correction()
            t0 = time.perf_counter()
            try:
                terms, failure = discover(spec.model(), interpolated, band=band).terms, None
            except ValueError as exc:  # e.g. a band too narrow for the library
                terms, failure = {}, str(exc)
            seconds = time.perf_counter() - t0 + fit_seconds / len(cases)
            row = _row(
                case,
                0.0,
                f"sparse 25 % + {kind}",
                true,
                terms,
                seconds,
                failure=failure,
                interpolator=kind,
                band=band,
                state_error=err_state,
                increment_error=err_incr,
                holdout_rmse=sigma,
            )
            rows.append(row)
            table.append(
                {
                    "case": case,
                    "interp": kind,
                    "state err": err_state,
                    "incr err": err_incr,
                    "band": band,
                    "ok": row["exact_terms"],
                    "max err": row["max_coef_error"],
                    "found": " ".join(row["terms_found"]),
                }
            )
        print(f"  {kind}: interpolation {fit_seconds:.0f} s, state error {err_state:.2e}", flush=True)


def _run_qg(args: argparse.Namespace) -> dict[str, Any]:
    """The QG cases × observation kinds: full pairs, and 25 % sparse pairs through each interpolator."""
    from sciml.medida.qg import (
        QG_CASES,
        discover_qg,
        qg_enkf_pairs,
        qg_observations,
        qg_truth,
        sparse_qg_pairs,
    )

    full = bool(getattr(args, "full", False))
    print("computing / loading the QG truth (spin-up cached in HDF5 after the first run) ...", flush=True)
    n = int(getattr(args, "qg_n", 32))
    truth = qg_truth(n)
    prev, nxt = qg_observations(args.qg_pairs, n=n)
    sparse_pairs = min(args.qg_pairs, 8 if full else 4)
    training = {"scale": 2.0, "features": 128}  # RFF: scale by the hold-out error of a 64x64 pair
    training.update({} if full else {"adam_steps": 1000, "lbfgs_steps": 300})
    enkf_steps, enkf_burn_in = (40, 10) if full else (16, 6)
    kinds: dict[str, tuple[np.ndarray, np.ndarray, dict]] = {"full": (prev, nxt, {})}
    if not args.skip_sparse:
        for interp in ("cubic", "mlp", "rff"):
            kinds[f"sparse 25% {interp}"] = sparse_qg_pairs(
                prev[:sparse_pairs],
                nxt[:sparse_pairs],
                truth.L,
                interp,
                progress=True,
                auto_band=getattr(args, "qg_band", None) == "auto",
                **training,
            )
            info = kinds[f"sparse 25% {interp}"][2]
            chosen = (
                f", band chosen from the observations: {info['band'] or 'none resolved'}"
                if "band" in info
                else ""
            )
            print(f"  {interp}: state error {info['state_error']:.3g}{chosen}", flush=True)
    if not args.skip_noisy:
        kinds[f"EnKF {args.noise:g} noise"] = None
    rows, table = [], []
    for kind, data in kinds.items():
        for name, case in QG_CASES.items():
            if data is None:  # the filter runs with each imperfect model
                p, q, info = qg_enkf_pairs(
                    case.model(truth),
                    noise=args.noise,
                    members=args.members,
                    steps=enkf_steps,
                    burn_in=enkf_burn_in,
                )
            else:
                p, q, info = data
            try:
                band = getattr(args, "qg_band", None) if kind.startswith("sparse") else None
                band = info["band"] if band == "auto" else None if band == "all" else band
                if band == 0:
                    raise ValueError(
                        "no regression: the split-half interpolations agree on no Fourier shell (the sparse "
                        "points resolve no band)"
                    )
                with warnings.catch_warnings():  # the table's rounds column says when they did not settle
                    warnings.simplefilter("ignore", UserWarning)
                    (fit, history), wall, cpu = _timed(discover_qg, case.model(truth), p, q, band=band)
                terms, failure = fit.terms, None
                rounds = len(history) if history[-1]["converged"] else f"{len(history)} (unsettled)"
            except ValueError as exc:  # e.g. a stretching correction that leaves no valid model
                terms, failure, rounds, wall, cpu = {}, str(exc), 0, math.nan, math.nan
            true = case.true_correction(truth)
            extra = {**info, "band": band}
            row = _row(name, 0.0, f"qg {kind}", true, terms, wall, cpu_seconds=cpu, failure=failure, **extra)
            rows.append(row)
            table.append(
                {
                    "case": name,
                    "observations": kind,
                    "state err": info.get("state_error", info.get("analysis_error", 0.0)),
                    "true terms": " ".join(row["terms_true"]),
                    "ok": row["exact_terms"],
                    "max err": row["max_coef_error"],
                    "found": len(terms),
                    "band": "all" if band is None else band,
                    "rounds": rounds,
                    "seconds": wall,
                    "obs s": info.get("fit_seconds", info.get("filter_seconds", 0.0)),
                }
            )
            print(f"  {kind} {name}: ok {row['exact_terms']} err {row['max_coef_error']:.3g}", flush=True)
    described = [f"{args.qg_pairs} full noise-free pairs"]  # the kinds that ran
    if not args.skip_sparse:
        described.append(f"{sparse_pairs} sparse noise-free pairs (25 % of the points)")
    if not args.skip_noisy:
        described.append(
            f"{enkf_steps - enkf_burn_in} EnKF analysis pairs ({args.members} members, {args.noise:g} noise)"
        )
    print_table(
        table,
        [
            "case",
            "observations",
            "state err",
            "true terms",
            "ok",
            "max err",
            "found",
            "band",
            "rounds",
            "seconds",
            "obs s",
        ],
        f"two-layer QG {n}x{n}: {' / '.join(described)}; dt = 0.1",
    )
    return {
        "benchmark": "medida",
        "system": "qg",
        "rows": rows,
        "pairs": args.qg_pairs,
        "grid": n,
        "sparse_band": getattr(args, "qg_band", None),
        "sparse_pairs": sparse_pairs,
        "interpolator_training": training,
        "enkf": {"steps": enkf_steps, "burn_in": enkf_burn_in, "members": args.members, "noise": args.noise},
        "threads": args.threads,
    }


#: defaults of the options left out (None on the command line, so that a given value is told from them)
DEFAULTS = {"noise": 0.01, "members": 100, "sparse_pairs": 4, "qg_pairs": 8, "qg_n": 32}


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before any work, options the chosen system and tables would ignore and counts they cannot
    use; then fill in the defaults of the options left out.

    Raises:
        ValueError: naming the option.
    """
    qg = getattr(args, "system", "ks") == "qg"
    if qg:
        refuse_ignored(args, ["cases", "seeds", "sparse_pairs"], "by --system qg (they set the KS tables)")
    else:
        refuse_ignored(args, ["qg_pairs", "qg_n"], "by the KS cases (they set --system qg)")
        if getattr(args, "qg_band", "auto") != "auto":
            raise ValueError("--qg-band is ignored by the KS cases (it sets --system qg): drop it")
    if args.skip_noisy:
        refuse_ignored(args, ["noise", "members", *([] if qg else ["seeds"])], "with --skip-noisy")
    if args.skip_sparse:
        if qg and getattr(args, "qg_band", "auto") != "auto":
            raise ValueError("--qg-band is ignored with --skip-sparse (it sets the sparse kinds): drop it")
        refuse_ignored(args, [] if qg else ["sparse_pairs"], "with --skip-sparse")
    for name, value in DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if not args.skip_noisy:
        if not (math.isfinite(args.noise) and 0 < args.noise < 1):
            raise ValueError(f"--noise must be a fraction in (0, 1) (0.01 = 1 %), got {args.noise}")
        if args.members < 2 or args.members > 1000:
            raise ValueError(
                f"--members must be in [2, 1000] (the bar allows at most 1000), got {args.members}"
            )
    if args.cases is not None:
        from sciml.medida import CASES

        unknown = sorted(set(args.cases) - set(CASES))
        if unknown:
            raise ValueError(f"--cases: unknown case numbers {unknown}; choose from 1-{max(CASES)}")
        check_unique(args.cases, "--cases")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sciml.medida import CASES, ks_lyapunov_exponent

    check_options(args)
    if getattr(args, "system", "ks") == "qg":
        torch.set_num_threads(args.threads)
        return _run_qg(args)
    cases = sorted(CASES) if args.cases is None else args.cases
    seeds = args.seeds if args.seeds is not None else (3 if args.full else 1)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    print("computing / loading the KS truth (cached in HDF5 after the first run) ...", flush=True)
    lam = ks_lyapunov_exponent()
    rows: list[dict] = []

    table1: list[dict] = []
    _noise_free(cases, rows, table1)
    print_table(
        table1,
        [
            "case",
            "true terms",
            "ours ok",
            "ours err",
            "rounds",
            "ours s",
            "ours cpu s",
            "paper ok",
            "paper err",
            "paper s",
        ],
        "noise-free, one pair: one-step regressors + Gauss-Newton vs the paper's",
    )

    if not args.skip_noisy:
        table2: list[dict] = []
        _noisy(cases, args.noise, args.members, seeds, rows, table2)
        print_table(
            table2,
            [
                "case",
                "seed",
                "ok",
                "max err",
                "rounds",
                "seconds",
                "cpu s",
                "band",
                "round-1 ok",
                "round-1 err",
                "paper-regr ok",
                "paper-regr err",
                "found",
            ],
            f"{args.noise:g} noise, {args.members} members: EnKF + band + re-run rounds; "
            "ablations on the first round's analyses",
        )

    if not args.skip_sparse:
        table3: list[dict] = []
        _sparse(cases, args.sparse_pairs, rows, table3)
        print_table(
            table3,
            ["case", "interp", "state err", "incr err", "band", "ok", "max err", "found"],
            f"sparse observations (25 % of points, {args.sparse_pairs} pairs, noise-free)",
        )

    summary = {}
    for method in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == method]
        summary[method] = {
            "cases": len(mine),
            "exact_terms": sum(r["exact_terms"] for r in mine),
            "max_coef_error": max(r["max_coef_error"] for r in mine),
            "max_seconds": max(r["seconds"] for r in mine),
        }
    print_table(
        [{"method": k, **v} for k, v in summary.items()],
        ["method", "cases", "exact_terms", "max_coef_error", "max_seconds"],
        "summary",
    )
    return {
        "benchmark": "medida",
        "rows": rows,
        "summary": summary,
        "lyapunov_exponent": lam,
        "members": args.members,
        "threads": args.threads,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }
