"""A spec file -> a validated Spec: JSON Schema for the document, the layer grammar for each layer."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import jsonschema
import yaml

from ..errors import FmnistError, SpecError, did_you_mean
from ..datasets.choice import DATA_SCHEMA
from ..hparams import HPARAMS, SPACE_SCHEMA, TRAIN_SCHEMA, value_problem
from .arithmetic import REPEAT, substitute
from .blocks import MAX_REPEAT, Block, NamedBlock
from .fields import LayerProblem
from .kinds import load_builtin_kinds
from .layers import Layer, LayerSpec
from .yaml_source import MAX_BYTES, LineDict, LineList, line_of, load_yaml

KINDS = load_builtin_kinds()  # every kind fmnist ships (a plug-in's join it when loaded)

PACKAGED_SPECS = Path(__file__).resolve().parents[1] / "specs"  # the study's CNNs and the beyond-study specs
ZOO_SPECS = PACKAGED_SPECS / "zoo"  # torchvision's classification models, exact
MAX_LAYERS = 10_000  # layer entries after named blocks are expanded: a self-doubling chain of blocks stops here
MAX_BLOCK_DEPTH = 32  # named blocks inside named blocks
MAX_PROBLEMS = 20  # problems reported in one pass: past these the rest of the spec is not read (fix these first)
MAX_CALL_PIECES = 64  # list items one block call can be split into by YAML's commas (its arguments, and more)
STDIN = "-"
RESHAPING_KEYS = {"input", "classes", "layers", "blocks", "defaults"}  # --set on these drops `expect`: another model

_FIGURE = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {
            "type": "object",
            "required": ["approx", "tolerance"],
            "additionalProperties": False,
            "properties": {
                "approx": {"type": "integer", "minimum": 0},
                "tolerance": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            },
        },
    ]
}

SCHEMA = {
    "type": "object",
    "required": ["name", "layers"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[A-Za-z0-9_.+-]+\Z"},
        "description": {"type": "string"},
        "input": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "integer", "minimum": 1, "maximum": 4096}},
        "classes": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "layers": {
            "type": "array",
            "minItems": 1,
            "items": {"oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "minProperties": 1, "maxProperties": 1},
            ]},
        },
        "expect": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "params": {"type": "object", "additionalProperties": _FIGURE},
                "fc_input": _FIGURE,
                "macs": _FIGURE,
            },
        },
        "defaults": {"type": "object", "additionalProperties": {"type": "object"}},
        "data": DATA_SCHEMA,
        "train": TRAIN_SCHEMA,
        "search": SPACE_SCHEMA,
        "blocks": {
            "type": "object",
            "additionalProperties": {"oneOf": [
                {"type": "array", "minItems": 1},
                {"type": "object", "required": ["layers"], "additionalProperties": False,
                 "properties": {"params": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z_]\w*$"}},
                                "layers": {"type": "array", "minItems": 1}}},
            ]},
        },
    },
}

_DESCRIPTIONS = {
    "name": "The model's name: letters, digits and . _ + - (it names run folders).",
    "description": "One line on what the model is.",
    "input": "[C, H, W] of one input image, e.g. [1, 28, 28] or [3, 224, 224].",
    "classes": "How many classes the model tells apart: the last layer's output size.",
    "layers": "The layers in order: 'kind args' strings (conv 3x3x32, bn, relu, pool 2x2, fc 10), one-key mappings "
              "({conv: {kernel: 3, filters: 32}}), blocks ({residual: [...]}) and uses of named blocks (basic(64)).",
    "expect": "Figures the spec must build to: params per group, fc_input, macs (exact, or {approx, tolerance}).",
    "defaults": "Settings per layer kind for the whole spec, e.g. {pool: {round: floor}, bn: {eps: 0.001}}.",
    "data": "What to train on: a dataset name, a folder of class folders, or a mapping with conversions.",
    "train": "Training settings (optimizer, lr, batch_size, num_epochs, ...), as the command line's flags.",
    "search": "The hyper-parameter search space for fmnist search.",
    "blocks": "Named blocks: a list of layers, or {params: [names], layers: [...]} used as name(args), $name inside.",
}


def json_schema() -> dict:
    """The spec's JSON Schema for editors (builder/schema.py), from this document schema and its descriptions."""
    from .schema import json_schema as editor_schema

    return editor_schema(SCHEMA, _DESCRIPTIONS)


