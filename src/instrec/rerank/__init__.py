"""Local-feature stage of "global then local" recognition (DELG-style).

RootSIFT keypoints per gallery image are packed into the catalog; an inverted file with Hamming
embedding (:class:`LocalIndex`) shortlists gallery images with work sub-linear in gallery size;
:func:`verify` checks candidates geometrically (cross-candidate ratio test + RANSAC) and
:func:`fuse` turns global similarity, inliers and colour into one [0, 1] score.
:class:`LocalVerifier` ties them together for the recognizer.
"""

from instrec.rerank.features import LocalFeatures, extract_local_features, rootsift
from instrec.rerank.fuse import fuse, inlier_evidence
from instrec.rerank.index import LocalIndex
from instrec.rerank.reranker import LocalVerifier
from instrec.rerank.verify import Verification, inlier_mask, tentative_matches, verify
from instrec.rerank.vocabulary import Vocabulary, generic_vocabulary, load_vocabulary, train_vocabulary

__all__ = [
    "LocalFeatures",
    "LocalIndex",
    "LocalVerifier",
    "Verification",
    "Vocabulary",
    "inlier_mask",
    "extract_local_features",
    "fuse",
    "generic_vocabulary",
    "inlier_evidence",
    "load_vocabulary",
    "rootsift",
    "tentative_matches",
    "train_vocabulary",
    "verify",
]
