"""The embedder a configuration asks for: the backbone's, or the face pipeline's when the profile embeds faces."""

from __future__ import annotations

from typing import Union

from instrec.config import Config
from instrec.embedding.embedder import Embedder
from instrec.embedding.faces import FaceEmbedder

AnyEmbedder = Union[Embedder, FaceEmbedder]


def create_embedder(config: Config) -> AnyEmbedder:
    if config.tuning.face is not None:
        return FaceEmbedder(config.tuning.face)
    return Embedder(config.descriptor, config.runtime, config.tuning.descriptor)