_RULES = {
    "name": "a name of letters, digits and . _ + - (it names run folders)",
    "layers": "a list of layers, e.g. [conv 3x3x32, relu, fc 10]",
    "layer": "a layer written 'kind args' (e.g. 'conv 3x3x32') or as a one-key mapping (e.g. {conv: {kernel: 3, filters: 32}})",
    "input": "[C, H, W], three integers from 1 to 4096",
    "defaults": "a mapping of layer kinds to their settings, e.g. {pool: {round: floor}, bn: {eps: 0.001}}",
}


@dataclass
class Spec:
    name: str
    layers: list[LayerSpec]
    input: tuple[int, int, int] = (1, 28, 28)
    classes: int = 10
    description: str = ""
    expect: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    data: str | dict | None = None  # `data:` a dataset name, a folder, or a mapping with conversions
    file: str | None = None
    document: dict = field(default_factory=dict)  # the plain data, kept for run folders and checkpoints
    defaults: dict = field(default_factory=dict)  # `defaults:` per kind, checked: blocks make their own layers with them
    overrides: list[str] = field(default_factory=list)  # --set KEY=VALUE texts applied to the file, in order


def plain(value):
    """LineDict/LineList -> plain dict/list (for YAML/JSON dumping)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def packaged_or_path(source: str | Path) -> Path:
    """A spec file, or where there is none of that name, the packaged spec it names ('cnn_4', 'CNN_4', 'cnn_4.yaml')."""
    path = Path(source)
    if path.exists() or path.parent != Path("."):
        return path
    return next((folder / f"{path.stem.lower()}.yaml" for folder in (PACKAGED_SPECS, ZOO_SPECS)
                 if (folder / f"{path.stem.lower()}.yaml").is_file()), path)


def packaged_names() -> list[str]:
    """The packaged specs by name: the study's and the beyond-study ones, then the zoo's."""
    return sorted(p.stem for p in PACKAGED_SPECS.glob("*.yaml")) + sorted(p.stem for p in ZOO_SPECS.glob("*.yaml"))


def read_spec_text(source: str | Path) -> tuple[str, str]:
    """(text, name to show) of a spec file, or of standard input for '-'; a file over the size limit is not read."""
    if str(source) == STDIN:
        import sys

        return sys.stdin.read(MAX_BYTES + 1), "<stdin>"
    path = packaged_or_path(source)
    if not path.is_file():
        known = ", ".join(packaged_names())
        raise SpecError(f"no such spec file (or packaged spec: {known})" if not path.exists() else "not a file", str(path))
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(f"too large for a spec: {path.stat().st_size:,} bytes (limit {MAX_BYTES:,})", str(path))
        return path.read_text(encoding="utf-8"), str(path)
    except UnicodeDecodeError as error:
        raise SpecError(f"cannot read: not UTF-8 text (byte {error.start})", str(path)) from None
    except OSError as error:
        raise SpecError(f"cannot read: {error.strerror}", str(path)) from None


def load_spec(source: str | Path | dict, overrides: tuple[str, ...] | list[str] = ()) -> Spec:
    """Read and validate a spec from a file path, '-' for standard input, or already-loaded data, with --set
    overrides applied first; raises SpecError."""
    if isinstance(source, dict):
        document, name = source, None
    else:
        text, name = read_spec_text(source)
        document = load_yaml(text, name)
    for override in overrides:
        document = apply_override(document, override)
    if isinstance(document, dict) and "expect" in document and any(
            override.split("=", 1)[0].split(".")[0].strip() in RESHAPING_KEYS for override in overrides):
        document = {key: value for key, value in document.items() if key != "expect"}  # figures of another model
    spec = parse_spec(document, name)
    spec.overrides = list(overrides)
    return spec


def apply_override(document, text: str):
    """'train.lr=0.001' or 'input=[1,28,28]' or 'layers.3=conv 3x3x64' (the 3rd layer, as the summary numbers it):
    the document with that value set; the value is read as YAML. The result is validated like the file."""
    from .yaml_source import load_yaml as read_value

    key, equals, raw = text.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not equals or not all(path):
        raise SpecError(f"--set {text}: expected KEY=VALUE with a dotted KEY, e.g. train.lr=0.001")
    try:
        value = plain(read_value(raw, "--set")) if raw.strip() else ""
    except SpecError as error:
        raise SpecError(f"--set {text}: the value is not valid YAML ({error.message})") from None
    if not isinstance(document, dict):
        raise SpecError(f"--set {text}: the spec's top level is not a mapping")
    document = plain(document)
    node = document
    for depth, step in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not step.isdigit() or not 1 <= int(step) <= len(node):
                raise SpecError(f"--set {text}: '{step}' is not a position from 1 to {len(node)} in {'.'.join(path[:depth])}")
            if last:
                node[int(step) - 1] = value
            else:
                node = node[int(step) - 1]
        elif isinstance(node, dict):
            if last:
                node[step] = value
            else:
                node = node.setdefault(step, {})
        else:
            raise SpecError(f"--set {text}: {'.'.join(path[:depth])} holds a value, not a mapping or list")
    return document


def parse_spec(document, file: str | None) -> Spec:
    """Validate loaded YAML data (LineDict from load_yaml, or a plain dict) into a Spec."""
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"'{document}'"
        raise SpecError(f"the top level must be a mapping with 'name' and 'layers', got {kind}", file, getattr(document, "line", 1))
    _check_finite(document, [], document, file)
    _refuse_split_calls(document, [], document, file)
    _check_schema(document, file)
    parser = _Parser(document, file)
    try:
        # the rows show $classes as its value ('fc 1000'), as a block's rows show its arguments'
        layers = parser.layer_list(document["layers"], ["layers"], "", values=parser.spec_names)
    except _TooManyProblems:
        layers = []
    if parser.problems:
        parser.problems[0].more = parser.problems[1:]
        raise parser.problems[0]
    return Spec(
        name=document["name"],
        layers=layers,
        input=tuple(document.get("input", (1, 28, 28))),
        classes=document.get("classes", 10),
        description=document.get("description", ""),
        expect=plain(document.get("expect", {})),
        train=plain(document.get("train", {})),
        data=plain(document.get("data")),
        file=file,
        document=plain(document),
        defaults=parser.defaults,
    )


def layer_text(item) -> str:
    """The layer as the user wrote it, on one line."""
    if isinstance(item, str):
        return " ".join(item.split())
    if not isinstance(item, (dict, list)):
        return str(item)
    return yaml.safe_dump(plain(item), default_flow_style=True, sort_keys=False, width=10_000).strip()


_USE = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)")
_CALL_NAME = re.compile(r"\s*([A-Za-z_]\w*)\s*")
_OPENING, _CLOSING = "([{", ")]}"


def split_repeat(text: str) -> tuple[str, str] | None:
    """'basic(64, 1) * 3' -> ('basic(64, 1)', '3'); 'stem * ${n}' -> ('stem', '${n}'); None when the text is no
    repeated use. The call's brackets are matched, so a '*' inside its arguments never splits it."""
    name = _CALL_NAME.match(text)
    if not name:
        return None
    position = name.end()
    if text[position:position + 1] == "(":
        depth = 0
        for end in range(position, len(text)):
            depth += (text[end] in _OPENING) - (text[end] in _CLOSING)
            if depth == 0:
                break
        else:
            return None
        position = end + 1
    rest = text[position:].lstrip()
    if rest[:1] not in ("*", "×") or rest.startswith("**"):
        return None
    return text[:position].strip(), rest[1:].strip()

