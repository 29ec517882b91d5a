"""The query stage: a photo's global hits and local features turned into instances ranked by
verified evidence, before the decision. It joins the library (stored vectors, features, the local
index) and the re-ranking algorithms, so neither has to know the other."""

from instrec.query.faces import rank_faces
from instrec.query.photos import RankedPhotos, image_hits, rank_photos
from instrec.query.verified import VerifiedRanking, verified_ranking

__all__ = ["RankedPhotos", "VerifiedRanking", "image_hits", "rank_faces", "rank_photos", "verified_ranking"]
