"""The spec's JSON Schema for editors (`fmnist schema`), made from the same tables the parser reads: the document's
keys, every registered layer kind under each of its names in any case, each kind's settings and aliases, and layer
lists inside blocks, named blocks and `defaults:`.

What JSON Schema cannot say is left to `fmnist validate` (docs/spec.md lists it): a bare word that is no kind may name
a block of the spec's own, so it passes; setting values, arithmetic, block arguments and shapes are not checked.
"""
from __future__ import annotations

import copy
import re
from dataclasses import fields

from .blocks import Block
from .layers import KINDS, Layer

LAYER = {"$ref": "#/$defs/layer"}
LAYER_LIST = {"type": "array", "minItems": 1, "items": LAYER}
_NAME = r"[A-Za-z_]\w*"
_REPEATED = r"(\s*[*×]\s*\S.*)?"  # 'basic(64) * 3'


def _any_case(name: str) -> str:
    """A regex for `name` in any case (JSON Schema's regexes have no flags): 'bn' -> '[bB][nN]'."""
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else re.escape(char) for char in name)


def _names_pattern(names: list[str]) -> str:
    return "(" + "|".join(_any_case(name) for name in sorted(names)) + ")"


def _kinds() -> dict[type[Layer], list[str]]:
    """Each registered class with every name it is registered under."""
    by_class: dict[type[Layer], list[str]] = {}
    for name, kind in KINDS.items():
        by_class.setdefault(kind, []).append(name)
    return by_class


def _setting_names(kind: type[Layer]) -> list[str]:
    own = {item.name for item in fields(kind)} - {getattr(kind, "children_field", None)}
    return sorted(own | set(kind.aliases))


def _settings(kind: type[Layer]) -> dict:
    return {"type": "object", "propertyNames": {"enum": _setting_names(kind)}}


def _value(kind: type[Layer]) -> dict:
    """What may follow a kind's name in the mapping form: its layer lists (blocks), or a value or its settings."""
    if issubclass(kind, Block) and kind.children_key is not None:
        lists = {"type": "array", "minItems": 1, "items": LAYER_LIST} if kind.children_field == "branches" else LAYER_LIST
        mapping = {"type": "object", "required": [kind.children_key], "properties": {kind.children_key: lists},
                   "propertyNames": {"enum": [*_setting_names(kind), kind.children_key]}}
        return {"oneOf": [lists, mapping]}
    return {"anyOf": [{"type": ["null", "string", "number", "boolean"]}, _settings(kind)]}


def _layer(kinds: dict[type[Layer], list[str]]) -> dict:
    every_name = [name for names in kinds.values() for name in names]
    text = {"type": "string", "anyOf": [
        {"pattern": rf"^(?!\s*Dense\b)\s*{_names_pattern(every_name)}(\s.*)?$"},  # a kind, then its values
        {"pattern": rf"^\s*{_NAME}\s*\(.*\){_REPEATED}$"},  # a named block's use
        {"pattern": rf"^\s*{_NAME}{_REPEATED}$"},  # a bare word: a kind, or a block's name (not checked here)
        {"pattern": r"^\s*\$"},  # a block parameter that holds a layer
    ]}
    mapping = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
               "patternProperties": {f"^{_names_pattern(names)}$": _value(kind) for kind, names in kinds.items()}}
    return {"oneOf": [text, mapping]}


def json_schema(document_schema: dict, descriptions: dict[str, str]) -> dict:
    """The spec's JSON Schema for editors: the document's schema with descriptions, and every layer checked for its
    kind (any case) and its settings' names, in `layers:`, inside blocks, in named blocks, and in `defaults:`."""
    document = copy.deepcopy(document_schema)
    kinds = _kinds()
    for key, text in descriptions.items():
        document["properties"][key]["description"] = text
    document["properties"]["layers"]["items"] = LAYER
    document["properties"]["defaults"] = {
        "type": "object", "additionalProperties": False,
        "patternProperties": {f"^{_names_pattern(names)}$": _settings(kind) for kind, names in kinds.items()},
        "description": descriptions["defaults"]}
    blocks = document["properties"]["blocks"]["additionalProperties"]["oneOf"]
    blocks[0]["items"] = LAYER
    blocks[1]["properties"]["layers"]["items"] = LAYER
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "fmnist spec",
            "$defs": {"layer": _layer(kinds)}, **document}
