"""partial / full fine-tuning on the tiny labelled folder at 64 px: resume, the model directory, refusals."""

import numpy as np
import pytest
import torch

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.embedding.spec import MODEL_BACKBONE
from instrec.embedding.whitening import Whitening
from instrec.errors import InstrecError
from instrec.training.checkpoint import CHECKPOINT
from instrec.training.data import read_labelled_folder, split_by_instance
from instrec.training.export import export
from instrec.training.finetune import Photos
from instrec.training.fit import TrainSettings
from instrec.training.model import read_manifest
from instrec.training.train import train

pytestmark = pytest.mark.slow
SETTINGS = TrainSettings(method="partial", loss="proxy-anchor", epochs=2, val_fraction=0.34, dims=8, views=0, epoch_images=8)
CONFIG = Config().with_overrides({"tuning.descriptor.max_side": 64, "runtime.engine": "torch"})


class Killed(Exception):
    pass


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(labelled_dir, tmp_path):
    whole = train(labelled_dir, tmp_path / "whole", SETTINGS, CONFIG)

    def kill(epoch, *_):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train(labelled_dir, tmp_path / "resumed", SETTINGS, CONFIG, epochs_report=kill)
    assert (tmp_path / "resumed" / CHECKPOINT).is_file()
    epochs = []
    resumed = train(labelled_dir, tmp_path / "resumed", SETTINGS, CONFIG, epochs_report=lambda *a: epochs.append(a[0]))
    assert epochs == [2] and not (tmp_path / "resumed" / CHECKPOINT).exists()
    assert resumed.metrics == whole.metrics and whole.metrics["validation_partial"] is not None
    a, b = (torch.load(m / MODEL_BACKBONE, weights_only=True) for m in (whole.model, resumed.model))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(Whitening.load(whole.model).projection, Whitening.load(resumed.model).projection)

    # The model directory is a descriptor: descriptor.weights=DIR brings backbone and projection.
    tuned = Embedder(CONFIG.descriptor.model_copy(update={"weights": str(whole.model)}), CONFIG.runtime, CONFIG.tuning.descriptor)
    plain = Embedder(CONFIG.descriptor, CONFIG.runtime, CONFIG.tuning.descriptor)
    assert tuned.dim == 8 and tuned.digest != plain.digest
    exported = export(whole.model, CONFIG, cache_dir=tmp_path / "cache")
    assert exported.fp32.is_file() and read_manifest(whole.model)["method"] == "partial"
    assert exported.descriptors["fp32"] != plain.digest


def test_a_checkpoint_of_other_settings_is_refused(labelled_dir, tmp_path):
    with pytest.raises(Killed):
        train(labelled_dir, tmp_path / "m", SETTINGS, CONFIG, epochs_report=lambda *a: (_ for _ in ()).throw(Killed()))
    other = TrainSettings(**{**SETTINGS.to_dict(), "loss": "protonet"})
    with pytest.raises(InstrecError, match="checkpoint of another run"):
        train(labelled_dir, tmp_path / "m", other, CONFIG)


def test_validation_photos_are_of_instances_never_trained_on(labelled_dir):
    folder = read_labelled_folder(labelled_dir)
    train_ids, val_ids = split_by_instance(len(folder.instances), SETTINGS.val_fraction, SETTINGS.seed)
    seen, validation = Photos.of(folder, train_ids), Photos.of(folder, val_ids, per_instance=2)
    assert not set(seen.labels) & set(validation.labels) and not set(seen.paths) & set(validation.paths)
    assert len(validation.paths) == 2 * len(val_ids)


@pytest.mark.parametrize("method", ["partial", "full"])
def test_full_trains_the_first_layers_and_partial_only_the_last_blocks(labelled_dir, tmp_path, method):
    # No validation: the last epoch is the model kept, so whatever the optimiser moved is saved.
    settings = TrainSettings(**{**SETTINGS.to_dict(), "method": method, "epochs": 1, "val_fraction": 0.0})
    run = train(labelled_dir, tmp_path / method, settings, CONFIG)
    plain = Embedder(CONFIG.descriptor, CONFIG.runtime, CONFIG.tuning.descriptor).torch_model().backbone.net.state_dict()
    tuned = torch.load(run.model / MODEL_BACKBONE, weights_only=True)
    moved = lambda name: not torch.equal(plain[name], tuned[name])  # noqa: E731
    last_block = max(int(name.split(".")[1]) for name in plain if name.startswith("_blocks."))
    assert moved(f"_blocks.{last_block}._project_conv.weight") and moved("_conv_head.weight")
    assert moved("_conv_stem.weight") == moved("_blocks.0._depthwise_conv.weight") == (method == "full")


def test_fine_tuning_asked_for_cuda_without_it_refuses_before_an_epoch(labelled_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    epochs = []
    config = CONFIG.with_overrides({"runtime.device": "cuda"})
    with pytest.raises(InstrecError, match="runtime.device=cuda"):
        train(labelled_dir, tmp_path / "m", SETTINGS, config, epochs_report=lambda *a: epochs.append(a[0]))
    assert epochs == [] and not (tmp_path / "m" / CHECKPOINT).exists()
