"""``sciml bench pde``: PINN vs PIG on the PDE suite, at the same iteration budget per problem.

For every (problem, model, seed): the final relative L2 error on the reference grid (the last value, not
the best over training), iterations, wall time, CPU time (on a shared machine the better measure of the
work) and parameter count; a summary table of mean ± std over
seeds with the PIG/PINN error ratio; and, per problem, the measured time of one
training step with forward jets against reverse-mode autograd (same model, same points, same run).

Budgets (iterations, points, model sizes) are the presets of :mod:`sciml.pinn.presets`: ``--quick`` a
smoke run, default ≈ 3 minutes per PIG run on two CPU cores, ``--full`` the paper's. Completed runs are
saved after each one to ``OUT/pde-progress.json``; ``--resume`` skips them unless the settings that decide
their answer (the preset's model and training settings, the budget) changed since.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from sciml.bench.report import blank_single_std, check_unique, mean_std, print_table, ratio

DESCRIPTION = "PINN vs PIG on the PDE suite at the same budget: final relative L2 error, time, parameters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: a few iterations per problem, seed 0"
    )
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--problems", default=None, help="comma-separated problem names (default: all)")
    parser.add_argument(
        "--models",
        default="pinn,pig,deepxde",
        help="comma-separated, default %(default)s: pinn, pig, deepxde (DeepXDE's PyTorch trainer on the "
        "same problem, points, test grid, and the CPU seconds of our slower model (PINN or PIG) of the same "
        "problem and seed, run now or stored in OUT by an earlier run; without one, 60 CPU s, and a line "
        "says so; skipped with a message when deepxde is not installed)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    parser.add_argument(
        "--time-windows",
        type=int,
        default=None,
        help="time-marching over K windows for our models (the same total iterations; default: the presets')",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip runs already in OUT/pde-progress.json (the tables and JSON still cover exactly the "
        "problems, models and seeds asked for)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda, cuda:N or auto (cuda when available); default: %(default)s. On a GPU the times "
        "are wall times after torch.cuda.synchronize(); the CPU-time columns then measure only the host",
    )


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work before reading a clock (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _parse(text: str | None, valid: list[str], what: str) -> list[str]:
    if text is None:
        return list(valid)
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad or not items:
        raise ValueError(f"unknown {what} {bad or text!r}; choose from: {', '.join(valid)}")
    check_unique(items, f"--{what}")
    return items


def interrupt_hint(args: argparse.Namespace) -> str | None:
    """After Ctrl-C: the finished runs are in the progress file, and ``--resume`` skips them."""
    path = Path(args.out) / "pde-progress.json"
    if not path.exists():
        return None
    return f"the finished runs are saved in {path}; the same command with --resume skips them"


def _step_seconds(trainer, engine: str, repeat: int = 3) -> float:
    """Median time of one loss + backward with ``engine`` on the trainer's points."""
    previous = trainer.config
    trainer.config = previous.replace(engine=engine)
    points = trainer.sample()
    try:
        times = []
        for i in range(repeat + 1):
            _sync(trainer.device)
            start = time.perf_counter()
            loss, _ = trainer.loss(points)
            loss.backward()
            _sync(trainer.device)
            if i:
                times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        trainer.config = previous
        trainer.model.zero_grad(set_to_none=True)


def _fingerprint(name: str, kind: str, budget: str) -> dict:
    """What decides a run's answer besides its seed: the preset's model and training settings for ``kind``
    (DeepXDE: the PINN's network and the shared schedule), as JSON would store them."""
    from sciml.pinn.presets import preset

    settings = preset(name)
    config = settings.config(budget, None if kind == "deepxde" else kind).to_dict()
    return json.loads(
        json.dumps(
            {
                "model": settings.pig if kind == "pig" else settings.pinn,
                "hard_constraint": settings.hard_constraint,
                "train": {k: v for k, v in config.items() if k not in ("seed", "device")},
            },
            default=str,
        )
    )


#: DeepXDE's CPU seconds when no run of ours (PINN or PIG) of its problem and seed sets them
DEEPXDE_ALONE_SECONDS = 60.0


def _our_slowest(rows: list[dict], problem: str, seed: int, default: float | None = None) -> float | None:
    """The CPU seconds of our slowest run (PINN or PIG) of ``problem`` and ``seed`` in ``rows``: what DeepXDE
    is given for that seed."""
    seconds = [
        r["cpu_seconds"]
        for r in rows
        if (r["problem"], r["seed"]) == (problem, seed) and r["model"] != "deepxde"
    ]
    return max(seconds, default=default)


