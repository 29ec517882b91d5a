"""Fit the faces profile's stranger tail (profiles.StrangerTail, decision/tail.py) on att-faces.

Every photo is described by the faces profile's embedder; over all pairs of photos of different
people, the distance d = sqrt(2 - 2 cos) between their unit vectors is modelled near its low end as
P(d < r) = (r / scale) ** dim. dim is the Hill estimate over the pairs below the --tail quantile
r0 (dim = 1 / mean(log(r0 / d))), and scale puts the model through that quantile. It prints the
constants and checks them: for galleries of 1, 3, 10 and 32 people of 1 and 3 shots each, drawn at
random (--draws, --seed) from the other people, the cosine that 1 % of a stranger photo's best
scores reach, against the model's threshold for that many vectors. Copy the constants into
src/instrec/profiles.py (they are the profile's, never the data's).

    python benchmarks/fit_face_tail.py [--tail 0.02] [--draws 200] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from instrec.config import Config
from instrec.decision.tail import tail_threshold
from instrec.embedding.faces import FaceEmbedder
from instrec.images import iter_image_files

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "att-faces"
FAR = 0.01
GALLERIES = ((1, 1), (3, 1), (10, 1), (32, 1), (1, 3), (3, 3), (10, 3), (32, 3))  # (people, shots each)


def fit_tail(cosines: np.ndarray, tail: float) -> tuple[float, float]:
    """(scale, dim) of P(d < r) = (r / scale) ** dim fitted on the pairs below the ``tail`` quantile of d."""
    distances = np.sqrt(np.maximum(2.0 - 2.0 * np.asarray(cosines, np.float64), 0.0))
    edge = float(np.quantile(distances, tail))
    below = distances[(distances < edge) & (distances > 0)]
    dim = 1.0 / float(np.mean(np.log(edge / below)))
    return edge * tail ** (-1.0 / dim), dim


def stranger_cosines(vectors: np.ndarray, people: np.ndarray) -> np.ndarray:
    """The cosines of every pair of photos of different people."""
    upper = np.triu_indices(len(vectors), 1)
    different = people[upper[0]] != people[upper[1]]
    return (vectors @ vectors.T)[upper][different]


def gallery_draws(
    vectors: np.ndarray, people: np.ndarray, enrolled: int, shots: int, draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per draw of ``enrolled`` people (``shots`` first photos each): every photo of the others' best
    cosine with the gallery (a stranger's score), and every other photo of the enrolled people's best
    cosine with their own person's shots and with anyone else's (scores of right and wrong answers)."""
    names = np.unique(people)
    first = np.zeros(len(people), bool)
    for name in names:
        first[np.flatnonzero(people == name)[:shots]] = True
    strangers, own, other = [], [], []
    for _ in range(draws):
        chosen = rng.choice(names, enrolled, replace=False)
        inside = np.isin(people, chosen)
        gallery = np.flatnonzero(inside & first)
        cosines = vectors @ vectors[gallery].T
        strangers.append(cosines[~inside].max(axis=1))
        queries = np.flatnonzero(inside & ~first)
        same = people[queries][:, None] == people[gallery][None, :]
        own.append(np.where(same, cosines[queries], -1.0).max(axis=1))
        other.append(np.where(same, -1.0, cosines[queries]).max(axis=1))
    return np.concatenate(strangers), np.stack([np.concatenate(own), np.concatenate(other)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tail", type=float, default=0.02, help="share of the pairs the model is fitted on")
    parser.add_argument("--draws", type=int, default=200, help="random galleries per size in the check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent (see ../shared/data/README.md)")
    face = Config.load(overrides={"profile": "faces"}).tuning.face
    assert face is not None
    paths = iter_image_files(DATA, recursive=True)
    embedder = FaceEmbedder(face)
    vectors = np.concatenate([embedder.embed([_rgb(path)]) for path in paths])
    people = np.asarray([path.parent.name for path in paths])
    cosines = stranger_cosines(vectors, people)
    scale, dim = fit_tail(cosines, args.tail)
    print(f"{len(cosines)} pairs of different people ({face.detector}); fitted on the lowest {args.tail:.0%} of distances:")
    print(f"StrangerTail(scale={scale:.4f}, dim={dim:.2f})")
    model = tail_threshold(scale, dim, FAR, 1)
    print(f"cosine 1 % of pairs reach: {np.quantile(cosines, 1 - FAR):.3f} measured, {model:.3f} model")
    rng = np.random.default_rng(args.seed)
    print("| people | shots | vectors | measured (1 % of strangers' best) | model |\n|---|---|---|---|---|")
    for enrolled, shots in GALLERIES:
        strangers, _ = gallery_draws(vectors, people, enrolled, shots, args.draws, rng)
        measured, model = np.quantile(strangers, 1 - FAR), tail_threshold(scale, dim, FAR, enrolled * shots)
        print(f"| {enrolled} | {shots} | {enrolled * shots} | {measured:.3f} | {model:.3f} |")


def _rgb(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


if __name__ == "__main__":
    main()
