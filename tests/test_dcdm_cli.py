"""``sciml dcdm`` command line: every number validated (the flag named), --resume needs a checkpoint,
the loss plot ends at the printed final loss."""

import numpy as np
import pytest

from sciml import cli
from sciml.dcdm.train import LOSS_WINDOW, TrainConfig, _final_loss, _plot_loss, _trailing_mean, train


def sciml(capsys, *args):
    """Run ``sciml ARGS`` in this process: (exit status, stderr)."""
    try:
        rc = cli.main(list(args))
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--lr", "0"),
        ("--lr", "nan"),
        ("--batch-size", "0"),
        ("--white-fraction", "2"),
        ("--steps", "1.5"),
        ("--size", "4"),
        ("--coarsest", "1"),
        ("--k", "-1"),
        ("--threads", "0"),
        ("--cycle", "X"),
    ],
)
def test_train_flags_are_validated_naming_the_flag(flag, value, tmp_path, capsys):
    rc, err = sciml(capsys, "dcdm", "train", "--out", str(tmp_path / "run"), flag, value)
    assert rc == 2 and f"argument {flag}" in err, err


def test_eval_flags_are_validated(capsys):
    for flag, value in (("--rtol", "-1"), ("--layouts", "0"), ("--sizes", "2"), ("--threads", "0")):
        rc, err = sciml(capsys, "dcdm", "eval", flag, value)
        assert rc == 2 and f"argument {flag}" in err, err


def test_config_errors_name_the_flag():
    with pytest.raises(ValueError, match=r"`lanczos_steps` \(--lanczos-steps\)"):
        TrainConfig(lanczos_steps=0)
    with pytest.raises(ValueError, match=r"`architecture` \(--architecture\)"):
        TrainConfig(architecture="resnet")


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(TrainConfig(size=16, coarsest=4, steps=2), tmp_path / "empty", resume=True, progress=False)
    rc, err = sciml(capsys, "dcdm", "train", "--out", str(tmp_path / "empty2"), "--resume")
    assert rc == 2 and "no checkpoint" in err, err


def test_loss_curve_ends_at_the_printed_final_loss(tmp_path):
    rng = np.random.default_rng(0)
    for n in (7, 200):
        losses = list(np.exp(-np.arange(n) / 50) * (1 + 0.3 * rng.random(n)))
        curve = _trailing_mean(losses)
        assert curve[-1] == pytest.approx(np.mean(losses[-LOSS_WINDOW:]), rel=1e-12)
        assert _final_loss(losses) == curve[-1] and len(curve) == n
        _plot_loss(losses, tmp_path / f"loss{n}.png")
        assert (tmp_path / f"loss{n}.png").stat().st_size > 0
    assert _final_loss([]) is None
