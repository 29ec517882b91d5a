"""Fit the decision prior that ships in src/instrec/decision/prior.json, on the real dev sets.

The default pipeline runs on every set (1 shot, unknown fraction 0.2, seed 0; beer-labels as laid
out) and calibrates on each set's gallery as a user's library would (probes, no negatives). From
the best-match score of every query:
- thresholds: for false-accept rates 0.1 %-10 %, the median over the sets whose strangers are
  unrelated objects (--threshold-sets: ukbench-dev, att-faces) of each set's own threshold (the
  score letting that share of its never-enrolled queries through). Where strangers include
  same-brand twins of enrolled labels (beer-labels) or textureless look-alikes (COIL-100), that is
  a property of the catalogue, which the gallery's own probes measure (and raise the threshold
  for); a prior fitted on them would reject most right answers in every other library;
- the confidence curve: P(the answer is right | score) by logistic regression over all queries
  (a never-enrolled query's answer is never right), each set weighing the same, on the score's
  distance from the set's threshold (its probes' threshold blended with the new prior, as a library
  computes it) in units of that threshold's distance from the set's median stranger score.
It prints both per set and, with --write, stores them under the pipeline's scoring key (a library
under other settings does not use the prior). Rerun it whenever a default that changes scores
changes: tests/decision/test_prior.py fails until then.

Usage: python benchmarks/fit_decision_prior.py [--datasets beer-labels ukbench-dev coil100 att-faces]
       [--strength 100] [--scores scores.json] [--write]
       [--precision fp32|int8]
(--scores keeps the per-query scores: an existing file is read instead of running the sets again.
--precision int8 fits the INT8 descriptor's own prior, prior-int8.json: its scores move thresholds
by more than the prior's resolution. It needs the INT8 graph that `instrec export --int8` made for
the default descriptor in the cache.)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from pathlib import Path

import numpy as np

from instrec.config import Config
from instrec.decision import Prior, fit_logistic
from instrec.decision.calibration import MIN_STRIDE, prior_file
from instrec.evaluation.metrics import auroc
from instrec.evaluation.runner import run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RATES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)


def set_threshold(strangers: np.ndarray, far: float) -> float:
    """Strictly above the stranger score that lets ``far`` of them through."""
    return float(np.nextafter(np.quantile(strangers, 1.0 - far, method="higher"), np.inf))


def collect(datasets: list[str], config: Config) -> dict[str, dict]:
    """Per set, each query's (best-match score, answer right, never enrolled), and what the
    gallery's own calibration measured (its threshold, on how many impostor scores, their median)."""
    out = {}
    for name in datasets:
        if not (DATA / name).is_dir():
            raise SystemExit(f"{DATA / name} is absent: the prior needs every dev set")
        result = run(DATA / name, shots=1, unknown_fraction=0.2, seed=0, config=config)
        measured = result.calibration
        out[name] = {
            "rows": [(o.top_score, o.correct, o.truth is None) for o in result.outcomes],
            "measured": measured.measured_threshold,
            "impostors": measured.impostor,
            "stranger_median": measured.stranger_median,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="*", default=["beer-labels", "ukbench-dev", "coil100", "att-faces"])
    parser.add_argument("--threshold-sets", nargs="*", default=["ukbench-dev", "att-faces"])
    parser.add_argument("--strength", type=int, default=100, help="impostor scores the prior weighs as")
    parser.add_argument("--write", action="store_true", help="store the fit in src/instrec/decision/prior[-int8].json")
    parser.add_argument("--scores", type=Path, help="per-query scores: read if the file exists, else written")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="of the descriptor the prior is for")
    args = parser.parse_args()
    config = Config.load().with_overrides({"descriptor.precision": args.precision})
    if args.scores and args.scores.exists():
        per_set = json.loads(args.scores.read_text())
    else:
        per_set = collect(args.datasets, config)
        if args.scores:
            args.scores.write_text(json.dumps(per_set))
    for name, measured in per_set.items():
        rows = measured["rows"]
        strangers = np.asarray([score for score, _, unknown in rows if unknown])
        known = [(score, right) for score, right, unknown in rows if not unknown]
        separation = auroc(np.asarray([score for score, _ in known]), strangers)
        print(
            f"{name}: {len(rows)} queries, {len(strangers)} never enrolled; top-1 "
            f"{np.mean([right for _, right in known]):.3f}, AUROC {separation:.3f}; own threshold at 1 % "
            f"{set_threshold(strangers, 0.01):.3f}; probes: threshold {measured['measured']:.3f} on "
            f"{measured['impostors']} impostor scores, median {measured['stranger_median']:.3f}",
            flush=True,
        )
    unknown_scores = {name: np.asarray([s for s, _, u in per_set[name]["rows"] if u]) for name in args.threshold_sets}
    thresholds = {
        f"{far:g}": float(np.median([set_threshold(unknown_scores[name], far) for name in args.threshold_sets])) for far in RATES
    }
    prior = Prior(
        key=config.scoring_key(),
        thresholds=thresholds,
        slope=1.0,
        offset=0.0,
        stranger_median=float(np.median([m["stranger_median"] for m in per_set.values()])),
        strength=args.strength,
        fitted_on="",
    )
    strides, labels, weights = [], [], []
    for measured in per_set.values():
        threshold, _ = prior.blend(config.decision.target_far, measured["measured"], measured["impostors"])
        stride = max(threshold - measured["stranger_median"], MIN_STRIDE)
        strides += [(score - threshold) / stride for score, _, _ in measured["rows"]]
        labels += [right for _, right, _ in measured["rows"]]
        weights += [1.0 / len(measured["rows"])] * len(measured["rows"])
    slope, offset = fit_logistic(np.asarray(strides), np.asarray(labels, float), np.asarray(weights))
    prior = dataclasses.replace(
        prior,
        slope=slope,
        offset=offset,
        fitted_on=f"thresholds on {', '.join(args.threshold_sets)}, confidence on {', '.join(per_set)}; "
        f"1 shot, unknown fraction 0.2, seed 0; {datetime.date.today().isoformat()}",
    )
    print("thresholds:", {far: round(t, 4) for far, t in thresholds.items()})
    print(
        f"confidence: sigmoid({slope:.2f} * (score - threshold) / (threshold - median stranger) + {offset:.3f}); "
        f"median stranger before measuring {prior.stranger_median:.3f}"
    )
    if args.write:
        prior.save(prior_file(args.precision))
        print(f"written to {prior_file(args.precision)}")


if __name__ == "__main__":
    main()
