"""``sciml bench node --e2e``'s torchdiffeq script trained at looser tolerances (validated at the task's)."""

import argparse
import concurrent.futures as cf
import dataclasses
import types

import pytest
import torch

import sciml.bench.node as node
from sciml.neural_de.tasks import TASKS

torchdiffeq = pytest.importorskip("torchdiffeq")


def _recording_odeint(monkeypatch) -> list[tuple[float, float, bool]]:
    """Patch ``torchdiffeq.odeint`` to record each call's (rtol, atol, whether it builds a graph)."""
    calls, odeint = [], torchdiffeq.odeint

    def record(*args, rtol, atol, **kwargs):
        calls.append((rtol, atol, torch.is_grad_enabled()))
        return odeint(*args, rtol=rtol, atol=atol, **kwargs)

    monkeypatch.setattr(torchdiffeq, "odeint", record)
    return calls


def test_the_script_solves_at_its_training_tolerances_in_training_mode_only(monkeypatch):
    from sciml.neural_de import NeuralODE
    from sciml.neural_de.tasks import TimeConcatField

    calls = _recording_odeint(monkeypatch)
    torch.manual_seed(0)
    ode = NeuralODE(TimeConcatField(3, 6).double(), (0.0, 1.0), rtol=1e-7, atol=1e-8)
    script = node._TorchdiffeqScript(ode, adjoint=False, train_tol=(1e-3, 1e-4))
    x = torch.randn(4, 3, dtype=torch.float64)
    script.train()(x)
    script.eval()(x)
    node._TorchdiffeqScript(ode, adjoint=False).train()(x)  # no training tolerances: the node's
    assert calls == [(1e-3, 1e-4, True), (1e-7, 1e-8, True), (1e-7, 1e-8, True)]


def test_the_loose_method_trains_loose_and_validates_at_the_task_tolerances(monkeypatch):
    assert node.E2E_METHODS[0] == "torchdiffeq-odeint" and "torchdiffeq-loose" in node.E2E_METHODS
    task = dataclasses.replace(TASKS["latent-hard"], name="tiny-e2e-loose", n_series=40, n_times=10, latent=3,
                               width=6, hidden=6, rtol=1e-6, atol=1e-7)  # fmt: skip
    monkeypatch.setitem(TASKS, task.name, task)
    calls = _recording_odeint(monkeypatch)
    (point,) = node._train_e2e(task.name, "torchdiffeq-loose", 1, 0)["curve"]
    assert point["val_nfe"] > 0
    assert {c for c in calls if c[2]} == {(*node.E2E_LOOSE_TOL, True)}  # every training solve
    assert {c for c in calls if not c[2]} == {(1e-6, 1e-7, False)}  # validation (no_grad) at the task's


def _fake_runs(monkeypatch, fake_train, **task) -> None:
    """run_e2e with ``fake_train`` for each training and a task of the given attributes, in threads."""
    fake = types.SimpleNamespace(data=lambda: {"val": None}, rtol=1e-6, atol=1e-6, **task)
    monkeypatch.setattr(node, "get_task", lambda name, kind: fake)
    monkeypatch.setattr(node, "_train_e2e", fake_train)
    threads = types.SimpleNamespace(
        ProcessPoolExecutor=lambda **kwargs: cf.ThreadPoolExecutor(), as_completed=cf.as_completed
    )
    monkeypatch.setattr(node, "cf", threads)  # the same pool, in threads


