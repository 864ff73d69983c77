"""Delayed regularized runs started from a vanilla run's checkpoint copy (``save_epochs``/``init_from``),
the sweep that uses them, and the sweep's ``--sweep-backend``."""

import argparse
import dataclasses

import pytest
import torch

from sciml.checkpoint import load_checkpoint
from sciml.neural_de.tasks import TASKS
from sciml.neural_de.training import TrainConfig, train


@pytest.fixture
def tiny(monkeypatch):
    task = dataclasses.replace(TASKS["latent-hard"], name="tiny-fork", n_series=60, n_times=12, latent=4,
                               width=8, hidden=8, rtol=1e-3, atol=1e-3, lr=1e-2, lr_end=1e-3)  # fmt: skip
    monkeypatch.setitem(TASKS, task.name, task)
    return task.name


def _strip(history):
    return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]


def test_a_delayed_run_from_vanillas_copy_equals_the_run_from_scratch(tiny, tmp_path):
    vanilla = TrainConfig(task=tiny, epochs=3, out=str(tmp_path / "v"), progress=False, save_epochs=[1, 2])
    train(vanilla)
    assert (tmp_path / "v" / "checkpoint-e1.pt").is_file() and (tmp_path / "v" / "checkpoint-e2.pt").is_file()
    reg = TrainConfig(task=tiny, reg="error", epochs=3, weight=1e-2, weight_delay=2, out=str(tmp_path / "a"),
                      progress=False)  # fmt: skip
    train(reg)
    forked = dataclasses.replace(
        reg, out=str(tmp_path / "b"), init_from=str(tmp_path / "v" / "checkpoint-e2.pt")
    )
    summary = train(forked)
    a, b = (
        load_checkpoint(tmp_path / "a" / "checkpoint.pt"),
        load_checkpoint(tmp_path / "b" / "checkpoint.pt"),
    )
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert _strip(a["history"]) == _strip(b["history"])
    assert b["history"][2]["regularization"] > 0 and b["history"][1]["weight"] == 0.0
    # the training time counts the vanilla epochs it took over
    assert summary["train_seconds"] == pytest.approx(sum(h["epoch_seconds"] for h in b["history"]))


def test_init_from_refuses_a_copy_that_is_not_the_runs_prefix(tiny, tmp_path):
    train(TrainConfig(task=tiny, epochs=3, out=str(tmp_path / "v"), progress=False, save_epochs=[1]))
    copy = str(tmp_path / "v" / "checkpoint-e1.pt")
    reg = TrainConfig(task=tiny, reg="error", epochs=3, weight=1e-2, weight_delay=1, out=str(tmp_path / "r"),
                      progress=False, init_from=copy)  # fmt: skip
    with pytest.raises(ValueError, match="--weight-delay 1"):
        train(dataclasses.replace(reg, weight_delay=2))
    with pytest.raises(ValueError, match="lr"):
        train(dataclasses.replace(reg, lr=3e-2))
    with pytest.raises(ValueError, match="epochs"):
        train(dataclasses.replace(reg, epochs=4))
    with pytest.raises(ValueError, match="no checkpoint"):
        train(dataclasses.replace(reg, init_from=str(tmp_path / "missing.pt")))
    train(reg)  # a regularized run's checkpoint is no vanilla prefix
    with pytest.raises(ValueError, match="must be a vanilla run"):
        train(
            dataclasses.replace(
                reg, out=str(tmp_path / "r2"), init_from=str(tmp_path / "r" / "checkpoint.pt")
            )
        )


def test_reuse_accepts_a_vanilla_run_that_kept_more_copies(tmp_path):
    import json

    from sciml.bench.node import finished_run

    config = TrainConfig(task="mnist1d", epochs=10, out=str(tmp_path), save_epochs=[5])
    stored = dataclasses.asdict(config) | {"save_epochs": [3, 5, 8]}
    (tmp_path / "metrics.json").write_text(json.dumps({"config": stored, "history": []}))
    (tmp_path / "summary.json").write_text("{}")
    assert finished_run(config) and finished_run(dataclasses.replace(config, save_epochs=None))
    assert not finished_run(dataclasses.replace(config, save_epochs=[4]))