# Names people bring from PyTorch and Keras that are no kind here, and what this language calls them
FOREIGN_NAMES = {
    "conv2d": "conv", "convolution2d": "conv", "dense": "fc", "batchnorm2d": "bn",
    "batchnormalization": "bn", "batchnorm1d": "bn", "layernorm": "ln", "layer_norm": "ln", "groupnorm": "gn",
    "maxpool2d": "pool", "maxpooling2d": "pool", "avgpool2d": "avgpool", "averagepooling2d": "avgpool",
    "adaptiveavgpool2d": "adaptive_avgpool", "globalaveragepooling2d": "gap", "depthwiseconv2d": "dwconv",
    "separableconv2d": "dwconv", "drop_path": "residual drop_path=P", "droppath": "residual drop_path=P",
    "stochasticdepth": "residual drop_path=P", "stochastic_depth": "residual drop_path=P",
    "squeezeexcitation": "se", "squeeze_excite": "se", "channelshuffle": "shuffle",
    "activation": "relu (or another activation by name)", "dropout2d": "dropout", "concatenate": "parallel",
    "concat": "parallel", "cat": "parallel",
}
# Names for what a kind does rather than another library's class name
DESCRIPTIVE_NAMES = {"globalavgpool": ("global average pooling", "gap"), "globalaveragepool": ("global average pooling", "gap"),
                     "globalaveragepooling": ("global average pooling", "gap"), "avgpoolglobal": ("global average pooling", "gap")}