def test_run_e2e_reports_every_method_against_the_plain_script(monkeypatch, capsys):
    """Each method gets its row, in E2E_METHODS order; the reference is the plain script's final accuracy."""
    finals = {"torchdiffeq-odeint": 0.9, "torchdiffeq-loose": 0.92, "torchdiffeq-adjoint": 0.9,
              "ours-vanilla": 0.85, "ours-loose": 0.91, "ours-error": 0.95,
              "ours-error-loose": 0.93}  # fmt: skip

    def fake_train(task_name, method, epochs, seed):
        assert (task_name, epochs, seed) == ("mnist1d", 3, 0)
        speed = 0.5 if method == "torchdiffeq-loose" else 1.0
        curve = [{"epoch": e, "seconds": 10.0 * e * speed, "cpu_seconds": 8.0 * e * speed,
                  "val_metric": finals[method] - 0.05 * (3 - e), "val_nfe": 40}
                 for e in (1, 2, 3)]  # fmt: skip
        return {"method": method, "curve": curve}

    _fake_runs(monkeypatch, fake_train, higher_is_better=True, metric="accuracy", epochs=3)
    out = node.run_e2e(
        argparse.Namespace(tasks="mnist1d", epochs=3, full=False, jobs=2, seeds=None, e2e=True)
    )
    rows = {r["method"]: r for r in out["rows"]}
    assert [r["method"] for r in out["rows"]] == list(node.E2E_METHODS) and len(rows) == 7
    assert out["reference_metrics"] == [0.9] and out["seeds"] == 1
    assert rows["torchdiffeq-loose"]["epochs_to_reference"] == 3
    assert rows["torchdiffeq-loose"]["time_to_reference_vs_torchdiffeq"] == pytest.approx(0.5)
    assert rows["ours-error"]["epochs_to_reference"] == 2
    assert rows["ours-vanilla"]["epochs_to_reference"] is None
    assert rows["torchdiffeq-loose"]["train_time_vs_torchdiffeq"] == pytest.approx(0.5)
    printed = capsys.readouterr().out
    assert "torchdiffeq-loose" in printed and "first epoch whose validation accuracy reaches" in printed
    assert "--seeds 5 gives mean ± std" in printed and "mean ± std over" not in printed


