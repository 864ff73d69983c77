"""A review of the PINN/PIG trainer: causal weighting under L-BFGS, gradient-norm balancing, L-BFGS stall
detection with short chunks, checkpoint fingerprints of the data and the model, the periodic embedding's
period, options that would have no effect, and messages for bad input."""

import math
import re
import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.cli import main
from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer, strategies
from sciml.pinn.strategies import GradNormBalance, causal_residual
from sciml.pinn.trainer import CheckpointMismatch

pytestmark = pytest.mark.usefixtures("one_thread")


def _heat(constraint=None, **params):
    initial = pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]) ** 3)
    return pde.PDEProblem(
        name="my-heat", domain=pde.Interval(0.0, 1.0).times(0.0, 0.5), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - p["D"] * d["u_xx"], params={"D": 0.1, **params},
        conditions=(pde.Dirichlet(value=0.0), initial), constraint=constraint,
    )  # fmt: skip


def _net(kind="pinn", seed=0, box=((0.0, 0.0), (1.0, 0.5)), **kw):
    g = torch.Generator().manual_seed(seed)
    if kind == "pinn":
        return PINN(2, 1, kw.pop("hidden", (16, 16)), lower=box[0], upper=box[1], generator=g, **kw)
    return PIG(2, 1, kw.pop("n_gaussians", 30), lower=box[0], upper=box[1], generator=g, **kw)


def _advection(periodic_condition: bool):
    conditions = (pde.InitialValue(value=lambda x: torch.sin(2 * math.pi * x[:, 0])),)
    if periodic_condition:
        conditions = (pde.Periodic(coordinate="x", derivatives=1), *conditions)
    return pde.PDEProblem(
        name="adv", domain=pde.Interval(0.0, 1.0).times(0.0, 1.0), fields=("u",),
        residual=lambda x, d, q: d["u_t"] + d["u_x"], conditions=conditions,
    )  # fmt: skip


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------- 1: causal weights under L-BFGS
def test_lbfgs_holds_the_causal_weights_fixed_within_a_step_and_adam_recomputes_them(monkeypatch):
    """The line search must see one objective: every closure call of one L-BFGS step uses the weights of the
    step's first evaluation. Adam recomputes them at every step."""
    problem = _heat("auto")
    seen, steps = [], []
    real_causal, real_step = strategies.causal_residual, torch.optim.LBFGS.step

    def causal(*args, **kwargs):
        loss, weights = real_causal(*args, **kwargs)
        seen.append(weights.clone())
        return loss, weights

    def step(self, closure):
        start = len(seen)
        out = real_step(self, closure)
        steps.append((start, len(seen)))
        return out

    monkeypatch.setattr(strategies, "causal_residual", causal)
    monkeypatch.setattr(torch.optim.LBFGS, "step", step)
    config = TrainConfig(
        adam_iterations=5, lbfgs_iterations=60, n_residual=256, resample_every=0, causal_chunks=8,
        causal_eps=1.0, eval_every=20,
    )  # fmt: skip
    result = Trainer(problem, Constrained(_net(), problem.constraint), config).fit(progress=False)
    assert result.iterations == 65, result.message
    assert len({tuple(w.tolist()) for w in seen[:5]}) == 5  # Adam: new weights at every step
    assert steps and any(b - a > 2 for a, b in steps)
    for a, b in steps:
        for w in seen[a + 1 : b]:
            torch.testing.assert_close(w, seen[a], rtol=0, atol=0)
    changed = [not torch.equal(seen[a], seen[b]) for (a, _), (b, _) in zip(steps, steps[1:])]
    assert any(changed)  # recomputed at the next step


def test_causal_weighting_lets_lbfgs_train_past_its_first_iterations():
    problem = _heat("auto")
    config = TrainConfig(
        adam_iterations=0, lbfgs_iterations=150, n_residual=256, resample_every=0, causal_chunks=16,
        causal_eps=1.0, eval_every=50,
    )  # fmt: skip
    result = Trainer(problem, Constrained(_net(), problem.constraint), config).fit(progress=False)
    assert result.iterations == 150, result.message