class _TooManyProblems(Exception):
    """MAX_PROBLEMS were found: the parser stops reading, and reports those."""


class _Parser:
    """Turns layer lists (and the blocks they use) into LayerSpecs, collecting one problem per bad layer."""

    def __init__(self, document, file: str | None):
        self.document = document
        self.file = file
        self.blocks = document.get("blocks", {})
        self.problems: list[FmnistError] = []
        self.using: list[str] = []  # named blocks being expanded, to catch recursion
        self.listed_kinds = False  # the known kinds are listed with the first unknown kind only, not on every line
        self.count = 0  # layer entries made so far, against MAX_LAYERS
        self.defaults = self.read_defaults(document.get("defaults", {}))
        self.reported: set[tuple] = set()  # (place in the document, problem): a block used N times reports it once
        self.spec_names = {"classes": str(document.get("classes", 10))}  # $classes: the head follows --set classes=N

    def read_defaults(self, written: dict) -> dict[str, dict]:
        """`defaults: {pool: {round: floor}, bn: {eps: 0.001}}` -> settings per kind, each setting checked."""
        defaults: dict[str, dict] = {}
        given: dict[str, str] = {}  # kind -> the name its defaults were written under
        for name, settings in written.items():
            line = line_of(self.document, ["defaults", name])
            try:
                kind = self.kind(str(name))
                known = {f.name for f in fields(kind)} - {kind.children_field} if issubclass(kind, Block) else \
                    {f.name for f in fields(kind)}
                for key in settings:
                    setting = kind.aliases.get(str(key), str(key))
                    if setting not in known:
                        raise LayerProblem(f"unknown setting '{key}' for {kind.kind}{did_you_mean(key, known)}; "
                                           f"allowed: {', '.join(sorted(known)) or 'none'}")
                    if setting in kind.converters:
                        kind.converters[setting](settings[key], setting)
                if kind.kind in defaults:
                    raise LayerProblem(f"{kind.kind}'s defaults are given twice (as '{given[kind.kind]}' and "
                                       f"'{name}', names of one kind): write them once")
            except LayerProblem as problem:
                raise SpecError(f"defaults.{name}: {problem}", self.file, line) from None
            given[kind.kind] = name
            defaults[kind.kind] = {kind.aliases.get(str(key), str(key)): value for key, value in settings.items()}
        return defaults

    def layer_list(self, items, path: list, prefix: str, context: str = "", values: dict | None = None) -> list[LayerSpec]:
        """LayerSpecs of a list of layers; `values`: a named block's arguments, written into each layer first (so a
        problem there points at the block's own line)."""
        specs = []
        for position, item in enumerate(items):
            index = f"{prefix}.{position + 1}" if prefix else position + 1
            line = line_of(self.document, [*path, position])
            text = layer_text(item)
            problems_before = len(self.problems)
            self.count += 1
            if self.count > MAX_LAYERS:
                raise SpecError(f"expands to more than {MAX_LAYERS:,} layers, the limit for a spec (blocks used "
                                f"inside blocks multiply)", self.file, line, index, text)
            try:
                if values is not None:
                    item = _substitute(item, values, (REPEAT,))
                    text = layer_text(item)  # rows show the values; a problem in the substitution shows the original
                layer = self.layer(item, [*path, position], str(index), line)
                label = layer.label() if isinstance(layer, Block) else None
                specs.append(LayerSpec(index, label or text, line, layer))
            except LayerProblem as problem:
                if len(self.problems) == problems_before:  # a problem inside a block was already reported there
                    self.report(SpecError(f"{problem}{context}", self.file, line, index, text), [*path, position])
        return specs

    def report(self, problem: SpecError, where: list) -> None:
        """Note a problem once per place in the document (a block used N times has it N times); past MAX_PROBLEMS,
        stop reading."""
        key = (tuple(map(str, where)), problem.message)
        if key in self.reported:
            return
        self.reported.add(key)
        self.problems.append(problem)
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems.append(SpecError(f"stopped after {MAX_PROBLEMS} problems: fix these and check again",
                                           self.file))
            raise _TooManyProblems

    def layer(self, item, path: list, index: str, line: int | None) -> Layer:
        """'conv 3x3x32 stride=2', {conv: {kernel: 3, filters: 32}}, {residual: [...]} or basic(64) -> a Layer."""
        if not (isinstance(item, str) and item.strip()) and not (isinstance(item, dict) and len(item) == 1):
            raise LayerProblem(f"expected {_RULES['layer']}")
        if isinstance(item, str):
            repeated = split_repeat(item)
            if repeated and ("(" in repeated[0] or repeated[0] in self.blocks):
                return self.repeated_block(*repeated, path, index, line)
            item = substitute(item, self.spec_names)
            use = _USE.fullmatch(item.strip())
            if use or item.strip() in self.blocks:
                name, args = (use.group(1), use.group(2)) if use else (item.strip(), "")
                return self.named_block(name, _arguments(args), index, line)
            name, *tokens = item.split()
            positional = [token for token in tokens if "=" not in token]
            options = _options(token for token in tokens if "=" in token)
            kind = self.kind(name)
            if _has_lists(kind):
                raise LayerProblem(f"expected {kind.usage}")
            settings = kind.from_positional(positional)
            settings.update(options)
            return self.with_defaults(kind, settings)
        ((name, value),) = item.items()
        kind = self.kind(str(name))
        value = _settings_substituted(value, self.spec_names)  # {fc: {units: $classes}} as 'fc $classes'
        if issubclass(kind, Block) and kind.children_key is not None:  # its lists are parsed by the kind itself
            return kind.from_mapping(value, self.layer_list, [*path, name], index, self.defaults.get(kind.kind, {}))
        if value is None:
            return self.with_defaults(kind, {})
        if isinstance(value, dict):
            return self.with_defaults(kind, dict(value))
        return self.with_defaults(kind, kind.from_positional([str(value)]))

    def with_defaults(self, kind: type[Layer], settings: dict) -> Layer:
        """The layer from its settings over the spec's `defaults:` for its kind."""
        given = {kind.aliases.get(str(key), str(key)) for key in settings}
        return kind.from_settings({**{k: v for k, v in self.defaults.get(kind.kind, {}).items() if k not in given},
                                   **settings})

    def repeated_block(self, call: str, times: str, path: list, index: str, line: int | None) -> Layer:
        """'basic(64, 1) * 3': the block used `times` times in a row, with $repeat = 0, 1, ... in its arguments; the
        count may be arithmetic ('* ${ceil(3 * 1.4)}'), the same at the top level as inside a block."""
        count = substitute(times, self.spec_names).strip()
        if not re.fullmatch(r"\d{1,9}", count) or not 1 <= int(count) <= MAX_REPEAT:
            shown = count if len(count) <= 20 else count[:20] + "..."
            raise LayerProblem(f"a block repeated {shown} times: the count must be from 1 to {MAX_REPEAT:,} (a whole "
                               f"number)")
        uses = []
        for repetition in range(int(count)):
            text = substitute(call, {**self.spec_names, REPEAT: str(repetition)})
            use = _USE.fullmatch(text.strip())
            name, args = (use.group(1), use.group(2)) if use else (text.strip(), "")
            uses.append(LayerSpec(f"{index}.{repetition + 1}", text, line,
                                  self.named_block(name, _arguments(args), f"{index}.{repetition + 1}", line)))
        return NamedBlock(layers=uses, title=f"{call.strip()} x {count}", repeated=True)

    def named_block(self, name: str, args: list[str], index: str, line: int | None) -> Layer:
        if name not in self.blocks:
            known = [*KINDS, *self.blocks]
            raise LayerProblem(f"unknown block '{name}'{did_you_mean(name, known)}; blocks: {', '.join(self.blocks) or 'none'}")
        if name in self.using:
            raise LayerProblem(f"block '{name}' uses itself ({' -> '.join([*self.using, name])})")
        if len(self.using) >= MAX_BLOCK_DEPTH:
            raise LayerProblem(f"blocks nested deeper than {MAX_BLOCK_DEPTH} ({' -> '.join(self.using[:3])} -> ...)")
        definition = self.blocks[name]
        params = definition.get("params", []) if isinstance(definition, dict) else []
        layers = definition["layers"] if isinstance(definition, dict) else definition
        if len(args) != len(params):
            wanted = f"({', '.join(params)})" if params else "no parameters"
            raise LayerProblem(f"block '{name}' takes {wanted}: {len(args)} given")
        values = {**self.spec_names, **dict(zip(params, args))}
        path = ["blocks", name, "layers"] if isinstance(definition, dict) else ["blocks", name]
        self.using.append(name)
        try:
            children = self.layer_list(layers, path, index, f" (in block '{name}' used on line {line})", values)
        finally:
            self.using.pop()
        return NamedBlock(layers=children, name=name)

    def kind(self, name: str) -> type[Layer]:
        kind = KINDS.get(name.lower()) if name != "Dense" else None  # Keras' Dense is a fully connected layer here
        if kind is None:
            known = [*KINDS, *self.blocks]
            foreign = FOREIGN_NAMES.get(name.lower().replace("-", "_")) or FOREIGN_NAMES.get(name.lower().replace("_", ""))
            described = DESCRIPTIVE_NAMES.get(name.lower().replace("-", "").replace("_", ""))
            hint = f" (PyTorch's and Keras' {name} is '{foreign}' here)" if foreign else \
                f" ({described[0]} is '{described[1]}' here)" if described else did_you_mean(name.lower(), known)
            listed = "known kinds: as listed above" if self.listed_kinds else \
                f"known: {', '.join(sorted({k.kind for k in KINDS.values()}))} (a kind of your own: fmnist --plugin FILE.py)"
            self.listed_kinds = True
            raise LayerProblem(f"unknown layer kind '{name}'{hint}; {listed}")
        return kind


