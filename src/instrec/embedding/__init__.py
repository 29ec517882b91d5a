"""Embedding stage: image -> L2-normalised global descriptor (backbone feature map -> GeM -> L2)."""

from instrec.embedding import efficientnet_lite, user_models  # noqa: F401 - registers backbones
from instrec.embedding.backbone import RANDOM_INIT, Backbone, BackboneSpec
from instrec.embedding.descriptor_net import DescriptorNet
from instrec.embedding.embedder import Embedder
from instrec.embedding.preprocess import resized_size
from instrec.embedding.registry import create_backbone, list_backbones, register_backbone

__all__ = [
    "RANDOM_INIT",
    "Backbone",
    "BackboneSpec",
    "DescriptorNet",
    "Embedder",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "resized_size",
]
