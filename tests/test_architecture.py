"""Data flows one way between instrec's parts: no two of them import each other, even indirectly."""

from __future__ import annotations

import ast
from pathlib import Path

import instrec

SOURCE = Path(instrec.__file__).parent


def _part(module: str) -> str | None:
    """The part of instrec a dotted module name belongs to (its package, or the top-level module)."""
    names = module.split(".")
    return names[1] if names[0] == "instrec" and len(names) > 1 else None


def _imports() -> dict[str, set[str]]:
    """Part -> the other parts its modules import (at the top or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE)
        own = relative.parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        targets = graph.setdefault(own, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "instrec"]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                part = _part(module) if module != "instrec" else None
                if part and part != own:
                    targets.add(part)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_parts_of_instrec_import_each_other_without_cycles():
    graph = _imports()
    assert {"images", "embedding", "catalog", "rerank", "decision", "query", "recognizer"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_training_sits_downstream_of_the_engine():
    """Training may use the embedding and images; only the command line may use training."""
    graph = _imports()
    assert {"embedding", "images"} <= graph["training"]
    assert {part for part, targets in graph.items() if "training" in targets} <= {"cli"}


def test_the_cycle_check_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


MOST_PUBLIC_MEMBERS = 20  # a thin façade: open, enrol, recognise, remove, calibrate and a grouped read view
MOST_MODULE_LINES = 400


def _public_members(cls: type) -> list[str]:
    """The methods and properties (class and static methods too) a class offers, its bases' included."""
    names = {
        name
        for klass in cls.__mro__
        if klass is not object
        for name, member in vars(klass).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, (property, classmethod, staticmethod)))
    }
    return sorted(names)


def test_the_recognizer_is_a_thin_facade():
    from instrec.recognizer import Recognizer

    members = _public_members(Recognizer)
    assert {"open", "enroll", "recognize", "remove", "calibrate", "gallery"} <= set(members)
    assert len(members) <= MOST_PUBLIC_MEMBERS, f"{len(members)} public members: {', '.join(members)}"


def test_the_member_count_sees_methods_and_properties():
    class Base:
        def shared(self) -> None: ...

    class Sample(Base):
        limit = 3  # data, not a member

        @property
        def view(self) -> int:
            return 1

        @classmethod
        def make(cls) -> None: ...

        def _private(self) -> None: ...

    assert _public_members(Sample) == ["make", "shared", "view"]


def test_no_module_is_too_long():
    lengths = {str(path.relative_to(SOURCE)): len(path.read_text().splitlines()) for path in SOURCE.rglob("*.py")}
    too_long = {path: n for path, n in lengths.items() if n > MOST_MODULE_LINES}
    assert not too_long, f"modules over {MOST_MODULE_LINES} lines: {too_long}"
