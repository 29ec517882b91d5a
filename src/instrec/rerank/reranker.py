"""The local-feature stage as one object: extract, shortlist index, verify and fuse.

It holds no gallery data of its own: packed features live in the catalog (written in the same
transaction as their image) and the :class:`LocalIndex` is a cache the library keeps in step with
the catalog's journal, exactly like the vector index. So a crash, another process enrolling, or a
removal can never leave verification data and the catalog disagreeing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from PIL import Image

from instrec.profiles import RerankTuning
from instrec.rerank.colour import colour_signature, working_pixels
from instrec.rerank.features import LocalFeatures, extract_local_features
from instrec.rerank.fuse import fuse
from instrec.rerank.index import LocalIndex
from instrec.rerank.verify import verify
from instrec.rerank.vocabulary import Vocabulary, load_vocabulary


Corners = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True)
class CandidateScores:
    """Per candidate image id: its fused [0, 1] score, its RANSAC inliers and where they lie in the query."""

    fused: dict[int, float]
    inliers: dict[int, int]
    # Pixels of the image given to extract_query; only for candidates with more inliers than
    # tuning.inlier_floor, since chance matches reach that many and their box would point at nothing.
    boxes: dict[int, Corners]


class LocalVerifier:
    def __init__(self, tuning: RerankTuning = RerankTuning(), vocabulary: Vocabulary | str = "generic"):
        """``vocabulary``: "generic", a saved vocabulary's path, or one just trained and not yet saved."""
        self.tuning = tuning
        self.vocabulary = load_vocabulary(vocabulary) if isinstance(vocabulary, str) else vocabulary

    @property
    def feature_key(self) -> str:
        """What decides stored features; a library built with another key needs re-extraction."""
        c = self.tuning
        return f"sift:{c.max_keypoints}:{c.max_side}:{c.contrast_threshold}"

    def extract(self, image: Image.Image, alpha: Image.Image | None = None) -> LocalFeatures:
        """Features stored for a gallery image: keypoints (of both contrasts of a cut-out's edge,
        given its ``alpha``) and the colour signature."""
        c = self.tuning
        keypoints = extract_local_features(image, c.max_keypoints, c.max_side, c.contrast_threshold, alpha)
        return _with_colour(keypoints, image)

    def extract_query(self, image: Image.Image) -> LocalFeatures:
        """Features of a query: more keypoints, since they are never stored, and the colour
        signature when colour is weighed."""
        c = self.tuning
        keypoints = extract_local_features(image, c.query_keypoints, c.max_side, c.contrast_threshold)
        return _with_colour(keypoints, image) if c.weight_colour > 0 else keypoints

    def new_index(self) -> LocalIndex:
        c = self.tuning
        return LocalIndex(self.vocabulary, c.multi_assign, c.hamming_threshold, c.hamming_sigma, c.local_postings)

    def load_index(self, directory: Path) -> tuple[LocalIndex, dict]:
        """A saved index, refused (ValueError) if built with other vocabulary or matching settings."""
        index, meta = LocalIndex.load(directory, self.vocabulary)
        c = self.tuning
        if (index.multi_assign, index.hamming_threshold, index.hamming_sigma) != (
            c.multi_assign,
            c.hamming_threshold,
            c.hamming_sigma,
        ):
            raise ValueError("saved local index was built with other tuning.rerank.* constants")
        index.max_postings = c.local_postings
        return index, meta

    def score(
        self,
        query: LocalFeatures,
        candidates: Mapping[int, LocalFeatures],
        global_scores: Mapping[int, float],
        groups: Mapping[int, int],
        colour: Mapping[int, float] | None = None,
    ) -> CandidateScores:
        """Fused [0, 1] score, RANSAC inliers and their box in the query, per candidate image id.

        ``groups`` (each image's instance) keeps two shots of one instance from cancelling each
        other in the cross-candidate ratio test. Ids without features still get a fused score
        from their global similarity, with zero geometric evidence. ``colour`` is each
        candidate's colour similarity to the query where both have a signature.
        """
        ids = list(global_scores.keys() | candidates.keys())
        verified = [i for i in ids if i in candidates]
        c = self.tuning
        result = verify(
            query,
            [candidates[i] for i in verified],
            c.ratio,
            c.ransac_model,
            c.ransac_threshold,
            c.ransac_iters,
            c.seed,
            [groups.get(i, -i) for i in verified],
            c.match_precision,
        )
        inliers = {i: 0 for i in ids}
        inliers.update({i: int(n) for i, n in zip(verified, result.inliers)})
        fused = fuse({i: global_scores.get(i, 0.0) for i in ids}, inliers, c, colour)
        boxes = {
            i: _scaled(box, query.scale)
            for i, box in zip(verified, result.boxes)
            if box is not None and inliers[i] > c.inlier_floor
        }
        return CandidateScores(fused, inliers, boxes)


def _with_colour(keypoints: LocalFeatures, image: Image.Image) -> LocalFeatures:
    return dataclasses.replace(keypoints, colour=colour_signature(working_pixels(image)))


def _scaled(box: Corners, scale: float) -> Corners:
    """A box of the working frame in pixels of the image the features were extracted from."""
    left, top, right, bottom = box
    return left * scale, top * scale, right * scale, bottom * scale
