"""Bad input of every kind: one `fmnist: error:` line, exit 2, and nothing left on disk — never a traceback."""
import json
import subprocess
import tracemalloc
import sys

import pytest

from tests.conftest import SPECS, TINY_SPEC


TINY_RUN = ("--train-limit", "300", "--num-epochs", "1")


def one_line_error(code, err, exit_code=2):
    assert code == exit_code, err
    assert err.startswith("fmnist: error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err


# --- settings that pass a plain schema check but cannot train (NaN compares false with every bound) ---

@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "--lr nan: must be a finite number"),
    ("--lr", "inf", "--lr inf: must be a finite number"),
    ("--warmup-epochs", "nan", "--warmup-epochs nan: must be a finite number"),
    ("--warmup-epochs", "inf", "--warmup-epochs inf: must be a finite number"),
    ("--seed", "18446744073709551616", "--seed 18446744073709551616: 18446744073709551616 is greater than the maximum of 4294967295"),
    ("--seed", "-1", "--seed -1: -1 is less than the minimum of 0"),
    ("--dropout", "nan", "--dropout nan: must be a finite number"),
    ("--dropout", "1", "--dropout 1.0: 1.0 is greater than or equal to the maximum of 1"),
    ("--label-smoothing", "nan", "--label-smoothing nan: must be a finite number"),
    ("--batch-size", "0", "--batch-size 0: 0 is less than the minimum of 1"),
    ("--batch-size", "10000000", "--batch-size 10000000: 10000000 is greater than the maximum of 65536"),
    ("--num-epochs", "100000000", "--num-epochs 100000000: 100000000 is greater than the maximum of 10000"),
    ("--crop-pad", "15", "--crop-pad 15: 15 is greater than the maximum of 14"),
    ("--erase", "1.5", "--erase 1.5: 1.5 is greater than the maximum of 1"),
    ("--erase", "nan", "--erase nan: must be a finite number"),
    ("--mixup", "0", "--mixup 0.0: 0.0 is less than or equal to the minimum of 0"),
    ("--mixup", "inf", "--mixup inf: must be a finite number"),
    ("--cutmix", "-1", "--cutmix -1.0: -1.0 is less than or equal to the minimum of 0"),
    ("--cutmix", "1000", "--cutmix 1000.0: 1000.0 is greater than the maximum of 100"),
    ("--train-limit", "0", "--train-limit 0: needs at least 2 images"),
    ("--train-limit", "-1", "--train-limit -1: needs at least 2 images"),
    ("--val-limit", "0", "--val-limit 0: needs at least 1 image"),
])
def test_bad_setting_is_refused_before_any_run_folder(cli, tmp_path, flag, value, message):
    code, _, err = cli("run", SPECS / "cnn_4.yaml", flag, value, "--out", tmp_path / "runs")
    one_line_error(code, err)
    assert message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("train, message", [
    ("{lr: .nan}", ":3: train.lr: nan is not a finite number"),
    ("{warmup_epochs: .inf}", ":3: train.warmup_epochs: inf is not a finite number"),
    ("{dropout: .nan}", ":3: train.dropout: nan is not a finite number"),
    ("{seed: 18446744073709551616}", "train.seed: 18446744073709551616 is greater than the maximum of 4294967295"),
    ("{label_smoothing: .nan}", ":3: train.label_smoothing: nan is not a finite number"),
    ("{augment: {crop: 40}}", "train.augment"),
    ("{erase: yes}", ":3: train.erase: True is not of type 'number'"),
    ("{mixup: .nan}", ":3: train.mixup: nan is not a finite number"),
])
def test_bad_setting_in_the_spec_points_at_its_line(cli, write_spec, tmp_path, train, message):
    path = write_spec(f"name: t\nlayers: [fc 10]\ntrain: {train}\n")
    code, _, err = cli("run", path, "--out", tmp_path / "runs")
    one_line_error(code, err)
    assert message in err
    assert not (tmp_path / "runs").exists()