def test_ours_loose_trains_loose_and_validates_at_the_task_tolerances(monkeypatch):
    """Our solver's training solves take E2E_LOOSE_TOL; validation, and the plain run, the task's."""
    from sciml.neural_de.model import NeuralODE

    task = dataclasses.replace(TASKS["latent-hard"], name="tiny-e2e-ours-loose", n_series=40, n_times=10,
                               latent=3, width=6, hidden=6, rtol=1e-6, atol=1e-7)  # fmt: skip
    monkeypatch.setitem(TASKS, task.name, task)
    calls, forward = [], NeuralODE.forward

    def record(self, *args, **kwargs):
        calls.append((self.rtol, self.atol, torch.is_grad_enabled()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(NeuralODE, "forward", record)
    node._train_e2e(task.name, "ours-loose", 2, 0)
    assert {c for c in calls if c[2]} == {(*node.E2E_LOOSE_TOL, True)}
    assert {c for c in calls if not c[2]} == {(1e-6, 1e-7, False)}
    calls.clear()
    node._train_e2e(task.name, "ours-vanilla", 1, 0)
    assert {c[:2] for c in calls} == {(1e-6, 1e-7)}


def test_several_seeds_each_set_their_own_reference_and_are_summarised(monkeypatch, capsys):
    """--seeds 3: every method on every seed; seed s's plain script is seed s's reference; the summary
    averages the ratios over the seeds that reached it and counts them."""
    seen = []

    def fake_train(task_name, method, epochs, seed):
        seen.append((method, seed))
        final = {"torchdiffeq-odeint": 1.0 + seed, "ours-error": 0.9 + seed}.get(method, 5.0 + seed)
        speed = {"torchdiffeq-odeint": 1.0, "ours-error": 0.4 + 0.1 * seed}.get(method, 0.5)
        curve = [{"epoch": e, "seconds": 10.0 * e * speed, "cpu_seconds": 10.0 * e * speed,
                  "val_metric": final + 0.1 * (2 - e), "val_nfe": 40 + seed}
                 for e in (1, 2)]  # fmt: skip
        return {"method": method, "curve": curve}

    _fake_runs(monkeypatch, fake_train, higher_is_better=False, metric="MSE", epochs=2)
    out = node.run_e2e(
        argparse.Namespace(tasks="latent-hard", epochs=2, full=False, jobs=2, seeds=3, e2e=True)
    )
    assert sorted(seen) == sorted((m, s) for m in node.E2E_METHODS for s in range(3))
    assert out["reference_metrics"] == [1.0, 2.0, 3.0] and len(out["rows"]) == 3 * len(node.E2E_METHODS)
    summary = {r["method"]: r for r in out["summary"]}
    error = summary["ours-error"]
    assert (error["seeds"], error["seeds_reaching"]) == (3, 3)
    # it reaches 1 + seed at epoch 1 (4, 5, 6 s) against the script's epoch 2 (20 s): 0.2, 0.25, 0.3
    assert error["time_to_reference_vs_torchdiffeq"] == pytest.approx(0.25)
    assert error["time_std"] == pytest.approx(0.05)
    assert error["train_time_vs_torchdiffeq"] == pytest.approx(0.5)  # both epochs: 0.4, 0.5, 0.6
    assert error["train_time_std"] == pytest.approx(0.1)
    assert error["train_cpu_vs_torchdiffeq"] == pytest.approx(0.5)  # the fake's CPU seconds: the same
    assert error["final_val_nfe"] == pytest.approx(41.0)
    loose = summary["torchdiffeq-loose"]  # ends at 5 + seed, never reaches 1 + seed
    assert loose["seeds_reaching"] == 0 and loose["train_time_vs_torchdiffeq"] == pytest.approx(0.5)
    printed = capsys.readouterr().out
    assert "mean ± std over 3 seeds" in printed and "seed 2" in printed
    assert (
        f"[{3 * len(node.E2E_METHODS)}/{3 * len(node.E2E_METHODS)}] " in printed
    )  # each run reported as it finishes


def test_e2e_defaults_to_one_seed_and_the_other_modes_to_three():
    args = argparse.Namespace(seeds=None, e2e=True)
    assert node.seed_count(args) == 1
    assert node.seed_count(argparse.Namespace(seeds=None, e2e=False)) == 3
    assert node.seed_count(argparse.Namespace(seeds=5, e2e=True)) == 5


def test_methods_chooses_the_trainings_and_keeps_the_reference(monkeypatch):
    seen = []

    def fake_train(task_name, method, epochs, seed):
        seen.append(method)
        curve = [{"epoch": 1, "seconds": 1.0, "cpu_seconds": 1.0, "val_metric": 0.9, "val_nfe": 40}]
        return {"method": method, "curve": curve}

    _fake_runs(monkeypatch, fake_train, higher_is_better=True, metric="accuracy", epochs=1)
    args = argparse.Namespace(tasks="mnist1d", epochs=1, full=False, jobs=1, seeds=None, e2e=True,
                              methods="ours-error-loose,ours-error")  # fmt: skip
    out = node.run_e2e(args)
    assert seen == ["torchdiffeq-odeint", "ours-error", "ours-error-loose"]  # the reference first, in order
    assert [r["method"] for r in out["rows"]] == seen
    with pytest.raises(ValueError, match=r"--methods: unknown \['ours-fast'\]"):
        node.e2e_methods(argparse.Namespace(methods="ours-fast"))
    with pytest.raises(ValueError, match=r"--methods chooses the trainings of --e2e"):
        node.check_mode_options(argparse.Namespace(methods="ours-error", e2e=False, sweep=False, seeds=None,
                                                   jobs=1, epochs=None, variants=None))  # fmt: skip


def test_the_regularized_loose_method_trains_loose_with_the_regularizer(monkeypatch):
    from sciml.neural_de.model import NeuralODE

    task = dataclasses.replace(TASKS["latent-hard"], name="tiny-e2e-error-loose", n_series=40, n_times=10,
                               latent=3, width=6, hidden=6, rtol=1e-6, atol=1e-7)  # fmt: skip
    monkeypatch.setitem(TASKS, task.name, task)
    calls, forward, variants, make = [], NeuralODE.forward, [], node.make_variant

    def record(self, *args, **kwargs):
        calls.append((self.rtol, self.atol, torch.is_grad_enabled()))
        return forward(self, *args, **kwargs)

    def recorded_variant(name, *args):
        variants.append(name)
        return make(name, *args)

    monkeypatch.setattr(NeuralODE, "forward", record)
    monkeypatch.setattr(node, "make_variant", recorded_variant)
    node._train_e2e(task.name, "ours-error-loose", 1, 0)
    assert variants == ["error"]
    assert {c for c in calls if c[2]} == {(*node.E2E_LOOSE_TOL, True)}
    assert {c for c in calls if not c[2]} == {(1e-6, 1e-7, False)}