def _current_rows(rows: list[dict], names: list[str], budget: str) -> list[dict]:
    """The stored ``rows`` still valid for ``--resume``: those of the problems asked for whose settings are
    unchanged; a DeepXDE row also needs the CPU seconds it was given to be those of our slowest stored run of
    its seed, with every stored run of ours for that seed kept (one that runs again changes them)."""
    asked = [r for r in rows if r["problem"] in names]
    current = [r for r in asked if r.get("fingerprint") == _fingerprint(r["problem"], r["model"], budget)]
    rerun = {(r["problem"], r["seed"]) for r in asked if r not in current}
    kept = [
        r for r in current
        if r["model"] != "deepxde" or (
            (r["problem"], r["seed"]) not in rerun
            and r.get("cpu_budget") == _our_slowest(current, r["problem"], r["seed"], DEEPXDE_ALONE_SECONDS)
        )
    ]  # fmt: skip
    stale = len(asked) - len(kept)
    if stale:
        print(
            f"--resume: {stale} stored run(s) had other settings (a preset changed since, or the runs that "
            "set DeepXDE's CPU time ran again); they run again"
        )
    return kept + [r for r in rows if r["problem"] not in names]


def _deepxde_rows(problem, settings, config, reference, seeds, rows, done, device) -> list[dict]:
    """DeepXDE runs for ``problem``, each with the CPU seconds of our slower model for that seed (PINN and
    PIG, whichever of them ran; without one, 60 s, and a line says so): DeepXDE never gets less CPU time than
    the model it is compared with. A stored DeepXDE run given other seconds (one of ours was added since, by
    ``--resume``) is removed from ``rows`` and runs again."""
    from sciml.bench.deepxde_baseline import train_deepxde
    from sciml.pinn.presets import build_model
    from sciml.pinn.trainer import Trainer

    out = []
    for seed in seeds:
        budget = _our_slowest(rows, problem.name, seed)
        if budget is None:
            budget = DEEPXDE_ALONE_SECONDS
            print(
                f"{problem.name}: DeepXDE seed {seed} gets {budget:.0f} CPU s, a default: no PINN or PIG run "
                f"of {problem.name} seed {seed}, in this run or stored in OUT, whose CPU seconds it would get"
            )
        if (problem.name, "deepxde", seed) in done:
            stored = [
                r
                for r in rows
                if r["problem"] == problem.name and r["seed"] == seed and r["model"] == "deepxde"
            ]
            if all(r.get("cpu_budget") == budget for r in stored):
                continue
            given = stored[0].get("cpu_budget")
            given = "an unrecorded number of" if given is None else f"{given:.1f}"
            print(
                f"--resume: DeepXDE seed {seed} was given {given} CPU s, our slower model now took "
                f"{budget:.1f}; it runs again"
            )
            rows[:] = [r for r in rows if r not in stored]
        # the trainer supplies the problem's sampler, weights, hard constraint and test grid
        model = build_model(problem, "pinn", settings, seed=seed)
        trainer = Trainer(problem, model, config.replace(seed=seed), reference=reference)
        start = time.perf_counter()
        result = train_deepxde(trainer, tuple(settings.pinn.get("hidden", (64, 64, 64))), budget, seed)
        row = {"problem": problem.name, "model": "deepxde", "seed": seed, "rel_l2": result["rel_l2"],
               "iterations": result["iterations"], "seconds": time.perf_counter() - start,
               "cpu_seconds": result["cpu_seconds"], "params": result["params"], "message": result["message"],
               "adam_iterations": result["adam_iterations"], "lbfgs_iterations": result["lbfgs_iterations"],
               "cpu_budget": budget, "device": "cpu"}  # fmt: skip
        print(
            f"{problem.name:20s} deepxde seed {seed}: rel L2 {row['rel_l2']:.3e}  {row['iterations']} it  "
            f"(CPU {row['cpu_seconds']:.1f} s of {budget:.1f} s; {result['message']})",
            flush=True,
        )
        out.append(row)
    return out