# ------------------------------------------------------------------------- 8: causal mean over equations
def test_causal_residual_averages_over_equations_like_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    squares = torch.rand(40, 2, generator=g, dtype=torch.float64)
    t = torch.rand(40, generator=g, dtype=torch.float64)
    loss, _ = causal_residual(squares, t, 0.0, 1.0, chunks=1, eps=0.0)
    torch.testing.assert_close(loss, squares.mean(), rtol=1e-15, atol=0)
    one, _ = causal_residual(squares[:, :1], t, 0.0, 1.0, chunks=3, eps=0.5)
    same, _ = causal_residual(squares[:, 0], t, 0.0, 1.0, chunks=3, eps=0.5)
    assert torch.equal(one, same)  # one equation: unchanged

    system = pde.PDEProblem(
        name="wave-system", domain=pde.Interval(0.0, 1.0).times(0.0, 1.0), fields=("u", "v"), n_equations=2,
        residual=lambda x, d, q: torch.stack([d["u_t"] - d["v_x"], d["v_t"] - d["u_x"]], 1),
        conditions=(pde.InitialValue(field="u", value=lambda x: torch.sin(math.pi * x[:, 0])),
                    pde.InitialValue(field="v", value=0.0, name="initial-v")),
    )  # fmt: skip
    net = PINN(2, 2, (16, 16), lower=(0, 0), upper=(1, 1), generator=torch.Generator().manual_seed(0))
    terms = []
    points = None
    for chunks in (0, 1):
        trainer = Trainer(system, net, TrainConfig(n_residual=256, causal_chunks=chunks, causal_eps=0.0))
        points = points or trainer.sample()
        terms.append(float(trainer.loss(points)[1]["residual"].detach()))
    assert terms[1] == pytest.approx(terms[0], rel=1e-6)


# ------------------------------------------------------------------------- 2, 7: gradient-norm balance
def test_grad_norm_balance_leaves_out_a_term_whose_gradient_is_rounding_noise():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    balance = GradNormBalance(["a", "b", "noise"], {"a": 1.0, "b": 1.0, "noise": 1.0}, every=1, alpha=0.0)
    balance.update({"a": 3 * p.sum(), "b": p.sum(), "noise": 1e-20 * p.sum()}, [p])
    assert balance.factors["noise"] == 1.0
    assert balance.factors["a"] == pytest.approx(4 / 3) and balance.factors["b"] == pytest.approx(4.0)


def test_grad_norm_balance_keeps_a_term_the_periodic_embedding_satisfies_at_factor_one():
    g = torch.Generator().manual_seed(0)
    net = PINN(2, 1, (16, 16), periodic=(0,), lower=(0, 0), upper=(1, 1), generator=g)
    config = TrainConfig(
        adam_iterations=20, n_residual=128, n_condition=32, balance="grad_norm", balance_every=5
    )
    trainer = _quiet(Trainer, _advection(True), net, config)
    trainer.fit(progress=False)
    factors = trainer._balance.factors
    assert factors["periodic"] == 1.0 and max(factors.values()) < 100, factors


def test_grad_norm_balance_multiplies_the_configured_weights():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    balance = GradNormBalance(["a", "b"], {"a": 2.0, "b": 1.0}, every=1, alpha=0.0)
    balance.update({"a": 3 * p.sum(), "b": p.sum()}, [p])  # unweighted norms 3√2 and √2
    assert balance.factors == pytest.approx({"a": 4 / 3, "b": 4.0})
    assert balance.weights() == pytest.approx({"a": 8 / 3, "b": 4.0})

    problem, ratios = _heat(), []
    for weights in ({}, {"initial": 100.0}):
        config = TrainConfig(
            adam_iterations=1, n_residual=128, n_condition=32, balance="grad_norm", balance_alpha=0.0,
            weights=weights,
        )  # fmt: skip
        trainer = Trainer(problem, _net(), config)
        trainer.generator.manual_seed(0)
        _, terms = trainer.loss(trainer.sample())
        trainer._balance.update(terms, trainer._trainable())
        w = trainer._balance.weights()
        ratios.append(w["initial"] / w["residual"])
    assert ratios[1] == pytest.approx(100 * ratios[0], rel=1e-9)