def _has_lists(kind: type[Layer]) -> bool:
    """A block kind whose mapping form holds layer lists (residual, parallel, repeat), parsed by the kind itself."""
    return issubclass(kind, Block) and kind.children_key is not None


def _options(tokens) -> dict[str, str]:
    """'stride=2 pad=1' -> {'stride': '2', 'pad': '1'}; a setting written twice is refused, not silently the last."""
    options: dict[str, str] = {}
    for token in tokens:
        key, value = token.split("=", 1)
        if key in options:
            raise LayerProblem(f"'{key}' is given twice ({key}={options[key]} and {key}={value})")
        options[key] = value
    return options


def _substitute(value, values: dict[str, str], later: tuple[str, ...] = ()):
    """A block's layers with $name replaced by the value given at its use and ${...} evaluated; lines are kept (same
    containers)."""
    if isinstance(value, str):
        return substitute(value, values, later)
    if isinstance(value, LineList):
        items = LineList(_substitute(item, values, later) for item in value)
        items.line, items.item_lines = value.line, value.item_lines
        return items
    if isinstance(value, LineDict):
        mapping = LineDict((key, _substitute(item, values, later)) for key, item in value.items())
        mapping.line, mapping.key_lines = value.line, value.key_lines
        return mapping
    if isinstance(value, list):
        return [_substitute(item, values, later) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, values, later) for key, item in value.items()}
    return value


