"""``partial`` and ``full``: the backbone trained together with the head, on augmented photos.

``partial`` unfreezes EfficientNet-Lite's last ``PARTIAL_BLOCKS`` blocks and its last convolution,
``full`` every layer. Each epoch draws new views of the training photos (albumentations, see
:mod:`instrec.training.augment`) at one input size. The head starts as the supervised whitening of
the pretrained descriptors, so epoch 0 is that baseline, and validation (instances never trained
on) keeps the best epoch. The network stays in eval mode while it trains: batch-norm statistics of
a few dozen photos would be noise, and without dropout a run is the same for the same seed.

Each epoch ends with a checkpoint in the output directory; a run given the same directory and the
same settings resumes after the last finished epoch and ends where an uninterrupted one would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from instrec.config import LimitsConfig
from instrec.embedding.torch_device import torch_device
from instrec.embedding.whitening import Whitening
from instrec.errors import InstrecError
from instrec.images import load_image
from instrec.training.augment import augmented_view
from instrec.training.checkpoint import Checkpoint
from instrec.training.data import LabelledFolder
from instrec.training.fit import TrainSettings
from instrec.training.head import LEARNING_RATE, LOSS_LEARNING_RATE, PATIENCE, EpochReport
from instrec.training.losses import batches, epoch_seed, make_loss, start_classes_at_their_means
from instrec.training.metrics import EarlyStopping, OneShot, one_shot

if TYPE_CHECKING:
    from instrec.embedding import Embedder

PARTIAL_BLOCKS = 5  # EfficientNet-Lite's blocks at 1/32 resolution: the most specific, on the smallest maps
BATCH = 32
VALIDATION_PHOTOS = 16  # per validation instance: each epoch's check runs the network on each of them
BACKBONE_LEARNING_RATE = 3e-5  # pretrained layers move slowly, or a few hundred photos undo ImageNet


@dataclass(frozen=True)
class Photos:
    """The photos of some instances: a file, its instance and its image index within the folder."""

    paths: tuple[Any, ...]
    labels: np.ndarray
    images: np.ndarray

    @classmethod
    def of(cls, folder: LabelledFolder, instances: np.ndarray, per_instance: int = 0) -> "Photos":
        """``per_instance``: at most that many photos of each, spread over its list, its first (its shot) kept."""
        rows, index, kept = [], 0, set(instances.tolist())
        for label, files in enumerate(folder.files):
            spread = range(len(files))
            if per_instance and len(files) > per_instance:
                spread = np.unique(np.linspace(0, len(files) - 1, per_instance).astype(int)).tolist()
            rows += [(files[i], label, index + i) for i in spread] if label in kept else []
            index += len(files)  # the numbering embed_folder gives the whole folder
        return cls(tuple(r[0] for r in rows), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]))


class TunedNet:
    """The descriptor network, then the head: (x - mean) @ weight, normalised (a :class:`Whitening`)."""

    def __init__(self, descriptor: Any, start: Whitening, method: str, device: Any):
        import torch

        backbone = descriptor.backbone
        if not hasattr(getattr(backbone, "net", None), "_blocks"):
            raise InstrecError(f"--method {method} fine-tunes EfficientNet-Lite backbones; {backbone.spec.name} is not one")
        self.device = device
        self.descriptor = descriptor.eval().to(device)
        self.start = start
        self.mean = torch.from_numpy(start.mean).to(device)
        # Output is normalised, so one scalar rescale leaves the map unchanged and puts the learning rate on a known scale.
        self.scale = float(np.linalg.norm(start.projection) / np.sqrt(start.dims))
        self.weight = torch.nn.Parameter(torch.from_numpy(start.projection / self.scale).to(device))
        net = backbone.net
        for parameter in net.parameters():
            parameter.requires_grad_(method == "full")
        if method == "partial":
            for module in [*net._blocks[-PARTIAL_BLOCKS:], net._conv_head, net._bn1]:
                module.requires_grad_(True)
        self.backbone_parameters = [p for p in net.parameters() if p.requires_grad]

    def __call__(self, images: Any) -> Any:
        """``images``: a CPU tensor; the embedding stays on the training device."""
        import torch

        return torch.nn.functional.normalize((self.descriptor(images.to(self.device)) - self.mean) @ self.weight, dim=1)

    def state_dict(self) -> dict[str, Any]:
        """A copy (tensors cloned): the best epoch's is kept while training goes on."""
        return {"backbone": copy.deepcopy(self.descriptor.backbone.net.state_dict()), "weight": self.weight.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        self.descriptor.backbone.net.load_state_dict(state["backbone"])
        with torch.no_grad():
            self.weight.copy_(state["weight"])

    def backbone_weights(self) -> dict[str, Any]:
        """The backbone's state on the CPU, as a model directory keeps it (loadable without a GPU)."""
        return {name: tensor.cpu() for name, tensor in self.descriptor.backbone.net.state_dict().items()}

    def projection(self) -> Whitening:
        start = self.start
        return Whitening(
            start.mean, self.weight.detach().cpu().numpy(), start.explained, start.pool_size, start.power, start.shrinkage
        )


@dataclass(frozen=True)
class FinetuneRun:
    net: TunedNet  # at its best epoch
    best_epoch: int  # 0: no epoch beat the starting whitening on validation
    epochs_run: int
    validation: OneShot | None


def finetune(
    folder: LabelledFolder,
    split: tuple[np.ndarray, np.ndarray],
    start: Whitening,
    start_vectors: tuple[np.ndarray, np.ndarray],
    embedder: "Embedder",
    settings: TrainSettings,
    limits: LimitsConfig,
    checkpoint: Checkpoint,
    report: EpochReport | None = None,
) -> FinetuneRun:
    """``split``: (training, validation) instances; ``start_vectors``: (descriptors, instance) of the
    training photos under ``start``, where the loss's classes start. Trains on the GPU that
    ``runtime.device`` allows (:func:`torch_device`); the photos are decoded and augmented on the CPU."""
    import torch

    torch.manual_seed(settings.seed)
    train_ids, val_ids = split
    train = Photos.of(folder, train_ids)
    _, classes = np.unique(train.labels, return_inverse=True)  # loss classes 0..k-1
    device = torch_device(embedder.runtime.device)
    tuned = TunedNet(copy.deepcopy(embedder.torch_model()), start, settings.method, device)
    loss = make_loss(settings.loss, int(classes.max()) + 1, start.dims)
    vectors, labels = start_vectors
    _, start_classes = np.unique(labels, return_inverse=True)
    start_classes_at_their_means(loss, torch.from_numpy(vectors), torch.from_numpy(start_classes), settings.seed)
    loss = loss.to(device)
    groups = [
        {"params": tuned.backbone_parameters, "lr": BACKBONE_LEARNING_RATE},
        {"params": [tuned.weight], "lr": LEARNING_RATE},
        {"params": list(loss.parameters()), "lr": LOSS_LEARNING_RATE},
    ]
    optimiser = torch.optim.Adam([group for group in groups if group["params"]])
    validation = Photos.of(folder, val_ids, VALIDATION_PHOTOS) if len(val_ids) else None
    shown = None if validation is None else [load_image(path, limits).pixels for path in validation.paths]

    def validate() -> OneShot | None:
        if validation is None or shown is None:
            return None
        with torch.inference_mode():
            out = np.zeros((len(shown), start.dims), np.float32)
            for rows, inputs in embedder.input_batches(shown):
                out[rows] = tuned(torch.from_numpy(inputs)).cpu().numpy()
        return one_shot(out, validation.labels, validation.images)

    saved = checkpoint.load()
    if saved is None:
        stopping, best, epoch = EarlyStopping(PATIENCE, validation is not None, validate()), tuned.state_dict(), 0
    else:
        tuned.load_state_dict(saved["model"])
        loss.load_state_dict(saved["loss"])
        optimiser.load_state_dict(saved["optimiser"])
        stopping, best, epoch = saved["stopping"], saved["best"], saved["epoch"]
    while epoch < settings.epochs and not stopping.should_stop(epoch):
        epoch += 1
        mean_loss = _epoch(tuned, loss, optimiser, train, classes, embedder, settings, limits, epoch)
        measured = validate()
        if stopping.improved(epoch, measured):
            best = tuned.state_dict()
        checkpoint.save(epoch, tuned.state_dict(), loss.state_dict(), optimiser.state_dict(), best, stopping)
        if report is not None:
            report(epoch, settings.epochs, mean_loss, measured)
    tuned.load_state_dict(best)
    return FinetuneRun(tuned, stopping.best_epoch, epoch, stopping.best)


def _epoch(
    tuned: TunedNet,
    loss: Any,
    optimiser: Any,
    train: Photos,
    classes: np.ndarray,
    embedder: "Embedder",
    settings: TrainSettings,
    limits: LimitsConfig,
    epoch: int,
) -> float:
    """One pass over new views, each photo shown as a square of the descriptor's long side; the mean loss."""
    import torch

    from instrec.embedding.preprocess import resized_size, to_input

    spec, tuning = embedder.spec, embedder.tuning
    size = resized_size(tuning.max_side, tuning.max_side, tuning.max_side, tuning.size_multiple)
    plan = batches(classes, settings.loss, BATCH, settings.epoch_images or len(train.paths), epoch_seed(settings.seed, epoch))

    def view(number: int, row: int) -> np.ndarray:
        """The epoch's ``number``-th view, of photo ``row``."""
        photo = load_image(train.paths[row], limits).pixels
        drawn = augmented_view(photo, settings.seed, int(train.images[row]), number, size, epoch)
        return to_input(drawn, size, spec.mean, spec.std)

    total, done = 0.0, 0
    for batch in plan:
        inputs = np.stack([view(done + k, int(row)) for k, row in enumerate(batch)])
        optimiser.zero_grad()
        value = loss(tuned(torch.from_numpy(inputs)), torch.from_numpy(classes[batch]).to(tuned.device))
        value.backward()
        optimiser.step()
        total, done = total + float(value.detach()) * len(batch), done + len(batch)
    return total / done
