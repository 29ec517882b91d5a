import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.training.data import split_by_instance
from instrec.training.fit import TrainSettings, fit_projection
from instrec.training.losses import EPISODE_SHOTS, batches
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


def test_an_unknown_method_is_refused():
    with pytest.raises(InstrecError, match="unknown --method"):
        TrainSettings(method="distil")


@pytest.mark.parametrize("loss", ["subcenter-arcface", "protonet"])
def test_the_new_losses_train_a_head_and_their_loss_falls(loss):
    losses = []
    settings = TrainSettings(method="head", loss=loss, epochs=6, val_fraction=0.0, dims=8)
    fit_projection(synthetic_features(instances=12, dim=16), settings, lambda *args: losses.append(args[2]))
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_protonet_batches_are_seeded_episodes_of_several_instances_with_four_photos_each():
    labels = np.repeat(np.arange(10), 6)
    first, again = batches(labels, "protonet", 16, 48, seed=3), batches(labels, "protonet", 16, 48, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again)) and len(first) == 3
    for episode in first:
        counts = np.unique(labels[episode], return_counts=True)[1]
        assert len(counts) == 4 and (counts == EPISODE_SHOTS).all()
