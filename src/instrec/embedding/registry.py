"""Backbones by name, so a descriptor config can say which network to build.

A name ending in ``:`` registers a family: ``timm:`` serves ``timm:resnet50`` and any other
``timm:<model>``; its factory receives the full name.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from instrec.embedding.backbone import Backbone
from instrec.errors import BackboneError

BackboneFactory = Callable[[str, str | None], Backbone]
"""``factory(name, weights)``; ``weights``: a local file, None (packaged default) or RANDOM_INIT."""

F = TypeVar("F", bound=BackboneFactory)

_FACTORIES: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[F], F]:
    """Decorator adding a factory under ``name``; registering a name twice is a bug and raises."""

    def add(factory: F) -> F:
        if name in _FACTORIES:
            raise ValueError(f"backbone {name!r} is registered already")
        _FACTORIES[name] = factory
        return factory

    return add


def create_backbone(name: str, weights: str | None = None) -> Backbone:
    """Build backbone ``name`` in eval mode; unknown names raise :class:`BackboneError`."""
    family, sep, _ = name.partition(":")
    factory = _FACTORIES.get(name) or (_FACTORIES.get(family + sep) if sep else None)
    if factory is None:
        raise BackboneError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    return factory(name, weights).eval()


def list_backbones() -> list[str]:
    return sorted(_FACTORIES)