def test_batch_of_one_with_batch_norm_after_fc_is_refused(cli, write_spec, tmp_path):
    path = write_spec("name: t\nlayers: [fc 32, bn, relu, fc 10]\n")
    code, _, err = cli("run", path, "--batch-size", "1", "--out", tmp_path / "runs")
    one_line_error(code, err)
    assert "--batch-size 1: layer 2 'bn' normalises over the batch, which needs at least 2 images per batch" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("head, message", [
    ("classes: 1\n", "spec has classes: 1; fashion-mnist has 10 classes"),
    ("classes: 20\n", "spec has classes: 20; fashion-mnist has 10 classes"),
    ("input: [3, 28, 28]\n", "spec wants input (3, 28, 28); fashion-mnist gives (1, 28, 28); add data: {channels: 3} to convert"),
    ("input: [1, 32, 32]\n", "spec wants input (1, 32, 32); fashion-mnist gives (1, 28, 28); add data: {resize: 32} to convert"),
])
def test_spec_that_does_not_fit_the_data_is_refused_before_any_folder(cli, write_spec, tmp_path, head, message):
    classes = head.split(": ")[1].strip() if head.startswith("classes") else "10"
    path = write_spec(f"name: t\n{head}layers: [fc {classes}]\n")
    for command in (["run", path, "--out", tmp_path / "runs"], ["grid", path, "--out", tmp_path / "grid"],
                    ["search", path, "--out", tmp_path / "search"]):
        code, _, err = cli(*command)
        one_line_error(code, err)
        assert message in err
    assert not any((tmp_path / name).exists() for name in ("runs", "grid", "search"))


# --- the search: a flag fixes its parameter; the space is checked like any setting ---

@pytest.mark.parametrize("args, message", [
    (["--space", "batch_size=0"], "--space batch_size=0: batch_size: 0 0 is less than the minimum of 1"),
    (["--space", "lr=1e-4:nan"], "--space lr=1e-4:nan: lr: nan must be a finite number"),
    (["--space", "lr=1e-2:1e-4"], "low 0.01 is above high 0.0001"),
    (["--space", "rs=0:1e-2"], "a log range needs low > 0"),
    (["--space", "epochs=1:3"], "expected NAME=LOW:HIGH or NAME=A,B,C"),
    (["--train-limit", "0"], "--train-limit 0: needs at least 2 images"),
    (["--train-limit", "-1"], "--train-limit -1: needs at least 2 images"),
    (["--val-limit", "-3"], "--val-limit -3: needs at least 1 image"),
    (["--trials", "0"], "--trials 0: must be from 1 to 100,000"),
    (["--trials", "100000000000000000000000"], "must be from 1 to 100,000"),
    (["--minutes", "0"], "--minutes 0: must be more than 0 and at most 10,080 (a week)"),
    (["--minutes", "nan"], "--minutes nan: must be more than 0"),
    (["--minutes", "-5"], "--minutes -5: must be more than 0"),
    (["--minutes", "ten"], "'ten' is not a valid float"),
    (["--device", ""], "--device : not a device"),
])
def test_bad_search_input_is_refused_and_leaves_no_folder(cli, tmp_path, args, message):
    code, _, err = cli("search", SPECS / "cnn_4.yaml", *args, "--out", tmp_path / "search")
    one_line_error(code, err)
    assert message in err
    assert not (tmp_path / "search").exists()


def test_bad_search_space_in_the_spec_is_refused(cli, write_spec, tmp_path):
    path = write_spec("name: t\nlayers: [fc 10]\nsearch: {batch_size: {choices: [0, 64]}}\n")
    code, _, err = cli("search", path, "--out", tmp_path / "search")
    one_line_error(code, err)
    assert f"{path}: search: batch_size: 0 0 is less than the minimum of 1" in err
    assert not (tmp_path / "search").exists()


def test_search_flags_fix_their_parameters(cli, write_spec, real_data, tmp_path):
    path = write_spec(TINY_SPEC)
    code, out, err = cli("search", path, "--num-epochs", "1", "--batch-size", "64", "--trials", "2", "--train-limit", "300",
                         "--no-retrain", "--out", tmp_path / "s")
    assert (code, err) == (0, ""), err
    result = json.loads((tmp_path / "s" / "search.json").read_text())
    assert set(result["best_params"]) == {"lr", "rs"}  # num_epochs and batch_size were fixed by the flags
    assert '"num_epochs"' not in out.split("space ")[1].splitlines()[0]
    assert sum(line.startswith("trial ") for line in out.splitlines()) == 2  # both trials ran their one epoch


