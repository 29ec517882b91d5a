"""Does every scoring component that is on by default earn its place on real data?

One row per component switched off, one at a time, against the defaults, on every real set:
beer-labels as laid out, ukbench-dev / att-faces / coil100 at 1 shot with unknown fraction 0.2
(seed 0): top-1, AUROC, TAR@FAR=1% and ms per query (the rows are not calibrated: the decision at
the calibrated threshold is bench_real.py's). A component stays on only if it gains on at least two
sets and loses no more than a point on any.

    python benchmarks/bench_ablation.py [--datasets beer-labels ukbench-dev att-faces coil100]
                                        [--json rows.jsonl] [--results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from results import write_section

from instrec.config import Config
from instrec.evaluation.compare import Setting, compare

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OFF = {
    "defaults": {},
    "no colour": {"tuning.rerank.weight_colour": "0"},
    "no local shortlist": {"tuning.rerank.local_shortlist": "0"},
    "no competitors": {"tuning.decision.competitor_weight": "0"},
    "no re-ranking (global only)": {"rerank.enabled": "false"},
}
COLUMNS = ("top1", "auroc", "tar_at_far_1pct", "ms_per_query")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="*", default=["beer-labels", "ukbench-dev", "att-faces", "coil100"])
    parser.add_argument("--json", type=Path, help="append every row here as it is measured")
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    settings = [Setting(name, overrides) for name, overrides in OFF.items()]
    lines = [
        "1 shot, unknown fraction 0.2, seed 0; ms/query is the wall median.",
        "",
        "| set | setting | top-1 | AUROC | TAR@FAR=1% | ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.datasets:
        root = DATA / name
        if not root.is_dir():
            print(f"{name}: absent under {DATA}")
            continue
        for row in compare(root, settings, [1], base=Config.load(), unknown_fraction=0.2, seed=0, calibrate=False):
            s = row.run.summary
            lines.append(
                f"| {name} | {row.setting.name} | "
                + " | ".join(
                    "-" if s.get(c) is None else (f"{s[c]:.0f}" if c == "ms_per_query" else f"{s[c]:.3f}") for c in COLUMNS
                )
                + " |"
            )
            print(lines[-1], flush=True)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps({"dataset": name, "setting": row.setting.name, **{c: s.get(c) for c in COLUMNS}}) + "\n")
            if args.results:
                write_section("Ablation: each default component off", "python benchmarks/bench_ablation.py --results", lines)


if __name__ == "__main__":
    main()
