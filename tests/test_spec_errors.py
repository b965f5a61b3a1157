"""Every kind of bad spec gets one clear line (file:line, layer, text, what was expected) and exit 2."""
import pytest

from fmnist import SpecError, build_model
from tests.test_spec_language import documented_kinds

BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *[f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcde", "bcdef")],
        "name: x",
        "layers: [fc 10]",
    ]
)

CASES = {
    "not_yaml": ("name: x\nlayers: [conv 3x3x32\n", ":3: not valid YAML: expected ',' or ']'"),
    "empty": ("", ":1: the file is empty: expected a mapping with 'name' and 'layers'"),
    "top_level_list": ("- conv 3x3x32\n- fc 10\n", ":1: the top level must be a mapping with 'name' and 'layers', got a list"),
    "unknown_top_key": ("name: x\nlayrs: [fc 10]\nlayers: [fc 10]\n",
                        ":2: unknown key 'layrs' (did you mean 'layers'?); allowed: name, description, input, classes, layers, expect, defaults, data, train, search, blocks"),
    "missing_layers": ("name: x\n", ":1: missing required key 'layers'"),
    "unknown_kind": ("name: x\nlayers:\n  - convv 3x3x32\n  - fc 10\n",
                     ":3: layer 1 'convv 3x3x32': unknown layer kind 'convv' (did you mean 'conv'?)"),
    "conv_two_sizes": ("name: x\nlayers:\n  - conv 3x3\n  - fc 10\n",
                       ":3: layer 1 'conv 3x3': conv size has 2 part(s), expected KxKxF (kernel height x kernel width x filters)"),
    "conv_zero": ("name: x\nlayers:\n  - conv 0x3x32\n  - fc 10\n", ":3: layer 1 'conv 0x3x32': conv size must be a positive integer, got 0"),
    "fc_negative": ("name: x\nlayers:\n  - fc -5\n  - fc 10\n", ":3: layer 1 'fc -5': units must be a positive integer, got -5"),
    "conv_mapping_zero": ("name: x\nlayers:\n  - {conv: {kernel: 3, filters: 0}}\n  - fc 10\n",
                          ":3: layer 1 '{conv: {kernel: 3, filters: 0}}': filters must be a positive integer, got 0"),
    "unknown_option": ("name: x\nlayers:\n  - conv 3x3x8 strid=2\n  - fc 10\n",
                       ":3: layer 1 'conv 3x3x8 strid=2': unknown setting 'strid' for conv (did you mean 'stride'?)"),
    "dropout_one": ("name: x\nlayers:\n  - dropout 1.0\n  - fc 10\n", ":3: layer 1 'dropout 1.0': dropout p must be in [0, 1), got '1.0'"),
    "dropout_negative": ("name: x\nlayers:\n  - {dropout: -0.1}\n  - fc 10\n", ":3: layer 1 '{dropout: -0.1}': dropout p must be in [0, 1), got '-0.1'"),
    "shrinks_below_one": ("name: x\nlayers:\n  - conv 5x5x8\n  - pool 2x2\n  - conv 5x5x8\n  - pool 2x2\n  - conv 5x5x8\n  - fc 10\n",
                          ":7: layer 5 'conv 5x5x8': shrinks the 4x4 input below 1x1: the 5x5 kernel is larger than the (padded) input (input (8, 4, 4))"),
    "fc_written_input_wrong": ("name: x\nlayers:\n  - conv 3x3x8\n  - fc 999x10\n",
                               ":4: layer 2 'fc 999x10': is written with 999 inputs, but the layer before gives 5408"),
    "last_layer_not_classes": ("name: x\nlayers:\n  - conv 3x3x8\n  - fc 12\n",
                               ":4: layer 2 'fc 12': the last layer outputs (12,), but the model must output 10 values (classes: 10); end with 'fc 10'"),
    "conv_after_flatten": ("name: x\nlayers:\n  - flatten\n  - conv 3x3x8\n  - fc 10\n",
                           ":4: layer 2 'conv 3x3x8': conv needs a (C, H, W) input, but gets (784,) (already flat)"),
    "duplicate_key": ("name: x\nname: y\nlayers: [fc 10]\n", ":2: duplicate key 'name' (first on line 1): YAML would silently keep the last"),
    "duplicate_key_in_layer": ("name: x\nlayers:\n  - {conv: {kernel: 3, filters: 8, kernel: 5}}\n  - fc 10\n", ":3: duplicate key 'kernel'"),
    "python_tag": ("name: x\nlayers: !!python/object/apply:os.system ['echo pwned']\n",
                   ":2: YAML tag !!python/object/apply:os.system is not allowed: specs hold plain data only"),
    "alias_bomb": (BOMB, ":1: the document holds more than 20,000 values, the limit for a spec (a YAML alias counts each time it is used)"),
    "absurd_size": ("name: x\nlayers:\n  - fc 1000000\n  - fc 1000\n  - fc 10\n",
                    ":4: layer 2 'fc 1000': absurd size: 1,785,001,000 parameters so far"),
    "bad_input_shape": ("name: x\ninput: [1, 28]\nlayers: [fc 10]\n", ":2: input: expected [C, H, W], three integers from 1 to 4096, got [1, 28]"),
    "yaml_boolean_name": ("name: off\nlayers: [fc 10]\n", ":1: name: expected a name of letters, digits and . _ + - (it names run folders), got False (YAML reads yes/no/on/off as booleans: quote the value)"),
    "bad_train_value": ("name: x\nlayers: [fc 10]\ntrain:\n  lr: -1\n", ":4: train.lr: -1 is less than or equal to the minimum of 0"),
    "unknown_train_key": ("name: x\nlayers: [fc 10]\ntrain:\n  lrate: 0.1\n", ":4: unknown key 'lrate' in train"),
    "unknown_expect_group": ("name: x\nlayers: [fc 10]\nexpect:\n  params: {convs: 1}\n", "expect.params.convs: no such parameter group (did you mean 'conv'?)"),
    "bad_layer_entry": ("name: x\nlayers:\n  - 42\n  - fc 10\n", ":3: layer 1 '42': expected a layer written 'kind args'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_gets_one_clear_line_and_exit_2(case, cli, write_spec):
    text, expected = CASES[case]
    path = write_spec(text, f"{case}.yaml")
    code, out, err = cli("summary", path)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"fmnist: error: {path}")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_validate_reports_one_line_per_problem_across_files(cli, write_spec):
    good = write_spec("name: good\nlayers: [fc 10]\n", "good.yaml")
    two_bad_layers = write_spec("name: x\nlayers:\n  - convv 3x3x8\n  - dropout 2\n  - fc 10\n", "two.yaml")
    empty = write_spec("", "empty.yaml")
    code, out, err = cli("validate", good, two_bad_layers, empty)
    assert code == 2
    assert out == f"{good}: ok (good, 2 layers)\n"  # no expect figures: checked without counting
    assert err.splitlines() == [
        f"{two_bad_layers}:3: layer 1 'convv 3x3x8': unknown layer kind 'convv' (did you mean 'conv'?); known: "
        + ", ".join(sorted(documented_kinds())) + " (a kind of your own: fmnist --plugin FILE.py)",  # the docs' kinds
        f"{two_bad_layers}:4: layer 2 'dropout 2': dropout p must be in [0, 1), got '2'",
        f"{empty}:1: the file is empty: expected a mapping with 'name' and 'layers'",
    ]


def test_a_repeated_typo_lists_the_known_kinds_once(cli, write_spec):
    spec = write_spec("name: x\nlayers: [conv 3x3x4, rleu, rleu, rleu, fc 10]\n")
    code, _, err = cli("validate", spec)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 3 and all("unknown layer kind 'rleu' (did you mean 'relu'?)" in line for line in lines)
    assert err.count("known: ") == 1 and lines[1].endswith("known kinds: as listed above")


def test_missing_spec_file(cli, tmp_path):
    code, _, err = cli("summary", tmp_path / "nope.yaml")
    assert code == 2
    assert err.startswith(f"fmnist: error: {tmp_path / 'nope.yaml'}: no such spec file (or packaged spec: cifar10_resnet, cnn_1, ") and len(err.splitlines()) == 1


def test_python_api_raises_spec_error(write_spec):
    with pytest.raises(SpecError) as caught:
        build_model(write_spec("name: x\nlayers: [fc 10, relu, fc 11]\n"))
    assert caught.value.layer == 3 and caught.value.line == 2


def test_bare_command_prints_help_and_unknown_command_is_one_line(cli):
    code, out, err = cli()
    assert code == 0 and "Commands:" in out and "summary" in out and err == ""
    code, out, err = cli("nonsense")
    assert code == 2 and err == "fmnist: error: No such command 'nonsense'. (see 'fmnist --help')\n"


def test_a_value_breaking_two_rules_is_one_line(cli):
    code, _, err = cli("run", "cnn_4", "--set", "name=", "--dry-run")
    assert code == 2 and len(err.splitlines()) == 1 and "name: expected a name of letters" in err