def _sweep_args(tiny, out, **kw):
    base = dict(tasks=tiny, sweep_variant="error", epochs=3, full=False, weights="0.01", weight_delays="2",
                seeds=1, jobs=1, tolerance=None, reuse=True, out=str(out), sweep_backend=None)  # fmt: skip
    return argparse.Namespace(**(base | kw))


def test_the_sweep_forks_delayed_runs_and_runs_local_with_backprop(tiny, tmp_path, monkeypatch):
    from sciml.bench import node

    trained = []
    monkeypatch.setattr(node, "run_trainings", lambda configs, jobs, root: trained.extend(configs) or
                        [train(c) for c in configs])  # fmt: skip
    result = node.run_sweep(_sweep_args(tiny, tmp_path))
    assert [c.reg for c in trained] == ["vanilla", "error"]
    assert trained[0].save_epochs == [2] and trained[1].init_from.endswith("vanilla-s0/checkpoint-e2.pt")
    assert len(result["rows"]) == 2 and (tmp_path / "node-sweep.png").is_file()
    assert result["reference_val_nfe"] > 0  # the data's own hidden ODE, solved like the model
    trained.clear()
    result = node.run_sweep(_sweep_args(tiny, tmp_path, sweep_variant="local-unbiased", weight_delays="0",
                                        sweep_backend="backprop"))  # fmt: skip
    # vanilla is reused; the local regularizer trains with backprop through the solver
    assert [(c.reg, c.backend) for c in trained] == [("local-unbiased", "backprop")]
    assert load_checkpoint(tmp_path / "node-sweep-runs" / "local-unbiased-backprop-w0.01-d0-s0" /
                           "checkpoint.pt")["identity"]["backend"] == "backprop"  # fmt: skip
    assert result["backend"] == "backprop" and (tmp_path / "node-sweep-local-unbiased-backprop.png").is_file()


def test_one_sweep_puts_several_regularizers_each_with_its_own_weights_on_one_curve(
    tiny, tmp_path, monkeypatch
):
    from sciml.bench import node

    trained = []
    monkeypatch.setattr(node, "run_trainings", lambda configs, jobs, root: trained.extend(configs) or
                        [train(c) for c in configs])  # fmt: skip
    args = _sweep_args(
        tiny, tmp_path, sweep_variant=["error-squared=0.001", "stiffness"], weights="0.02,0.05"
    )
    result = node.run_sweep(args)
    runs = [(c.reg, c.weight) for c in trained]
    assert runs == [("vanilla", None), ("error-squared", 0.001), ("stiffness", 0.02), ("stiffness", 0.05)]
    assert all(c.init_from.endswith("vanilla-s0/checkpoint-e2.pt") for c in trained[1:])
    assert [(r["method"], r["weight"]) for r in result["rows"]] == runs
    chosen = [r["method"] for r in result["rows"] if r["chosen"]]
    assert result["variant"] == "error-squared,stiffness" and [result["chosen_variant"]] == (chosen or [None])
    assert (tmp_path / "node-sweep-error-squared-stiffness.png").is_file()


@pytest.mark.parametrize(
    ("variants", "weights", "message"),
    [
        (["vanilla"], None, "must be a regularizer"),
        (["error", "error=0.1"], None, "given twice"),
        (["error=-1"], None, "--sweep-variant error= must be positive"),
        (["error=a"], None, "positive numbers"),
        (["error"], "0", "--weights must be positive"),
    ],
)
def test_sweep_variants_are_checked_before_training(tiny, tmp_path, variants, weights, message):
    from sciml.bench import node

    with pytest.raises(ValueError, match=message):
        node.run_sweep(_sweep_args(tiny, tmp_path, sweep_variant=variants, weights=weights))
    assert not (tmp_path / "node-sweep-runs").exists()


def test_save_epochs_must_be_epochs_of_the_run(tmp_path):
    with pytest.raises(ValueError, match="--save-epochs"):
        train(TrainConfig(task="latent-hard", epochs=3, out=str(tmp_path), save_epochs=[4]))
    from sciml.neural_de.cli import epoch_list

    assert epoch_list("2,5", "--save-epochs", 1) == [2, 5]
    with pytest.raises(ValueError, match="--save-epochs"):
        epoch_list("a", "--save-epochs", 1)
