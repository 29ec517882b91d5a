from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from pydantic import ValidationError

from instrec.config import Config, DescriptorConfig, RuntimeConfig, descriptor_digest
from instrec.embedding import Embedder
from instrec.profiles import DescriptorTuning


def unit_rows(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))


def test_embed_shape_dtype_norm_and_order(lite0_torch: Embedder, images: dict[str, Image.Image]) -> None:
    batch = list(images.values())
    vectors = lite0_torch.embed(batch)
    assert vectors.shape == (len(batch), lite0_torch.dim) == (5, 1280)
    assert vectors.dtype == np.float32 and unit_rows(vectors)
    one_by_one = np.concatenate([lite0_torch.embed([image]) for image in batch])
    assert np.allclose(vectors, one_by_one, atol=1e-5)  # grouping by size keeps the order
    assert lite0_torch.embed([]).shape == (0, 1280)


def test_digest_identifies_descriptor_and_weights(lite0_torch: Embedder) -> None:
    backbone_digest = lite0_torch.torch_model().backbone.weights_digest
    assert lite0_torch.digest == descriptor_digest(Config().descriptor_key(), backbone_digest)


def test_brighter_copy_is_close_unrelated_image_is_not(lite0_torch: Embedder, images: dict[str, Image.Image]) -> None:
    astronaut = images["astronaut"]
    brighter = ImageEnhance.Brightness(astronaut).enhance(1.15)
    a, b, c = lite0_torch.embed([astronaut, brighter, images["coffee"]])
    assert a @ b > 0.9
    assert a @ c < a @ b - 0.2


def test_a_smaller_input_side_is_another_descriptor(lite0_torch: Embedder, images: dict[str, Image.Image]) -> None:
    small = Embedder(DescriptorConfig(), RuntimeConfig(engine="torch"), DescriptorTuning(max_side=160))
    image = images["chelsea"]
    assert small.input_size(image)[0] == 160 and small.digest != lite0_torch.digest
    assert unit_rows(small.embed([image])) and small.embed([image])[0] @ lite0_torch.embed([image])[0] < 0.9999


def test_torch_model_matches_embed(lite0_torch: Embedder, images: dict[str, Image.Image]) -> None:
    import torch

    image = images["coffee"]
    with torch.no_grad():
        vector = lite0_torch.torch_model()(torch.from_numpy(lite0_torch.preprocess(image)[None]))
    assert np.allclose(vector.numpy()[0], lite0_torch.embed([image])[0], atol=1e-5)


def test_bad_settings_are_config_errors() -> None:
    from instrec.errors import ConfigError

    with pytest.raises(ValidationError, match="batch_size"):
        RuntimeConfig(engine="torch", batch_size=0)
    with pytest.raises(ConfigError, match="size_multiple must be a multiple of 32"):
        Embedder(DescriptorConfig(), RuntimeConfig(engine="torch"), DescriptorTuning(size_multiple=16))


def test_input_sides_are_rounded_to_multiples_of_32(lite0_torch: Embedder, images: dict[str, Image.Image]) -> None:
    coffee = images["coffee"]  # 600x400: 224x149.3 exactly, rounded to 224x160
    assert coffee.size == (600, 400) and lite0_torch.input_size(coffee) == (224, 160)
    assert lite0_torch.preprocess(coffee).shape == (3, 160, 224)
