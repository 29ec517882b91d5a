"""Local-feature stage on UKBench: K-shot accuracy, latency, memory, and the 100 -> 10,000 scale test.

    python benchmarks/bench_rerank.py                 # everything (~10 min on 2 cores)
    python benchmarks/bench_rerank.py --no-scale      # skip the 10K-gallery test

The whole pipeline (global + local, fused, calibrated) is measured by ``instrec evaluate --compare``
(benchmarks/bench_accuracy.py); this script isolates the local stage, whose cost is the one that
grows with the gallery.

Protocol (K-shot): per object, enrol the first K images in sorted filename order and query with the
rest; 125-way, top-1 / top-5 over *objects* (not images). Latency is end-to-end per query: SIFT
extraction of the decoded query image + local shortlist + verification + fusion, single process,
median over queries. Only local evidence is used here (no global descriptor), so the fused score is
inliers + local index score. Data: ../shared/data (read only, never copied).

For context it also runs the reference "sub-linear" approach from the issue: every gallery RootSIFT
in one flat faiss index, nearest-neighbour votes with a ratio test against the nearest neighbour
of a different image, RANSAC on the 5 most-voted images.

Times are process CPU seconds with every library single-threaded (``clock()`` below): on a shared,
busy machine wall time measures the neighbours, while single-threaded CPU time stays close to what
an idle core would take.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/faiss load their thread pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import faiss
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from instrec.profiles import RerankTuning
from instrec.rerank import LocalFeatures, LocalVerifier, extract_local_features, inlier_mask, train_vocabulary
from instrec.rerank.vocabulary import generic_vocabulary

ROOT = Path(__file__).resolve().parents[1]
clock = time.process_time


def log(*a: object) -> None:
    print(*a, flush=True)


def load_ukbench(data: Path) -> tuple[list[str], list[Image.Image]]:
    files = sorted((data / "ukbench-dev").glob("*/*.jpg"))
    return [f.parent.name for f in files], [Image.open(f).convert("RGB") for f in files]


def kshot_split(labels: list[str], k: int) -> tuple[list[int], list[int]]:
    gallery, queries = [], []
    for lab in sorted(set(labels)):
        idx = [i for i, name in enumerate(labels) if name == lab]  # files are sorted
        gallery += idx[:k]
        queries += idx[k:]
    return gallery, queries


def instance_ranks(ranked_ids: list[int], labels: list[str]) -> list[str]:
    """Distinct instance labels in ranked order."""
    seen: list[str] = []
    for i in ranked_ids:
        if labels[i] not in seen:
            seen.append(labels[i])
    return seen


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---------------------------------------------------------------------------- our pipeline
def run_kshot(cfg: RerankTuning, labels, images, feats, k_shot: int, vocab=None, ks=(10, 20, 50), timed: bool = True) -> dict:
    gallery, queries = kshot_split(labels, k_shot)
    verifier = LocalVerifier(cfg, vocab if vocab is not None else "generic")
    index = verifier.new_index()
    index.add(gallery, [feats[g] for g in gallery])
    res = {
        "n_gallery": len(gallery),
        "n_queries": len(queries),
        "ram_per_image": index.nbytes / len(gallery),
        "disk_per_image": float(np.mean([len(feats[g].pack()) for g in gallery])),
        "keypoints_per_image": float(np.mean([len(feats[g]) for g in gallery])),
    }
    top1 = {k: 0 for k in ks}
    top5 = {k: 0 for k in ks}
    sl_top1 = 0
    e2e, t_extract, t_short, t_verify = [], [], [], {k: [] for k in ks}
    kmax = max(ks)
    for qi in queries:
        t0 = clock()
        qf = verifier.extract(images[qi]) if timed else feats[qi]
        t1 = clock()
        shortlist = index.search(qf, kmax)
        t2 = clock()
        t_extract.append(t1 - t0)
        t_short.append(t2 - t1)
        sl_top1 += bool(shortlist) and labels[shortlist[0][0]] == labels[qi]
        for k in ks:
            t3 = clock()
            fused = local_stage(verifier, qf, shortlist[:k], feats, lambda c: labels[c])
            ranked = sorted(fused, key=lambda i: (-fused[i], i))
            t_verify[k].append(clock() - t3)
            inst = instance_ranks(ranked, labels)
            top1[k] += bool(inst) and inst[0] == labels[qi]
            top5[k] += labels[qi] in inst[:5]
        e2e.append(t_extract[-1] + t_short[-1] + t_verify[cfg.shortlist if cfg.shortlist in ks else ks[0]][-1])
    n = len(queries)
    res.update(
        top1={k: top1[k] / n for k in ks},
        top5={k: top5[k] / n for k in ks},
        shortlist_top1=sl_top1 / n,
        ms_e2e=1000 * statistics.median(e2e),
        ms_e2e_p90=1000 * pct(e2e, 90),
        ms_extract=1000 * statistics.median(t_extract),
        ms_shortlist=1000 * statistics.median(t_short),
        ms_verify={k: 1000 * statistics.median(t_verify[k]) for k in ks},
    )
    return res


def local_stage(verifier: LocalVerifier, query: LocalFeatures, shortlist, feats, group_of) -> dict[int, float]:
    """Verify + fuse a local shortlist (no global scores here): ``{image: fused score}``."""
    candidates = {i: feats[i] for i, _ in shortlist}
    return verifier.score(query, candidates, {}, dict(shortlist), {i: group_of(i) for i in candidates}).fused


# ---------------------------------------------------------------------------- reference approach
def run_reference(
    labels,
    images,
    feats,
    k_shot: int,
    cfg: RerankTuning,
    max_queries: int | None = None,
    gallery_extra: list[LocalFeatures] | None = None,
    gallery_override: list[int] | None = None,
    queries_override: list[int] | None = None,
) -> dict:
    """Flat RootSIFT index + votes with a different-image ratio test + RANSAC on the top 5."""
    gallery, queries = kshot_split(labels, k_shot)
    if gallery_override is not None:
        gallery, queries = gallery_override, queries_override
    queries = queries[:max_queries] if max_queries else queries
    gfeats = [feats[g] for g in gallery] + list(gallery_extra or [])
    glabels = [labels[g] for g in gallery] + ["<distractor>"] * len(gallery_extra or [])
    desc = np.concatenate([f.rootsift() for f in gfeats])
    owner = np.concatenate([np.full(len(f), j) for j, f in enumerate(gfeats)])
    flat = faiss.IndexFlatL2(128)
    flat.add(desc)
    top1 = top5 = 0
    times = []
    for qi in queries:
        t0 = clock()
        qf = extract_local_features(images[qi], cfg.max_keypoints, cfg.max_side, cfg.contrast_threshold)
        rq = qf.rootsift()
        dist, nn = flat.search(rq, 10)
        own = owner[nn]
        diff = own != own[:, :1]
        first_diff = np.argmax(diff, axis=1)
        d2 = np.where(diff.any(1), dist[np.arange(len(rq)), first_diff], np.inf)
        ok = dist[:, 0] < 0.8**2 * d2
        votes = np.bincount(own[ok, 0], minlength=len(gfeats))
        cand = np.argsort(-votes, kind="stable")[:5]
        inl = []
        for c in cand:
            g = gfeats[c]
            pair = faiss.IndexFlatL2(128)
            pair.add(g.rootsift())
            dd, n2 = pair.search(rq, 2)
            m = dd[:, 0] < 0.8**2 * dd[:, 1]
            inl.append(int(inlier_mask(qf.xy[m], g.xy[n2[m, 0]], "homography", 6.0).sum()))
        order = [cand[j] for j in np.argsort(-np.array(inl), kind="stable")]
        times.append(clock() - t0)
        inst = []
        for c in order:
            if glabels[c] not in inst:
                inst.append(glabels[c])
        top1 += inst[0] == labels[qi]
        top5 += labels[qi] in inst[:5]
    n = len(queries)
    return {
        "top1": top1 / n,
        "top5": top5 / n,
        "ms": 1000 * statistics.median(times),
        "ram_per_image": desc.nbytes / len(gfeats),
        "n_queries": n,
    }


# ---------------------------------------------------------------------------- distractors
def distractor_images(data: Path, n: int, seed: int = 0):
    """Up to ``n`` non-UKBench images: every COIL-100 view, AT&T face and beer-labels catalogue label
    (upscaled x2.5 so they carry a realistic number of keypoints), then random crops / flips /
    rotations / rescales / colour changes of those and of the scikit-image sample pictures. Yields
    PIL RGB images, deterministically."""
    rng = np.random.default_rng(seed)
    sources = (
        sorted((data / "coil100").glob("*/*.png"))
        + sorted((data / "att-faces").glob("*/*.pgm"))
        + sorted(p for p in (data / "beer-labels" / "gallery").glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    )
    base = []
    for p in sources:
        im = Image.open(p).convert("RGB")
        base.append(im)
        if len(base) <= n:
            f = min(2.5, 480 / max(im.size))  # small sources up x2.5, large labels down to photo size
            yield im.resize((round(im.width * f), round(im.height * f)), Image.BICUBIC)
    try:
        import skimage.data

        from instrec.rerank.vocabulary import SAMPLE_IMAGES

        for name in SAMPLE_IMAGES:
            a = getattr(skimage.data, name)()
            a = np.asarray(a[0] if isinstance(a, tuple) else a)
            a = a[..., :3] if a.ndim == 3 else np.stack([a] * 3, -1)
            base.append(Image.fromarray(a.astype(np.uint8)))
    except ImportError:
        pass
    made = len(sources)
    while made < n:
        im = base[rng.integers(len(base))]
        w, h = im.size
        s = rng.uniform(0.5, 1.0)
        cw, ch = max(16, int(w * s)), max(16, int(h * s))
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        out = im.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        out = out.rotate(float(rng.uniform(-30, 30)), resample=Image.BILINEAR, expand=False)
        out = ImageEnhance.Color(out).enhance(float(rng.uniform(0.4, 1.6)))  # another print, another light
        gains = rng.uniform(0.8, 1.2, 3)  # and a colour cast
        out = Image.merge("RGB", [c.point(lambda v, g=float(g): min(255, round(v * g))) for c, g in zip(out.split(), gains)])
        target = rng.uniform(240, 400)
        f = target / max(out.size)
        out = out.resize((max(16, round(out.width * f)), max(16, round(out.height * f))), Image.BICUBIC)
        yield out
        made += 1


def run_scale(cfg: RerankTuning, labels, images, feats, data: Path, n_big: int, n_queries: int, ref_queries: int) -> dict:
    """1-shot on 100 objects: latency with a 100-image gallery vs the same plus distractors."""
    objs = sorted(set(labels))[:100]
    gallery, queries = [], []
    for lab in objs:
        idx = [i for i, name in enumerate(labels) if name == lab]
        gallery.append(idx[0])
        queries += idx[1:]
    rng = np.random.default_rng(1)
    queries = sorted(rng.choice(queries, size=min(n_queries, len(queries)), replace=False).tolist())
    t0 = clock()
    extra: list[LocalFeatures] = []
    for im in distractor_images(data, n_big - len(gallery)):
        extra.append(extract_local_features(im, cfg.max_keypoints, cfg.max_side, cfg.contrast_threshold))
    log(
        f"  {len(extra)} distractors extracted in {clock() - t0:.0f} s, "
        f"{np.mean([len(f) for f in extra]):.0f} keypoints each on average"
    )
    out = {}
    verifier = LocalVerifier(cfg)
    small, big = verifier.new_index(), verifier.new_index()
    small.add(gallery, [feats[g] for g in gallery])
    big.add(gallery, [feats[g] for g in gallery])
    ids = np.arange(len(extra)) + 1_000_000
    for s in range(0, len(extra), 1000):
        big.add(ids[s : s + 1000], extra[s : s + 1000])
    all_feats = {**{g: feats[g] for g in gallery}, **dict(zip(ids.tolist(), extra))}
    out["n_small"], out["n_big"] = len(small), len(big)
    out["ram_per_image_big"] = big.nbytes / len(big)
    out["disk_per_image_big"] = float(np.mean([len(f.pack()) for f in all_feats.values()]))
    group_of = lambda i: labels[i] if i < 1_000_000 else i  # noqa: E731 - distractors: own group
    times = {"small": [], "big": []}
    correct = {"small": 0, "big": 0}
    for qi in queries:  # interleaved so machine load drifts hit both alike
        for name, index in (("small", small), ("big", big)):
            t = clock()
            qf = verifier.extract(images[qi])
            fused = local_stage(verifier, qf, index.search(qf, cfg.shortlist), all_feats, group_of)
            times[name].append(clock() - t)
            top = min(fused, key=lambda i: (-fused[i], i)) if fused else None
            correct[name] += top is not None and top < 1_000_000 and labels[top] == labels[qi]
    for name in times:
        out[f"ms_{name}"] = 1000 * statistics.median(times[name])
        out[f"top1_{name}"] = correct[name] / len(queries)
    out["ratio"] = out["ms_big"] / out["ms_small"]
    out["n_queries"] = len(queries)
    if ref_queries:
        r_small = run_reference(labels, images, feats, 1, cfg, ref_queries, None, gallery, queries)
        r_big = run_reference(labels, images, feats, 1, cfg, ref_queries, extra, gallery, queries)
        out["ref_ms_small"], out["ref_ms_big"] = r_small["ms"], r_big["ms"]
        out["ref_ram_big"] = r_big["ram_per_image"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--shots", default="1,2,3")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--no-gallery-vocab", action="store_true")
    ap.add_argument("--scale-gallery", type=int, default=10_000)
    ap.add_argument("--scale-queries", type=int, default=150)
    ap.add_argument("--scale-reference-queries", type=int, default=10)
    args = ap.parse_args(argv)
    if not (args.data / "ukbench-dev").is_dir():
        log(f"no evaluation data at {args.data} (expected ukbench-dev/ there)")
        return 2
    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)
    cfg = RerankTuning()
    log(f"config: {cfg}")
    labels, images = load_ukbench(args.data)
    t = clock()
    feats = [extract_local_features(im, cfg.max_keypoints, cfg.max_side, cfg.contrast_threshold) for im in images]
    log(
        f"ukbench-dev: {len(images)} images, {np.mean([len(f) for f in feats]):.0f} keypoints/image, "
        f"extraction {1000 * (clock() - t) / len(images):.1f} ms/image"
    )
    voc = generic_vocabulary()
    shipped = Path(__file__).parent.parent / "src/instrec/rerank/generic_vocabulary.npz"
    log(f"vocabulary: generic, {voc.size} words (shipped file {shipped})")

    shots = [int(s) for s in args.shots.split(",")]
    ks = (10, 20, 50)
    log("\n== K-shot, generic vocabulary (fused = inliers + local score; shortlist k=%d) ==" % cfg.shortlist)
    log(
        f"{'K':>2} {'gal':>4} {'qry':>4} | {'top1':>5} {'top5':>5} | {'ms e2e':>6} {'p90':>5} "
        f"{'extr':>5} {'short':>5} | {'idx B/img':>9} {'disk B/img':>10} | shortlist-only top1 | "
        + " ".join(f"k={k}: top1 +ms" for k in ks)
    )
    for k_shot in shots:
        r = run_kshot(cfg, labels, images, feats, k_shot, voc, ks)
        d = cfg.shortlist
        log(
            f"{k_shot:>2} {r['n_gallery']:>4} {r['n_queries']:>4} | {r['top1'][d]:.3f} {r['top5'][d]:.3f} | "
            f"{r['ms_e2e']:6.1f} {r['ms_e2e_p90']:5.0f} {r['ms_extract']:5.1f} {r['ms_shortlist']:5.1f} | "
            f"{r['ram_per_image']:9.0f} {r['disk_per_image']:10.0f} | {r['shortlist_top1']:.3f}               | "
            + " ".join(f"{r['top1'][k]:.3f} {r['ms_verify'][k]:5.1f}" for k in ks)
        )

    if not args.no_gallery_vocab:
        log("\n== vocabulary trained on the enrolled gallery itself (no query images) ==")
        for k_shot in (1, 3):
            gallery, _ = kshot_split(labels, k_shot)
            t = clock()
            gv = train_vocabulary(np.concatenate([feats[g].descriptors for g in gallery]), 4096, cfg.seed)
            tt = clock() - t
            r = run_kshot(cfg, labels, images, feats, k_shot, gv, (cfg.shortlist,), timed=False)
            log(
                f"K={k_shot}: {gv.size} words (trained in {tt:.0f} s) top1 {r['top1'][cfg.shortlist]:.3f} "
                f"top5 {r['top5'][cfg.shortlist]:.3f} shortlist-only top1 {r['shortlist_top1']:.3f}"
            )

    if not args.no_reference:
        log("\n== reference: flat RootSIFT index + different-image ratio votes + RANSAC top-5 ==")
        for k_shot in shots:
            r = run_reference(labels, images, feats, k_shot, cfg)
            log(
                f"K={k_shot}: top1 {r['top1']:.3f} top5 {r['top5']:.3f} ms/query {r['ms']:.1f} "
                f"RAM {r['ram_per_image']:.0f} B/img (raw float32 descriptors)"
            )

    if not args.no_scale:
        log(f"\n== scale: 1-shot, 100 objects; gallery 100 vs {args.scale_gallery} (distractors) ==")
        s = run_scale(
            cfg,
            labels,
            images,
            feats,
            args.data,
            args.scale_gallery,
            args.scale_queries,
            0 if args.no_reference else args.scale_reference_queries,
        )
        log(f"gallery {s['n_small']}: {s['ms_small']:.1f} ms/query (e2e median), top1 {s['top1_small']:.3f}")
        log(
            f"gallery {s['n_big']}: {s['ms_big']:.1f} ms/query (e2e median), top1 {s['top1_big']:.3f}, "
            f"index {s['ram_per_image_big']:.0f} B/img RAM, {s['disk_per_image_big']:.0f} B/img disk"
        )
        log(f"ratio {s['n_big']} / {s['n_small']}: {s['ratio']:.2f}x  ({s['n_queries']} queries)")
        if "ref_ms_big" in s:
            log(
                f"reference flat index: {s['ref_ms_small']:.0f} ms -> {s['ref_ms_big']:.0f} ms "
                f"({s['ref_ms_big'] / s['ref_ms_small']:.1f}x), RAM {s['ref_ram_big']:.0f} B/img"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
