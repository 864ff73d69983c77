"""``sciml medida --case N [--noise 0.01]``: discover an imperfect KS model's missing terms.

Prints the discovered correction and the corrected equation, and writes a JSON summary and a PNG of the
truth, the imperfect and the corrected model integrated from the same state (space–time plots and the
relative error, with the valid times in Lyapunov times).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciml.bench.report import refuse_ignored
from sciml.checkpoint import check_writable_dir, save_figure, write_json

HELP = (
    "MEDIDA: discover the missing terms of an imperfect model (Kuramoto-Sivashinsky cases 1-18, two-layer "
    "QG cases qg-...) from observations"
)


def _case(value: str) -> int | str:
    from sciml.medida.cases import CASES
    from sciml.medida.qg import QG_CASES

    if value in QG_CASES:
        return value
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number not in CASES:
        raise argparse.ArgumentTypeError(
            f"unknown case {value!r}: give a KS case number 1-{max(CASES)} or one of {', '.join(QG_CASES)}"
        )
    return number


#: defaults of the noisy pipeline (measured in `sciml bench medida`)
NOISY_DEFAULTS = {"windows": 1, "steps": 1500, "members": 100, "burn_in": 300}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sciml.medida.cases import CASES

    parser.add_argument(
        "--case",
        type=_case,
        required=True,
        metavar="CASE",
        help=f"KS case number 1-{max(CASES)} (sciml.medida.cases) or a QG case: "
        "qg-beta, qg-drag, qg-hyperviscosity, qg-advection, qg-rd (sciml.medida.qg)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=None,
        help="observation noise as a fraction of std(u) (default 0: noise-free observations, no filter)",
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=None,
        help=f"KS cases: observation windows in [100, 200) (default {NOISY_DEFAULTS['windows']})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="KS cases: consecutive observations per window (default 2; with --noise "
        f"{NOISY_DEFAULTS['steps']})",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=None,
        help=f"EnKF ensemble size (with --noise; default {NOISY_DEFAULTS['members']})",
    )
    parser.add_argument(
        "--inflation",
        default=None,
        help="KS cases with --noise: EnKF multiplicative inflation, a number >= 1 or 'adaptive' (default)",
    )
    parser.add_argument(
        "--localization",
        type=float,
        default=None,
        help="KS cases with --noise: Gaspari-Cohn localization radius, 0 for none (default 10)",
    )
    parser.add_argument(
        "--burn-in",
        type=int,
        default=None,
        help=f"KS cases with --noise: filter steps skipped (default {NOISY_DEFAULTS['burn_in']})",
    )
    parser.add_argument(
        "--features",
        choices=("one-step", "library"),
        default=None,
        help="KS cases: one-step-consistent regressors (default) or library at the state (paper)",
    )
    parser.add_argument(
        "--sparse",
        choices=("cubic", "mlp", "rff"),
        default=None,
        help="QG cases: observe 25%% of the grid points and interpolate them with this interpolator",
    )
    parser.add_argument(
        "--qg-n",
        type=int,
        choices=(32, 64),
        default=None,
        help="QG cases: the grid (default 32; sparse observations resolve a band only at 64)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the observation noise, the EnKF ensembles and the sparse interpolators (default 0)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--out", default="medida-results", help="directory for the JSON and PNG (default: %(default)s)"
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="KS cases: skip the valid-time runs and the PNG"
    )


def run_case(
    case: int,
    noise: float,
    *,
    windows: int | None = None,
    steps: int | None = None,
    members: int = 100,
    inflation: float | str = "adaptive",
    localization: float | None = 10.0,
    burn_in: int = 300,
    features: str = "one-step",
    seed: int = 0,
    progress: bool = False,
):
    """Observe the truth, run :func:`~sciml.medida.discover` on case ``case``; returns (discovery, case,
    row) where ``row`` holds the benchmark fields."""
    from sciml.medida.cases import CASES, ks_lyapunov_exponent, ks_observations
    from sciml.medida.discovery import discover

    spec = CASES[case]
    if noise > 0:
        windows = NOISY_DEFAULTS["windows"] if windows is None else windows
        steps = NOISY_DEFAULTS["steps"] if steps is None else steps
    else:
        windows = 1 if windows is None else windows
        steps = 2 if steps is None else steps
    obs, _ = ks_observations(windows, steps, noise=noise, seed=seed, progress=progress)
    lam = ks_lyapunov_exponent()
    start, cpu = time.perf_counter(), time.process_time()
    discovery = discover(
        spec.model(),
        obs,
        features=features,
        members=members,
        inflation=inflation,
        localization_radius=localization or None,
        burn_in=min(burn_in, steps - 2),
        lyapunov_exponent=lam,
        seed=seed,
        progress=progress,
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    true = spec.true_correction()
    found = discovery.terms
    errors = {k: abs(found.get(k, 0.0) - v) / abs(v) for k, v in true.items()}
    row: dict[str, Any] = {
        "case": case,
        "noise": noise,
        "terms_true": sorted(true),
        "terms_found": sorted(found),
        "max_coef_error": max(errors.values()),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "exact_terms": set(true) == set(found),
        "coefficients": found,
        "uncertainties": discovery.correction.uncertainties,
        "true_coefficients": true,
        "iterations": len(discovery.history),
        "features": features,
        "members": members if noise > 0 else 0,
        "pairs": obs.n_pairs,
    }
    return discovery, spec, row


def _plot(path: Path, x, t, trajectories, valid, lam: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["truth", "imperfect", "corrected"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), constrained_layout=True)
    vmax = float(np.nanmax(np.abs(trajectories["truth"])))
    for ax, name in zip(axes[:3], names):
        data = np.clip(trajectories[name], -vmax, vmax)
        image = ax.pcolormesh(x, t * lam, data, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="auto")
        label = name if name == "truth" else f"{name}: valid {valid[name].lyapunov_times:.2f} Lyapunov times"
        if name != "truth" and valid[name].censored:
            label = f"{name}: valid ≥ {valid[name].lyapunov_times:.1f} Lyapunov times"
        ax.set_title(label)
        ax.set_xlabel("x")
    axes[0].set_ylabel("t · λ (Lyapunov times)")
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="u")
    for name in names[1:]:
        errors = np.where(np.isfinite(valid[name].errors), valid[name].errors, np.nan)
        axes[3].semilogy(t * lam, np.maximum(errors, 1e-16), label=name)
    axes[3].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[3].set_xlabel("t · λ")
    axes[3].set_ylabel("relative L2 error")
    axes[3].legend()
    fig.suptitle(title)
    save_figure(fig, path, dpi=110)


#: options only the noisy KS pipeline (the EnKF) reads, and those only the KS cases read
KS_NOISY_ONLY = ("members", "inflation", "localization", "burn_in")
KS_ONLY = ("features", "windows", "steps", "inflation", "localization", "burn_in", "no_plot")


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before any work, options the chosen case and observations would ignore and values the run
    would refuse only later (after the spin-up); fill in the defaults of the options left out.

    Raises:
        ValueError: naming the option.
    """
    qg = isinstance(args.case, str)
    if qg:
        refuse_ignored(args, KS_ONLY, "by the QG cases (they set the KS cases)")
        if args.noise is None or args.noise == 0:
            refuse_ignored(args, ["members"], "without --noise (the EnKF runs only on noisy observations)")
    else:
        if getattr(args, "sparse", None):
            raise ValueError(
                "--sparse applies to the QG cases (qg-...); KS sparse runs: `sciml bench medida`"
            )
        if getattr(args, "qg_n", None) is not None:
            raise ValueError("--qg-n applies to the QG cases (qg-...)")
        if args.noise is None or args.noise == 0:
            refuse_ignored(args, KS_NOISY_ONLY, "without --noise (the EnKF runs only on noisy observations)")
    args.noise = 0.0 if args.noise is None else args.noise
    if not (math.isfinite(args.noise) and 0 <= args.noise < 1):
        raise ValueError(f"--noise must be a fraction in [0, 1) (0.01 = 1 %), got {args.noise}")
    args.members = NOISY_DEFAULTS["members"] if args.members is None else args.members
    if args.members < 2:
        raise ValueError(f"--members must be at least 2, got {args.members}")
    inflation = "adaptive" if args.inflation is None else args.inflation
    if inflation != "adaptive":
        try:
            inflation = float(inflation)
        except ValueError:
            inflation = math.nan
        if not (math.isfinite(inflation) and inflation >= 1):
            raise ValueError(
                f"--inflation must be a number >= 1 (1: none) or 'adaptive', got {args.inflation!r}"
            )
    args.inflation = inflation
    args.localization = 10.0 if args.localization is None else args.localization
    args.burn_in = NOISY_DEFAULTS["burn_in"] if args.burn_in is None else args.burn_in
    args.features = "one-step" if args.features is None else args.features


