from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.embedding import Embedder
from instrec.embedding.whitening import Whitening, embed_pool, fit_whitening
from instrec.errors import ConfigError


def pool(n: int = 400, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors with a few dominant shared directions, like real descriptors."""
    rng = np.random.default_rng(seed)
    scales = np.r_[np.full(4, 6.0), np.ones(dim - 4)]
    x = rng.standard_normal((n, dim)) * scales + 3.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_full_whitening_decorrelates_the_pool_and_keeps_unit_rows() -> None:
    vectors = pool()
    whitening = fit_whitening(vectors, dims=8, power=1.0, shrinkage=0.0)
    out = (vectors - whitening.mean) @ whitening.projection  # before re-normalisation
    assert np.allclose(np.cov(out.T, bias=True), np.eye(8), atol=1e-3)
    applied = whitening.apply(vectors)
    assert applied.shape == (len(vectors), 8) and applied.dtype == np.float32
    assert np.allclose(np.linalg.norm(applied, axis=1), 1.0, atol=1e-5)
    assert 0 < whitening.explained < 1


def test_power_zero_is_pca_reduction_and_shrinkage_tempers_small_directions() -> None:
    vectors = pool()
    reduction = fit_whitening(vectors, dims=8, power=0.0)
    assert np.allclose(reduction.projection.T @ reduction.projection, np.eye(8), atol=1e-5)  # a rotation
    gains = lambda w: np.linalg.norm(w.projection, axis=0)  # noqa: E731 - per direction
    raw, shrunk = fit_whitening(vectors, 8, 1.0, 0.0), fit_whitening(vectors, 8, 1.0, 1.0)
    assert gains(raw)[-1] / gains(raw)[0] > gains(shrunk)[-1] / gains(shrunk)[0] > 1


def test_whitening_separates_what_the_dominant_directions_hide() -> None:
    """Two vectors differing only in a rare direction look alike raw, unlike once whitened."""
    vectors = pool(dim=32)
    whitening = fit_whitening(vectors, dims=31, power=1.0, shrinkage=0.0)
    base = vectors[0].copy()
    other = base + 0.1 * np.eye(32, dtype=np.float32)[20]  # a direction the pool barely varies in
    a, b = base / np.linalg.norm(base), other / np.linalg.norm(other)
    wa, wb = whitening.apply(np.stack([a, b]))
    assert a @ b > 0.99 and wa @ wb < a @ b - 0.05


def test_save_load_round_trip_and_digest(tmp_path: Path) -> None:
    whitening = fit_whitening(pool(), dims=6)
    path = whitening.save(tmp_path / "w")  # no .npz suffix added
    assert path == tmp_path / "w" and path.is_file()
    loaded = Whitening.load(path)
    assert np.array_equal(loaded.projection, whitening.projection) and loaded.digest == whitening.digest
    assert (loaded.pool_size, loaded.power, loaded.shrinkage) == (400, whitening.power, 0.1)
    assert fit_whitening(pool(seed=1), dims=6).digest != whitening.digest


@pytest.mark.parametrize(
    "dims, power, shrinkage", [(0, 1.0, 0.1), (400, 1.0, 0.1), (33, 1.0, 0.1), (4, 1.5, 0.1), (4, 1.0, -1.0)]
)
def test_bad_fit_settings_are_refused(dims: int, power: float, shrinkage: float) -> None:
    with pytest.raises(ConfigError):
        fit_whitening(pool(), dims, power, shrinkage)


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no file"):
        Whitening.load(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a whitening file"):
        Whitening.load(junk)


@pytest.fixture(scope="module")
def fitted(lite0_onnx: Embedder, images: dict[str, Image.Image], tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    crops = []
    for image in images.values():  # a small pool of crops of the test photos
        for _ in range(6):
            w, h = image.size
            x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
            crops.append(image.crop((x, y, x + w // 2, y + h // 2)))
    return fit_whitening(lite0_onnx.embed(crops), dims=16).save(tmp_path_factory.mktemp("w") / "w.npz")


def test_whitening_fitted_for_another_backbone_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    foreign = fit_whitening(pool(dim=32), dims=4).save(tmp_path / "w.npz")
    with pytest.raises(ConfigError, match="32-d"):
        Embedder(DescriptorConfig(whitening=str(foreign)), RuntimeConfig(), cache_dir=cache_dir)


def test_embed_pool_skips_unreadable_files(lite0_onnx: Embedder, images: dict[str, Image.Image], tmp_path: Path) -> None:
    from instrec.config import LimitsConfig

    good = tmp_path / "a.jpg"
    images["coffee"].save(good)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    seen = []
    vectors, skipped = embed_pool(lite0_onnx, [good, bad], LimitsConfig(), lambda done, total: seen.append((done, total)))
    assert vectors.shape == (1, 1280) and len(skipped) == 1 and seen[-1] == (2, 2)


def test_embedder_whitens_what_it_embeds(
    fitted: Path, lite0_onnx: Embedder, images: dict[str, Image.Image], cache_dir: Path
) -> None:
    whitened = Embedder(DescriptorConfig(whitening=str(fitted)), RuntimeConfig(), cache_dir=cache_dir)
    assert whitened.dim == 16 and whitened.digest != lite0_onnx.digest
    photos = list(images.values())[:3]
    raw = lite0_onnx.embed(photos)
    assert np.allclose(whitened.embed(photos), Whitening.load(fitted).apply(raw), atol=1e-5)