def _settings_substituted(value, names: dict[str, str]):
    """A mapping-form layer's settings with $names written in (its layer lists are parsed, and substituted, as
    layers); $repeat is kept for a repeated call inside."""
    if isinstance(value, str):
        return substitute(value, names, (REPEAT,))
    if isinstance(value, dict):
        return {key: item if isinstance(item, list) else _settings_substituted(item, names) for key, item in value.items()}
    return value


def _refuse_split_calls(value, path: list, document, file) -> None:
    """[bottleneck(64, 256, 1)]: YAML's flow list cuts a block call at its commas; say so, in one line, before the
    pieces are read as three bad layers."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_split_calls(item, [*path, key], document, file)
    elif isinstance(value, list):
        for position in range(len(value)):
            pieces = _split_call(value, position)
            if pieces:
                call = ", ".join(str(piece).strip() for piece in pieces)
                raise SpecError(f"YAML split the block call '{call}' at its commas into {len(pieces)} list items (a "
                                f"flow list [...] reads commas as separators): write it on its own line "
                                f"('- {call}') or in quotes (\"{call}\")", file, line_of(document, [*path, position]))
            _refuse_split_calls(value[position], [*path, position], document, file)


def _split_call(items: list, position: int) -> list:
    """The items from `position` that together make one block call YAML cut at its commas ('bottleneck(64', '256',
    '1)'), or [] when the item there is whole."""
    first = items[position]
    if not isinstance(first, str) or not _CALL_START.match(first) or first.count("(") <= first.count(")"):
        return []
    depth = 0
    for end in range(position, min(len(items), position + MAX_CALL_PIECES)):  # bounded: linear in the list's length
        piece = items[end]
        if not isinstance(piece, (str, int, float)) or isinstance(piece, bool):
            return []
        depth += str(piece).count("(") - str(piece).count(")")
        if depth <= 0:
            return items[position:end + 1] if end > position else []
    return []


_CALL_START = re.compile(r"\s*[A-Za-z_]\w*\s*\(")


def _arguments(text: str) -> list[str]:
    """'64, ${max(1, c // 4)}, 2' -> ['64', '${max(1, c // 4)}', '2']: commas inside (), [] or ${} do not split."""
    if not text.strip():
        return []
    args, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += (char in "([{") - (char in ")]}")
        current += char
    return [*args, current.strip()]


def _check_finite(value, path: list, document, file) -> None:
    """NaN and infinities pass JSON Schema's minimum/maximum checks (every comparison with NaN is false): refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{_path_text(path) or 'value'}: {value} is not a finite number", file, line_of(document, path))
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _check_finite(item, [*path, key], document, file)