def _main_qg(args: argparse.Namespace) -> int:
    from sciml.medida.qg import (
        QG_CASES,
        discover_qg,
        qg_enkf_pairs,
        qg_observations,
        qg_truth,
        sparse_qg_pairs,
    )

    if args.noise != 0 and args.sparse:
        raise ValueError("--noise and --sparse: the QG cases take one kind of degraded observation at a time")
    out = check_writable_dir(args.out)
    torch.set_num_threads(args.threads)
    case = QG_CASES[args.case]
    n = 32 if args.qg_n is None else args.qg_n
    truth = qg_truth(n)
    info: dict[str, Any] = {}
    band = None
    if args.noise != 0:
        prev, nxt, info = qg_enkf_pairs(
            case.model(truth),
            noise=args.noise,
            members=args.members,
            steps=16,
            burn_in=6,
            seed=args.seed,
            progress=True,
        )
        kind = f"{len(prev)} EnKF analysis pairs ({args.members} members, {args.noise:g} noise)"
    else:
        prev, nxt = qg_observations(8, n=n)
        kind = "8 full noise-free observation pairs"
        if args.sparse:
            prev, nxt, info = sparse_qg_pairs(
                prev[:4],
                nxt[:4],
                truth.L,
                args.sparse,
                seed=args.seed,
                progress=True,
                auto_band=True,
                **(
                    {"scale": 2.0, "features": 128, "adam_steps": 1000, "lbfgs_steps": 300}
                    if args.sparse != "cubic"
                    else {}
                ),
            )
            band = info["band"]
            if band == 0:
                raise ValueError(
                    f"the {args.sparse} interpolations of two halves of the observed points agree on no "
                    f"Fourier shell: 25 % of the {n}x{n} points resolve no band to regress on (try --qg-n 64)"
                )
            kind = (
                f"4 noise-free pairs observed at 25 % of the points, {args.sparse} interpolation, "
                f"regression on the modes max(|kx|, |ky|) <= {band} (chosen from the observations)"
            )
    start, cpu = time.perf_counter(), time.process_time()
    fit, history = discover_qg(case.model(truth), prev, nxt, band=band, progress=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    true = case.true_correction(truth)
    print(f"{case.name}: {case.description}; {kind}, {n}x{n}")
    print(f"  discovered: {fit.equation().replace('u_t', 'q_t')}")
    print(f"  true correction: {true if case.exact else '(not a finite combination of library terms)'}")
    errors = {k: abs(fit.terms.get(k, 0.0) - v) / abs(v) for k, v in true.items()}
    row = {
        "case": case.name,
        "terms": fit.terms,
        "true": true,
        "exact_terms": set(fit.terms) == set(true) if case.exact else None,
        "max_coef_error": max(errors.values()) if errors else None,
        "rounds": len(history),
        "converged": history[-1]["converged"],
        "seconds": seconds,
        "cpu_seconds": cpu,
        "observations": kind,
        **info,
    }
    if case.exact:
        verdict = "exact" if row["exact_terms"] else "WRONG"
        print(f"  terms {verdict}, max coefficient error {row['max_coef_error']:.3g}")
    settled = "" if history[-1]["converged"] else " (the terms had not settled: see the warning above)"
    print(f"  {len(history)} rounds{settled}, {seconds:.1f} s")
    stem = (
        f"medida-{case.name}"
        + (f"-noise{args.noise:g}" if args.noise else "")
        + (f"-sparse-{args.sparse}" if args.sparse else "")
        + (f"-n{n}" if n != 32 else "")
    )
    print(f"wrote {write_json(out / f'{stem}.json', row)}")
    return 0


def main(args: argparse.Namespace) -> int:
    from sciml.medida.cases import ks_lyapunov_exponent, ks_truth, truth_window
    from sciml.medida.valid_time import valid_times

    check_options(args)
    if isinstance(args.case, str):
        return _main_qg(args)
    inflation: float | str = args.inflation
    out = check_writable_dir(args.out)
    torch.set_num_threads(args.threads)
    discovery, spec, row = run_case(
        args.case,
        args.noise,
        windows=args.windows,
        steps=args.steps,
        members=args.members,
        inflation=inflation,
        localization=args.localization,
        burn_in=args.burn_in,
        features=args.features,
        seed=args.seed,
        progress=True,
    )
    print(f"case {spec.number}: {spec.description}; noise {args.noise:g}")
    print(f"  imperfect model : {spec.model().equation('=0')}")
    print(f"  discovered      : {discovery.correction.equation()}")
    for name, value in discovery.terms.items():
        std = discovery.correction.uncertainties.get(name, math.nan)
        print(f"      {name:>12s} = {value:+.6g} ± {std:.2g}")
    print(f"  corrected model : {discovery.equation()}")
    print(f"  true correction : {row['true_coefficients']}")
    verdict = "exact" if row["exact_terms"] else "WRONG"
    print(
        f"  terms {verdict}, max coefficient error {row['max_coef_error']:.3g}, "
        f"{row['iterations']} rounds, {row['seconds']:.1f} s"
    )
    payload: dict[str, Any] = {
        "case": spec.number,
        "description": spec.description,
        **row,
        "discovery": discovery.summary(),
    }
    stem = f"medida-case{spec.number}-noise{args.noise:g}"
    if not args.no_plot and discovery.corrected is not None:
        lam = ks_lyapunov_exponent()
        truth = ks_truth()
        u0 = truth_window(150.0, 1, truth=truth)[0]
        x, t, valid, trajectories = valid_times(
            truth,
            {"imperfect": spec.model(truth), "corrected": discovery.corrected},
            u0,
            lyapunov_exponent=lam,
        )
        payload["lyapunov_exponent"] = lam
        payload["valid_time_lyapunov"] = {k: v.lyapunov_times for k, v in valid.items()}
        payload["valid_time_censored"] = {k: v.censored for k, v in valid.items()}
        for name, v in valid.items():
            print(
                f"  valid time {name:>9s}: {'≥ ' if v.censored else ''}{v.lyapunov_times:.2f} Lyapunov times"
            )
        png = out / f"{stem}.png"
        _plot(
            png,
            x,
            t,
            trajectories,
            valid,
            lam,
            f"MEDIDA case {spec.number} ({spec.description}), noise {args.noise:g}",
        )
        print(f"wrote {png}")
    json_path = write_json(out / f"{stem}.json", payload)
    print(f"wrote {json_path}")
    return 0