# ------------------------------------------------------------------------- 3: L-BFGS stalls, short chunks
@pytest.mark.parametrize("every", [1, 3])
def test_lbfgs_stops_when_it_stalls_whatever_the_chunk_length(every):
    problem = pde.PDEProblem(
        name="poisson1d", domain=pde.Interval(0.0, 1.0), fields=("u",),
        residual=lambda x, d, q: d["u_xx"] + math.pi**2 * torch.sin(math.pi * x[:, 0]),
        conditions=(pde.Dirichlet(value=0.0),), constraint="auto",
    )  # fmt: skip
    net = PINN(1, 1, (16, 16), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(0))
    config = TrainConfig(
        adam_iterations=0, lbfgs_iterations=800, n_residual=128, resample_every=0, eval_every=400,
        checkpoint_every=every,
    )  # fmt: skip
    result = Trainer(problem, Constrained(net, problem.constraint), config).fit(progress=False)
    assert result.iterations < 700 and "no decrease after 3 memory resets" in result.message, result.message


# ------------------------------------------------------------------------- 4: fingerprint of observations
def _observed(m=50, corrupt=False):
    x = torch.rand(60, 2, generator=torch.Generator().manual_seed(42), dtype=torch.float64)
    x = (x * torch.tensor([1.0, 0.5], dtype=torch.float64))[:m]
    u = torch.sin(math.pi * x[:, 0]) * torch.exp(-x[:, 1])
    if corrupt:
        u[20:] = 0.0
    data = pde.Observations(points=x.numpy(), values=u.numpy())
    return _heat().replace(name="inv-heat", conditions=(*_heat().conditions, data))


def test_problem_fingerprint_keys_on_every_observation(tmp_path):
    base = _observed().fingerprint()
    assert base == _observed().fingerprint()
    assert base != _observed(corrupt=True).fingerprint()
    assert base != _observed(60).fingerprint()
    config = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8, resample_every=0)
    _quiet(Trainer(_observed(), _net(), config, unknowns={"D": 0.05}, checkpoint=tmp_path / "a.pt").fit,
           progress=False)  # fmt: skip
    for changed in (_observed(corrupt=True), _observed(60)):
        trainer = _quiet(Trainer, changed, _net(), config, unknowns={"D": 0.05}, checkpoint=tmp_path / "a.pt")
        with pytest.raises(CheckpointMismatch, match="observations data"):
            trainer.fit(progress=False, resume=True)


# ------------------------------------------------------------------------- 5: fingerprint of the model
def test_model_fingerprint_tells_pinn_from_pig_of_the_same_size(tmp_path):
    problem = _heat("auto")
    config = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8)
    pinn, pig = Constrained(_net(), problem.constraint), Constrained(_net("pig"), problem.constraint)
    assert sum(p.numel() for p in pinn.parameters()) == sum(p.numel() for p in pig.parameters())
    Trainer(problem, pinn, config, checkpoint=tmp_path / "a.pt").fit(progress=False)
    with pytest.raises(CheckpointMismatch, match=r"'PINN' in the checkpoint, 'PIG' now"):
        Trainer(problem, pig, config, checkpoint=tmp_path / "a.pt").fit(progress=False, resume=True)
    # other trainable values (another seed) are the same run
    other = Constrained(_net(seed=3), problem.constraint)
    again = Trainer(problem, other, config, checkpoint=tmp_path / "a.pt")
    assert again.fit(progress=False, resume=True).iterations == 2

    # a checkpoint written before the model's structure was part of the fingerprint still resumes
    state = load_checkpoint(tmp_path / "a.pt")
    for key in [k for k in state["fingerprint"] if k.startswith("model_")]:
        del state["fingerprint"][key]
    save_checkpoint(state, tmp_path / "old.pt")
    old = Trainer(problem, Constrained(_net(), problem.constraint), config, checkpoint=tmp_path / "old.pt")
    assert old.fit(progress=False, resume=True).iterations == 2


