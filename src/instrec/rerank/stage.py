"""Second stage of recognition: turn the global shortlist into instance scores verified by geometry.

Candidates are the best ``rerank.shortlist`` gallery images by global similarity plus the best
``rerank.local_shortlist`` by local evidence (the local index finds objects the global descriptor
ranked low, e.g. a small product in a cluttered shelf photo). Each gets an exact cosine, its local
score, its RANSAC inliers and its colour similarity to the query row that matched it best, fused
into one [0, 1] score; an instance scores as its best image, and keeps the inlier evidence of its
best-verified image as a channel of its own (:func:`instrec.decision.against_competitors`).

The rows that matched the best candidates are looked at a second time (``rerank.second_look``):
cut out of the photo and embedded on their own, a candidate keeps the better of the two cosines.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from instrec.decision import InstanceScore, Query
from instrec.library import Library, SearchHits
from instrec.rerank.colour import QueryColours, colour_similarity
from instrec.rerank.features import LocalFeatures
from instrec.rerank.fuse import inlier_evidence

# The second look crops only regions covering at most this share of the photo: a larger one's pooled
# vector sees little clutter beyond it, and its crop is nearly the whole photo, embedded already.
# (Replayed on product proxy seeds 0/1/2: AUROC 0.926/0.926/0.895 cropping the best 4 rows of any
# size, 0.933/0.926/0.892 cropping the best 2 of at most this size.)
SMALL_REGION = 0.25


@dataclass(frozen=True)
class QueryCrops:
    """What the second look needs of a query photo: its rows' boxes and a way to embed crops."""

    boxes: np.ndarray  # (R, 4): each row's (top, bottom, left, right) as fractions, row 0 the whole photo
    embed: Callable[[np.ndarray], np.ndarray]  # (n, 4) boxes -> (n, dim) unit vectors of those crops


@dataclass(frozen=True)
class VerifiedRanking:
    instances: list[InstanceScore]  # best first, by their best image's fused score
    images: list[tuple[int, int, float]]  # (image pk, instance pk, fused score) of every candidate, best first


def verified_ranking(
    library: Library,
    query: Query,
    features: LocalFeatures,
    hits: SearchHits,
    colours: QueryColours | None = None,
    crops: QueryCrops | None = None,
) -> VerifiedRanking:
    """Candidates scored and grouped by instance.

    ``colours`` (the query's colour per search row) adds colour evidence; None leaves it out.
    ``crops`` embeds query rows as crops for the second look; None skips it.
    """
    verifier = library.verifier
    catalog = library.catalog
    n = verifier.config.shortlist
    image_of = catalog.image_of_vectors(hits.vector_ids.tolist())
    cosine: dict[int, float] = {}
    vector_of: dict[int, int] = {}  # image -> one of its vectors (names the evidence for thumbnails)
    for score, vector_id in zip(hits.scores.tolist(), hits.vector_ids.tolist()):
        image = image_of.get(vector_id)
        if image is not None and image not in cosine and len(cosine) < n:
            cosine[image], vector_of[image] = score, vector_id
    n_local = verifier.config.local_shortlist
    local_scores = dict(library.local_search([features], n_local)[0]) if n_local else {}
    _exact_cosines(library, query, [i for i in local_scores if i not in cosine], cosine, vector_of)
    candidates = list(cosine)
    stored = catalog.local_features_by_pk(candidates)
    instance_of = {i: inst for i, (inst, _) in stored.items()}
    instance_of.update(catalog.instance_of_images([i for i in candidates if i not in instance_of]))
    unpacked = {i: LocalFeatures.unpack(data) for i, (_, data) in stored.items()}
    looking = crops is not None and verifier.config.second_look > 0
    weighed = colours is not None and verifier.config.weight_colour > 0
    matched = _best_rows(library, query, vector_of) if looking or weighed else {}
    if looking:
        _second_look(crops, matched, cosine, verifier.config.second_look)
    colour = _colour_similarities(colours, unpacked, matched) if weighed else None
    fused, inliers = verifier.score(features, unpacked, cosine, local_scores, instance_of, colour)
    best: dict[int, InstanceScore] = {}
    geometry: dict[int, float] = {}  # per instance, the inlier evidence of its best-verified image
    images = []
    for image in sorted(fused, key=lambda i: (-fused[i], i)):
        instance = instance_of.get(image)
        if instance is None:  # removed meanwhile
            continue
        images.append((image, instance, fused[image]))
        geometry[instance] = max(geometry.get(instance, 0.0), inlier_evidence(inliers[image], verifier.config))
        if instance not in best:
            best[instance] = InstanceScore(instance, fused[image], vector_of[image], inliers[image])
    instances = [dataclasses.replace(s, geometry=geometry[s.instance_pk]) for s in best.values()]
    return VerifiedRanking(instances, images)


def _exact_cosines(library: Library, query: Query, images: list[int],
                   cosine: dict[int, float], vector_of: dict[int, int]) -> None:
    """Fill in the global similarity of images the global search did not return."""
    per_image = library.catalog.vector_ids_of_images(images)
    image_of = {v: image for image, ids in per_image.items() for v in ids}
    ids, _, vectors = library.catalog.vectors_by_pk(sorted(image_of), library.dim)
    similarities = query.similarity(vectors)
    for vector_id, similarity in zip(ids.tolist(), similarities.tolist()):
        image = image_of[vector_id]
        if similarity > cosine.get(image, -np.inf):
            cosine[image], vector_of[image] = similarity, vector_id


def _best_rows(library: Library, query: Query, vector_of: dict[int, int]) -> dict[int, tuple[int, np.ndarray]]:
    """Per candidate image, the query row its vector matched best and that vector (absent: removed meanwhile)."""
    ids, _, vectors = library.catalog.vectors_by_pk(sorted(set(vector_of.values())), library.dim)
    found = dict(zip(ids.tolist(), zip(query.best_rows(vectors).tolist(), vectors)))
    return {image: found[v] for image, v in vector_of.items() if v in found}


def _second_look(crops: QueryCrops, matched: dict[int, tuple[int, np.ndarray]], cosine: dict[int, float],
                 rows: int) -> None:
    """Raise each candidate's cosine to its similarity with the crop of its row, for the ``rows``
    small query rows (``SMALL_REGION``) that matched the best candidates."""
    top, bottom, left, right = crops.boxes.T
    small = (bottom - top) * (right - left) <= SMALL_REGION
    order = sorted((i for i, (row, _) in matched.items() if small[row]), key=lambda i: (-cosine[i], i))
    looked = list(dict.fromkeys(matched[i][0] for i in order))[:rows]
    if not looked:
        return
    crop_of = dict(zip(looked, crops.embed(crops.boxes[looked])))
    for image, (row, vector) in matched.items():
        if row in crop_of:
            cosine[image] = max(cosine[image], float(crop_of[row] @ vector))


def _colour_similarities(colours: QueryColours, candidates: dict[int, LocalFeatures],
                         matched: dict[int, tuple[int, np.ndarray]]) -> dict[int, float]:
    """Per candidate with a colour signature, its colour similarity to the query row that matched it best."""
    out = {}
    for image, features in candidates.items():
        if features.colour is None or image not in matched:  # not matched: removed meanwhile
            continue
        similarity = colour_similarity(colours.signature(matched[image][0]), features.colour)
        if similarity is not None:
            out[image] = similarity
    return out
