"""Weight schedules with a delayed start and the per-epoch learning-rate decay of the latent-hard task."""

import dataclasses

import pytest
import torch

from sciml.checkpoint import load_checkpoint
from sciml.neural_de.regularizers import ConstantSchedule, DelayedSchedule, ExponentialSchedule
from sciml.neural_de.tasks import TASKS
from sciml.neural_de.training import TrainConfig, make_variant, train


def test_delayed_schedule_is_zero_then_the_inner_schedule_shifted():
    inner = ExponentialSchedule(1e-3, 1e-4, 4)
    s = DelayedSchedule(inner, 3)
    assert [s(e) for e in range(3)] == [0.0, 0.0, 0.0]
    assert s(3) == pytest.approx(1e-3) and s(7) == pytest.approx(1e-4) and s(5) == pytest.approx(inner(2))
    assert DelayedSchedule(ConstantSchedule(2.0), 0)(0) == 2.0


@pytest.mark.parametrize("delay", [-1, 1.5, True])
def test_delayed_schedule_rejects_bad_delays(delay):
    with pytest.raises(ValueError, match="delay"):
        DelayedSchedule(ConstantSchedule(1.0), delay)


def test_make_variant_spans_the_epochs_left_after_the_delay():
    task = TASKS["latent-hard"]
    _, s = make_variant("error", task, 25, weight=1e-3, delay=10)
    assert s(9) == 0.0 and s(10) == pytest.approx(1e-3) and s(24) == pytest.approx(1e-4)
    _, plain = make_variant("error", task, 25, weight=1e-3, delay=0)
    assert plain(0) == pytest.approx(1e-3) and plain(24) == pytest.approx(1e-4)
    for bad in (25, -1):
        with pytest.raises(ValueError, match="--weight-delay"):
            make_variant("error", task, 25, weight=1e-3, delay=bad)


def test_error_squared_weights_are_constant_and_latent_hard_other_forms_wait_for_the_last_fifth():
    for name in ("digits", "latent", "mnist1d"):
        regularizer, schedule = make_variant("error-squared", TASKS[name], 10)
        assert regularizer.reduction == "squared" and isinstance(schedule, ConstantSchedule)
        assert schedule(0) == schedule(9) > 0
    for variant, weight in (("error-squared", 1e-4), ("stiffness", 3e-3)):  # latent-hard: the last fifth
        _, schedule = make_variant(variant, TASKS["latent-hard"], 25)
        assert schedule(19) == 0.0 and schedule(20) == schedule(24) == pytest.approx(weight)
    _, delayed = make_variant("error-squared", TASKS["latent-hard"], 25, weight=3e-3, delay=20)
    assert delayed(19) == 0.0 and delayed(20) == delayed(24) == pytest.approx(3e-3)


def test_training_decays_the_lr_to_lr_end_and_skips_the_delayed_regularizer(monkeypatch, tmp_path):
    task = dataclasses.replace(TASKS["latent-hard"], name="tiny-sched", n_series=60, n_times=12, latent=4,
                               width=8, hidden=8, rtol=1e-3, atol=1e-3, lr=1e-2, lr_end=1e-3)  # fmt: skip
    monkeypatch.setitem(TASKS, task.name, task)
    config = TrainConfig(task=task.name, reg="error", epochs=3, weight=1e-3, weight_delay=1,
                         out=str(tmp_path), progress=False)  # fmt: skip
    train(config)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    history = state["history"]
    assert [h["weight"] for h in history] == pytest.approx([0.0, 1e-3, 1e-4])
    assert history[0]["regularization"] == 0.0 and history[1]["regularization"] > 0
    assert state["identity"]["lr_end"] == pytest.approx(1e-3) and state["identity"]["weight_delay"] == 1
    # the resume check sees the schedule
    with pytest.raises(ValueError, match="weight_delay"):
        train(dataclasses.replace(config, resume=True, weight_delay=2))
    assert torch.isfinite(torch.tensor(history[-1]["test_metric"]))


def test_sweep_plot_draws_each_delay_and_vanillas_course(tmp_path):
    from sciml.bench.node import _plot_sweep, _vanilla_path, choose_weight
    from sciml.checkpoint import write_json

    for seed, shift in ((0, 0.0), (1, 0.2)):
        history = [{"epoch": e, "val_nfe": 50.0 * e, "val_metric": 1.0 / e + shift} for e in (1, 2, 3)]
        write_json(tmp_path / f"v{seed}" / "metrics.json", {"history": history})
    path = _vanilla_path([str(tmp_path / "v0"), str(tmp_path / "v1")])
    assert path == [
        (1, 50.0, pytest.approx(1.1)),
        (2, 100.0, pytest.approx(0.6)),
        (3, 150.0, pytest.approx(13 / 30)),
    ]
    write_json(tmp_path / "old" / "metrics.json", {"history": [{"epoch": 1}]})
    assert _vanilla_path([str(tmp_path / "old")]) == []
    points = [{"method": "vanilla", "weight": None, "delay": None, "val_metric": 0.5, "val_nfe": 150}]
    points += [{"method": "error", "weight": w, "delay": d, "val_metric": 0.5 + w, "val_nfe": 100 - 100 * w}
               for d in (0, 2) for w in (0.1, 0.3)]  # fmt: skip
    points += [{"method": "stiffness", "weight": 0.2, "delay": 2, "val_metric": 0.7, "val_nfe": 60}]
    chosen = choose_weight(points, False, 0.25)
    assert chosen["weight"] == 0.1 and chosen["method"] == "error"
    _plot_sweep(points, "toy", "mse", tmp_path / "sweep.png", path)
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_latent_hard_error_default_regularizes_the_last_fifth_of_the_run():
    task = TASKS["latent-hard"]
    _, s = make_variant("error", task, 25)
    assert s(19) == 0.0 and s(20) == pytest.approx(5e-4) and s(24) == pytest.approx(5e-5)
    _, short = make_variant("error", task, 10)
    assert short(7) == 0.0 and short(8) == pytest.approx(5e-4)
    assert make_variant("error", task, 1)[1](0) == pytest.approx(5e-4)  # one epoch: regularized
    _, digits = make_variant("error", TASKS["digits"], 10)
    assert digits(0) == pytest.approx(3.0)
