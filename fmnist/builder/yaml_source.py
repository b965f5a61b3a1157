"""Safe YAML loading that remembers the line of every value and rejects what PyYAML lets through."""
from __future__ import annotations

import re

import yaml

from ..errors import SpecError

# Billion-laughs guard: aliases make the node graph small but its expansion huge.
MAX_NODES = 20_000
MAX_DEPTH = 40
MAX_BYTES = 1 << 20  # a spec is a page of text; a larger file is refused before it is parsed
_STANDARD = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_STANDARD + name for name in ("map", "seq", "omap")}


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-3 as the number users mean (YAML 1.1 wants 1.0e-3, else it is a string)."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


class LineDict(dict):
    """A mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict


class LineList(list):
    """A sequence that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list


def line_of(document, path) -> int | None:
    """The line of the value at `path` (keys and indexes) inside a loaded document, as near as known."""
    node, line = document, getattr(document, "line", None)
    for step in path:
        if isinstance(node, LineDict) and step in node:
            line, node = node.key_lines[step], node[step]
        elif isinstance(node, LineList) and isinstance(step, int) and 0 <= step < len(node):
            line, node = node.item_lines[step], node[step]
        else:
            break
    return line


def _flow_expression(text: str, mark) -> str | None:
    """The message for '${' inside a flow list ([conv 3x3x${c * 2}, bn]), where YAML reads '{' as a mapping and says
    only "expected ',' or ']'"; None for any other YAML problem."""
    if mark is None:
        return None
    line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
    if "${" not in line or "[" not in line:
        return None
    item = next((piece.strip() for piece in line[line.index("[") + 1:].split(", ") if "${" in piece), "")
    return (f"not valid YAML: a flow list [...] cannot hold '${{' unquoted (YAML reads '{{' as the start of a "
            f"mapping): quote the layer (\"{item.rstrip(']').strip()}\") or write the list one item per line")


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _too_many(file: str | None, line: int) -> SpecError:
    return SpecError(f"the document holds more than {MAX_NODES:,} values, the limit for a spec (a YAML alias counts "
                     f"each time it is used)", file, line)


def _check_depth(text: str, file: str | None) -> None:
    """Refuse runaway nesting and too many values from the event stream (iterative, and stopped at the limit) before
    PyYAML's recursive composer sees it: a huge flow list is refused after MAX_NODES values, not after all of them."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=SpecLoader)):
        if count > 2 * MAX_NODES:  # a value is one event, a list or mapping two
            raise _too_many(file, event.start_mark.line + 1)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"nested deeper than {MAX_DEPTH} levels", file, event.start_mark.line + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str, file: str | None = None):
    """Parse YAML text into LineDict/LineList/scalars; every problem is a SpecError with a line."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"too large for a spec: {len(text):,} characters (limit {MAX_BYTES:,})", file)
    loader = None
    try:
        _check_depth(text, file)
        loader = SpecLoader(text)  # the reader refuses control characters here, in the constructor
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "malformed YAML"
        raise SpecError(_flow_expression(text, mark) or f"not valid YAML: {problem}", file,
                        mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as error:
        raise SpecError(f"not valid YAML: character #x{error.character:04x} is not allowed in a spec (a control character?)",
                        file, _line_at(text, error.position)) from None
    except yaml.YAMLError as error:
        raise SpecError(f"not valid YAML: {' '.join(str(error).split())}", file) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise SpecError("the file is empty: expected a mapping with 'name' and 'layers'", file, 1)
    budget = [MAX_NODES]
    return _convert(loader, root, file, budget, 0)


def _convert(loader, node, file, budget, depth):
    line = node.start_mark.line + 1
    budget[0] -= 1
    if budget[0] < 0:
        raise _too_many(file, line)
    if depth > MAX_DEPTH:
        raise SpecError(f"nested deeper than {MAX_DEPTH} levels", file, line)
    if isinstance(node, yaml.ScalarNode):
        try:
            return loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            raise SpecError(_tag_message(node.tag), file, line) from None
    if node.tag not in _PLAIN_TAGS:
        raise SpecError(_tag_message(node.tag), file, line)
    if isinstance(node, yaml.SequenceNode):
        result = LineList()
        result.line, result.item_lines = line, []
        for item in node.value:
            result.append(_convert(loader, item, file, budget, depth + 1))
            result.item_lines.append(item.start_mark.line + 1)
        return result
    written = [key for key, _ in node.value if key.tag != _STANDARD + "merge"]
    _refuse_duplicates(loader, written, file, budget, depth)
    try:
        loader.flatten_mapping(node)  # resolves '<<' merge keys the way PyYAML does: merged first, written keys last
    except yaml.MarkedYAMLError as error:
        raise SpecError(f"not valid YAML: {error.problem or 'bad merge key'} ('<<' takes a mapping or a list of mappings)",
                        file, (error.problem_mark.line + 1) if error.problem_mark else line) from None
    result = LineDict()
    result.line, result.key_lines = line, {}
    for key_node, value_node in node.value:
        key = _convert(loader, key_node, file, budget, depth + 1)
        result.pop(key, None)  # a written key overrides a merged one (YAML's merge rule); written twice was refused above
        result[key] = _convert(loader, value_node, file, budget, depth + 1)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _refuse_duplicates(loader, key_nodes, file, budget, depth) -> None:
    """A key written twice in one mapping: YAML would silently keep the last, so it is refused."""
    first_line: dict = {}
    for key_node in key_nodes:
        key = _convert(loader, key_node, file, budget, depth + 1)
        key_line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise SpecError("mapping keys must be plain text", file, key_line)
        if key in first_line:
            raise SpecError(f"duplicate key '{key}' (first on line {first_line[key]}): YAML would silently keep the last",
                            file, key_line)
        first_line[key] = key_line


def _tag_message(tag: str) -> str:
    shown = "!!" + tag[len(_STANDARD):] if tag.startswith(_STANDARD) else tag
    return f"YAML tag {shown} is not allowed: specs hold plain data only (loaded safely, nothing was run)"
