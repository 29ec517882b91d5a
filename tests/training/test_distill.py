import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from instrec.cli import app
from instrec.config import Config
from instrec.embedding import Embedder
from instrec.embedding.whitening import fit_whitening
from instrec.errors import InstrecError
from instrec.training.distill import (
    DistilSettings,
    distil_head,
    relational_error,
    student_and_teacher,
    unlabelled_photos,
)
from instrec.training.features import FeatureSet


def pair(rows: int = 600, student_dim: int = 32, teacher_dim: int = 24, seed: int = 0) -> tuple[FeatureSet, FeatureSet]:
    """A student's vectors and a teacher's of the same photos (two rows per photo: it and a view);
    the teacher is a non-linear map of the student, to another dimension."""
    rng = np.random.default_rng(seed)
    student = rng.normal(size=(rows, student_dim))
    teacher = np.tanh(student @ rng.normal(size=(student_dim, teacher_dim)) / 3) + 0.1 * student[:, :teacher_dim] ** 2

    def features(vectors: np.ndarray) -> FeatureSet:
        unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        return FeatureSet(unit, np.zeros(rows, int), np.arange(rows) // 2, np.arange(rows) % 2)

    return features(student), features(teacher)


def test_the_head_starts_as_the_students_whitening_and_training_brings_its_ranking_closer():
    student, teacher = pair()
    losses = []
    fitted = distil_head(student, teacher, DistilSettings(epochs=4), lambda *a: losses.append(a[2]))
    metrics = fitted.metrics
    assert fitted.head.input_dim == 32 and fitted.head.dims == metrics["dims"] == 24  # the narrower space
    assert metrics["validation_photos"] == 60 and metrics["distillation_photos"] == 240
    assert metrics["validation_error"] < metrics["validation_error_start"] and metrics["best_epoch"] >= 1
    assert losses[-1] < losses[0] and len(losses) == metrics["epochs_run"] <= 4
    untrained = distil_head(student, teacher, DistilSettings(epochs=0)).head
    fitting = ~np.isin(student.images, np.random.default_rng(0).permutation(np.unique(student.images))[:60])
    np.testing.assert_allclose(
        untrained.apply(student.vectors), fit_whitening(student.vectors[fitting], 24).apply(student.vectors), atol=1e-5
    )


def test_the_relational_error_is_zero_on_the_teacher_whatever_the_scale_and_counts_each_pair():
    teacher = torch.nn.functional.normalize(torch.randn(8, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    assert float(relational_error(3 * teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    flipped = teacher.clone()
    flipped[0] = -flipped[0]
    twice = flipped.clone()
    twice[1] = -twice[1]
    assert 0 < float(relational_error(flipped, teacher)) < float(relational_error(twice, teacher))


def test_rows_of_other_photos_are_refused():
    student, teacher = pair()
    shuffled = FeatureSet(teacher.vectors, teacher.labels, teacher.images[::-1], teacher.views)
    with pytest.raises(InstrecError, match="row for row"):
        distil_head(student, shuffled)


def test_a_flat_folder_is_unlabelled_data_and_one_photo_is_not_enough(labelled_dir, tmp_path):
    photos = unlabelled_photos(labelled_dir)
    assert photos.instances == ("",) and photos.image_count == sum(1 for _ in labelled_dir.rglob("*.png"))
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_bytes(next(labelled_dir.rglob("*.png")).read_bytes())
    with pytest.raises(InstrecError, match="at least 2 photos"):
        unlabelled_photos(tmp_path / "one")


@pytest.mark.slow
def test_the_command_distils_from_a_flat_folder_and_the_model_loads(labelled_dir, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(labelled_dir.rglob("*.png")):
        (flat / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    args = ["train", str(flat), "--out", str(tmp_path / "m"), "--teacher", "efficientnet_lite2", "--epochs", "2"]
    result = CliRunner().invoke(app, [*args, "--views", "1", "--set", "runtime.engine=torch", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["method"] == "distil" and manifest["teacher"]["backbone"] == "efficientnet_lite2"
    assert manifest["training_data"]["images"] == 18 and manifest["validation"] == {k: printed[k] for k in manifest["validation"]}
    config = Config().with_overrides({"runtime.engine": "torch"})
    student = Embedder(config.descriptor.model_copy(update={"whitening": str(tmp_path / "m")}), config.runtime)
    assert student.dim == manifest["validation"]["dims"] and student.digest != Embedder(config.descriptor, config.runtime).digest


def test_a_method_that_cannot_distil_is_refused(labelled_dir, tmp_path):
    args = ["train", str(labelled_dir), "--out", str(tmp_path / "m"), "--teacher", "efficientnet_lite2", "--method", "full"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "cannot distil" in result.output and not (tmp_path / "m").exists()


def test_the_students_own_backbone_at_a_larger_side_is_a_teacher_of_its_own():
    student, teacher = student_and_teacher(Config(), DistilSettings("efficientnet_lite0", teacher_side=384))
    assert (student.tuning.max_side, teacher.tuning.max_side) == (Config().tuning.descriptor.max_side, 384)
    assert teacher.spec.name == student.spec.name and teacher.digest != student.digest  # cached apart
    _, same = student_and_teacher(Config(), DistilSettings("efficientnet_lite0"))
    assert same.digest == student.digest
    with pytest.raises(InstrecError, match="teacher-side"):
        DistilSettings(teacher_side=16)
