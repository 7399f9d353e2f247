"""YAML documents validated into models, with errors that name the file, the line and the field.

Used by every declarative file Himalia reads (``himalia apply -f``, scenario definitions): the
YAML is composed node by node so that each value's line is known, then validated by pydantic,
and the first error is reported as ``FILE:LINE: path.to.field: message``.

Reading is bounded before any work: a document longer than ``MAX_DOCUMENT_CHARS`` is refused
unread, composition stops at ``MAX_DEPTH`` levels of nesting, and aliases (``*name``) are refused
where they appear. An alias is a reference that building the values copies, so a few lines of
aliases nested in each other (the "billion laughs") cost minutes of CPU; nothing Himalia reads
needs one.
"""

import re
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from himalia.core.errors import HimaliaError

M = TypeVar("M", bound=BaseModel)

#: The longest document read, in characters: a scenario of 200 steps is well under 100 000.
#: Composing YAML costs about a second per megabyte, so this also bounds the CPU one save costs.
MAX_DOCUMENT_CHARS = 256 * 1024
#: The deepest nesting of mappings and sequences: scenarios and manifests need fewer than ten.
MAX_DEPTH = 32

# libyaml's parser is C and yields events quickly; composing them stays in Python, where the depth
# and the aliases are checked. Without libyaml, PyYAML's pure-Python parser does the same, slower.
try:
    from yaml._yaml import CParser as _Events
except ImportError:  # pragma: no cover - libyaml ships in PyYAML's wheels
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Events(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)


class DocumentError(HimaliaError):
    status = 400


class _Refused(Exception):
    """A limit of the bounded loader, at a line and a path of the document."""

    def __init__(self, line: int, path: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


class _BoundedLoader(Composer, _Events, SafeConstructor, Resolver):
    """PyYAML's safe loader, composing at most ``MAX_DEPTH`` levels and refusing aliases."""

    def __init__(self, text: str) -> None:
        _Events.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        #: Where the node being composed sits: keys and indexes; ``None`` for a mapping's keys.
        self.path: list[Any] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(index, yaml.ScalarNode):
            self.path.append(index.value)
        elif isinstance(index, int):
            self.path.append(index)
        else:
            self.path.append(None)  # a mapping's key: reported at its mapping
        try:
            where = tuple(part for part in self.path if part is not None)
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(
                    event.start_mark.line + 1,
                    where,
                    f"aliases (*{event.anchor}) are not accepted: write the value out",
                )
            if len(self.path) > MAX_DEPTH and isinstance(event, yaml.CollectionStartEvent):
                raise _Refused(event.start_mark.line + 1, where, f"nested deeper than {MAX_DEPTH} levels")
            node: yaml.Node = super().compose_node(parent, index)
            return node
        finally:
            self.path.pop()


@dataclass
class _Located:
    data: Any
    lines: dict[tuple[Any, ...], int]


def _construct(
    loader: _BoundedLoader, node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node.start_mark.line + 1, path, "keys must be plain values, not lists or mappings")
            key = loader.construct_object(key_node)
            result[key] = _construct(loader, value_node, (*path, key), lines)
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, index), lines) for index, item in enumerate(node.value)]
    return loader.construct_object(node)


def _locate(text: str, filename: str) -> _Located:
    if len(text) > MAX_DOCUMENT_CHARS:
        raise DocumentError(
            f"{filename}: the document has {len(text)} characters, more than the {MAX_DOCUMENT_CHARS} accepted"
        )
    loader = _BoundedLoader(text)
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = loader.get_single_node()
        if root is None:
            raise DocumentError(f"{filename}: the file is empty")
        return _Located(_construct(loader, root, (), lines), lines)
    except _Refused as refused:
        field = dotted(refused.path)
        raise DocumentError(f"{filename}:{refused.line}: {field}: {refused.message}", field=field) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(error, "problem", None) or str(error)
        if "maximum nesting depth" in problem:  # libyaml's own limit, met while reading ahead
            raise DocumentError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
        raise DocumentError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def _line_of(located: _Located, path: tuple[Any, ...]) -> int:
    while path and path not in located.lines:
        path = path[:-1]
    return located.lines.get(path, 1)


_PART = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def line_of(text: str, field: str) -> int | None:
    """The line of ``field`` (``steps[2].dataset``) in the YAML ``text``, or of its nearest
    parent there; ``None`` when the text does not parse or holds no part of the field."""
    try:
        located = _locate(text, "yaml")
    except DocumentError:
        return None
    path = tuple(int(index) if index else key for key, index in _PART.findall(field))
    while path and path not in located.lines:
        path = path[:-1]
    return located.lines[path] if path else None


def dotted(path: tuple[Any, ...]) -> str:
    """``("steps", 2, "timeout")`` -> ``steps[2].timeout``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _data_path(location: tuple[Any, ...], located: _Located) -> tuple[Any, ...]:
    """The error's location in the data, without what pydantic adds that is not a key of the
    document: the tag of a tagged union (``steps.2.notebook.timeout``) and validator names.
    A missing field, last, is kept."""
    path: tuple[Any, ...] = ()
    node = located.data
    for index, part in enumerate(location):
        last = index == len(location) - 1
        if not last and isinstance(node, dict) and node.get("type") == part:
            continue  # the union's tag
        candidate = (*path, part)
        if candidate in located.lines or isinstance(part, int) or last:
            path = candidate
            node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    return path


def _has(node: dict[Any, Any] | list[Any], part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)


def load_document(text: str, model: type[M], filename: str = "<document>", context: dict[str, Any] | None = None) -> M:
    """``text`` validated into ``model`` (with pydantic's validation ``context``), or ``DocumentError``."""
    located = _locate(text, filename)
    try:
        return model.model_validate(located.data, context=context)
    except ValidationError as error:
        first = error.errors()[0]
        path = _data_path(tuple(first["loc"]), located)
        line = _line_of(located, path)
        raise DocumentError(f"{filename}:{line}: {dotted(path)}: {first['msg']}", field=dotted(path)) from None
