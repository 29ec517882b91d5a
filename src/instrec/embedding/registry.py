"""Backbones by name, so a descriptor config can say which network to build.

A name ending in ``:`` registers a family: ``timm:`` serves ``timm:resnet50`` and any other
``timm:<model>``; its factory receives the full name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, TypeVar

from instrec.embedding.spec import weights_file_in
from instrec.errors import BackboneError

if TYPE_CHECKING:
    from instrec.embedding.backbone import Backbone

# Imported when a backbone is first asked for, not with this module: they need torch, and a
# process whose ONNX graph is cached never builds a backbone.
_BUILT_IN = ("instrec.embedding.efficientnet_lite", "instrec.embedding.user_models")

BackboneFactory = Callable[[str, "str | None"], "Backbone"]
"""``factory(name, weights)``; ``weights``: a local file, None (packaged default) or RANDOM_INIT (a
fine-tuned model directory given as weights reaches the factory as the weights file in it)."""

F = TypeVar("F", bound=BackboneFactory)

_FACTORIES: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[F], F]:
    """Decorator adding a factory under ``name``; registering a name twice is a bug and raises."""
    _factories()  # the built-in names first, so that taking one is refused here
    return register_built_in(name)


def register_built_in(name: str) -> Callable[[F], F]:
    """:func:`register_backbone` for the modules in ``_BUILT_IN``, which are being loaded."""

    def add(factory: F) -> F:
        if name in _FACTORIES:
            raise ValueError(f"backbone {name!r} is registered already")
        _FACTORIES[name] = factory
        return factory

    return add


def create_backbone(name: str, weights: str | None = None) -> Backbone:
    """Build backbone ``name`` in eval mode; unknown names raise :class:`BackboneError`."""
    factories = _factories()
    family, sep, _ = name.partition(":")
    factory = factories.get(name) or (factories.get(family + sep) if sep else None)
    if factory is None:
        raise BackboneError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    return factory(name, weights_file_in(weights)).eval()


def list_backbones() -> list[str]:
    return sorted(_factories())


def _factories() -> dict[str, BackboneFactory]:
    for module in _BUILT_IN:
        importlib.import_module(module)  # registers its backbones the first time
    return _FACTORIES
