"""Fit the decision prior that ships in src/instrec/decision/prior.json, on the real dev sets.

The default pipeline runs on every set (1 shot, unknown fraction 0.2, seed 0; beer-labels as laid
out), without calibrating. From the best-match score of every query:
- thresholds: for false-accept rates 0.1 %-10 %, the score that lets that share of never-enrolled
  queries through, each set weighing the same;
- the confidence curve: P(the answer is right | score) by logistic regression over all queries
  (a never-enrolled query's answer is never right), each set weighing the same.
It prints both per set and, with --write, stores them under the pipeline's scoring key (a library
under other settings does not use the prior). Rerun it whenever a default that changes scores
changes: tests/decision/test_prior.py fails until then.

Usage: python benchmarks/fit_decision_prior.py [--datasets beer-labels ukbench-dev coil100 att-faces]
       [--strength 200] [--write]
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from instrec.config import Config
from instrec.decision import Prior, fit_logistic
from instrec.evaluation.runner import run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RATES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)


def weighted_threshold(strangers: list[np.ndarray], far: float) -> float:
    """The lowest score t with mean over sets of share(stranger score >= t) <= far (strictly above a score)."""
    candidates = np.unique(np.concatenate(strangers))
    for t in candidates:
        above = np.nextafter(t, np.inf)
        if np.mean([np.mean(s >= above) for s in strangers]) <= far:
            return float(above)
    return float(np.nextafter(candidates[-1], np.inf))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="*", default=["beer-labels", "ukbench-dev", "coil100", "att-faces"])
    parser.add_argument("--strength", type=int, default=200, help="impostor scores the prior weighs as")
    parser.add_argument("--write", action="store_true", help="store the fit in src/instrec/decision/prior.json")
    args = parser.parse_args()
    config = Config.load()
    strangers, scores, labels, weights = [], [], [], []
    for name in args.datasets:
        if not (DATA / name).is_dir():
            raise SystemExit(f"{DATA / name} is absent: the prior needs every dev set")
        outcomes = run(DATA / name, shots=1, unknown_fraction=0.2, seed=0, config=config, calibrate=False).outcomes
        unknown = np.asarray([o.top_score for o in outcomes if o.truth is None])
        strangers.append(unknown)
        scores += [o.top_score for o in outcomes]
        labels += [o.correct for o in outcomes]
        weights += [1.0 / len(outcomes)] * len(outcomes)
        print(f"{name}: {len(outcomes)} queries, {len(unknown)} never enrolled; stranger score p50/p99 "
              f"{np.median(unknown):.3f}/{np.quantile(unknown, 0.99):.3f}", flush=True)
    thresholds = {f"{far:g}": weighted_threshold(strangers, far) for far in RATES}
    slope, intercept = fit_logistic(np.asarray(scores), np.asarray(labels, float), np.asarray(weights))
    at_one = thresholds["0.01"]
    prior = Prior(key=config.scoring_key(), thresholds=thresholds, slope=slope, offset=slope * at_one + intercept,
                  strength=args.strength,
                  fitted_on=f"{', '.join(args.datasets)}; 1 shot, unknown fraction 0.2, seed 0; "
                            f"{datetime.date.today().isoformat()}")
    print("thresholds:", {far: round(t, 4) for far, t in thresholds.items()})
    print(f"confidence: sigmoid({slope:.2f} * (score - {at_one:.4f}) + {prior.offset:.3f})")
    if args.write:
        prior.save()
        print("written to src/instrec/decision/prior.json")


if __name__ == "__main__":
    main()