def test_search_out_or_grid_out_that_is_a_file(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    for command in ("search", "grid"):
        code, _, err = cli(command, SPECS / "cnn_4.yaml", "--out", tmp_path / "afile")
        one_line_error(code, err)
        assert f"--out {tmp_path / 'afile'}: is a file, not a folder" in err
    code, _, err = cli("run", SPECS / "cnn_4.yaml", "--out", tmp_path / "afile")
    one_line_error(code, err)


# --- specs that used to get past the loader's guards ---

def chain_of_blocks(count: int) -> str:
    lines = ["name: chain", "blocks:", "  b0: [relu]"]
    lines += [f"  b{i}: [b{i - 1}]" for i in range(1, count)]
    return "\n".join(lines + [f"layers: [b{count - 1}, fc 10]"]) + "\n"


def doubling_blocks(count: int) -> str:
    lines = ["name: bomb", "blocks:", "  b0: [relu]"]
    lines += [f"  b{i}: [b{i - 1}, b{i - 1}]" for i in range(1, count)]
    return "\n".join(lines + [f"layers: [b{count - 1}, fc 10]"]) + "\n"


@pytest.mark.parametrize("text, message", [
    ("name: x\nlayers: " + "[" * 500 + "]" * 500 + "\n", ":2: nested deeper than 40 levels"),
    ("name: x\x00\nlayers: [fc 10]\n", ":1: not valid YAML: character #x0000 is not allowed in a spec"),
    ("name: x\nlayers: [fc 10]\ndescription: \"a\x07b\"\n", "character #x0007 is not allowed"),
    ("name: x\nlayers: [fc 10]\ntrain: {<<: 5}\n", ":3: not valid YAML: expected a mapping or list of mappings for merging"),
    (chain_of_blocks(300), "blocks nested deeper than 32"),
    (doubling_blocks(40), "expands to more than 10,000 layers"),
    ("name: x\nlayers: [{repeat: {times: 1000000000, layers: [relu]}}, fc 10]\n",
     "absurd size: times 1,000,000,000 is over the limit of 1,000"),
    ("name: x\nlayers: [{repeat: {times: 1000, layers: [relu, relu, relu, relu, relu, relu, relu, relu, relu, relu, "
     "relu, relu, relu, relu, relu, relu, relu, relu, relu, relu, relu]}}, fc 10]\n",
     "expands to more than 20,000 layers once repeats are unrolled"),
    ("name: x\nlayers: [{residual: [conv 3x3x1 pad=1, 5]}, fc 10]\n", "layer 1.2 '5': expected a layer written 'kind args'"),
    ("name: x\nlayers: [{residual: [{relu: 1, bn: 2}]}, fc 10]\n", "layer 1.1 '{relu: 1, bn: 2}': expected a layer"),
    ("name: x\nlayers: ['   ', fc 10]\n", "layer 1 '': expected a layer written 'kind args'"),
    ("name: x\nlayers: [{parallel: [[relu], 5]}, fc 10]\n",
     "branch 2 is 5, not a list of layers; expected {parallel: [[layers...], [layers...]]}"),
    ("name: x\nlayers: [conv 3x3x99999999999999999999, fc 10]\n",
     "absurd size: conv size 99,999,999,999,999,999,999 is over the limit of 1,048,576"),
    ("name: x\nlayers: [fc 99999999999999999999999999999999999999999]\n", "absurd size: units of 41 digits"),
    ("name: x\nlayers: [conv 3x3x1 stride=99999999999999999999, fc 10]\n", "absurd size: stride"),
    ("name: x\nlayers: [conv 3x3x2 pad=1 pad=5, fc 10]\n", "'pad' is given twice (pad=1 and pad=5)"),
    ('name: "nl\\n"\nlayers: [fc 10]\n', "name: expected a name of letters, digits and . _ + -"),
])
@pytest.mark.timeout(60)  # a hang or a blow-up is a failure; how long the checks take is benchmarks/spec_checks.py's
def test_spec_that_used_to_crash_or_hang_is_one_line(cli, write_spec, text, message):
    path = write_spec(text)
    code, _, err = cli("validate", path)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert message in err


def test_huge_spec_file_is_refused_without_reading_it(cli, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\nlayers: [fc 10]\n" + "# padding\n" * 5_000_000)
    tracemalloc.start()
    try:
        code, _, err = cli("validate", path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000  # the 50 MB file was never read into memory: its size was enough
    assert code == 2 and "too large for a spec: 50,000,024 bytes (limit 1,048,576)" in err


def test_yaml_merge_keys_override_as_yaml_says(cli, write_spec):
    path = write_spec("""
        name: merged
        base: &recipe {lr: 0.01, batch_size: 32}
        layers: [fc 10]
    """)
    code, _, err = cli("validate", path)
    assert code == 2 and "unknown key 'base'" in err  # a stray top-level key is still refused
    path = write_spec("""
        name: merged
        layers: [fc 10]
        train:
          <<: {lr: 0.01, batch_size: 32}
          batch_size: 64
    """)
    code, out, err = cli("run", path, "--dry-run")
    assert (code, err) == (0, "")
    assert "batch_size: 64" in out and "lr: 0.01" in out


# --- conventions: stdin, folders, exit codes, unique row indexes ---

def test_summary_and_validate_read_standard_input_and_folders(cli, tmp_path, monkeypatch):
    import io

    text = (SPECS / "cnn_4.yaml").read_text()
    for command in (["summary", "-"], ["validate", "-"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        code, out, err = cli(*command)
        assert code == 0, err
        assert "65,994" in out
    code, out, _ = cli("validate", SPECS)
    assert code == 0
    assert out.count(": ok (") == len(list(SPECS.glob("*.yaml")))
    (tmp_path / "empty").mkdir()
    code, _, err = cli("validate", tmp_path / "empty")
    assert code == 2 and "no spec files (*.yaml, *.yml) in this folder" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("name: ["))
    code, _, err = cli("summary", "-")
    assert code == 2 and err.startswith("fmnist: error: <stdin>:1: not valid YAML")


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_summary_json_row_indexes_are_unique(cli, spec):
    code, out, _ = cli("summary", spec, "--json")
    indexes = [row["index"] for row in json.loads(out)["layers"] if row["index"] is not None]
    assert code == 0 and len(indexes) == len(set(indexes))


def test_repeat_rows_are_numbered_per_repetition(cli, write_spec):
    path = write_spec("name: r\nlayers: [{repeat: {times: 2, layers: [conv 3x3x4 pad=1, relu]}}, fc 10]\n")
    code, out, _ = cli("summary", path, "--json")
    assert [row["index"] for row in json.loads(out)["layers"]][:5] == [1, "1.1.1", "1.1.2", "1.2.1", "1.2.2"]


def test_resume_refuses_flags_it_would_ignore(cli, tmp_path):
    code, _, err = cli("run", "--resume", tmp_path, "--lr", "5", "--num-epochs", "1")
    one_line_error(code, err)
    assert "--resume continues a run with the settings it started with; --lr, --num-epochs cannot change it" in err


def test_data_dir_typo_is_an_error_and_creates_nothing(cli, tmp_path):
    code, _, err = cli("run", SPECS / "cnn_4.yaml", "--data-dir", tmp_path / "typo", "--out", tmp_path / "runs")
    one_line_error(code, err)
    assert f"--data-dir {tmp_path / 'typo'}: no such folder" in err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", ["0", "-2", "5000"])
def test_bad_thread_count(cli, tmp_path, value):
    code, _, err = cli("run", SPECS / "cnn_4.yaml", "--threads", value, "--out", tmp_path / "runs")
    one_line_error(code, err)
    assert f"--threads {value}: must be from 1 to 1024" in err and not (tmp_path / "runs").exists()