def _check_schema(document, file) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems: list[FmnistError] = []
    for error in sorted(validator.iter_errors(document), key=lambda e: line_of(document, list(e.absolute_path)) or 0):
        # one value can break two rules (an empty name: its length and its pattern) that read as the same line
        problems.extend(problem for problem in _describe(error, document, file)
                        if str(problem) not in {str(seen) for seen in problems})
    if problems:
        problems[0].more = problems[1:]
        raise problems[0]


def _describe(error: jsonschema.ValidationError, document, file) -> list[SpecError]:
    path = list(error.absolute_path)
    where = _path_text(path)
    line = line_of(document, path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extras = [key for key in error.instance if key not in allowed]
        container = error.instance
        return [
            SpecError(f"unknown key '{key}'{' in ' + where if where else ''}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}",
                      file, container.key_lines.get(key, line) if isinstance(container, LineDict) else line)
            for key in extras
        ]
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return [SpecError(f"missing required key '{key}'{' in ' + where if where else ''}", file, line) for key in missing]
    if len(path) == 2 and path[0] == "layers":
        return [SpecError(f"expected {_RULES['layer']}", file, line, path[1] + 1, layer_text(error.instance))]
    rule = _RULES.get(path[0]) if path and isinstance(path[0], str) and len(path) <= 2 else None
    message = f"expected {rule}, got {error.instance!r}" if rule else error.message
    if len(path) == 2 and path[0] == "train" and path[1] in HPARAMS:  # the setting's own words (a duration's format)
        message = value_problem(path[1], error.instance) or message
    if isinstance(error.instance, bool) and error.validator in ("type", "pattern"):
        message += " (YAML reads yes/no/on/off as booleans: quote the value)"
    return [SpecError(f"{where}: {message}" if where else message, file, line)]


def _path_text(path: list) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text
