"""Stiff chemical kinetics for a neural ODE: the data generator and the model a kinetics modeller writes.

**Mechanism** (Robertson's autocatalytic scheme with a slow sink; four species ``A, B, C, D``)::

    R1  A      -> B          k1 = 4e-2
    R2  B + B  -> B + C      k2 = 3e7
    R3  B + C  -> A + C      k3 = 1e4
    R4  C      -> D          k4 = 2e-4

The rate constants span 11 orders of magnitude; ``B`` relaxes to its quasi-steady state within
milliseconds while ``D`` forms over hours, so an explicit solver over ``t ∈ [0, 1e5]`` is limited by
stability, not accuracy. Every reaction conserves ``A + B + C + D`` and mass-action kinetics keep the
concentrations non-negative.

**Data** (:func:`kinetics_data`): each trajectory starts from its own perturbed state (``A0 ~ U(0.5, 1)``,
``B0 ~ U(0, 3e-5)``, ``C0 = 1 − A0 − B0``, ``D0 = 0``), is solved by our Rodas5P at ``rtol = 1e-8``
(all trajectories in one batched solve; it agrees with scipy's Radau) and observed at 31 log-spaced
times over ``[1e-5, 1e5]``. Observations are the *scaled* concentrations ``c / s`` with
``s = (1, 1e-5, 1, 1)`` (``B`` lives near 1e-5) plus iid Gaussian noise of standard deviation
``σ = 0.01`` (frozen by the seed), so the mean squared error of a perfect model on them (the noise floor)
is ``σ² = 1e-4``.

**Model** (:class:`KineticsField`): what a kinetics modeller writes — the candidate network R1–R4 with
learnable log rate constants (started from literature values off by a factor up to 1.5, drawn per seed),
each rate law times a learned correction factor ``exp(g_θ(x))`` from a small MLP of the log scaled
concentrations (zero at the start) for what mass action misses. Through the stoichiometry every model
conserves ``Σ c`` exactly as the data do, and a rate vanishes with its reactants. The ODE is solved in
the log-time ``τ = ln(1 + t/t_c)`` (``t_c = 1e-6``): ``dc/dτ = (t + t_c) · f(c)`` — exact, still stiff
(the fast eigenvalue is multiplied by ``t``), and it makes the solver's steps (and the error regularizer
``Σ E_j |h_j|``) comparable across the ten decades the observations cover. The trajectories of a batch
are independent, so the implicit solver uses ``jac="batched"`` (one ``4 × 4`` block per trajectory).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

__all__ = [
    "RATES", "SCALES", "NOISE", "T_C", "OBSERVATION_TIMES", "STOICHIOMETRY", "kinetics_rhs",
    "kinetics_data", "log_time", "KineticsField", "describe_runs", "plot_runs",
]  # fmt: skip

#: true rate constants k1..k4 of R1..R4
RATES = (4e-2, 3e7, 1e4, 2e-4)
#: concentration scales of the observations (A, B, C, D)
SCALES = (1.0, 1e-5, 1.0, 1.0)
#: standard deviation of the observation noise (scaled units); the noise floor of the MSE is NOISE**2
NOISE = 0.01
#: time constant of the log-time τ = ln(1 + t / T_C)
T_C = 1e-6
#: observation times (31 log-spaced over [1e-5, 1e5])
OBSERVATION_TIMES = tuple(float(t) for t in np.logspace(-5, 5, 31))
#: the model's end time τ(1e5)
TAU_END = math.log1p(OBSERVATION_TIMES[-1] / T_C)
#: stoichiometric matrix (species × reactions) of R1..R4
STOICHIOMETRY = (
    (-1.0, 0.0, 1.0, 0.0),
    (1.0, -1.0, -1.0, 0.0),
    (0.0, 1.0, 0.0, -1.0),
    (0.0, 0.0, 0.0, 1.0),
)


def _rates(c: np.ndarray | torch.Tensor, k) -> list:
    a, b, cc = c[..., 0], c[..., 1], c[..., 2]
    rates = [k[0] * a, k[1] * b * b, k[2] * b * cc]
    return rates + [k[3] * cc] if len(k) > 3 else rates


def kinetics_rhs(c: np.ndarray, k: tuple[float, ...] = RATES) -> np.ndarray:
    """Mass-action right-hand side ``dc/dt`` of R1–R4 for concentrations ``c`` ``(..., 4)`` (NumPy)."""
    r = _rates(c, k)
    S = np.asarray(STOICHIOMETRY)
    return np.stack([sum(S[i, j] * r[j] for j in range(4)) for i in range(4)], -1)


def log_time(t: float | np.ndarray) -> float | np.ndarray:
    """The model's time ``τ = ln(1 + t / T_C)``."""
    if isinstance(t, float):
        return math.log1p(t / T_C)
    return np.log1p(np.asarray(t, dtype=np.float64) / T_C)


