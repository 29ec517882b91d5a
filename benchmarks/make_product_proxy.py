"""Build the "catalogue photo -> shelf photo" proxy set (outside the repo) and print the baseline on it.

Objects come from COIL-100 (dark background: clean cut-outs), scenes from UKBench photos, both in
../shared/data. The set is deterministic for a seed; see benchmarks/product_proxy.py.

Usage: python benchmarks/make_product_proxy.py [--out /tmp/instrec-product-proxy] [--seed 0]
       [--set key=value ...] [--report proxy.html] [--no-eval]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from product_proxy import ProxySpec, build_product_proxy

from instrec.config import Config, parse_assignments
from instrec.evaluation.compare import compare, settings_from_options, text_table
from instrec.evaluation.report import write_report

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/instrec-product-proxy"))
    parser.add_argument("--objects", type=Path, default=DATA / "coil100")
    parser.add_argument("--backgrounds", type=Path, default=DATA / "ukbench-dev")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--report", type=Path)
    parser.add_argument("--no-eval", action="store_true", help="only build the set")
    args = parser.parse_args()
    counts = build_product_proxy(args.objects, args.out, backgrounds=args.backgrounds, spec=ProxySpec(seed=args.seed))
    print(f"proxy set in {args.out}: {counts}")
    if args.no_eval:
        return
    rows = compare(args.out, settings_from_options([]), [1], base=Config.load(overrides=parse_assignments(args.sets)))
    print(text_table(rows))
    summary = rows[0].run.summary
    print(
        f"at the calibrated threshold {summary['threshold']:.3f}: accept-correct {summary['accept_correct']:.3f}, "
        f"true-reject {summary['true_reject']:.3f}, false-accept {summary['false_accept']:.3f}"
    )
    if args.report:
        print(f"report: {write_report(rows, args.report, title='product proxy: baseline')}")


if __name__ == "__main__":
    main()
