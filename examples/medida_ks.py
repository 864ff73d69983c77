"""MEDIDA on Kuramoto–Sivashinsky: find what an imperfect model is missing, from one observation pair.

The truth is ``u_t + u u_x + u_xx + u_xxxx = 0``; the model lacks the hyperviscous ``u_xxxx`` term and has
a wrong ``u u_x`` coefficient. The library is extended by a user term (``u^5``) to show that candidates are
not fixed. Then the same with 1 % observation noise (EnKF analyses, slower: about a minute per round).

    python examples/medida_ks.py            # noise-free only
    python examples/medida_ks.py --noisy    # also 1 % noise
"""

from __future__ import annotations

import argparse

import torch

from sciml.medida import Library, discover, ks_lyapunov_exponent, ks_observations, ks_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--noisy",
        action="store_true",
        help="also run with 1 %% observation noise (slower: about a minute per round)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    truth = ks_truth()
    model = truth.update_terms({"u*u_x": -0.5, "u_xxxx": 0.0})  # u_t = -0.5 u u_x - u_xx (no u_xxxx)
    library = Library.polynomial().extend("u^5")
    lam = ks_lyapunov_exponent()
    print(f"truth : {truth.equation('=0')}\nmodel : {model.equation('=0')}\nλ = {lam:.3f}")

    observations, _ = ks_observations(1, 2)  # one pair at t = 100.5, dt = 1e-3 apart
    found = discover(model, observations, library=library, lyapunov_exponent=lam)
    print(f"\nnoise-free, one pair: {found.correction.equation()}")
    for name, value in found.terms.items():
        print(f"    {name:>8s} = {value:+.10f} ± {found.correction.uncertainties[name]:.1e}")
    print(f"corrected: {found.equation()}  ({found.seconds:.1f} s)")

    if args.noisy:
        observations, _ = ks_observations(1, 1500, noise=0.01)
        found = discover(
            model, observations, library=library, members=100, lyapunov_exponent=lam, progress=True
        )
        print(f"\n1 % noise (estimated σ = {found.noise_std:.4f}, band ≤ mode {found.band}):")
        for record in found.history:
            print(f"    round {record['iteration']}: {record['terms']}  ({record['seconds']:.0f} s)")
        print(f"corrected: {found.equation()}  ({found.seconds:.0f} s)")


if __name__ == "__main__":
    main()
