"""Review fixes of references: column names in files, messages that name the file and the fix, warnings on
duplicate points, tiny references and swapped columns (pointing at the user's call), and the CPU seconds
DeepXDE gets alone in ``sciml bench pde``."""

import math
import warnings

import h5py
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.pinn import PINN, TrainConfig, Trainer

_TINY = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8)


def _heat():
    return pde.PDEProblem(
        name="heat", domain=pde.Interval(0.0, 1.0).times(0.0, 0.5), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - 0.1 * d["u_xx"],
        conditions=(pde.Dirichlet(value=0.0), pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]))),
    )  # fmt: skip


def _trainer(problem=None):
    problem = problem or _heat()
    d = problem.domain
    net = PINN(d.ndim, 1, (8,), lower=d.lower, upper=d.upper, generator=torch.Generator().manual_seed(0))
    return Trainer(problem, net, _TINY)


def _xt(n=200):
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 0.5, n)]
    return points, np.exp(-points[:, 1]) * np.sin(math.pi * points[:, 0])


# ------------------------------------------------------------------------------ 1. column order
def test_a_file_with_names_is_reordered_to_the_domain_s_columns(tmp_path):
    trainer = _trainer()
    points, values = _xt()
    expected = trainer.evaluate((points, values))
    np.savez(tmp_path / "tx.npz", points=points[:, ::-1], values=values, names=np.array(["t", "x"]))
    with h5py.File(tmp_path / "tx.h5", "w") as f:
        f["points"], f["values"], f["names"] = points[:, ::-1], values, np.array([b"t", b"x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trainer.evaluate(tmp_path / "tx.npz") == pytest.approx(expected, rel=1e-12)
        assert trainer.evaluate(str(tmp_path / "tx.h5")) == pytest.approx(expected, rel=1e-12)
    np.savez(tmp_path / "bad.npz", points=points, values=values, names=np.array(["x", "y"]))
    with pytest.raises(ValueError, match=r"bad\.npz.*\('x', 'y'\).*\('x', 't'\)"):
        trainer.evaluate(tmp_path / "bad.npz")


def test_many_points_outside_ask_to_check_the_column_order():
    trainer = _trainer()
    points, values = _xt()
    with pytest.warns(UserWarning, match=r"columns must be \('x', 't'\), in that order"):
        trainer.evaluate((points[:, ::-1].copy(), values))
    points[:10, 1] += 1.0  # 5 % outside: no word on the columns
    with pytest.warns(UserWarning, match=r"10 of its 200 points lie outside the domain of heat .*error$"):
        trainer.evaluate((points, values))


def test_the_outside_warning_points_at_the_user_s_call():
    trainer = _trainer()
    points, values = _xt()
    points[:10, 1] += 1.0
    calls = (
        lambda: trainer.set_reference((points, values)),
        lambda: trainer.evaluate((points, values)),
        lambda: Trainer(_heat(), trainer.model, _TINY, reference=(points, values)),
    )
    for call in calls:
        with pytest.warns(UserWarning, match="outside the domain") as record:
            call()
        assert [w.filename for w in record] == [__file__]


# ------------------------------------------------------------------------------ 2. messages of files
def test_file_messages_name_the_file_and_the_fix(tmp_path):
    trainer = _trainer()
    points, values = _xt()
    cases = {
        "rows.npz": (dict(points=points, values=values[None, :]), r"rows\.npz.*transpose the values"),
        "cols.npz": (dict(points=points.T, values=values), r"cols\.npz.*transpose the points"),
        "z.npz": (dict(points=np.c_[points, np.zeros(200)], values=values), r"z\.npz.*column 2 is constant"),
        "keys.npz": (dict(x=points, u=values), r"keys\.npz lacks .*it has the arrays \['u', 'x'\]"),
    }
    for name, (arrays, match) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=match):
            trainer.evaluate(tmp_path / name)
    bad = values.copy()
    bad[[7, 9]] = np.nan
    np.savez(tmp_path / "nan.npz", points=points, values=bad)
    fix = r"nan\.npz.* 2 of its 200 rows.*first row 7.*remove those rows"
    with pytest.raises(ValueError, match=fix) as e:
        trainer.evaluate(tmp_path / "nan.npz")
    assert "square root" not in str(e.value)


def test_the_cli_says_reference_file(tmp_path, capsys):
    from sciml.cli import main

    points, values = _xt()
    np.savez(tmp_path / "rows.npz", points=np.c_[points, points], values=values)
    argv = ["pde", "--problem", "poisson", "--iterations", "1", "--reference", str(tmp_path / "rows.npz")]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"--reference {tmp_path / 'rows.npz'} has points (200, 4)" in err and "`reference`" not in err


# ------------------------------------------------------------------------------ 3. duplicates, tiny
def test_duplicate_points_and_tiny_references_warn():
    trainer = _trainer()
    points, values = _xt()
    with pytest.warns(UserWarning, match=r"30 of its 230 points .* duplicates .*weight the error"):
        trainer.evaluate((np.r_[points, points[:30]], np.r_[values, values[:30]]))
    with pytest.warns(UserWarning, match=r"fewer than 10 points in the domain \(3\)"):
        trainer.evaluate((points[:3], values[:3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.evaluate((points, values))


# ------------------------------------------------------------------------------ 5. DeepXDE alone
def test_deepxde_alone_says_which_cpu_seconds_it_gets(monkeypatch, capsys):
    from sciml.bench import deepxde_baseline
    from sciml.bench.pde import _deepxde_rows
    from sciml.pinn.presets import preset

    fake = lambda trainer, hidden, budget, seed: {  # noqa: E731
        "rel_l2": 0.5, "iterations": 3, "cpu_seconds": budget, "params": 1, "message": "fake",
        "adam_iterations": 2, "lbfgs_iterations": 1,
    }  # fmt: skip
    monkeypatch.setattr(deepxde_baseline, "train_deepxde", fake)
    problem, settings = pde.get("legendre"), preset("legendre")
    rows = [{"problem": "legendre", "model": "pinn", "seed": 1, "cpu_seconds": 3.0}]
    new = _deepxde_rows(problem, settings, settings.config("quick"), None, [0, 1], rows, set(), "cpu")
    assert [r["cpu_budget"] for r in new] == [60.0, 3.0]
    out = capsys.readouterr().out
    assert "DeepXDE seed 0 gets 60 CPU s" in out and "no PINN or PIG run of legendre seed 0" in out
    assert "seed 1 gets" not in out


def test_an_empty_reference_file_says_it_has_no_points(tmp_path):
    np.savez(tmp_path / "empty.npz", points=np.zeros((0, 2)), values=np.zeros(0))
    with pytest.raises(ValueError, match="has no points"):
        _trainer().evaluate(reference=tmp_path / "empty.npz")


def test_resume_keeps_a_stored_deepxde_run_that_ran_alone(capsys):
    from sciml.bench import pde as bench

    row = {"problem": "poisson", "model": "deepxde", "seed": 0, "cpu_budget": bench.DEEPXDE_ALONE_SECONDS,
           "fingerprint": bench._fingerprint("poisson", "deepxde", "default")}  # fmt: skip
    assert bench._current_rows([row], ["poisson"], "default") == [row]
    assert "run again" not in capsys.readouterr().out


def test_one_dimensional_points_without_a_column_get_the_fix():
    problem = pde.PDEProblem(
        name="ode", domain=pde.Interval(0.0, 1.0), fields=("u",), residual=lambda x, d, p: d["u_xx"] + 1.0,
        conditions=(pde.Dirichlet(value=0.0),),
    )  # fmt: skip
    x = np.linspace(0.1, 0.9, 20)
    with pytest.raises(ValueError, match=r"points\[:, None\]"):
        _trainer(problem).evaluate(reference=(x, x * (1 - x) / 2))
