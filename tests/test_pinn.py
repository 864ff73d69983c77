"""PINN / PIG models, forward jets, the trainer (validation, NaN, checkpoints, L-BFGS) and the CLI."""

import json
import math

import h5py
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import Box, Dirichlet, HardConstraint, Observations, PDEProblem
from sciml.problems.pde.derivatives import AutogradDerivatives

from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer, TrainingDiverged, derivatives, train
from sciml.pinn.derivatives import JetDerivatives
from sciml.pinn.presets import build_model, preset

pytestmark = pytest.mark.usefixtures("one_thread")


KEYS = ["u", "u_x", "u_y", "u_t", "u_xx", "u_yy", "u_tt", "u_xy", "u_xxt"]


def _models():
    g = torch.Generator().manual_seed(0)
    box = dict(lower=(-2, -1, 0), upper=(2, 1, 3))
    full = PIG(3, 2, 20, sigma=0.5, full_covariance=True, generator=g, **box)
    with torch.no_grad():
        full.offdiag.normal_(0, 0.5, generator=g)
    constraint = HardConstraint(
        particular=lambda x: torch.stack([x[:, 0] ** 2 * x[:, 2], torch.cos(x[:, 1])], dim=1),
        factor=lambda x: torch.sin(x[:, 1]) * (1 - x[:, 0] ** 2),
    )
    return {
        "pinn": PINN(3, 2, (16, 16), generator=g, **box),
        "pinn-fourier": PINN(3, 2, (16,), fourier_features=8, fourier_scale=2.0, generator=g, **box),
        "pig": PIG(3, 2, 20, sigma=0.5, generator=g, **box),
        "pig-full": full,
        "pig-anisotropic": PIG(3, 2, 20, sigma=(0.5, 0.2, 0.1), generator=g, **box),
        "constrained": Constrained(PIG(3, 2, 20, sigma=0.5, generator=g, **box), constraint),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_forward_jets_equal_reverse_mode_autograd(name):
    model = _models()[name].double()
    x = torch.rand(40, 3, dtype=torch.float64) * torch.tensor([4.0, 2.0, 3.0]) - torch.tensor([2.0, 1.0, 0.0])
    names, fields = ("x", "y", "t"), ("u", "v")
    keys = {(f, dims) for f in (0, 1) for dims in [(), (0,), (1,), (2,), (0, 0), (1, 1), (2, 2)]}
    fast = derivatives(model, x, names, fields, keys)
    slow = AutogradDerivatives(model, x, names, fields)
    assert isinstance(fast, JetDerivatives)
    for key in KEYS + ["v_t", "v_yy"]:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-11, atol=1e-11, msg=key)
    # the parameter gradient of a loss built from the jets matches the one built by autograd
    params = [p for p in model.parameters() if p.requires_grad]
    lf = (fast["u_xx"] + fast["u_t"] * fast["v"] - fast["v_yy"]).square().mean()
    ls = (slow["u_xx"] + slow["u_t"] * slow["v"] - slow["v_yy"]).square().mean()
    for a, b in zip(torch.autograd.grad(lf, params), torch.autograd.grad(ls, params)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_pig_jet_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    model = PIG(2, 1, 6, sigma=0.4, full_covariance=True, feature_dim=2, hidden=3, generator=g).double()
    with torch.no_grad():
        model.offdiag.normal_(0, 0.3, generator=g)
    x = torch.rand(5, 2, dtype=torch.float64) * 2 - 1
    keys = {(0, ()), (0, (0,)), (0, (0, 0)), (0, (1, 1))}
    names = ["means", "log_inv_scale", "offdiag", "weights"]

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            d = derivatives(self.m, x, ("x", "y"), ("u",), keys)
            return d["u"] + d["u_x"] + d["u_xx"] * d["u_yy"]

    wrapper = Residual()

    def f(*values):
        return torch.func.functional_call(wrapper, {f"m.{n}": v for n, v in zip(names, values)}, (x,))

    values = [getattr(model, n).detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(f, values)


def test_pig_features_are_the_gaussian_sum():
    g = torch.Generator().manual_seed(2)
    model = PIG(2, 1, 7, sigma=0.3, lower=(0, 0), upper=(2, 4), generator=g).double()
    x = torch.rand(9, 2, dtype=torch.float64) * torch.tensor([2.0, 4.0])
    h = (x - torch.tensor([1.0, 2.0])) / torch.tensor([1.0, 2.0])
    scale = torch.exp(-model.log_inv_scale)
    direct = torch.exp(-0.5 * (((h[:, None, :] - model.means) / scale) ** 2).sum(-1)) @ model.weights
    torch.testing.assert_close(model.features(x), direct)


def test_pig_per_axis_sigma_sets_each_columns_initial_scale():
    g = torch.Generator().manual_seed(3)
    model = PIG(3, 1, 5, sigma=(0.5, 0.25, 0.125), lower=(0, 0, 0), upper=(2, 4, 8), generator=g).double()
    scale = torch.exp(-model.log_inv_scale.detach())
    torch.testing.assert_close(scale, torch.tensor([[0.5, 0.25, 0.125]], dtype=torch.float64).expand(5, 3))
    # the features are the anisotropic Gaussian sum, in the normalised coordinates
    x = torch.rand(9, 3, dtype=torch.float64) * torch.tensor([2.0, 4.0, 8.0])
    h = (x - torch.tensor([1.0, 2.0, 4.0])) / torch.tensor([1.0, 2.0, 4.0])
    direct = torch.exp(-0.5 * (((h[:, None, :] - model.means) / scale) ** 2).sum(-1)) @ model.weights
    torch.testing.assert_close(model.features(x), direct)
    # one number is the same as that number on every axis
    a = PIG(3, 1, 5, sigma=0.3, generator=torch.Generator().manual_seed(4))
    b = PIG(3, 1, 5, sigma=[0.3, 0.3, 0.3], generator=torch.Generator().manual_seed(4))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_model_constructors_reject_bad_sizes():
    with pytest.raises(ValueError, match="hidden"):
        PINN(2, 1, ())
    with pytest.raises(ValueError, match="out_features"):
        PINN(2, 0)
    with pytest.raises(ValueError, match="n_gaussians"):
        PIG(2, 1, 0)
    with pytest.raises(ValueError, match="sigma"):
        PIG(2, 1, 4, sigma=-1.0)
    with pytest.raises(ValueError, match="one per input column"):
        PIG(2, 1, 4, sigma=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="sigma"):
        PIG(2, 1, 4, sigma=(0.1, float("nan")))
    with pytest.raises(ValueError, match="lower"):
        PINN(2, 1, lower=(1, 1), upper=(0, 2))


# ------------------------------------------------------------------------------ trainer
def _small(kind: str = "pinn", **config):
    problem = pde.get("legendre")
    model = build_model(problem, kind, preset("legendre"), seed=0)
    base = dict(adam_iterations=10, lbfgs_iterations=0, n_residual=64, n_condition=8, eval_every=5)
    return problem, model, TrainConfig(**{**base, **config})


def test_trainer_rejects_bad_input_before_training():
    problem = pde.get("helmholtz")
    with pytest.raises(ValueError, match="out_features=1"):
        Trainer(problem, PINN(2, 3, (8,)), TrainConfig())
    with pytest.raises(ValueError, match="in_features=2"):
        Trainer(problem, PINN(3, 1, (8,)), TrainConfig())
    for bad in ({"n_residual": 0}, {"n_condition": -5}, {"condition_points": {"dirichlet": 0}}):
        with pytest.raises(ValueError, match="≥ 1"):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float16")
    model = PINN(2, 1, (8,))
    with pytest.raises(ValueError, match="unknown loss terms"):
        Trainer(problem, model, TrainConfig(weights={"boundary": 1.0}))
    with pytest.raises(ValueError, match="params are"):
        Trainer(problem, model, TrainConfig(), unknowns={"kappa": 1.0})

    def wrong_shape(x, d, p):
        return torch.stack([d["u_xx"], d["u_yy"]], dim=1)

    with pytest.raises(ValueError, match=r"returned \(8, 2\)"):
        Trainer(problem.replace(residual=wrong_shape), model, TrainConfig())

    def wrong_key(x, d, p):
        return d["u_zz"]

    with pytest.raises(ValueError, match="u_zz"):
        Trainer(problem.replace(residual=wrong_key), model, TrainConfig())


def test_nan_loss_stops_training_with_a_clear_message(tmp_path):
    problem, model, config = _small()
    poisoned = problem.replace(residual=lambda x, d, p: d["y"] * torch.where(d["x"] > 2, 1.0, float("nan")))
    trainer = Trainer(poisoned, model, config, checkpoint=tmp_path / "ck.pt")
    # NaN before any update: the data are at fault, not the learning rate
    with pytest.raises(TrainingDiverged, match=r"initial parameters \(iteration 0.*residual.*square root"):
        trainer.fit(progress=False)
    calls = []

    def later(x, d, p):  # finite for the first losses, then NaN: training diverged
        calls.append(1)
        return d["y_xx"] + (float("nan") if len(calls) > 3 else 0.0)

    trainer = Trainer(problem.replace(residual=later), model, config)
    # the model is finite, the residual is not: the equation is at fault, not the learning rate
    with pytest.raises(TrainingDiverged, match=r"iteration [1-9]\d* \(adam\).*outputs there are finite"):
        trainer.fit(progress=False)
    problem, model, config = _small(lr=1e30)  # the parameters blow up: lower the learning rate
    with pytest.raises(TrainingDiverged, match=r"iteration [1-9]\d* \(adam\).*residual.*learning rate"):
        Trainer(problem, model, config).fit(progress=False)


def test_resume_continues_exactly_through_adam_and_lbfgs(tmp_path, interrupted_trainer):
    problem, _, config = _small(adam_iterations=6, lbfgs_iterations=6, resample_every=3, checkpoint_every=4)
    straight = build_model(problem, "pinn", seed=0)
    Trainer(problem, straight, config, checkpoint=tmp_path / "a.pt").fit(progress=False)

    Interrupted = interrupted_trainer(tmp_path / "b.pt", 8)  # inside the L-BFGS phase

    first = build_model(problem, "pinn", seed=0)
    with pytest.raises(KeyboardInterrupt):
        Interrupted(problem, first, config, checkpoint=tmp_path / "b.pt").fit(progress=False)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["iteration"] == 8
    resumed = build_model(problem, "pinn", seed=1)  # other weights: all state must come from the file
    result = Trainer(problem, resumed, config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    assert result.iterations == 12
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = TrainConfig(**{**config.to_dict(), "lr": 0.5})
    with pytest.raises(ValueError, match="another run"):
        Trainer(problem, resumed, other, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)


# ------------------------------------------------------------------------------ devices
def test_device_option_cpu_auto_and_a_clear_error_without_cuda(monkeypatch, tmp_path):
    from sciml.cli import main
    from sciml.pinn import resolve_device

    problem, model, config = _small(device="cpu")
    trainer = Trainer(problem, model, config)
    assert trainer.device == torch.device("cpu") and not trainer._defer_checks
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())
    assert all(x.device.type == "cpu" for x in trainer.sample().values())
    result = trainer.fit(progress=False)
    assert result.iterations == 10 and isinstance(result.rel_l2, float) and np.isfinite(result.rel_l2)
    assert all(isinstance(v, float) for h in result.history for k, v in h.items() if k.startswith("loss"))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    assert resolve_device("auto") == torch.device("cpu")
    assert Trainer(problem, model, config.replace(device="auto")).device == torch.device("cpu")
    for bad in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=r"`device` .*torch.cuda.is_available\(\) is False"):
            Trainer(problem, model, config.replace(device=bad))
    with pytest.raises(ValueError, match="'cpu', 'cuda', 'cuda:N' or 'auto'"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match="--device 'cuda' asks for a GPU"):
        resolve_device("cuda", "--device")
    out = str(tmp_path / "run")
    assert main(["pde", "--problem", "legendre", "--iterations", "2", "--device", "cuda", "--out", out]) == 2
    assert main(["bench", "pde", "--quick", "--problems", "legendre", "--device", "cuda", "--out", out]) == 2


def test_checkpoints_hold_cpu_tensors_and_resume_under_another_device_setting(tmp_path, interrupted_trainer):
    problem, _, config = _small(adam_iterations=6, lbfgs_iterations=4, resample_every=3, checkpoint_every=4)
    straight = build_model(problem, "pig", seed=0)
    Trainer(problem, straight, config, checkpoint=tmp_path / "a.pt").fit(progress=False)

    Interrupted = interrupted_trainer(tmp_path / "b.pt", 4)  # in the Adam phase

    with pytest.raises(KeyboardInterrupt):
        Interrupted(problem, build_model(problem, "pig", seed=0), config, checkpoint=tmp_path / "b.pt").fit(
            progress=False
        )
    state = torch.load(tmp_path / "b.pt", map_location=lambda storage, _: storage, weights_only=True)
    assert state["generator_device"] == "cpu" and "device" not in state["fingerprint"]["config"]
    assert all(t.device.type == "cpu" for t in state["model"].values())
    assert all(t.device.type == "cpu" for t in state["points"].values())
    # "auto" resolves to the CPU here; the device is not part of the fingerprint, so the run resumes
    resumed = build_model(problem, "pig", seed=1)
    result = Trainer(problem, resumed, config.replace(device="auto"), checkpoint=tmp_path / "b.pt").fit(
        progress=False, resume=True
    )
    assert result.iterations == 10
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_deferred_nan_check_names_the_iterations_it_covers():
    # what a GPU run does (a check every _CHECK_EVERY steps, no sync per step), forced on the CPU
    problem, model, config = _small(adam_iterations=60, eval_every=1000, checkpoint_every=1000)
    poisoned = problem.replace(residual=lambda x, d, p: d["y"] * torch.where(d["x"] > 2, 1.0, float("nan")))
    trainer = Trainer(poisoned, model, config)
    trainer._defer_checks = True
    with pytest.raises(TrainingDiverged, match=r"at iterations 0–49 \(adam\).*residual"):
        trainer.fit(progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pig_trains_on_cuda_and_checkpoints_cross_devices(tmp_path):
    problem = pde.get("poisson")
    config = (
        preset("poisson")
        .config("quick")
        .replace(adam_iterations=10, lbfgs_iterations=40, eval_every=10, checkpoint_every=10, device="cuda")
    )
    model = build_model(problem, "pig", seed=0)
    trainer = Trainer(problem, model, config, checkpoint=tmp_path / "gpu.pt")
    assert trainer.device.type == "cuda" and trainer._defer_checks
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(x.device.type == "cuda" for x in trainer.sample().values())
    assert trainer._test_x.device.type == trainer._test_u.device.type == "cuda"
    before = trainer.evaluate()
    result = trainer.fit(progress=False)
    assert result.iterations == 50 and result.message == "finished 50 iterations"
    assert result.rel_l2 < 0.8 * before, (before, result.history)
    assert all(type(h["rel_l2"]) is float and type(h["loss"]) is float for h in result.history)
    assert trainer.predict(trainer._test_x[:5]).shape == (5, 1)
    # the GPU checkpoint resumes on the CPU (it holds CPU tensors only) and evaluates to the same error
    state = torch.load(tmp_path / "gpu.pt", map_location=lambda storage, _: storage, weights_only=True)
    assert (
        all(t.device.type == "cpu" for t in state["model"].values()) and state["generator_device"] == "cuda"
    )
    on_cpu = Trainer(problem, build_model(problem, "pig", seed=1), config.replace(device="cpu"),
                     checkpoint=tmp_path / "gpu.pt")  # fmt: skip
    again = on_cpu.fit(progress=False, resume=True)
    assert again.iterations == 50 and abs(again.rel_l2 - result.rel_l2) < 1e-4 * result.rel_l2 + 1e-6
    # and a CPU checkpoint in the middle of Adam continues on the GPU through Adam and L-BFGS
    cpu_config = config.replace(device="cpu", adam_iterations=20, lbfgs_iterations=10)
    Trainer(problem, build_model(problem, "pig", seed=0), cpu_config.replace(adam_iterations=10,
            lbfgs_iterations=0), checkpoint=tmp_path / "x.pt").fit(progress=False)  # fmt: skip
    state = torch.load(tmp_path / "x.pt", weights_only=True)
    assert state["phase"] == "adam" and state["iteration"] == 10 and state["optimizer"]["state"]
    # as if interrupted at iteration 10 of 20 Adam + 10 L-BFGS iterations
    state["fingerprint"]["config"].update(adam_iterations=20, lbfgs_iterations=10)
    torch.save(state, tmp_path / "cpu.pt")
    on_gpu = Trainer(problem, build_model(problem, "pig", seed=1), cpu_config.replace(device="cuda"),
                     checkpoint=tmp_path / "cpu.pt")  # fmt: skip
    resumed = on_gpu.fit(progress=False, resume=True)
    assert resumed.iterations == 30 and np.isfinite(resumed.rel_l2)
    assert all(p.device.type == "cuda" for p in on_gpu.model.parameters())


def test_lbfgs_spends_its_budget_and_reaches_a_singular_ode_target():
    problem = pde.get("hypergeometric")
    model = Constrained(PINN(1, 1, (32, 32), lower=(0,), upper=(2,)), problem.constraint)
    config = TrainConfig(
        adam_iterations=0, lbfgs_iterations=150, n_residual=128, dtype="float64", eval_every=50
    )
    result = train(problem, model, config, progress=False)
    # torch's default tolerances stop once a step changes the loss by < 1e-9; ours spend the budget
    assert result.iterations == 150 and result.message == "finished 150 iterations"
    assert [h["iteration"] for h in result.history] == [50, 100, 150]
    assert result.rel_l2 < 1e-3 and result.rel_l2 == result.history[-1]["rel_l2"]


def test_inverse_problem_fits_the_unknown_coefficient():
    # Legendre with unknown l: observations of P_3 at a few points identify l(l+1) = 12 (l = 1 with y = x
    # is a trap that satisfies the ODE and the built-in end values; the data weight pulls out of it)
    problem = pde.get("legendre")
    xs = np.linspace(-0.9, 0.9, 12)[:, None]
    ys = problem.exact(torch.as_tensor(xs)).numpy()
    observed = problem.replace(
        conditions=problem.conditions + (Observations(points=xs, values=ys),), params={"l": 2.0}
    )
    model = Constrained(PINN(1, 1, (32, 32), generator=torch.Generator().manual_seed(0)), problem.constraint)
    config = TrainConfig(
        adam_iterations=100,
        lbfgs_iterations=100,
        lr=3e-3,
        n_residual=128,
        dtype="float64",
        weights={"data": 10},
    )
    result = train(observed, model, config, unknowns={"l": 2.0}, progress=False)
    assert abs(result.unknowns["l"] - 3.0) < 1e-2, result.unknowns
    assert result.history[-1]["coef_l"] == result.unknowns["l"]
    assert observed.params["l"] == 2.0  # the problem itself is untouched


def test_trainer_drops_conditions_enforced_by_the_constraint():
    problem, model, config = _small()
    assert isinstance(model, Constrained)
    trainer = Trainer(problem, model, config)
    assert [c.name for c in trainer.conditions] == [] and set(trainer.weights) == {"residual"}
    plain = Trainer(problem, PINN(1, 1, (8,)), config)
    assert [c.name for c in plain.conditions] == ["dirichlet"]


def test_custom_problem_with_neumann_and_autograd_engine():
    # u'' = -π² sin(πx)·... on [0, 1]: u = sin(πx/2) with u(0) = 0, u'(1) = 0
    box = Box(("x",), (0.0,), (1.0,))

    def residual(x, d, p):
        return d["u_xx"] + (torch.pi / 2) ** 2 * torch.sin(torch.pi * d["x"] / 2)

    problem = PDEProblem(
        "quarter-sine",
        box,
        ("u",),
        residual,
        (Dirichlet(on=("x-",)), pde.Neumann(on=("x+",))),
        exact=lambda x: torch.sin(torch.pi * x[:, 0] / 2),
        test_shape=(101,),
    )
    config = TrainConfig(adam_iterations=200, lbfgs_iterations=100, lr=1e-2, n_residual=64, engine="autograd")
    model = PINN(1, 1, (16, 16), lower=(0,), upper=(1,), generator=torch.Generator().manual_seed(0))
    result = train(problem, model, config, progress=False)
    assert result.rel_l2 < 1e-2, result.rel_l2


# ------------------------------------------------------------------------------ command line
def test_cli_trains_and_writes_metrics_fields_and_plot(tmp_path, capsys):
    from sciml.cli import main

    out = tmp_path / "run"
    code = main(
        ["pde", "--problem", "hypergeometric", "--model", "pig", "--iterations", "40", "--out", str(out)]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == 40 and metrics["problem"] == "hypergeometric" and metrics["rel_l2"] > 0
    with h5py.File(out / "fields.h5") as f:
        assert f["prediction"].shape == f["reference"].shape == (401, 1)
        np.testing.assert_allclose(f["error"][:], f["prediction"][:] - f["reference"][:])
    assert (out / "fields.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        main(["pde", "--problem", "hypergeometric", "--iterations", "40", "--out", str(out), "--resume"]) == 0
    )
    assert "after 40 iterations" in capsys.readouterr().out
    # a second run into the same folder without --resume would overwrite the first: refused
    before = (out / "metrics.json").read_text()
    assert main(["pde", "--problem", "hypergeometric", "--iterations", "40", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before
    assert main(["pde", "--list"]) == 0
    assert "nonlinear-diffusion" in capsys.readouterr().out
    # --resume into a folder without a checkpoint is an error, not a silent fresh run
    empty = tmp_path / "empty"
    assert main(["pde", "--problem", "hypergeometric", "--out", str(empty), "--resume"]) == 2
    assert "checkpoint.pt does not exist" in capsys.readouterr().err
    assert not (empty / "metrics.json").exists()
    assert main(["pde", "--problem", "hypergeometric", "--adam", "-3", "--out", str(empty)]) == 2
    assert "--adam must be zero or positive" in capsys.readouterr().err
    # a quick budget says that it is a smoke run
    assert (
        main(["pde", "--problem", "hypergeometric", "--budget", "quick", "--out", str(tmp_path / "q")]) == 0
    )
    assert "smoke run" in capsys.readouterr().out
    assert main(["pde", "--problem", "helmholz"]) == 2
    assert "helmholtz-high" in capsys.readouterr().err


def test_lbfgs_rolls_back_a_non_finite_line_search_and_keeps_the_last_finite_model():
    # a few L-BFGS trial evaluations give NaN: they must be undone (parameters restored, memory reset),
    # not end the run with an exception and lose the model
    problem, model, config = _small(adam_iterations=0, lbfgs_iterations=30, resample_every=1000)
    calls = {"n": 0}

    def sometimes_nan(x, d, p):
        calls["n"] += 1
        return d["y"] * (float("nan") if calls["n"] in (15, 16, 30) else 1.0) - d["y_x"]

    trainer = Trainer(problem.replace(residual=sometimes_nan), model, config)
    calls["n"] = 0  # count from the start of training (construction probes the residual)
    result = trainer.fit(progress=False)
    assert calls["n"] > 30 and result.iterations == 30, result.message
    assert math.isfinite(result.rel_l2)
    assert all(torch.isfinite(q).all() for q in model.parameters())


def test_lbfgs_gives_up_after_three_non_finite_line_searches_in_a_row():
    # every step away from the initial parameters is NaN: L-BFGS stops, leaves the model untouched and, as
    # nothing was trained at all, raises
    problem, model, config = _small(adam_iterations=0, lbfgs_iterations=30, resample_every=1000)
    start = [q.detach().clone() for q in model.parameters()]

    def nan_once_moved(x, d, p):
        moved = any(not torch.equal(q.detach(), s) for q, s in zip(model.parameters(), start))
        return d["y"] * (float("nan") if moved else 1.0)

    trainer = Trainer(problem.replace(residual=nan_once_moved), model, config)
    with pytest.raises(TrainingDiverged, match="L-BFGS made no progress from iteration 0.*3 times"):
        trainer.fit(progress=False)
    assert math.isfinite(trainer.evaluate())
    for q, s in zip(model.parameters(), start):
        torch.testing.assert_close(q.detach(), s, rtol=0, atol=0)


def test_models_and_config_reject_bad_scalars():
    with pytest.raises(ValueError, match="fourier_scale"):
        PINN(2, 1, (8,), fourier_features=4, fourier_scale=float("nan"))
    with pytest.raises(ValueError, match="fourier_scale"):
        PINN(2, 1, (8,), fourier_features=4, fourier_scale=-1.0)
    with pytest.raises(ValueError, match="hidden"):
        PINN(2, 1, (True,))
    with pytest.raises(ValueError, match="`lr`"):
        TrainConfig(lr=True)
    with pytest.raises(ValueError, match="loss weight"):
        TrainConfig(weights={"residual": True})


def test_preset_model_overrides_apply_to_their_model_only():
    """``pinn_train`` / ``pig_train`` replace the shared settings for one model; the shared config (and the
    DeepXDE baseline built from it) keeps neither."""
    settings = preset("allen-cahn")
    shared, pinn, pig = (settings.config("default", m) for m in (None, "pinn", "pig"))
    assert pig.n_residual == settings.pig_train["n_residual"] != shared.n_residual
    assert pinn.n_residual == settings.pinn_train["n_residual"] != pig.n_residual
    assert pig.causal_chunks == pinn.causal_chunks == 32 and shared.causal_chunks == 0
    assert shared == settings.train
    assert settings.config("quick", "pig").adam_iterations == 20  # quick overrides come on top


@pytest.mark.parametrize("name", ["poisson", "legendre", "hypergeometric", "klein-gordon"])
def test_tuned_pig_presets_build_and_train_a_step(name):
    """The PIG presets chosen on validation runs build (with their own sizes and widths) and take an Adam
    step and an L-BFGS step with their own training settings, the loss finite and the parameters moved."""
    problem = pde.get(name)
    settings = preset(name)
    model = build_model(problem, "pig", settings, seed=0)
    pig = model.net if isinstance(model, Constrained) else model
    assert pig.means.shape[0] == settings.pig["n_gaussians"] * (4 if pig.channels == "separate" else 1)
    assert pig.hidden.out_features == settings.pig.get("hidden", 16)
    sigma = torch.as_tensor(settings.pig["sigma"], dtype=pig.log_inv_scale.dtype)  # one, or one per axis
    torch.testing.assert_close(pig.log_inv_scale.detach(), (-torch.log(sigma)).expand_as(pig.log_inv_scale))
    config = settings.config("default", "pig").replace(
        adam_iterations=1, lbfgs_iterations=1, n_residual=64, n_condition=16, eval_every=1
    )
    before = [p.detach().clone() for p in model.parameters()]
    result = train(problem, model, config, progress=False)
    assert result.iterations == 2 and math.isfinite(result.rel_l2)
    assert all(math.isfinite(entry["loss"]) for entry in result.history)
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))


def test_bench_pde_resume_reruns_deepxde_when_any_of_our_runs_of_its_seed_reruns(capsys):
    """DeepXDE gets the CPU seconds of our slower model per seed, so its stored row is stale as soon as
    one of our runs of that seed is (seed 0: the PINN's preset changed, the PIG's did not), or when those
    seconds are no longer what it was given (seed 2: the PINN ran again in an earlier ``--resume``); it used
    to be kept whenever any of ours was."""
    from sciml.bench.pde import _current_rows, _fingerprint

    def row(kind, seed, cpu, fingerprint=None):
        fingerprint = _fingerprint("legendre", kind, "quick") if fingerprint is None else fingerprint
        key = "cpu_budget" if kind == "deepxde" else "cpu_seconds"
        return {"problem": "legendre", "model": kind, "seed": seed, key: cpu, "fingerprint": fingerprint}

    rows = [row("pinn", 0, 5.0, {"old": True}), row("pig", 0, 4.0), row("deepxde", 0, 5.0)]
    rows += [row("pinn", 1, 3.0), row("pig", 1, 4.0), row("deepxde", 1, 4.0), row("deepxde", 3, 4.0)]
    rows += [row("pinn", 2, 6.0), row("pig", 2, 4.0), row("deepxde", 2, 4.0)]
    kept = _current_rows(rows, ["legendre"], "quick")
    expected = {("pig", 0), ("pinn", 1), ("pig", 1), ("deepxde", 1), ("pinn", 2), ("pig", 2)}
    assert {(r["model"], r["seed"]) for r in kept} == expected
    assert "4 stored run(s) had other settings" in capsys.readouterr().out


def test_bench_pde_reruns_a_stored_deepxde_run_when_a_slower_model_of_ours_was_added(monkeypatch, capsys):
    """``--models pinn,deepxde`` first, then ``--models pig,deepxde --resume``: the PIG's longer run sets a
    new CPU time for DeepXDE, so the stored DeepXDE run (given the PINN's seconds) runs again."""
    import sciml.problems.pde as pde

    from sciml.bench import deepxde_baseline
    from sciml.bench.pde import _deepxde_rows
    from sciml.pinn.presets import preset

    given = []

    def fake(trainer, hidden, budget, seed):
        given.append(budget)
        return {"rel_l2": 0.5, "iterations": 3, "cpu_seconds": budget, "params": 1, "message": "fake",
                "adam_iterations": 2, "lbfgs_iterations": 1}  # fmt: skip

    monkeypatch.setattr(deepxde_baseline, "train_deepxde", fake)
    problem, settings = pde.get("legendre"), preset("legendre")
    rows = [
        {"problem": "legendre", "model": "pinn", "seed": 0, "cpu_seconds": 3.0},
        {"problem": "legendre", "model": "deepxde", "seed": 0, "cpu_budget": 3.0},
        {"problem": "legendre", "model": "pig", "seed": 0, "cpu_seconds": 7.0},
        {"problem": "legendre", "model": "pinn", "seed": 1, "cpu_seconds": 3.0},
        {"problem": "legendre", "model": "deepxde", "seed": 1, "cpu_budget": 3.0},
    ]
    done = {(r["problem"], r["model"], r["seed"]) for r in rows}
    config = settings.config("quick")
    new = _deepxde_rows(problem, settings, config, None, [0, 1], rows, done, "cpu")
    assert given == [7.0] and [(r["seed"], r["cpu_budget"]) for r in new] == [(0, 7.0)]
    assert [(r["model"], r["seed"]) for r in rows] == [("pinn", 0), ("pig", 0), ("pinn", 1), ("deepxde", 1)]
    assert "DeepXDE seed 0 was given 3.0 CPU s" in capsys.readouterr().out


def test_bench_pde_resume_reruns_runs_whose_preset_changed(monkeypatch, tmp_path, capsys):
    """``--resume`` keys on the settings that decide a run's answer: unchanged runs are skipped, a run
    whose preset changed since runs again (it used to be reused silently)."""
    import dataclasses

    from sciml.cli import main
    from sciml.pinn import presets

    out = str(tmp_path / "b")
    args = ["bench", "pde", "--quick", "--problems", "legendre", "--models", "pinn", "--seeds", "0"]
    args += ["--out", out]
    assert main(args) == 0
    assert "pinn seed 0: rel L2" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    assert "pinn seed 0: rel L2" not in capsys.readouterr().out  # skipped
    changed = dataclasses.replace(presets.PRESETS["legendre"], pinn={"hidden": (8, 8)})
    monkeypatch.setitem(presets.PRESETS, "legendre", changed)
    assert main([*args, "--resume"]) == 0
    text = capsys.readouterr().out
    assert "1 stored run(s) had other settings" in text and "pinn seed 0: rel L2" in text
    rows = json.loads((tmp_path / "b" / "pde-progress.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["fingerprint"]["model"] == {"hidden": [8, 8]}


def test_rescaling_the_lbfgs_state_leaves_its_iterates_unchanged():
    """L-BFGS on c·f after ``_rescale_lbfgs(opt, c)`` takes the same steps as on f (float64 Rosenbrock)."""
    from sciml.pinn.trainer import _rescale_lbfgs

    def run(factor: float) -> torch.Tensor:
        x = torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([x], max_iter=15, history_size=5, line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)  # fmt: skip
        scale = 1.0

        def closure():
            opt.zero_grad()
            f = scale * ((1 - x[:-1]) ** 2 + 100 * (x[1:] - x[:-1] ** 2) ** 2).sum()
            f.backward()
            return f

        opt.step(closure)
        _rescale_lbfgs(opt, factor)
        scale = factor
        opt.step(closure)
        return x.detach()

    reference = run(1.0)
    # mid-run (not yet at the minimum), so the stored pairs matter
    assert not torch.allclose(reference, torch.ones(4, dtype=torch.float64), atol=1e-3)
    for factor in (1e-6, 1e5):
        torch.testing.assert_close(run(factor), reference, rtol=1e-9, atol=1e-12)


def test_lbfgs_keeps_its_curvature_pairs_when_the_loss_falls_by_orders_of_magnitude(monkeypatch):
    """torch drops pairs with yᵀs ≤ 1e-10 (absolute): without rescaling the loss it sees, this float64 run
    slows down below ~1e-6; with it the loss keeps falling. How much depends on the CPU's kernels: final
    losses over 10x apart on an AVX-512 machine, 3.3x on an AVX2 one (8.3e-8 against 2.7e-7)."""
    import sciml.pinn.trainer as trainer_module

    problem = pde.get("legendre")
    config = TrainConfig(adam_iterations=200, lbfgs_iterations=600, lr=3e-3, n_residual=128, resample_every=0,
                         eval_every=100, dtype="float64")  # fmt: skip

    def final_loss() -> float:
        g = torch.Generator().manual_seed(0)
        net = PINN(1, 1, hidden=(16, 16), lower=(-1.0,), upper=(1.0,), generator=g)
        result = Trainer(problem, Constrained(net, problem.constraint), config).fit(progress=False)
        assert result.iterations == 800
        return result.history[-1]["loss"]

    rescaled = final_loss()
    monkeypatch.setattr(trainer_module, "_LBFGS_RESCALE_BELOW", 0.0)
    unscaled = final_loss()
    assert rescaled < 0.5 * unscaled, (rescaled, unscaled)


def test_resume_is_exact_across_lbfgs_loss_rescalings(tmp_path, monkeypatch, interrupted_trainer):
    """The L-BFGS loss scale and its rescaled memory are part of the checkpoint."""
    import sciml.pinn.trainer as trainer_module

    calls = []
    rescale = trainer_module._rescale_lbfgs
    monkeypatch.setattr(trainer_module, "_rescale_lbfgs", lambda opt, f: calls.append(f) or rescale(opt, f))
    problem, _, config = _small(
        adam_iterations=20,
        lbfgs_iterations=200,
        resample_every=0,
        checkpoint_every=60,
        dtype="float64",
        lr=3e-3,
    )
    straight = build_model(problem, "pinn", seed=0)
    Trainer(problem, straight, config, checkpoint=tmp_path / "a.pt").fit(progress=False)
    assert len(calls) >= 2

    Interrupted = interrupted_trainer(tmp_path / "b.pt", 120)

    with pytest.raises(KeyboardInterrupt):
        Interrupted(problem, build_model(problem, "pinn", seed=0), config, checkpoint=tmp_path / "b.pt").fit(
            progress=False
        )
    calls.clear()
    resumed = build_model(problem, "pinn", seed=1)
    Trainer(problem, resumed, config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    assert calls, "no rescaling after the resume: the test would not cover it"
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ------------------------------------------------------------------------------ tail averaging
def test_tail_average_is_the_mean_of_the_counted_iterates():
    from sciml.pinn.strategies import TailAverage

    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    average = TailAverage([p], start=10)
    seen = []
    for iteration, value in ((5, 9.0), (10, 1.0), (10, 7.0), (20, 2.0), (30, 6.0)):
        with torch.no_grad():
            p.fill_(value)
        average.add(iteration)
        if iteration >= 10 and iteration not in [i for i, _ in seen]:
            seen.append((iteration, value))
    assert average.count == 3  # before the start and a repeated iteration do not count
    average.apply()
    torch.testing.assert_close(p, torch.full((3,), (1.0 + 2.0 + 6.0) / 3, dtype=torch.float64))


def test_average_last_averages_the_period_ends_and_leaves_training_unchanged():
    problem, _, _ = _small()
    config = TrainConfig(adam_iterations=20, lbfgs_iterations=20, n_residual=32, n_condition=8,
                         resample_every=5, eval_every=10)  # fmt: skip
    plain = build_model(problem, "pinn", seed=0)
    ends = {}

    class Recording(Trainer):  # the parameters at each resampling (the end of a period)
        def _adapt(self, points):
            ends[len(ends)] = [p.detach().clone() for p in self._trainable()]
            return super()._adapt(points)

    Recording(problem, plain, config).fit(progress=False)
    averaged = build_model(problem, "pinn", seed=0)
    result = Trainer(problem, averaged, config.replace(average_last=0.25)).fit(progress=False)
    # the last 10 of 40 iterations: the ends of the periods at 30 and 35, and the last iterate (40)
    last = [p.detach() for p in plain.parameters()]
    expected = [(a + b + c) / 3 for a, b, c in zip(ends[6], ends[7], last)]
    for got, want in zip(averaged.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=1e-6, atol=1e-7)
    assert result.history[-1]["phase"] == "average" and result.history[-2]["phase"] == "lbfgs"
    assert result.rel_l2 == result.history[-1]["rel_l2"]
    assert "averaged over the ends of 3 resampling periods (iterations 30–40)" in result.message
    with pytest.raises(ValueError, match="resample_every=0"):
        TrainConfig(average_last=0.2, resample_every=0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        TrainConfig(average_last=1.0)


def test_resume_with_tail_averaging_is_exact(tmp_path, interrupted_trainer):
    problem, _, config = _small(adam_iterations=6, lbfgs_iterations=6, resample_every=2, checkpoint_every=4,
                                average_last=0.75)  # fmt: skip
    straight = build_model(problem, "pinn", seed=0)
    Trainer(problem, straight, config, checkpoint=tmp_path / "a.pt").fit(progress=False)
    Interrupted = interrupted_trainer(tmp_path / "b.pt", 8)  # after some iterates were counted
    with pytest.raises(KeyboardInterrupt):
        Interrupted(problem, build_model(problem, "pinn", seed=0), config, checkpoint=tmp_path / "b.pt").fit(
            progress=False
        )
    resumed = build_model(problem, "pinn", seed=1)
    Trainer(problem, resumed, config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    again = Trainer(problem, resumed, config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    assert [h["phase"] for h in again.history].count("average") == 1  # a finished run is not averaged twice
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
