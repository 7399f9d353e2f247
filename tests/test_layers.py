"""Himalia's import graph has no cycles between its modules (the layers themselves are `make lint`'s contracts).

Every import counts, those inside functions and under ``TYPE_CHECKING`` too, as they do for import-linter:
a cycle that only the type checker follows still ties two modules into one.
"""

import grimp
import pytest


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of two or more modules that import one another, directly or not (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        index[root] = lowest[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        while work:
            module, imported = work[-1]
            following = next(imported, None)
            if following is None:
                work.pop()
                if work:
                    lowest[work[-1][0]] = min(lowest[work[-1][0]], lowest[module])
                if lowest[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif following not in index:
                index[following] = lowest[following] = len(index)
                stack.append(following)
                on_stack.add(following)
                work.append((following, iter(sorted(graph.find_modules_directly_imported_by(following)))))
            elif following in on_stack:
                lowest[module] = min(lowest[module], index[following])
    return groups


def _graph(edges: dict[str, list[str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in edges.items():
        graph.add_module(importer)
        for target in imported:
            graph.add_import(importer=importer, imported=target)
    return graph


def test_strongly_connected_finds_every_cycle_and_only_cycles() -> None:
    graph = _graph({"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": [], "e": ["f"], "f": ["e"], "g": ["g2"], "g2": []})
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["e", "f"]]


@pytest.fixture(scope="module")
def himalia_graph() -> grimp.ImportGraph:
    return grimp.build_graph("himalia", cache_dir=None)


def test_no_import_cycle_between_himalia_modules(himalia_graph: grimp.ImportGraph) -> None:
    cycles = strongly_connected(himalia_graph)
    shown = [
        ", ".join(group)
        + "\n    "
        + "\n    ".join(
            f"{importer} -> {imported}"
            for importer in group
            for imported in sorted(himalia_graph.find_modules_directly_imported_by(importer))
            if imported in group
        )
        for group in cycles
    ]
    assert not cycles, "modules that import one another:\n" + "\n".join(shown)
