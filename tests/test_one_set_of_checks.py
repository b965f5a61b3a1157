"""One set of checks: validate, summary, run and the editor's schema give the same answer, before any folder exists;
a setting is written once; names and settings mean the same at the top level and inside blocks."""
from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from fmnist import plan
from fmnist.builder.spec import PACKAGED_SPECS, ZOO_SPECS, json_schema


@pytest.mark.parametrize("layers, message", [
    ("[conv 3x3x64, fc 60000, fc 10]", "layer 2 'fc 60000': absurd size: 2,595,900,640 parameters so far"),
    ("[conv 3x3x8, scale 1e308, gap, fc 10]", "layer 2 'scale 1e308': absurd value: init 1e308 is beyond ±1,000,000"),
    ("[conv 3x3x8, leaky_relu -1e9, gap, fc 10]", "absurd value: slope -1e9 is beyond ±1,000,000"),
    ("[conv 3x3x8, {bn: {eps: 1e300}}, gap, fc 10]", "absurd value: eps 1e+300 is beyond ±1,000,000"),
])
def test_validate_summary_and_run_refuse_the_same_spec_with_the_same_line(cli, write_spec, tmp_path, layers, message):
    """Round 3: validate said ok to 2.6 billion parameters that summary refused, and 'scale 1e308' passed validate
    and summary, then run made a run folder and died with an internal error."""
    path = write_spec(f"name: one\nlayers: {layers}\n")
    answers = [cli("validate", path), cli("validate", "--no-expect", path), cli("summary", path),
               cli("run", path, "--out", tmp_path / "runs", "--num-epochs", "1")]
    for code, out, err in answers:
        assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("layer, shape", [
    ("conv 3x3x8", (3, 9, 9)), ("conv 1x7x12 groups=4 bias=false", (8, 9, 9)), ("conv 5x5x6 pad=2", (6, 9, 9)),
    ("dwconv 3x3", (5, 9, 9)), ("dwconv 3x3 multiplier=3 bias=false", (4, 9, 9)),
    ("fc 10", (300,)), ("fc 7 bias=false", (12,)),
])
def test_a_shapes_walk_counts_the_kinds_that_can_run_away_as_torch_does(layer, shape):
    """validate refuses absurd sizes from conv, dwconv and fc without torch: its count is torch's, kind by kind."""
    from fmnist.builder.spec import parse_spec

    entry = parse_spec({"name": "x", "layers": [layer]}, None).layers[0]
    assert entry.layer.weight_count(shape) == sum(p.numel() for p in entry.layer.build(shape).parameters())


SCHEMA_CASES = [  # (document, whether fmnist validate accepts it): the editor's schema must say the same
    ({"name": "x", "layers": ["conv 3x3x4", "fc 10"]}, True),
    ({"name": "x", "layers": ["CONV 3x3x4", "Fc 10"]}, True),
    ({"name": "x", "layers": [{"Conv": {"kernel": 3, "filters": 4}}, "fc 10"]}, True),
    ({"name": "x", "layers": [{"conv": {"kernel": 3, "filters": 4, "padding": 1}}, "fc 10"]}, True),
    ({"name": "x", "layers": ["convv 3x3x4", "fc 10"]}, False),
    ({"name": "x", "layers": [{"convv": {"kernel": 3}}, "fc 10"]}, False),
    ({"name": "x", "layers": [{"conv": {"kernl": 3, "filters": 4}}, "fc 10"]}, False),
    ({"name": "x", "layers": [{"residual": ["convv 3x3x4"]}, "fc 10"]}, False),
    ({"name": "x", "layers": [{"residual": {"body": ["relu"], "shortcut": "none"}}, "fc 10"]}, True),
    ({"name": "x", "layers": [{"residual": {"layers": ["relu"]}}, "fc 10"]}, False),
    ({"name": "x", "layers": [{"parallel": [["conv 1x1x2"], ["convv 1x1x2"]]}, "fc 10"]}, False),
    ({"name": "x", "layers": ["Dense 10"]}, False),
    ({"name": "x", "defaults": {"Conv": {"bias": False}}, "layers": ["conv 3x3x4", "fc 10"]}, True),
    ({"name": "x", "defaults": {"conv": {"bais": False}}, "layers": ["conv 3x3x4", "fc 10"]}, False),
    ({"name": "x", "defaults": {"convv": {"bias": False}}, "layers": ["conv 3x3x4", "fc 10"]}, False),
    ({"name": "x", "blocks": {"b": {"params": ["c"], "layers": ["convv 1x1x$c"]}}, "layers": ["b(4)", "fc 10"]}, False),
    ({"name": "x", "blocks": {"b": {"params": ["c"], "layers": ["conv 1x1x$c"]}}, "layers": ["b(4) * 2", "fc 10"]}, True),
]