def _true_field(t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    r = torch.stack(_rates(c, RATES), -1)
    return r @ torch.tensor(STOICHIOMETRY, dtype=c.dtype).T


def kinetics_data(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` noisy trajectories of the mechanism from perturbed initial states.

    The trajectories are solved together (independent rows, ``jac="batched"``) by our Rodas5P at
    ``rtol = 1e-8``, ``atol = 1e-15`` in float64 (agrees with scipy's Radau at rtol 1e-9 to 1e-6 in the
    scaled units, far below the noise).

    Args:
        n: number of trajectories (≥ 1).
        seed: seed of the initial states and the noise (the tasks freeze it).

    Returns:
        ``(c0, truth, observed)``: initial concentrations ``(n, 4)``; exact concentrations at
        :data:`OBSERVATION_TIMES` ``(n, 31, 4)``; noisy scaled observations ``(n, 31, 4)`` — all float64.

    Raises:
        ValueError: ``n`` < 1.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"`n` must be a whole number >= 1, got {n}")
    return tuple(a.copy() for a in _kinetics_data(int(n), seed))  # generated once per process and (n, seed)


@functools.lru_cache(maxsize=4)
def _kinetics_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sciml.problems.ode import ODEProblem
    from sciml.solvers.ode import solve

    rng = np.random.default_rng(seed)
    a0 = rng.uniform(0.5, 1.0, n)
    b0 = rng.uniform(0.0, 3e-5, n)
    c0 = np.stack([a0, b0, 1.0 - a0 - b0, np.zeros(n)], -1)
    times = list(OBSERVATION_TIMES)
    problem = ODEProblem(_true_field, torch.from_numpy(c0), (0.0, times[-1]))
    with torch.no_grad():
        sol = solve(problem, "rodas5p", rtol=1e-8, atol=1e-15, saveat=times, jac="batched")
    truth = sol.ys.transpose(0, 1).numpy().copy()
    observed = truth / np.asarray(SCALES) + NOISE * rng.standard_normal(truth.shape)
    return c0, truth, observed


class KineticsField(nn.Module):
    """``dx/dτ = (t + t_c) · S [r(c; k) ⊙ exp(g_θ(x))] / s`` for the scaled concentrations ``x = c / s``,
    ``c`` the concentrations, in log-time τ (see the module docstring).

    ``r(c; k)`` are the mass-action rates of the candidate reactions R1–R4 with ``k = exp(log_k)``;
    ``g_θ`` is 0.1 × a tanh MLP of ``log(|x| + 1e-3)`` giving each reaction a learned correction factor of
    its rate law (as activity coefficients do), zero at initialisation (the 0.1 keeps its Adam steps small
    beside those of the log rates). Through the stoichiometry ``S`` every model
    conserves ``Σ c``, and a rate still vanishes with its reactants (negative round-off counts as zero).

    Args:
        log_k: initial log rate constants of R1–R4 ``(4,)``.
        width: hidden units of the correction MLP (two hidden layers).
    """

    def __init__(self, log_k: torch.Tensor, width: int = 16):
        super().__init__()
        self.log_k = nn.Parameter(torch.as_tensor(log_k, dtype=torch.get_default_dtype()).clone())
        self.correction = nn.Sequential(
            nn.Linear(4, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 4)
        )
        nn.init.zeros_(self.correction[-1].weight)
        nn.init.zeros_(self.correction[-1].bias)
        self.register_buffer("scales", torch.tensor(SCALES))
        self.register_buffer("stoichiometry", torch.tensor(STOICHIOMETRY))

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """``dc/dt`` (physical time, unscaled) at scaled concentrations ``x`` ``(..., 4)``."""
        # clamped: round-off below zero must not drive B + B -> B + C backwards (dB/dt = -k2 B^2 blows up)
        r = torch.stack(_rates((x * self.scales).clamp(min=0), self.log_k.exp()), -1)
        r = r * torch.exp(0.1 * self.correction(torch.log(x.abs() + 1e-3)))
        return r @ self.stoichiometry.T

    def forward(self, tau: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # t + t_c = t_c e^τ, held at its value at the last observation beyond it (the solver's starting
        # step heuristic probes far ahead)
        return T_C * torch.exp(tau.clamp(max=TAU_END)) * self.rate(x) / self.scales


def describe_runs(task, groups: list[tuple[str, list[str]]]) -> list[dict]:
    """Prediction cost of trained kinetics models, for the sweep's report (mean over each group's seeds).

    Every model predicts the whole validation and the whole test split in one solve each (eval mode, the
    task's tolerances). The first group is vanilla; its models are also solved with the explicit Tsit5
    (same tolerances, at most 2000 steps) to show what the implicit method saves.

    Args:
        task: the :class:`~sciml.neural_de.tasks.KineticsTask`.
        groups: ``(label, run directories)`` pairs, vanilla first; each directory holds ``checkpoint.pt``
            and ``summary.json`` of a finished ``sciml train node`` run.

    Returns:
        One dict per group: validation/test MSE, validation work, test NFE, NJEV and work ``NFE + 4·NJEV``
        (with ratios to vanilla), training seconds (ratio), and for vanilla the Tsit5 work and how far it
        got; then rows for the true mechanism (exact rates, no correction) solved the same way at the task's
        tolerances and at tolerances 10× and 100× looser. A model whose error estimates were uniformly
        ``F`` times smaller than the mechanism's would cost what the mechanism costs at ``F``-times looser
        tolerances, so those rows say how much smoother than the physics a fit must be to save work.
    """
    import json
    from pathlib import Path

    from sciml.checkpoint import load_checkpoint
    from sciml.problems.ode import ODEProblem
    from sciml.solvers.ode import solve

    data = task.data()
    rows = []
    for label, dirs in groups:
        acc: dict[str, list[float]] = {}
        for d in dirs:
            state = load_checkpoint(Path(d) / "checkpoint.pt")
            model = task.model(state["identity"]["backend"])
            model.load_state_dict(state["model"])
            model.eval()
            values = {}
            with torch.no_grad():
                for split in ("val", "test"):
                    out = model(data[split])
                    values[f"{split}_mse"], values[f"{split}_work"] = out.loss.item(), out.result.work
                st = out.result.solution.stats
                values |= {"test_nfe": st.nfe, "test_njev": st.njev, "test_work": out.result.work}
                if not rows:  # vanilla: the same model through an explicit method
                    node = model.node
                    problem = ODEProblem(node.field, data["test"][0], node.t_span)
                    sol = solve(problem, "tsit5", rtol=node.rtol, atol=node.atol, max_steps=2000, throw=False,
                                save_steps=True)  # fmt: skip
                    tau = float(sol.ts.max())
                    values |= {"tsit5_nfe": sol.stats.nfe, "tsit5_reached_t": T_C * math.expm1(tau),
                               "tsit5_finished": float(sol.success)}  # fmt: skip
            values["train_seconds"] = json.loads((Path(d) / "summary.json").read_text())["train_seconds"]
            for k, v in values.items():
                acc.setdefault(k, []).append(float(v))
        rows.append({"method": label, **{k: float(np.mean(v)) for k, v in acc.items()}})
    # reference: the true mechanism (exact rate constants, no correction) at the same tolerances — the work
    # a model that reproduces the data exactly needs — and at looser ones (see the docstring)
    model = task.model("backprop")
    with torch.no_grad():
        model.node.field.log_k.copy_(torch.log(torch.tensor(RATES, dtype=torch.float64)))
    model.eval()
    rtol, atol = model.node.rtol, model.node.atol
    for factor in (1, 10, 100):
        model.node.rtol, model.node.atol = rtol * factor, atol * factor
        truth = {}
        with torch.no_grad():
            for split in ("val", "test"):
                out = model(data[split])
                truth[f"{split}_mse"], truth[f"{split}_work"] = out.loss.item(), float(out.result.work)
        st = out.result.solution.stats
        label = "true mechanism" + ("" if factor == 1 else f", tolerances x{factor}")
        rows.append({"method": label, **truth, "test_nfe": float(st.nfe), "test_njev": float(st.njev),
                     "train_seconds": math.nan})  # fmt: skip
    base = rows[0]
    for r in rows:
        for k in ("val_work", "test_work", "train_seconds"):
            r[f"{k}_vs_vanilla"] = r[k] / base[k]
        r["test_mse_change"] = r["test_mse"] / base["test_mse"] - 1
    base["tsit5_work_vs_rodas5p"] = base["tsit5_nfe"] / base["test_work"]
    return rows


def plot_runs(rows: list[dict], path) -> None:
    """The trade-off figure of a kinetics sweep: validation work ``NFE + 4·NJEV`` against validation MSE
    for vanilla, each regularization weight and the true mechanism (at the task's and at looser
    tolerances), with the region "≥ 30 % less work at ≤ +5 % MSE" of vanilla shaded.

    Args:
        rows: :func:`describe_runs`'s output (vanilla first; regularized rows labelled ``"error <weight>"``).
        path: PNG path (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.checkpoint import save_figure

    base = rows[0]
    regs = [r for r in rows[1:] if not r["method"].startswith("true mechanism")]
    truth = [r for r in rows if r["method"].startswith("true mechanism")]
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    ax.fill_between([0, 0.7 * base["val_work"]], 0, 1.05 * base["val_mse"], color="tab:green", alpha=0.12,
                    label="≥ 30 % less work than vanilla at ≤ +5 % MSE")  # fmt: skip
    if regs:
        ax.plot([r["val_work"] for r in regs], [r["val_mse"] for r in regs], "o-", color="tab:blue",
                label=f"{regs[0]['method'].split()[0]} regularizer (label: start weight)")  # fmt: skip
        for r in regs:
            ax.annotate(r["method"].split()[-1], (r["val_work"], r["val_mse"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)  # fmt: skip
    ax.plot(base["val_work"], base["val_mse"], "s", color="black", markersize=8, label="vanilla")
    ax.plot([r["val_work"] for r in truth], [r["val_mse"] for r in truth], "D--", color="tab:orange",
            label="true mechanism, solved at ×1, ×10, ×100 the tolerances")  # fmt: skip
    for i, r in enumerate(truth):  # labels alternately below and above: ×10 and ×100 can lie close
        factor = r["method"].rpartition(" x")[2] if "tolerances" in r["method"] else "1"
        ax.annotate(f"×{factor}", (r["val_work"], r["val_mse"]), textcoords="offset points",
                    xytext=(4, 6 if i % 2 else -12), fontsize=8, color="tab:orange")  # fmt: skip
    ax.axhline(NOISE**2, color="gray", lw=0.8, ls=":", label="noise floor σ²")
    works = [r["val_work"] for r in rows]
    ax.set(xscale="linear", yscale="log", xlim=(0, 1.1 * max(works)),
           ylim=(0.5 * NOISE**2, 2 * max(r["val_mse"] for r in rows)),
           xlabel="prediction work NFE + 4·NJEV (validation split, one solve)", ylabel="validation MSE",
           title="kinetics (Rodas5P): prediction work vs validation MSE")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path)
