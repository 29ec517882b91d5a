"""Images -> global descriptors: the one entry point the rest of the engine uses."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from instrec.config import DescriptorConfig, RuntimeConfig, backbone_descriptor_key, descriptor_digest
from instrec.profiles import DescriptorTuning
from instrec.embedding.onnx_runtime import OnnxEngine, cached_engine, default_cache_dir, int8_path
from instrec.embedding.preprocess import batches_by_size, resized_size, to_input
from instrec.embedding.registry import create_backbone
from instrec.embedding.spec import file_digest, remember, remembered
from instrec.embedding.torch_device import torch_device
from instrec.embedding.whitening import Whitening, projection_of
from instrec.errors import ConfigError

if TYPE_CHECKING:
    from instrec.embedding.descriptor_net import DescriptorNet

Engine = Callable[[np.ndarray], np.ndarray]

log = logging.getLogger(__name__)


class Embedder:
    """Computes the vector ``descriptor`` and ``tuning`` define for each image, with the engine ``runtime`` picks.

    ``digest`` identifies the descriptor together with the backbone's weights, any whitening map and,
    at ``precision=int8``, the INT8 graph: store it next to the vectors; vectors with different digests
    are not comparable. Images come decoded and upright (EXIF orientation applied); any PIL mode is
    converted to RGB.

    With the ONNX engine, a backbone remembered in the cache (:mod:`instrec.embedding.spec`) whose
    graph is cached is not built: the torch module is made when first needed (``torch_model()``).
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
        self._cache_dir = cache_dir or default_cache_dir()
        self._net: DescriptorNet | None = None
        self._net_lock = threading.Lock()
        known = remembered(self._cache_dir, descriptor.backbone, descriptor.weights) if runtime.engine == "onnx" else None
        if known is None:
            self._net = self._build_net()
            spec, weights_digest = self._net.backbone.spec, self._net.backbone.weights_digest
        else:
            spec, weights_digest = known
        needed = spec.input_multiple
        if tuning.size_multiple % needed:
            raise ConfigError(
                f"tuning.descriptor.size_multiple must be a multiple of {needed} for {descriptor.backbone}, "
                f"got {tuning.size_multiple}"
            )
        self.spec = spec
        whitening = projection_of(descriptor.whitening, descriptor.weights)
        self.whitening = Whitening.load(whitening) if whitening else None
        if self.whitening is not None and self.whitening.input_dim != spec.feature_dim:
            raise ConfigError(
                f"descriptor.whitening: {descriptor.whitening} was fitted on {self.whitening.input_dim}-d "
                f"descriptors, {descriptor.backbone} gives {spec.feature_dim}-d"
            )
        self.dim: int = spec.feature_dim if self.whitening is None else self.whitening.dims
        weights = weights_digest if self.whitening is None else f"{weights_digest}+{self.whitening.digest}"
        fp32 = descriptor.model_copy(update={"precision": "fp32"})
        self._fp32_digest = descriptor_digest(backbone_descriptor_key(fp32, tuning), weights)
        self.int8_graph: Path | None = self._int8_graph() if descriptor.precision == "int8" else None
        # The INT8 graph's content is part of the id: two calibrations give two (close, unequal) descriptors.
        self.digest: str = (
            self._fp32_digest
            if self.int8_graph is None
            else descriptor_digest(backbone_descriptor_key(descriptor, tuning), f"{weights}+int8:{file_digest(self.int8_graph)}")
        )
        self._engine = self._make_engine()

    def _int8_graph(self) -> Path:
        if self.runtime.engine != "onnx":
            raise ConfigError("descriptor.precision=int8 runs on ONNX Runtime: set runtime.engine=onnx")
        path = int8_path(self._cache_dir, self._fp32_digest)
        if not path.is_file():
            raise ConfigError(
                f"descriptor.precision=int8: no INT8 graph of this descriptor in {self._cache_dir}; make one with "
                "`instrec export DIR --int8 --calibration PHOTOS --check LABELLED` under the same descriptor settings, "
                "or set descriptor.precision=fp32"
            )
        return path

    def _build_net(self) -> DescriptorNet:
        """Build the torch module; remember what its backbone is, for the next process to skip this."""
        from instrec.embedding.descriptor_net import DescriptorNet

        backbone = create_backbone(self.descriptor.backbone, self.descriptor.weights)
        if self.runtime.engine == "onnx" and backbone.weights_file is not None:
            remember(
                self._cache_dir,
                self.descriptor.backbone,
                self.descriptor.weights,
                backbone.spec,
                backbone.weights_digest,
                backbone.weights_file,
            )
        return DescriptorNet(backbone, self.tuning.gem_p).eval()

    def _make_engine(self) -> Engine:
        if self.int8_graph is not None:
            return OnnxEngine(self.int8_graph, self.runtime.threads, self.runtime.device)
        if self.runtime.engine == "onnx":
            try:
                return cached_engine(
                    self.torch_model, self._cache_dir, self._fp32_digest, self.runtime.threads, self.runtime.device
                )
            except ConfigError:  # a setting to fix (runtime.device=cuda without CUDA), not a failed export
                raise
            except Exception as exc:  # noqa: BLE001 - any export failure: still correct, just slower
                log.warning("ONNX export failed for %s, using torch: %s", self.descriptor.backbone, exc)
        import torch

        if self.runtime.threads > 0:
            torch.set_num_threads(self.runtime.threads)  # process-wide: torch has no per-module setting
        device = torch_device(self.runtime.device)
        module = self.torch_model().to(device)

        def run_torch(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(images).to(device)).cpu().numpy()

        return run_torch

    def torch_model(self) -> DescriptorNet:
        """The descriptor as a torch module (normalised NCHW -> unit vectors), e.g. to fine-tune.

        The ONNX engine keeps the weights it was built with; build a new Embedder to use new ones.
        """
        with self._net_lock:
            if self._net is None:
                self._net = self._build_net()
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
        return self.embed_with(self._engine, images)

    def embed_with(self, engine: Engine, images: Sequence[Image.Image]) -> np.ndarray:
        """``embed`` through ``engine``, another graph of the same network (an INT8 one under test):
        its vectors are not ``digest``'s."""
        out = np.zeros((len(images), self.spec.feature_dim), dtype=np.float32)
        for batch, inputs in self.input_batches(images):
            out[batch] = engine(inputs)
        return self._whitened(out)

    def input_batches(self, images: Sequence[Image.Image], batch_size: int = 0) -> Iterator[tuple[list[int], np.ndarray]]:
        """(indices, their stacked ``preprocess`` outputs) of ``images``, grouped by input size, at most
        ``batch_size`` (0: ``runtime.batch_size``) at a time."""
        sizes = [self.input_size(image) for image in images]
        for batch in batches_by_size(sizes, batch_size or self.runtime.batch_size):
            yield batch, np.stack([self.preprocess(images[i]) for i in batch])

    def embed_shots(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, list[str | None]]:
        """``embed`` for enrolment, with why each shot cannot be enrolled (None: it can). Any photo can
        be: an object pipeline refuses none (a face pipeline does, :mod:`instrec.embedding.faces`)."""
        return self.embed(images), [None] * len(images)

    def _whitened(self, vectors: np.ndarray) -> np.ndarray:
        return vectors if self.whitening is None else self.whitening.apply(vectors)
