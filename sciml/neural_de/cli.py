"""``sciml train node|sde --task T --reg R ...``: train a neural DE with a regularization variant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sciml.neural_de.tasks import TASKS
from sciml.neural_de.training import LOCAL_DTYPES, VARIANTS, TrainConfig, TrainingDiverged, check_seed, train

HELP = "train a neural ODE/SDE task with a solver-heuristic regularizer (tqdm, JSON metrics, checkpoints)"

#: ``--reg`` variant -> what it adds to the training loss (one line of ``--help``)
REG_HELP = {
    "vanilla": "no regularizer: the plain neural DE",
    "error": "sum of the accepted steps' error estimates E_j*|h_j| (ERNODE, Pal et al. 2021)",
    "error-squared": "sum of the squared error estimates E_j^2, with a constant weight",
    "stiffness": "sum of the accepted steps' stiffness indices S_j (SRNODE, Pal et al. 2021)",
    "local-unbiased": "E*h of one extra differentiable step of the method at t ~ U[t0, t1) (Pal et al. 2023)",
    "local-biased": "the same step, at the start of a random accepted step",
    "local-exact": "local-unbiased with the step's exact derivative (first stage too, float64)",
    "steer": "STEER: each training solve ends at a random time in [T - b, T + b]; no weight",
    "rnode": "RNODE: kinetic energy + Hutchinson Jacobian norm, integrated as extra states",
    "taynode": "TayNODE: integral of |d2y/dt2|^2 (nested forward-mode AD) as an extra state",
}
#: ``--backend`` -> how the gradient is computed
BACKEND_HELP = {
    "backprop": "backpropagate through our solver (default; error, error-squared, stiffness need it)",
    "continuous": "our continuous adjoint, memory independent of the steps (default for local-*)",
    "torchdiffeq": "torchdiffeq.odeint_adjoint, a black box: no error/stiffness/local-biased",
}
#: the variants the neural SDE tasks refuse (they integrate extra ODE states, or need an ODE model)
SDE_REFUSED = ("local-exact", "rnode", "taynode")


def epilog(kind: str) -> str:
    """``--help``'s list of the ``--reg`` variants and ``--backend`` values of a task kind."""
    regs = [v for v in VARIANTS if kind == "node" or v not in SDE_REFUSED]
    width = max(map(len, [*regs, *BACKEND_HELP]))
    lines = ["--reg (weights: the task's calibrated schedule unless --weight):"]
    lines += [f"  {v:<{width}}  {REG_HELP[v]}" for v in regs]
    if kind == "node":
        lines += ["--backend:"] + [f"  {b:<{width}}  {text}" for b, text in BACKEND_HELP.items()]
    else:
        lines += ["--backend: backprop only (the neural SDE tasks differentiate through the solver)"]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = sorted({t.kind for t in TASKS.values()})
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in kinds:
        tasks = sorted(n for n, t in TASKS.items() if t.kind == kind)
        p = sub.add_parser(kind, help=f"tasks: {', '.join(tasks)}", epilog=epilog(kind),
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        p.add_argument("--task", required=True, help=f"one of {tasks}")
        p.add_argument("--reg", default="vanilla", help="regularizer, listed below (default: vanilla)")
        p.add_argument("--seed", type=int, default=0, help="in [0, 2**32 - 1] (default 0)")
        p.add_argument("--epochs", type=int, default=None, help="default: the task's")
        p.add_argument("--out", default=None,
                       help="output directory (default: runs/KIND-TASK-REG[-LOCAL_DTYPE]-sSEED); one that "
                       "already holds a run needs --resume")  # fmt: skip
        p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
        p.add_argument("--backend", choices=tuple(BACKEND_HELP), default=None,
                       help="gradient method, listed below")  # fmt: skip
        p.add_argument("--weight", type=float, default=None, help="regularization weight (schedule start)")
        p.add_argument("--weight-delay", type=int, default=None,
                       help="epochs without the regularizer first (default: the task's)")  # fmt: skip
        p.add_argument("--save-epochs", default=None,
                       help="comma-separated epochs after which to keep checkpoint-eN.pt copies")  # fmt: skip
        p.add_argument("--init-from", default=None,
                       help="a vanilla checkpoint-eN.pt to start from (with --weight-delay N)")  # fmt: skip
        p.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default: the task's)")
        p.add_argument("--batch-size", type=int, default=None, help="training batch (default: the task's)")
        p.add_argument("--rtol", type=float, default=None, help="solver rtol (default: the task's)")
        p.add_argument("--atol", type=float, default=None, help="solver atol (default: the task's)")
        if kind == "node":
            p.add_argument("--local-dtype", choices=tuple(LOCAL_DTYPES), default=None,
                           help="dtype of the local regularizers' extra step (--reg local-unbiased or "
                           "local-biased only; default: the model's, float32 except kinetics). In float32 "
                           "its estimate is mostly round-off; the calibrated local weights are for the "
                           "model's dtype, so another dtype needs --weight")  # fmt: skip
        p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def epoch_list(text: str, flag: str, minimum: int) -> list[int]:
    """A comma-separated option of whole epochs ``>= minimum`` (``--save-epochs``, ``--weight-delays``).

    Raises:
        ValueError: naming ``flag``, for an empty list, a non-integer or a value below ``minimum``.
    """
    try:
        epochs = [int(e) for e in text.split(",") if e.strip()]
    except ValueError:
        epochs = []
    if not epochs or any(e < minimum for e in epochs):
        raise ValueError(f"{flag} must be comma-separated whole epochs >= {minimum}, got {text!r}")
    return epochs


#: files a training run writes into --out
RUN_FILES = ("checkpoint.pt", "metrics.json", "summary.json")


def check_fresh_out(out: str | Path, resume: bool) -> None:
    """Refuse to train afresh into an ``--out`` that already holds a run (it would be overwritten).

    Raises:
        ValueError: saying to pass ``--resume`` or a new ``--out``.
    """
    found = [name for name in RUN_FILES if (Path(out) / name).exists()]
    if found and not resume:
        raise ValueError(
            f"--out {out} already holds a run ({', '.join(found)}); pass --resume to continue it, or a new "
            "--out (or delete the folder) to train afresh"
        )


def default_out(args: argparse.Namespace) -> str:
    """The run's output directory: ``--out``, or ``runs/KIND-TASK-REG[-LOCAL_DTYPE]-sSEED``."""
    dtype = getattr(args, "local_dtype", None)  # a float64 local run never lands in the float32 run's folder
    reg = args.reg if dtype is None else f"{args.reg}-{dtype}"
    return args.out or f"runs/{args.kind}-{args.task}-{reg}-s{args.seed}"


def interrupt_hint(args: argparse.Namespace) -> str:
    """Where an interrupted run left its last checkpoint (written after every epoch)."""
    out = Path(default_out(args))
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        return (
            f"the last checkpoint is {checkpoint} (written after every epoch); continue the run with the "
            f"same options and --resume --out {out}"
        )
    return "no epoch had finished, so there is no checkpoint to resume from"


def main(args: argparse.Namespace) -> int:
    check_seed(args.seed)  # before --out is looked at or created
    out = default_out(args)
    check_fresh_out(out, args.resume)
    save_epochs = None if args.save_epochs is None else epoch_list(args.save_epochs, "--save-epochs", 1)
    config = TrainConfig(
        task=args.task, reg=args.reg, seed=args.seed, epochs=args.epochs, out=out, resume=args.resume,
        backend=args.backend, weight=args.weight, weight_delay=args.weight_delay, lr=args.lr,
        save_epochs=save_epochs, init_from=args.init_from, batch_size=args.batch_size, rtol=args.rtol,
        atol=args.atol, threads=args.threads, progress=not args.no_progress, kind=args.kind,
        local_dtype=getattr(args, "local_dtype", None),
    )  # fmt: skip
    try:
        summary = train(config)
    except TrainingDiverged as exc:
        print(f"sciml train: {exc}", file=sys.stderr)
        return 1
    if summary:
        print(
            f"test {summary['metric']} {summary['test_metric']:.4g}  train {summary['train_seconds']:.1f}s  "
            f"predict {summary['predict_seconds'] * 1e3:.1f} ms  predict NFE {summary['predict_nfe']}  "
            f"-> {out}"
        )
    return 0
