"""The accuracy table from scratch: datasets x settings x shots, through ``instrec evaluate``'s compare.

Datasets: the real sets in ../shared/data, plus the catalogue->shelf product proxy (built
deterministically into a temporary folder from COIL-100 objects and UKBench scenes). One row per
dataset x setting x shots: top-1, top-5, MRR, mAP, AUROC, TAR@FAR=1%, median ms/query.

The proxy draws which objects are enrolled, which are unknown and how each is pasted from its seed,
and its AUROC rests on a few hard unknowns: seeds 0-4 measured 0.934, 0.932, 0.902, 0.935 and 0.925
on one pipeline. ``--proxy-seeds 0,1,2,3,4`` builds one proxy per seed and adds their mean, the
figure to compare settings by.

Usage: python benchmarks/bench_accuracy.py [--set key=value ...] [--compare "name: key=value, ..."]
       [--shots 1,2,3] [--unknown-fraction 0.2] [--datasets ukbench-dev coil100 att-faces product-proxy]
       [--proxy-seeds 0] [--report-dir DIR] [--json results.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from product_proxy import ProxySpec, build_product_proxy

from instrec.config import Config, parse_assignments
from instrec.evaluation.compare import compare, parse_shots, settings_from_options, text_table
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
    parser.add_argument("--proxy-seeds", default="0", help="comma list: one product proxy per seed, then their mean")
    parser.add_argument("--report-dir", type=Path, help="write one HTML report per dataset here")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args()
    base = Config.load(overrides=parse_assignments(args.sets))
    settings, shots = settings_from_options(args.compare), parse_shots(args.shots)
    print(f"base: {args.sets or 'defaults'}; unknown fraction {args.unknown_fraction} (folder-per-instance sets)")
    results = []
    proxy_seeds = [int(seed) for seed in args.proxy_seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="instrec-proxy-") as scratch:
        for name, root in _datasets(args.datasets, proxy_seeds, Path(scratch)):
            if root is None:
                print(f"{name}: absent under {DATA}")
                continue
            rows = compare(root, settings, shots, base=base, unknown_fraction=args.unknown_fraction, seed=0)
            print(f"== {name}\n{text_table(rows)}", flush=True)
            results.extend({**row.to_dict(), "shots": row.shots, "dataset": name} for row in rows)
            if args.report_dir:
                write_report(rows, args.report_dir / f"{name}.html", title=f"instrec accuracy: {name}")
    if len(proxy_seeds) > 1:
        _print_proxy_mean([row for row in results if row["dataset"].startswith(PROXY)])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


def _datasets(names: list[str], proxy_seeds: list[int], scratch: Path) -> list[tuple[str, Path | None]]:
    """(name, root) per dataset; the proxy once per seed (seed 0 keeps the plain name), built on the way."""
    found: list[tuple[str, Path | None]] = []
    for name in names:
        if name != PROXY:
            found.append((name, DATA / name if (DATA / name).is_dir() else None))
        elif not (DATA / "coil100").is_dir() or not (DATA / "ukbench-dev").is_dir():
            found.append((name, None))
        else:
            for seed in proxy_seeds:
                label = PROXY if seed == 0 else f"{PROXY}-seed{seed}"
                build_product_proxy(
                    DATA / "coil100",
                    scratch / label,
                    backgrounds=DATA / "ukbench-dev",
                    spec=dataclasses.replace(ProxySpec(), seed=seed),
                )
                found.append((label, scratch / label))
    return found


def _print_proxy_mean(rows: list[dict]) -> None:
    """Mean over the proxy seeds of each setting's top-1, AUROC and TAR, and their spread."""
    print(f"== {PROXY}, mean over {len({row['dataset'] for row in rows})} seeds (min-max)")
    for setting in dict.fromkeys(row["setting"] for row in rows):
        cells = []
        for key, label in (("top1", "top-1"), ("auroc", "AUROC"), ("tar_at_far_1pct", "TAR@FAR=1%")):
            values = [row[key] for row in rows if row["setting"] == setting and row.get(key) is not None]
            if values:
                cells.append(f"{label} {statistics.fmean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        print(f"{setting:14} " + "   ".join(cells))


if __name__ == "__main__":
    main()
