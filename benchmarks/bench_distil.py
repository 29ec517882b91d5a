"""Does a distilled student reach its teacher's accuracy at its own cost?

The split of bench_train.py: distillation data is the training half (COIL-100 objects 2-50, AT&T
persons 1-20; each photo and its augmented views, labels unused), measured on the other half
(1 shot, a fifth of the measured instances unknown, global descriptor only). Rows: the teacher
(pretrained, cosine), the student before (pretrained) and after distillation (several seeds), and
the student PCA-whitened on the same unlabelled photos (what those photos give without a teacher).
ms/image of teacher and student are timed interleaved, in the same run, on the measured photos.

    python benchmarks/bench_distil.py [--teacher efficientnet_lite2] [--teacher-side PX] [--cache /tmp/instrec-bench-train]
        [--seeds 0 1 2] [--epochs 30] [--timed 64] [--rounds 5] [--results]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench_train import DATA, PROTOCOLS, VIEWS, _number, halves, measured
from instrec.config import Config
from instrec.embedding.whitening import fit_whitening
from instrec.images import load_image
from instrec.training.data import read_labelled_folder
from instrec.training.distill import WHITENED_DIMS, DistilSettings, distil_head, student_and_teacher
from results import write_section


def ms_per_image(embeds: dict[str, Callable[[list[Any]], np.ndarray]], photos: list[Any], rounds: int) -> dict[str, float]:
    """Median over ``rounds`` of each embedding's ms/image on ``photos``, taking turns within every
    round (a loaded machine slows both alike)."""
    for embed in embeds.values():
        embed(photos[:2])  # warm up: sessions, first allocations
    times: dict[str, list[float]] = {name: [] for name in embeds}
    for _ in range(rounds):
        for name, embed in embeds.items():
            started = time.perf_counter()
            embed(photos)
            times[name].append(1000 * (time.perf_counter() - started) / len(photos))
    return {name: float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teacher", default="efficientnet_lite2")
    parser.add_argument("--teacher-side", type=int, help="the teacher's long side in px (default: the student's)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/instrec-bench-train"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--timed", type=int, default=64, help="measured photos per protocol timed for ms/image")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    config = Config.load()
    base = DistilSettings(args.teacher, args.epochs, teacher_side=args.teacher_side)
    student, teacher = student_and_teacher(config, base)
    named = f"{args.teacher} at {teacher.tuning.max_side} px"
    lines = [
        f"Student: {config.descriptor.backbone} at {student.tuning.max_side} px, frozen, with a linear head distilled",
        f"from {named} (both PCA-whitened on the same photos; the head starts as the student's whitening,",
        f"refined by the relational loss) on the training half's photos and {VIEWS} augmented views each,",
        f"labels unused; {DistilSettings().val_fraction:.0%} of those photos held out to stop on. ms/image: median of "
        f"{args.rounds} interleaved rounds over {args.timed} measured photos per set, batch {config.runtime.batch_size},",
        f"ONNX Runtime, on {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start (compare the two,",
        "not across runs).",
        "",
    ]
    for protocol in PROTOCOLS:
        s_train, s_test = halves(protocol, student, args.cache)
        t_train, t_test = halves(protocol, teacher, args.cache / f"{args.teacher}-{teacher.tuning.max_side}")
        rows = [measured(f"teacher {named}, cosine", t_test.vectors, t_test)]
        dims = min(WHITENED_DIMS, len(s_train.vectors) - 1)
        teacher_pca = fit_whitening(t_train.vectors, dims)
        rows.append(measured(f"teacher, PCA-whitened on the same photos ({dims}-d)", teacher_pca.apply(t_test.vectors), t_test))
        rows.append(measured(f"student {config.descriptor.backbone}, cosine (before)", s_test.vectors, s_test))
        pca = fit_whitening(s_train.vectors, dims)
        rows.append(
            measured(f"student, PCA-whitened on the same photos ({dims}-d): the start", pca.apply(s_test.vectors), s_test)
        )
        for seed in args.seeds:
            settings = dataclasses.replace(base, seed=seed)
            started = time.perf_counter()
            fitted = distil_head(s_train, t_train, settings)
            row = measured(f"student distilled, seed {seed}", fitted.head.apply(s_test.vectors), s_test)
            row |= {"seconds": time.perf_counter() - started, **fitted.metrics}
            rows.append(row)
            print(protocol.dataset, row, flush=True)
        folder = read_labelled_folder(DATA / protocol.dataset).subset(lambda name: protocol.measures(_number(name)))
        files = [path for paths in folder.files for path in paths]
        picked = np.linspace(0, len(files) - 1, min(args.timed, len(files))).astype(int)
        photos = [load_image(files[i]).pixels for i in picked]
        head = fitted.head  # the student as deployed: its backbone, then the head
        speed = ms_per_image({"teacher": teacher.embed, "student": lambda p: head.apply(student.embed(p))}, photos, args.rounds)
        lines += [f"**{protocol.label}**, 1 shot; ms/image teacher {speed['teacher']:.1f}, student {speed['student']:.1f}", ""]
        lines += ["| | top-1 | AUROC (1/5 unknown) | val. relational error (start → kept) | best epoch | s |"]
        lines += ["|---|---|---|---|---|---|"]
        for row in rows:
            extra = " | | "
            if "seconds" in row:
                cosines = f"{row['validation_error_start']:.5f} → {row['validation_error']:.5f}"
                extra = f"{cosines} | {row['best_epoch']} | {row['seconds']:.0f}"
            lines.append(f"| {row['row']} | {row['top1']:.3f} | {row['auroc']:.3f} | {extra} |")
        lines.append("")
    print("\n".join(lines))
    if args.results:
        command = "python benchmarks/bench_distil.py " + " ".join(sys.argv[1:]).replace(" --results", "")
        write_section(f"Distillation: a Lite0 student from {named} (instrec train --teacher)", command.strip(), lines)


if __name__ == "__main__":
    main()
