"""Learning to relax: system sequences, bandit tuners (Tsallis-INF, ChebCB, bins), checkpoints, benchmark."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from sciml.problems.linear import HeatEquation2D, ShiftedLaplacianSequence, bump
from sciml.solvers.linear import sor, sor_batch, young_omega

from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.relax import ChebCB, ContextualBins, TsallisINF, chebyshev_features, tsallis_probabilities

ARMS = np.linspace(1.0, 1.95, 20)


# ------------------------------------------------------------------------------------------ sequences
def test_shifted_laplacian_sequence():
    seq = ShiftedLaplacianSequence("high", seed=3)
    A = seq.matrix()
    assert A.shape == (100, 100) and np.allclose(A.diagonal(), 4.0)
    lam = np.linalg.eigvalsh(A.toarray())
    assert lam.min() == pytest.approx(0.162, abs=5e-4) and lam.min() == pytest.approx(seq.smallest_eigenvalue)
    c = seq.shifts(4000)
    lo, hi = seq.context_range
    assert lo == -0.15 and hi == pytest.approx(0.45) and c.min() >= lo and c.max() <= hi
    # Beta(0.5, 1.5) and Beta(2, 6) both have mean 1/4; variances 1/16 and 1/48 (times 0.6²)
    assert c.mean() == pytest.approx(0.0, abs=0.01) and c.var() == pytest.approx(0.36 / 16, rel=0.1)
    low = ShiftedLaplacianSequence("low", seed=3).shifts(4000)
    assert low.var() == pytest.approx(0.36 / 48, rel=0.1)
    # seeded, and the first instances do not depend on how many are drawn
    np.testing.assert_array_equal(seq.shifts(10), c[:10])
    b = seq.rhs(300)
    np.testing.assert_array_equal(b[:5], seq.rhs(5))
    assert (np.linalg.norm(b, axis=1) <= 10.0).all() and abs(b.mean()) < 0.02
    assert not np.array_equal(ShiftedLaplacianSequence("high", seed=4).shifts(3), c[:3])
    inst = list(seq.instances(3))
    assert len(inst) == 3 and inst[1].context == pytest.approx(c[1])
    np.testing.assert_allclose((inst[1].A - A).toarray(), c[1] * np.eye(100), atol=1e-15)
    with pytest.raises(ValueError, match="variance"):
        ShiftedLaplacianSequence("medium")
    with pytest.raises(ValueError, match="offset"):
        ShiftedLaplacianSequence(offset=-0.2)
    with pytest.raises(ValueError, match="T"):
        seq.shifts(-1)


def test_heat_sequence_is_crank_nicolson():
    heat = HeatEquation2D(N=15, kappa_high=10.0)
    assert heat.kappa(0.25) == pytest.approx(0.1) and heat.kappa(0.75) == pytest.approx(10.0)
    assert heat.context_range == (0.0, 10.0)
    assert (heat.kappa(np.linspace(0, 3, 301)) >= 0).all()
    # an eigenmode without forcing decays by the Crank–Nicolson factor
    h = heat.grid.spacing[0]
    x = heat._points
    mode = np.sin(np.pi * x[:, 0]) * np.sin(np.pi * x[:, 1])
    lam = 2 * 4 / h**2 * np.sin(np.pi * h / 2) ** 2
    quiet = heat.replace(amplitude=0.0)
    k = 700  # κ large there
    inst = quiet.system(k, mode)
    half = 0.5 * quiet.context(k) * quiet.dt
    assert inst.context == pytest.approx(quiet.kappa((k + 0.5) * quiet.dt))
    np.testing.assert_allclose(
        spla.spsolve(inst.A.tocsc(), inst.b), (1 - half * lam) / (1 + half * lam) * mode, rtol=1e-10
    )
    assert inst.x0 is mode or np.array_equal(inst.x0, mode)
    assert abs(inst.A - inst.A.T).max() == 0 and np.allclose(inst.A.diagonal(), 1 + half * 4 / h**2)
    # the forcing is the moving bump
    f = heat.forcing(0.0)
    assert f.max() == pytest.approx(32.0, rel=0.02)
    assert x[np.argmax(f)] == pytest.approx(np.array([0.75, 0.5]), abs=h)
    assert heat.initial().max() == pytest.approx(1.0, rel=0.01)
    assert bump(np.array([[0.0, 0.0], [1.0, 0.0]]), (0.0, 0.0), 0.5).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="step"):
        heat.system(heat.steps, heat.initial())
    with pytest.raises(ValueError, match="`u`"):
        heat.system(0, np.zeros(3))
    with pytest.raises(ValueError, match="`N`"):
        HeatEquation2D(N=1)


def test_shifted_sor_costs_match_the_reference_table():
    """REFERENCES §7, high variance: ω=1 602, best fixed 103.5 (ω=1.8), instance-optimal 57.9, Young 55.7."""
    seq = ShiftedLaplacianSequence("high", seed=11)
    T = 120
    c, B = seq.shifts(T), seq.rhs(T).T
    table = np.stack([sor_batch(seq.matrix(), B, w, c).iterations for w in ARMS], axis=1)
    assert table[:, 0].mean() == pytest.approx(602, rel=0.25)
    assert table.mean(0).min() == pytest.approx(103.5, rel=0.15)
    assert ARMS[table.mean(0).argmin()] == pytest.approx(1.8, abs=0.051)
    assert table.min(1).mean() == pytest.approx(57.9, rel=0.15)
    A = seq.matrix()
    young = [
        sor(A + c[t] * sp.eye_array(100), B[:, t], young_omega(A + c[t] * sp.eye_array(100)))
        for t in range(30)
    ]
    assert np.mean([r.iterations for r in young]) < 1.1 * table[:30].min(1).mean()


# ------------------------------------------------------------------------------------------ tuners
def test_tsallis_probabilities_solve_the_normaliser():
    rng = np.random.default_rng(0)
    for eta in (2.0, 0.3, 0.01):
        losses = rng.uniform(0, 50, 20)
        p = tsallis_probabilities(losses, eta)
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p > 0).all()
        x = losses - 2.0 / (eta * np.sqrt(p))  # p_i = 4 / (η (L_i − x))² with one common x
        assert np.ptp(x) < 1e-6 * max(1.0, np.abs(x).max())
        assert np.all(np.diff(p[np.argsort(losses)]) <= 1e-15)  # lower loss, higher probability
    np.testing.assert_allclose(tsallis_probabilities(np.zeros(5), 1.0), 0.2)


def _bandit_costs(t, rng, arm):
    """A stochastic bandit: arm 7 best (mean cost 20), others worse, noisy, heavy right tail."""
    mean = 20.0 + 3.0 * abs(arm - 7) ** 1.5
    return max(1.0, mean * rng.lognormal(0.0, 0.4))


def test_tsallis_inf_concentrates_on_the_best_arm():
    rng = np.random.default_rng(1)
    tuner = TsallisINF(ARMS, seed=0)
    plays = np.zeros(20)
    regret = []
    for t in range(3000):
        omega = tuner.select()
        i = int(np.argmin(abs(ARMS - omega)))
        plays[i] += 1
        tuner.update(_bandit_costs(t, rng, i))
        regret.append(3.0 * abs(i - 7) ** 1.5)
    assert plays.argmax() == 7 and plays[6:9].sum() > 0.7 * 3000
    cumulative = np.cumsum(regret)
    assert cumulative[2999] / 3000 < 0.5 * cumulative[299] / 300  # sublinear regret


def test_chebcb_learns_a_context_dependent_best_arm():
    rng = np.random.default_rng(2)
    tuner = ChebCB(ARMS, context_range=(0.0, 1.0), gamma=10.0, seed=0)
    total = best_total = 0.0
    for t in range(2000):
        c = rng.uniform()
        best = 4 + 12 * c  # the best arm moves with the context
        costs = 30.0 * (1 + 0.05 * (np.arange(20) - best) ** 2) * rng.lognormal(0, 0.05)
        i = int(np.argmin(abs(ARMS - tuner.select(c))))
        tuner.update(costs[i])
        if t >= 1000:
            total += costs[i]
            best_total += costs.min()
    assert total < 1.1 * best_total
    assert abs(np.argmin(tuner.predict(0.25)) - 7) <= 1 and abs(np.argmin(tuner.predict(0.75)) - 13) <= 1
    np.testing.assert_allclose(chebyshev_features(np.cos(0.3), 5), np.cos(np.arange(6) * 0.3), atol=1e-14)


def test_contextual_bins_route_to_independent_tsallis_inf():
    tuner = ContextualBins(ARMS, context_range=(-1.0, 1.0), bins=4, seed=0)
    assert [tuner.bin_of(c) for c in (-5, -0.9, -0.1, 0.1, 0.9, 5)] == [0, 0, 1, 2, 3, 3]
    for t in range(40):
        tuner.select(-0.9 if t % 2 else 0.9)
        tuner.update(10.0 + t)
    assert tuner.bins[0].t == 20 and tuner.bins[3].t == 20 and tuner.bins[1].t == 0 and tuner.t == 40


@pytest.mark.parametrize(
    "make",
    [
        lambda: TsallisINF(ARMS, seed=5),
        lambda: ChebCB(ARMS, context_range=(0, 1), seed=5),
        lambda: ContextualBins(ARMS, context_range=(0, 1), seed=5),
    ],
)
def test_tuners_checkpoint_and_resume_identically(make, tmp_path):
    rng = np.random.default_rng(3)
    contexts = rng.uniform(size=80)
    costs = rng.uniform(5, 50, size=80)
    tuner = make()
    for t in range(40):
        tuner.select(contexts[t])
        tuner.update(costs[t])
    save_checkpoint({"tuner": tuner.state_dict()}, tmp_path / "tuner.pt")
    resumed = make()
    resumed.load_state_dict(load_checkpoint(tmp_path / "tuner.pt")["tuner"])
    a, b = [], []
    for t in range(40, 80):
        a.append(tuner.select(contexts[t]))
        tuner.update(costs[t])
        b.append(resumed.select(contexts[t]))
        resumed.update(costs[t])
    assert a == b
    other = TsallisINF(ARMS) if not isinstance(tuner, TsallisINF) else ChebCB(ARMS, context_range=(0, 1))
    with pytest.raises(ValueError, match="state is for"):
        other.load_state_dict(tuner.state_dict())
    with pytest.raises(ValueError, match="arms"):
        type(tuner)(
            ARMS[:5], **({} if isinstance(tuner, TsallisINF) else {"context_range": (0, 1)})
        ).load_state_dict(tuner.state_dict())


def test_tuners_reject_bad_use():
    tuner = TsallisINF(ARMS)
    with pytest.raises(RuntimeError, match="select"):
        tuner.update(3.0)
    tuner.select()
    with pytest.raises(ValueError, match="finite"):
        tuner.update(float("nan"))
    with pytest.raises(ValueError, match="floor"):
        tuner.update(0.5)
    with pytest.raises(ValueError, match="arms"):
        TsallisINF([1.5])
    with pytest.raises(ValueError, match="baseline"):
        TsallisINF(baseline=-1)
    cb = ChebCB(context_range=(0, 1))
    with pytest.raises(ValueError, match="context"):
        cb.select()
    with pytest.raises(ValueError, match="context_range"):
        ChebCB(context_range=(1, 0))
    with pytest.raises(ValueError, match="target"):
        ChebCB(context_range=(0, 1), target="square")
    with pytest.raises(ValueError, match="bins"):
        ContextualBins(context_range=(0, 1), bins=0)
    saved = ChebCB(context_range=(0, 1), target="cost").state_dict()
    with pytest.raises(ValueError, match="target='cost'"):
        ChebCB(context_range=(0, 1), target="log").load_state_dict(saved)


# ------------------------------------------------------------------------------------------ bench
def test_relax_bench_quick_runs_and_writes_rows(tmp_path):
    import argparse

    from sciml.bench import BENCHMARKS
    from sciml.bench.relax import add_arguments, run
    from sciml.checkpoint import write_json

    assert BENCHMARKS["relax"] == "sciml.bench.relax"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--settings", "shift-high,heat", "--instances", "40", "--heat-N", "12", "--heat-steps", "40"]
        + ["--seeds", "2", "--grid-step", "0.02"]
    )
    out = tmp_path / "bench"
    out.mkdir()
    args.full, args.out = False, str(out)
    write_json(out / "relax.json", run(args))
    payload = json.loads((out / "relax.json").read_text())
    rows = payload["rows"]
    assert {r["setting"] for r in rows} == {"shift-high", "heat-12"}
    for setting in ("shift-high", "heat-12"):
        got = {r["method"]: r for r in rows if r["setting"] == setting}
        assert set(got) == {
            "omega=1",
            "young-estimated",
            "best-fixed",
            "instance-optimal",
            "tsallis-inf",
            "chebcb",
            "prior",
        }
        assert (
            got["best-fixed"]["vs_best_fixed"] == 1.0
            and got["instance-optimal"]["vs_instance_optimal"] == 1.0
        )
        # nothing beats the instance-optimal row, and the tuners ran with two seeds
        assert min(r["total_iterations"] for r in got.values()) == got["instance-optimal"]["total_iterations"]
        assert got["prior"]["seeds"] == 2 and got["tsallis-inf"]["seeds"] == 2
        assert all(r["all_converged"] for r in got.values())
    high = {r["method"]: r for r in rows if r["setting"] == "shift-high"}
    # the spectral prior is Young's ω from the first system on: far below ω = 1 and near Young
    assert high["prior"]["vs_young_estimated"] < 1.1 and high["omega=1"]["vs_best_fixed"] > 3
    assert (out / "relax.png").exists()


def test_heat_example_tunes_checkpoints_and_resumes(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "heat_relax.py"
    spec = importlib.util.spec_from_file_location("heat_relax", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    heat = HeatEquation2D(N=10, steps=30)
    u_cg, its_cg, _, _ = example.simulate(heat)
    prior = example.make_tuner("prior", heat, seed=0)
    u_p, its_p, _, omegas_p = example.simulate(heat, prior)
    np.testing.assert_allclose(u_p, u_cg, atol=1e-7)
    assert omegas_p.size == 30 and prior.t == 30 and its_p < its_cg
    tuner = example.make_tuner("cheb", heat, seed=0)
    u, its, _, omegas = example.simulate(heat, tuner)
    np.testing.assert_allclose(u, u_cg, atol=1e-7)
    assert omegas.size == 30 and tuner.t == 30 and its < its_cg
    # interrupted after 20 steps, resumed to 30: same state as the uninterrupted run
    ckpt = tmp_path / "heat.pt"
    first = example.make_tuner("cheb", heat, seed=0)
    example.simulate(heat.replace(steps=20), first, checkpoint=ckpt, every=10)
    resumed = example.make_tuner("cheb", heat, seed=0)
    u2, _, _, omegas2 = example.simulate(heat, resumed, checkpoint=ckpt, every=10)
    np.testing.assert_allclose(u2, u, atol=1e-12)
    np.testing.assert_array_equal(omegas2, omegas[20:])
    with pytest.raises(ValueError, match="--tuner"):
        example.make_tuner("ucb", heat, 0)
