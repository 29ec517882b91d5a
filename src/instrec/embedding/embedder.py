"""Images -> global descriptors: the one entry point the rest of the engine uses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from instrec.config import DescriptorConfig, RuntimeConfig, descriptor_digest
from instrec.profiles import DescriptorTuning
from instrec.embedding.descriptor_net import DescriptorNet
from instrec.embedding.onnx_runtime import cached_engine, default_cache_dir
from instrec.embedding.preprocess import batches_by_size, resized_size, to_input
from instrec.embedding.registry import create_backbone
from instrec.embedding.whitening import Whitening
from instrec.errors import ConfigError

Engine = Callable[[np.ndarray], np.ndarray]

log = logging.getLogger(__name__)


class Embedder:
    """Computes the vector ``descriptor`` and ``tuning`` define for each image, with the engine ``runtime`` picks.

    ``digest`` identifies the descriptor together with the backbone's weights and any whitening
    map: store it next to the vectors; vectors with different digests are not comparable. Images
    come decoded and upright (EXIF orientation applied); any PIL mode is converted to RGB.
    """

    def __init__(
        self,
        descriptor: DescriptorConfig,
        runtime: RuntimeConfig = RuntimeConfig(),
        tuning: DescriptorTuning = DescriptorTuning(),
        cache_dir: Path | None = None,
    ):
        self.descriptor = descriptor
        self.runtime = runtime
        self.tuning = tuning
        backbone = create_backbone(descriptor.backbone, descriptor.weights)
        needed = backbone.spec.input_multiple
        if tuning.size_multiple % needed:
            raise ConfigError(
                f"tuning.descriptor.size_multiple must be a multiple of {needed} for {descriptor.backbone}, "
                f"got {tuning.size_multiple}"
            )
        self.spec = backbone.spec
        self.whitening = Whitening.load(descriptor.whitening) if descriptor.whitening else None
        if self.whitening is not None and self.whitening.input_dim != backbone.spec.feature_dim:
            raise ConfigError(
                f"descriptor.whitening: {descriptor.whitening} was fitted on {self.whitening.input_dim}-d "
                f"descriptors, {descriptor.backbone} gives {backbone.spec.feature_dim}-d"
            )
        self.dim: int = backbone.spec.feature_dim if self.whitening is None else self.whitening.dims
        weights = backbone.weights_digest if self.whitening is None else f"{backbone.weights_digest}+{self.whitening.digest}"
        self.digest: str = descriptor_digest({**descriptor.model_dump(), **tuning.model_dump()}, weights)
        self._net = DescriptorNet(backbone, tuning.gem_p).eval()
        self._cache_dir = cache_dir or default_cache_dir()
        self._engine = self._make_engine(self._net, self.digest)

    def _make_engine(self, module: torch.nn.Module, digest: str) -> Engine:
        if self.runtime.engine == "onnx":
            try:
                return cached_engine(module, self._cache_dir, digest, self.runtime.threads)
            except Exception as exc:  # noqa: BLE001 - any export failure: still correct, just slower
                log.warning("ONNX export failed for %s, using torch: %s", self.descriptor.backbone, exc)
        if self.runtime.threads > 0:
            torch.set_num_threads(self.runtime.threads)  # process-wide: torch has no per-module setting

        def run_torch(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(images)).numpy()

        return run_torch

    def torch_model(self) -> DescriptorNet:
        """The descriptor as a torch module (normalised NCHW -> unit vectors), e.g. to fine-tune.

        The ONNX engine keeps the weights it was built with; build a new Embedder to use new ones.
        """
        return self._net

    def input_size(self, image: Image.Image) -> tuple[int, int]:
        """(width, height) the network sees ``image`` at."""
        return resized_size(*image.size, self.tuning.max_side, self.tuning.size_multiple)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """The normalised (3, h, w) input ``torch_model()`` expects for ``image``."""
        return to_input(image, self.input_size(image), self.spec.mean, self.spec.std)

    def vectors(self, inputs: np.ndarray) -> np.ndarray:
        """The network's unit vectors (n, spec.feature_dim) of a stack of ``preprocess`` outputs of one size,
        by the chosen engine; ``embed`` whitens them."""
        return self._engine(inputs)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 unit rows."""
        out = np.zeros((len(images), self.spec.feature_dim), dtype=np.float32)
        sizes = [self.input_size(image) for image in images]
        for batch in batches_by_size(sizes, self.runtime.batch_size):
            out[batch] = self.vectors(np.stack([self.preprocess(images[i]) for i in batch]))
        return self._whitened(out)

    def embed_shots(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, list[str | None]]:
        """``embed`` for enrolment, with why each shot cannot be enrolled (None: it can). Any photo can
        be: an object pipeline refuses none (a face pipeline does, :mod:`instrec.embedding.faces`)."""
        return self.embed(images), [None] * len(images)

    def _whitened(self, vectors: np.ndarray) -> np.ndarray:
        return vectors if self.whitening is None else self.whitening.apply(vectors)
