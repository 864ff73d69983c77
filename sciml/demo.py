"""``sciml demo``: train a neural ODE on the digits task twice — vanilla and with the error-estimate
regularizer — and compare what the regularizer buys at prediction time.

Both runs train in parallel (one process per core, single-threaded), with the same seed, data and solver
tolerances. The table shows test accuracy, training time, prediction time and prediction NFE; the PNG shows
NFE and accuracy over training. Everything is embedded; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
from pathlib import Path

from sciml.bench.report import print_table, ratio
from sciml.checkpoint import check_writable_dir, save_figure
from sciml.neural_de.training import TrainConfig, train

HELP = "train a digits neural ODE vanilla vs error-regularized; print accuracy, times and NFE; plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)


def _train(config: TrainConfig) -> dict:
    return train(config)


def main(args: argparse.Namespace) -> int:
    out = check_writable_dir(args.out)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    configs = [
        TrainConfig(
            task="digits", reg=reg, seed=args.seed, epochs=args.epochs, out=str(out / reg), progress=False
        )
        for reg in ("vanilla", "error")
    ]
    print(f"training the digits neural ODE twice ({args.epochs} epochs each, in parallel)...", flush=True)
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        summaries = list(pool.map(_train, configs))
    base = summaries[0]
    rows = [
        {
            "method": s["method"],
            "test_accuracy": s["test_metric"],
            "train_seconds": s["train_seconds"],
            "predict_ms": 1e3 * s["predict_seconds"],
            "predict_nfe": s["predict_nfe"],
            "nfe_vs_vanilla": ratio(s["predict_nfe"], base["predict_nfe"]),
            "predict_time_vs_vanilla": ratio(s["predict_seconds"], base["predict_seconds"]),
        }  # fmt: skip
        for s in summaries
    ]
    print_table(rows, list(rows[0]), "Digits neural ODE (Tsit5, rtol=atol=1e-6), 360 test images")
    png = out / "demo.png"
    _plot([json.loads((Path(c.out) / "metrics.json").read_text())["history"] for c in configs], png)
    print(f"wrote {png} and the runs' metrics, checkpoints and curves under {out}")
    return 0


def _plot(histories: list[list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_nfe, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for history, label in zip(histories, ("vanilla", "error-regularized")):
        epochs = [h["epoch"] for h in history]
        ax_nfe.plot(epochs, [h["test_nfe"] for h in history], marker="o", label=label)
        ax_acc.plot(epochs, [h["test_metric"] for h in history], marker="o", label=label)
    ax_nfe.set(title="prediction NFE", xlabel="epoch", ylim=(0, None))
    ax_acc.set(title="test accuracy (%)", xlabel="epoch")
    ax_nfe.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
