import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.training.data import split_by_instance
from instrec.training.fit import TrainSettings, fit_projection
from tests.training.conftest import synthetic_features


def test_the_validation_instances_are_disjoint_from_the_training_ones():
    train, validation = split_by_instance(20, 0.25, seed=3)
    assert len(validation) == 5 and len(train) == 15
    assert not set(train) & set(validation) and set(train) | set(validation) == set(range(20))


def test_a_head_is_the_same_for_the_same_seed_and_differs_for_another():
    features = synthetic_features()

    def head(seed: int) -> np.ndarray:
        settings = TrainSettings(method="head", loss="proxy-anchor", epochs=3, seed=seed, val_fraction=0.2, dims=8)
        return fit_projection(features, settings).projection.projection

    assert np.array_equal(head(1), head(1))
    assert not np.array_equal(head(1), head(2))


def test_the_head_is_measured_on_validation_and_reports_each_epoch():
    epochs = []
    settings = TrainSettings(method="head", loss="arcface", epochs=2, val_fraction=0.2, dims=8)
    fitted = fit_projection(synthetic_features(), settings, lambda *args: epochs.append(args))
    assert fitted.metrics["validation_instances"] == 2 and fitted.metrics["train_instances"] == 8
    assert 0 <= fitted.metrics["validation_head"]["top1"] <= 1
    assert [e[0] for e in epochs] == list(range(1, len(epochs) + 1)) and all(np.isfinite(e[2]) for e in epochs)


@pytest.mark.parametrize("method", ["partial", "full", "distil"])
def test_methods_that_are_not_built_are_refused(method):
    with pytest.raises(InstrecError, match="not built" if method != "distil" else "unknown --method"):
        TrainSettings(method=method)
