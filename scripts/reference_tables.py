"""The reference tables of docs/ that restate code, made from the code itself (never typed in).

    python scripts/reference_tables.py            # print every table
    python scripts/reference_tables.py --write    # and replace each <!-- NAME:begin --> ... <!-- NAME:end --> block

Tables: spec_keys (the spec schema), layer_kinds and block_kinds (the registry: names, compact forms, settings and
their defaults), zoo (every spec in fmnist/specs/zoo/ as fmnist counts it, beside torchvision's published figures),
train_settings (the HPARAMS table: flags, defaults, rules) and summary_json (the fields of `fmnist summary --json`).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from results_tables import print_or_write

from fmnist.durations import PATTERN as DURATION

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = tuple(ROOT / "docs" / name for name in ("spec.md", "zoo.md", "training.md", "run-folder.md"))
ZOO_TEST = "tests/test_zoo.py::test_zoo_spec_is_exact_against_torchvision"
WITH_AUX = {"inception_v3"}  # torchvision's published count holds the auxiliary head, which the spec leaves out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def spec_keys() -> str:
    from fmnist.builder.spec import _DESCRIPTIONS, SCHEMA

    rows = ["| key | required | meaning |", "|---|---|---|"]
    for key in SCHEMA["properties"]:
        rows.append(f"| `{key}` | {'yes' if key in SCHEMA['required'] else 'no'} | {_cell(_DESCRIPTIONS[key])} |")
    return "\n".join(rows)


def _kinds(blocks: bool) -> list[tuple[type, list[str]]]:
    from fmnist.builder.blocks import Block
    from fmnist.builder.layers import KINDS

    kinds: dict[type, list[str]] = {}
    for name, kind in KINDS.items():
        if issubclass(kind, Block) == blocks and kind.__module__.startswith("fmnist."):
            kinds.setdefault(kind, []).append(name)
    return list(kinds.items())


def _default(value) -> str:
    """A default as a spec would write it: (1, 1) as 1x1, True as true, None as none."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    return f"{value:g}" if isinstance(value, float) else str(value)


def _settings(kind: type) -> str:
    shown = []
    for item in dataclasses.fields(kind):
        if item.name == getattr(kind, "children_field", None):
            continue
        required = item.name in kind.required or item.default is dataclasses.MISSING
        shown.append(f"`{item.name}`" + ("" if required else f" ({_default(item.default)})"))
    return ", ".join(shown) or "—"


def layer_kinds() -> str:
    from fmnist.builder.layers import ACTIVATIONS

    rows = ["| kind | compact form | settings (defaults) |", "|---|---|---|"]
    for kind, names in _kinds(blocks=False):
        if names[0] in ACTIVATIONS:
            continue
        aliases = f" ({', '.join(f'`{n}`' for n in names[1:])})" if names[1:] else ""
        rows.append(f"| `{names[0]}`{aliases} | {_cell(kind.usage)} | {_cell(_settings(kind))} |")
    rows.append(f"| activations | {', '.join(f'`{name}`' for name in ACTIVATIONS)} | — |")
    return "\n".join(rows)


def block_kinds() -> str:
    rows = ["| block | written | settings (defaults) |", "|---|---|---|"]
    for kind, names in _kinds(blocks=True):
        aliases = f" ({', '.join(f'`{n}`' for n in names[1:])})" if names[1:] else ""
        rows.append(f"| `{names[0]}`{aliases} | {_cell(kind.usage)} | {_cell(_settings(kind))} |")
    return "\n".join(rows)


def zoo() -> str:
    from torchvision import models

    sys.path.insert(0, str(ROOT))
    from tests.test_zoo import FORWARD_UP_TO  # the models it runs; bigger ones it counts

    from fmnist.builder.build import plan
    from fmnist.builder.spec import ZOO_SPECS

    rows = ["| spec | input | params | mult-adds | torchvision: params, GFLOPS (published) | checked by |",
            "|---|---|---|---|---|---|"]
    for path in sorted(ZOO_SPECS.glob("*.yaml")):
        built = plan(path)
        meta = models.get_model_weights(path.stem).DEFAULT.meta
        note = " (with its aux head)" if path.stem in WITH_AUX else ""
        how = "" if built.params["total"] <= FORWARD_UP_TO else " (counted; not run)"
        rows.append(f"| [`{path.stem}`](../fmnist/specs/zoo/{path.name}) | {'×'.join(map(str, built.spec.input[1:]))} | "
                    f"{built.params['total']:,} | {built.macs:,} | {meta['num_params']:,}{note}, {meta['_ops']} | "
                    f"`{ZOO_TEST}[{path.stem}]`{how} |")
    return "\n".join(rows)


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _rule(schema: dict) -> str:
    """A setting's JSON Schema rule in words: 'integer, 1 to 65,536', 'number, > 0', 'one of adam, adamw, sgd'."""
    if "enum" in schema:
        return "one of " + ", ".join(schema["enum"])
    if "oneOf" in schema:
        *first, last = ["true, false" if alternative == {"type": "boolean"} else _rule(alternative)
                        for alternative in schema["oneOf"]]
        return f"{', '.join(first)} or {last}"
    if schema.get("type") == "object":  # augment's mapping
        return "{" + ", ".join(f"{key}: {'N' if rule['type'] == 'integer' else 'true/false'}"
                               for key, rule in schema["properties"].items()) + "}"
    if schema.get("pattern") == DURATION:
        return "a duration such as 90s, 60m, 1.5h"
    if "minimum" in schema and "maximum" in schema:
        return f"{schema['type']}, {_number(schema['minimum'])} to {_number(schema['maximum'])}"
    bounds = [f"{sign} {_number(schema[key])}" for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                                 ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    return ", ".join([schema.get("type", ""), *bounds])


def train_settings() -> str:
    from fmnist.commands.declared import STUDY_SPELLINGS, default_text
    from fmnist.hparams import HPARAMS

    rows = ["| `train:` key | flag | default | rule | what it does |", "|---|---|---|---|---|"]
    for name, setting in HPARAMS.items():
        flag = "--" + name.replace("_", "-") + (f", {STUDY_SPELLINGS[name]}" if name in STUDY_SPELLINGS else "")
        if {"type": "boolean"} in [setting.schema, *setting.schema.get("oneOf", [])]:
            flag += f" / --no-{name.replace('_', '-')}"
        rows.append(f"| `{name}` | `{flag}` | {default_text(name).strip()[1:-1]} | {_rule(setting.schema)} | "
                    f"{_cell(setting.help)} |")
    return "\n".join(rows)


def summary_json() -> str:
    from fmnist.builder.build import plan
    from fmnist.builder.spec import PACKAGED_SPECS
    from fmnist.builder.summary import summary_dict

    data = summary_dict(plan(PACKAGED_SPECS / "cnn_4.yaml"))
    rows = ["| field | holds (CNN_4's, as an example) |", "|---|---|"]
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            shown = "a list of {" + ", ".join(value[0]) + "}"
        elif isinstance(value, dict):
            shown = "{" + ", ".join(value) + "}"
        else:
            shown = f"`{value}`" if key != "file" else "the spec file"
        rows.append(f"| `{key}` | {_cell(shown)} |")
    return "\n".join(rows)


def tables() -> dict[str, str]:
    return {"spec_keys": spec_keys(), "layer_kinds": layer_kinds(), "block_kinds": block_kinds(), "zoo": zoo(),
            "train_settings": train_settings(), "summary_json": summary_json()}


if __name__ == "__main__":
    sys.exit(print_or_write(__doc__.splitlines()[0], tables, DOCUMENTS))
