"""The accuracy table from scratch: datasets x settings x shots, through ``instrec evaluate``'s compare.

Datasets: the real sets in ../shared/data, plus the catalogue->shelf product proxy (built
deterministically into a temporary folder from COIL-100 objects and UKBench scenes). One row per
dataset x setting x shots: top-1, top-5, MRR, mAP, AUROC, TAR@FAR=1%, median ms/query.

Usage: python benchmarks/bench_accuracy.py [--set key=value ...] [--compare "name: key=value, ..."]
       [--shots 1,2,3] [--unknown-fraction 0.2] [--datasets ukbench-dev coil100 att-faces product-proxy]
       [--report-dir DIR] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from instrec.config import Config, parse_assignments
from instrec.evaluation.compare import compare, parse_shots, settings_from_options, text_table
from instrec.evaluation.product_proxy import build_product_proxy
from instrec.evaluation.report import write_report

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PROXY = "product-proxy"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--compare", action="append", default=[], help="as `instrec evaluate --compare`")
    parser.add_argument("--shots", default="1,2,3")
    parser.add_argument("--unknown-fraction", type=float, default=0.2)
    parser.add_argument("--datasets", nargs="*", default=["ukbench-dev", "coil100", "att-faces", PROXY])
    parser.add_argument("--report-dir", type=Path, help="write one HTML report per dataset here")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args()
    base = Config.load(overrides=parse_assignments(args.sets))
    settings, shots = settings_from_options(args.compare), parse_shots(args.shots)
    print(f"base: {args.sets or 'defaults'}; unknown fraction {args.unknown_fraction} (folder-per-instance sets)")
    results = []
    with tempfile.TemporaryDirectory(prefix="instrec-proxy-") as scratch:
        for name in args.datasets:
            root = _dataset(name, Path(scratch))
            if root is None:
                print(f"{name}: absent under {DATA}")
                continue
            rows = compare(root, settings, shots, base=base, unknown_fraction=args.unknown_fraction, seed=0)
            print(f"== {name}\n{text_table(rows)}", flush=True)
            results.extend({**row.to_dict(), "dataset": name} for row in rows)
            if args.report_dir:
                write_report(rows, args.report_dir / f"{name}.html", title=f"instrec accuracy: {name}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


def _dataset(name: str, scratch: Path) -> Path | None:
    if name != PROXY:
        return DATA / name if (DATA / name).is_dir() else None
    if not (DATA / "coil100").is_dir() or not (DATA / "ukbench-dev").is_dir():
        return None
    build_product_proxy(DATA / "coil100", scratch / PROXY, backgrounds=DATA / "ukbench-dev")
    return scratch / PROXY


if __name__ == "__main__":
    main()