@pytest.mark.parametrize("document, valid", SCHEMA_CASES, ids=[json.dumps(d["layers"])[:40] for d, _ in SCHEMA_CASES])
def test_the_schema_agrees_with_validate_on_kinds_keys_and_case(cli, write_spec, document, valid):
    code, _, err = cli("validate", write_spec(yaml.safe_dump(document)))
    assert (code == 0) == valid, err
    errors = list(jsonschema.Draft202012Validator(json_schema()).iter_errors(document))
    assert (not errors) == valid, [error.message for error in errors]


def test_every_shipped_spec_passes_the_schema():
    validator = jsonschema.Draft202012Validator(json_schema())
    for path in [*ZOO_SPECS.glob("*.yaml"), *PACKAGED_SPECS.glob("*.yaml")]:
        assert not list(validator.iter_errors(yaml.safe_load(path.read_text()))), path.name


@pytest.mark.parametrize("text, message", [
    ("layers: [conv 3x3x8 pad=1 padding=2, fc 10]", "'pad' is given twice (pad=1 and padding=2)"),
    ("layers: [{conv: {kernel: 3, filters: 8, size: 5}}, fc 10]", "'kernel' is given twice (kernel=3 and size=5)"),
    ("defaults: {dwconv: {bias: false}, depthwise: {bias: true}}\nlayers: [dwconv 3x3, fc 10]",
     "defaults.depthwise: dwconv's defaults are given twice (as 'dwconv' and 'depthwise', names of one kind)"),
    ("layers: [{parallel: [[fc 4], [fc 4]]}, fc 10]",
     "branch 1 gives (4,), a flat vector: concatenated branches must give (C, H, W) maps"),
    ("layers: [{add: [[relu], {conv: {kernel: 1, filters: 4}}]}, fc 10]",
     "branch 2 is a mapping ({conv: ...}), not a list of layers: every branch is a list, so write "
     "{add: [[relu], [{conv: ...}]]}"),
    ("layers: [{add: [[relu], relu]}, fc 10]",
     "branch 2 is one layer ('relu'), not a list of layers: every branch is a list, so write {add: [[relu], [relu]]}"),
    ("layers: [{add: {a: [relu], b: [identity]}}, fc 10]",
     "add takes a list of branches, not a mapping: write {add: [[relu], [identity]]}"),
    ("layers: [{residual: {shortcut: identity, layers: [relu]}}, fc 10]",
     "unknown key 'layers' for residual: its layers go under 'body'"),
    ("layers: [global_avgpool, fc 10]", "unknown layer kind 'global_avgpool' (global average pooling is 'gap' here)"),
    ("layers: [conv 3x3x$clases, fc 10]", "unknown name '$clases' (known here: classes)"),
    ("layers: [conv 3x3x${2 * 4} pad=1, gap, fc 10]", "not valid YAML: a flow list [...] cannot hold '${' unquoted "
     "(YAML reads '{' as the start of a mapping): quote the layer (\"conv 3x3x${2 * 4} pad=1\")"),
])
def test_a_setting_or_branch_written_wrong_is_one_line_naming_it(cli, write_spec, text, message):
    code, _, err = cli("validate", write_spec(f"name: x\ninput: [4, 8, 8]\n{text}\n"))
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_spec_names_mean_the_same_in_the_mapping_form_and_the_compact_form(write_spec):
    """Round 3 refused {fc: {units: $classes}} at the top level though 'fc $classes' worked."""
    built = plan(write_spec("name: x\nclasses: 7\nlayers: [conv 3x3x4, {fc: {units: $classes}}]\n"))
    assert built.records[-1].output_shape == (7,)
