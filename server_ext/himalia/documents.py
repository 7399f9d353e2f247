"""YAML documents validated into models, with errors that name the file, the line and the field.

Used by every declarative file Himalia reads (``himalia apply -f``, scenario definitions): the
YAML is composed node by node so that each value's line is known, then validated by pydantic,
and the first error is reported as ``FILE:LINE: path.to.field: message``.
"""

from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import HimaliaError

M = TypeVar("M", bound=BaseModel)


class DocumentError(HimaliaError):
    status = 400


@dataclass
class _Located:
    data: Any
    lines: dict[tuple[Any, ...], int]


def _construct(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            result[key] = _construct(value_node, (*path, key), lines)
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, index), lines) for index, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _locate(text: str, filename: str) -> _Located:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise DocumentError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if root is None:
        raise DocumentError(f"{filename}: the file is empty")
    lines: dict[tuple[Any, ...], int] = {}
    return _Located(_construct(root, (), lines), lines)


def _line_of(located: _Located, path: tuple[Any, ...]) -> int:
    while path and path not in located.lines:
        path = path[:-1]
    return located.lines.get(path, 1)


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


def load_document(text: str, model: type[M], filename: str = "<document>") -> M:
    located = _locate(text, filename)
    try:
        return model.model_validate(located.data)
    except ValidationError as error:
        first = error.errors()[0]
        path = _data_path(tuple(first["loc"]), located)
        line = _line_of(located, path)
        raise DocumentError(f"{filename}:{line}: {dotted(path)}: {first['msg']}", field=dotted(path)) from None