def _plot(path: Path, summary: list[dict], models: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sciml.checkpoint import save_figure

    problems = list(dict.fromkeys(row["problem"] for row in summary))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(problems)), 4))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        values = [
            next((r["rel_l2_mean"] for r in summary if r["problem"] == p and r["model"] == model), math.nan)
            for p in problems
        ]
        # markers, not bars: a bar's length on a log axis depends on where the axis happens to start
        ax.plot(np.arange(len(problems)) + k * width, values, "o", markersize=8, label=model.upper())
    ax.set_yscale("log")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.set_xticks(np.arange(len(problems)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels(problems, rotation=30, ha="right")
    ax.set_xlim(-0.5, len(problems) - 0.5 + width * (len(models) - 1))
    ax.set_ylabel("final relative L2 error (mean over seeds)")
    ax.set_title("test-grid error by problem and model")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(args: argparse.Namespace) -> dict:
    import sciml.problems.pde as pde
    from sciml.checkpoint import write_json
    from sciml.pinn.presets import build_model, preset
    from sciml.pinn.trainer import Trainer, TrainingDiverged, resolve_device
    from sciml.solvers.fd import reference_solution

    quick = bool(getattr(args, "quick", False))
    if args.full and quick:
        raise ValueError("choose one of --full and --quick")
    budget = "full" if args.full else "quick" if quick else "default"
    names = _parse(args.problems, pde.names(), "problems")
    models = _parse(args.models, ["pinn", "pig", "deepxde"], "models")
    if "deepxde" in models:
        from sciml.bench.deepxde_baseline import available

        reason = available()
        if reason is not None:
            print(f"DeepXDE baseline skipped: {reason}", flush=True)
            models = [m for m in models if m != "deepxde"]
    seeds_text = args.seeds if args.seeds is not None else ("0" if quick else "0,1,2")
    try:
        seeds = [int(s) for s in seeds_text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {seeds_text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds must be non-negative integers, got {seeds_text!r}")
    check_unique(seeds, "--seeds")
    if args.threads < 1:
        raise ValueError(f"--threads must be ≥ 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    windows = getattr(args, "time_windows", None)
    if windows is not None and windows < 1:
        raise ValueError(f"--time-windows must be ≥ 1, got {windows}")
    if windows is not None and windows > 1:  # time-marching needs a time coordinate: skip the others
        timeless = [name for name in names if pde.get(name).domain.time_index is None]
        if len(timeless) == len(names):
            raise ValueError(
                f"--time-windows {windows} cuts the time interval into windows, but none of the problems "
                f"{', '.join(names)} has a time coordinate; drop --time-windows or choose problems with time "
                "(--problems)"
            )
        for name in timeless:
            print(
                f"--time-windows {windows}: skipping {name} (no time coordinate to cut into windows)",
                flush=True,
            )
        names = [name for name in names if name not in timeless]
        for name in names:
            for kind in [m for m in models if m != "deepxde"]:
                iterations = preset(name).config(budget, kind).iterations
                if iterations < windows:
                    raise ValueError(
                        f"--time-windows {windows} needs at least {windows} iterations (one per window), but "
                        f"the {budget} budget of {name} ({kind}) has {iterations}; lower --time-windows"
                    )
    device = resolve_device(getattr(args, "device", "cpu"), "--device")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {device} ({device_name})", flush=True)
    if quick:
        print("--quick is a smoke run of the pipeline: its errors say nothing about the methods", flush=True)
    out = Path(args.out)
    progress_path = out / "pde-progress.json"
    rows: list[dict] = []
    if getattr(args, "resume", False) and progress_path.exists():
        stored = json.loads(progress_path.read_text())
        if (stored.get("budget"), stored.get("device", "cpu"), stored.get("time_windows")) == (
            budget, device.type, windows
        ):  # fmt: skip
            rows = _current_rows(stored.get("rows", []), names, budget)
            for r in rows:  # JSON holds a diverged run's NaN error as null
                r["rel_l2"] = math.nan if r.get("rel_l2") is None else r["rel_l2"]
    done = {(r["problem"], r["model"], r["seed"]) for r in rows}
    meta = {"budget": budget, "device": device.type, "time_windows": windows}
    speed: list[dict] = []
    budgets: dict[str, dict] = {}
    for name in names:
        problem = pde.get(name)
        settings = preset(name)
        config = settings.config(budget).replace(device=str(device))
        budgets[name] = {
            "adam_iterations": config.adam_iterations,
            "lbfgs_iterations": config.lbfgs_iterations,
            "n_residual": config.n_residual,
            "n_condition": config.n_condition,
            "resample_every": config.resample_every,
            "dtype": config.dtype,
            "pinn": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.pinn.items()},
            "pig": settings.pig,
            "pinn_train": dict(settings.pinn_train),
            "hard_constraint": bool(settings.hard_constraint and problem.constraint is not None),
        }
        reference = reference_solution(problem, progress=True)
        for kind in [m for m in models if m != "deepxde"]:
            config = settings.config(budget, kind).replace(device=str(device))
            # engine speed: one training step with forward jets vs reverse-mode autograd (one window)
            probe = Trainer(
                problem, build_model(problem, kind, settings, seed=0), config, reference=reference
            )
            if windows is not None:
                config = config.replace(time_windows=windows)
            jet, autograd = _step_seconds(probe, "jet"), _step_seconds(probe, "autograd")
            speed.append(
                {"problem": name, "model": kind, "jet_ms": 1e3 * jet, "autograd_ms": 1e3 * autograd,
                 "speedup": ratio(autograd, jet)}
            )  # fmt: skip
            for seed in seeds:
                if (name, kind, seed) in done:
                    continue
                model = build_model(problem, kind, settings, seed=seed)
                trainer = Trainer(problem, model, config.replace(seed=seed), reference=reference)
                _sync(device)
                start, cpu_start = time.perf_counter(), time.process_time()
                try:
                    result = trainer.fit(progress=True)
                    rel, its, message = result.rel_l2, result.iterations, result.message
                    params = result.params
                except TrainingDiverged as exc:
                    rel, its, message, params = math.nan, -1, str(exc), None
                _sync(device)
                row = {
                    "problem": name,
                    "model": kind,
                    "seed": seed,
                    "rel_l2": rel,
                    "iterations": its,
                    "seconds": time.perf_counter() - start,
                    "cpu_seconds": time.process_time() - cpu_start,
                    "params": params,
                    "message": message,
                    "device": str(device),
                    "fingerprint": _fingerprint(name, kind, budget),
                }
                rows.append(row)
                print(
                    f"{name:20s} {kind:4s} seed {seed}: rel L2 {rel:.3e}  {its} it  {row['seconds']:.1f} s "
                    f"(CPU {row['cpu_seconds']:.1f} s)",
                    flush=True,
                )
                write_json(progress_path, {**meta, "rows": rows})
        if "deepxde" in models:
            shared = settings.config(budget).replace(device="cpu")
            for row in _deepxde_rows(problem, settings, shared, reference, seeds, rows, done, device):
                rows.append({**row, "fingerprint": _fingerprint(name, "deepxde", budget)})
            write_json(progress_path, {**meta, "rows": rows})

    # this run's rows: exactly the problems x models x seeds asked for (the progress file may hold others)
    reported = [r for r in rows if r["problem"] in names and r["model"] in models and r["seed"] in seeds]
    summary = []
    for name in names:
        for kind in models:
            selected = [r for r in reported if r["problem"] == name and r["model"] == kind]
            if not selected:
                continue
            mean, std = mean_std(r["rel_l2"] for r in selected)
            seconds, _ = mean_std(r["seconds"] for r in selected)
            cpu, _ = mean_std(r.get("cpu_seconds", math.nan) for r in selected)
            summary.append(
                {
                    "problem": name,
                    "model": kind,
                    "seeds": len(selected),
                    "rel_l2_mean": mean,
                    "rel_l2_std": std,
                    "iterations": selected[0]["iterations"],
                    "seconds_mean": seconds,
                    "cpu_seconds_mean": cpu,
                    "params": selected[0]["params"],
                }
            )
    for row in summary:
        dx = next((r for r in summary if r["problem"] == row["problem"] and r["model"] == "deepxde"), None)
        if row["model"] != "deepxde":
            row["over_deepxde"] = ratio(row["rel_l2_mean"], dx["rel_l2_mean"]) if dx else math.nan
        if row["model"] != "pig":
            continue
        pinn = next((r for r in summary if r["problem"] == row["problem"] and r["model"] == "pinn"), None)
        row["pig_over_pinn"] = ratio(row["rel_l2_mean"], pinn["rel_l2_mean"]) if pinn else math.nan
    columns = [
        "problem",
        "model",
        "seeds",
        "rel_l2_mean",
        "rel_l2_std",
        "iterations",
        "seconds_mean",
        "cpu_seconds_mean",
        "params",
    ]
    extra = ["pig_over_pinn"] + (["over_deepxde"] if "deepxde" in models else [])
    marching = f", time-marching over {windows} windows" if windows else ""
    print_table(
        blank_single_std(summary, "seeds", ["rel_l2_std"]),
        columns + extra,
        title=f"budget: {budget}{marching}",
    )
    print_table(speed, ["problem", "model", "jet_ms", "autograd_ms", "speedup"], title="one training step")
    pig_rows = [
        r for r in summary if r["model"] == "pig" and not math.isnan(r.get("pig_over_pinn", math.nan))
    ]
    better = sum(1 for r in pig_rows if r["pig_over_pinn"] < 1)
    wins = sum(1 for r in pig_rows if r["pig_over_pinn"] <= 0.1)
    if pig_rows:  # both models ran on some problem
        print(
            f"PIG's error is below the PINN's on {better} of {len(pig_rows)} problems, 10x below on {wins}",
            flush=True,
        )
    if summary:
        _plot(out / "pde.png", summary, models)
    return {
        "budget": budget,
        "device": str(device),
        "device_name": device_name,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": args.threads,
        "time_windows": windows,
        "rows": reported,
        "summary": summary,
        "speed": speed,
        "budgets": budgets,
        "pig_10x_better_count": wins,
    }