def test_model_fingerprint_holds_the_fixed_buffers(tmp_path):
    problem = _heat("auto")
    config = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8)

    def fourier(scale):
        return Constrained(_net(fourier_features=8, fourier_scale=scale), problem.constraint)

    Trainer(problem, fourier(1.0), config, checkpoint=tmp_path / "b.pt").fit(progress=False)
    with pytest.raises(CheckpointMismatch, match="fourier"):
        Trainer(problem, fourier(10.0), config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)

    def periodic(column):
        return PINN(2, 1, (8,), periodic=(column,), lower=(0, 0), upper=(1, 1))

    trainer = _quiet(Trainer, _advection(True), periodic(0), config)
    other = _quiet(Trainer, _advection(True), periodic(1), config)  # the same parameter count
    assert trainer._fingerprint() != other._fingerprint()


# ------------------------------------------------------------------------- 6: the periodic embedding's period
def test_periodic_embedding_needs_the_domain_extent_as_its_box():
    net = PINN(2, 1, (8,), periodic=(0,), generator=torch.Generator().manual_seed(0))  # box [-1, 1]²
    with pytest.raises(ValueError, match=r"periodic.*lower=.*upper=") as info:
        _quiet(Trainer, _advection(True), net, TrainConfig())
    assert "problem.domain.lower" in str(info.value)
    good = PINN(2, 1, (8,), periodic=(0,), lower=(0, 0), upper=(1, 1))
    with pytest.warns(UserWarning, match=r"no Periodic condition on 'x'"):
        Trainer(_advection(False), good, TrainConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(_advection(True), good, TrainConfig())


# ------------------------------------------------------------------------- 9: options without effect
SMALL = dict(n_residual=64, n_condition=16)


def test_grad_norm_balance_without_adam_iterations_warns():
    config = TrainConfig(adam_iterations=0, lbfgs_iterations=5, balance="grad_norm", **SMALL)
    with pytest.warns(UserWarning, match="adam_iterations=0"):
        Trainer(_heat(), _net(), config)


def test_rad_that_would_change_nothing_is_refused():
    with pytest.raises(ValueError, match="resample_every"):
        TrainConfig(rad=True, resample_every=0)
    with pytest.raises(ValueError, match="rad_pool"):
        TrainConfig(rad=True, rad_pool=1)
    TrainConfig(rad=False, rad_pool=1, resample_every=0)  # RAD off: nothing to refuse


def test_rad_draws_its_pool_the_way_sampling_says(monkeypatch):
    calls = []
    domain_type = type(_heat().domain)
    real = domain_type.sample

    def sample(self, n, *args, **kwargs):
        calls.append((n, kwargs.get("method", "uniform")))
        return real(self, n, *args, **kwargs)

    trainer = Trainer(_heat(), _net(), TrainConfig(rad=True, sampling="sobol", **SMALL))
    monkeypatch.setattr(domain_type, "sample", sample)
    trainer._adapt(trainer.sample())
    assert [c for c in calls if c[0] >= 64] == [(64, "sobol"), (256, "sobol")], calls  # points, RAD pool


def test_weights_and_points_for_conditions_the_hard_constraint_enforces_warn():
    hard = _heat("auto")
    config = TrainConfig(weights={"initial": 100.0}, condition_points={"dirichlet": 4096}, **SMALL)
    with pytest.warns(UserWarning, match=r"weights \{'initial': 100.0\} and condition_points \{'dirichlet'"):
        Trainer(hard, Constrained(_net(), hard.constraint), config)


def test_unknowns_that_nothing_reads_or_no_data_constrain_warn():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(_heat(k=3.0), _net(), TrainConfig(**SMALL), unknowns={"k": 1.0})
    assert any(re.search(r"unknowns \['k'\] are never read", str(w.message)) for w in caught), caught
    with pytest.warns(UserWarning, match="without any Observations"):
        Trainer(_heat(), _net(), TrainConfig(**SMALL), unknowns={"D": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(_observed(), _net(), TrainConfig(**SMALL), unknowns={"D": 1.0})  # read, and observed


# ------------------------------------------------------------------------- 10: messages
@pytest.mark.parametrize(
    "changes, name",
    [
        ({"lr_decay": "0.9"}, "lr_decay"),
        ({"balance_alpha": "0.5"}, "balance_alpha"),
        ({"weights": [("residual", 1.0)]}, "weights"),
        ({"condition_points": [("initial", 8)]}, "condition_points"),
    ],
)
def test_train_config_names_the_argument_of_a_wrong_type(changes, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        TrainConfig(**changes)


def test_a_dict_for_config_says_to_build_a_train_config():
    with pytest.raises(TypeError, match=r"`config`.*TrainConfig\(\*\*"):
        Trainer(_heat(), _net(), {"adam_iterations": 1})


def test_model_arguments_in_their_short_forms_are_accepted():
    assert [layer.out_features for layer in PINN(2, 1, 64).layers] == [64, 1]
    assert PINN(2, 1, periodic=0).periodic == (0,)
    pig = PIG(2, 1, 10, sigma=np.float32(0.1))
    torch.testing.assert_close(torch.exp(-pig.log_inv_scale), torch.full((10, 2), 0.1))
    with pytest.raises(ValueError, match="rwf_mean"):
        PINN(2, 1, rwf=True, rwf_mean="1")


def test_unknowns_of_the_wrong_form_or_not_finite_are_refused_with_the_fix():
    for bad in ({"D": None}, ["D"], {"D": "x"}):
        with pytest.raises(ValueError, match=r"`unknowns`.*\{'D': 0\.1\}"):
            Trainer(_heat(), _net(), TrainConfig(), unknowns=bad)
    with pytest.raises(ValueError, match=r"initial guess.*'D'.*not finite"):
        Trainer(_heat(), _net(), TrainConfig(), unknowns={"D": float("nan")})


def test_sciml_pde_time_windows_messages_name_the_flag(tmp_path, capsys):
    argv = ["pde", "--problem", "poisson", "--model", "pinn", "--budget", "quick", "--no-progress"]
    assert main([*argv, "--time-windows", "2", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--time-windows 2" in err and "time_windows" not in err, err
    assert not (tmp_path / "a").exists()  # refused before any work


def test_bench_pde_time_windows_skips_problems_without_time(tmp_path, capsys, monkeypatch):
    import sciml.solvers.fd

    bench = ["bench", "pde", "--quick", "--models", "pinn", "--time-windows", "2", "--out", str(tmp_path)]
    assert main([*bench, "--problems", "poisson"]) == 2  # nothing left to run
    err = capsys.readouterr().err
    assert "--time-windows 2" in err and "time_windows" not in err, err

    class Reached(Exception):
        pass

    def reference_solution(problem, **kwargs):
        raise Reached(problem.name)

    monkeypatch.setattr(sciml.solvers.fd, "reference_solution", reference_solution)
    with pytest.raises(Reached, match="burgers"):  # poisson skipped, burgers trains
        main([*bench, "--problems", "poisson,burgers"])
    assert "--time-windows 2: skipping poisson" in capsys.readouterr().out
