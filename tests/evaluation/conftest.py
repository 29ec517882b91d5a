"""A small real-photo dataset shared by the evaluation tests (built once per session)."""

import pytest

from tests.photos import ENROLLED, altered_views, sample_photo


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """Folder-per-instance: the original photo + 3 altered views per instance."""
    root = tmp_path_factory.mktemp("dataset")
    for name in ENROLLED[:8]:
        (root / name).mkdir()
        sample_photo(name).save(root / name / "0-original.jpg")
        for kind, view in altered_views(sample_photo(name), seed=2).items():
            if kind != "relit":
                view.save(root / name / f"1-{kind}.jpg")
    return root


@pytest.fixture(scope="session")
def compared(dataset, embedder):
    """Baseline vs a setting that accepts everything, for 1 and 2 shots, with a quarter held out as unknown.

    Re-ranking is off in the base: these tests are about the comparison machinery, not accuracy.
    """
    from instrec.config import Config
    from instrec.evaluation import compare, settings_from_options

    settings = settings_from_options(["accept-all: decision.threshold=-1"])
    base = Config().with_overrides({"rerank.enabled": "false"})
    return compare(dataset, settings, [1, 2], base=base, unknown_fraction=0.25, seed=0, embedder=embedder)
