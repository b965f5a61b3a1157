"""Property tests: random specs and random numeric flags are either accepted and right, or refused in one line.

A random spec either plans and builds to a model whose real forward pass has the planned output shape and
parameter count, or is refused with one FmnistError line — never another exception (how long the checks take is
measured by benchmarks/spec_checks.py, not here).
"""
import math

import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmnist import FmnistError, build_model, plan
from fmnist.builder.yaml_source import load_yaml
from fmnist.builder.spec import parse_spec
from tests.conftest import SPECS

EXAMPLES = 400  # about 15 s on one core, forward passes included
BUILD_LIMIT = 3_000_000  # parameters: above this the real build is skipped (the plan is still checked)

def weighted(common, rare, rare_percent: int):
    """`rare` about rare_percent% of the time (one_of would pick the simpler branch far more often)."""
    return st.integers(0, 99).flatmap(lambda roll: rare if roll >= 100 - rare_percent else common)  # 0 is drawn most


# mostly plausible values, some odd ones: most specs get past the schema, so the builder itself is exercised
sizes = weighted(st.integers(1, 5), st.sampled_from([0, -1, 10**7, 10**30, "x", "3.5", "nan", ""]), 15)
small = st.integers(1, 6)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, -0.1]))


@st.composite
def leaf_text(draw):
    kind = draw(st.sampled_from(["conv", "pool", "avgpool", "bn", "dropout", "flatten", "fc", "relu", "gelu", "tanh",
                                 "leaky_relu", "gap", "gn", "dense", "transition", "convv", "batchnorm", "linear",
                                 "to_tokens", "class_token", "position", "readout", "ln", "attention",
                                 "window_attention", "to_map", "space_to_depth"]))
    if kind == "conv":
        text = f"conv {draw(sizes)}x{draw(sizes)}x{draw(sizes)}"
        text += draw(st.sampled_from(["", f" stride={draw(sizes)}", f" pad={draw(sizes)}", " pad=same", " bias=nope"]))
    elif kind in ("pool", "avgpool"):
        text = f"{kind} {draw(sizes)}x{draw(sizes)}" + draw(st.sampled_from(["", " round=floor", f" stride={draw(sizes)}"]))
    elif kind in ("fc", "linear"):
        text = f"{kind} {draw(sizes)}"
    elif kind == "attention":
        text = f"attention {draw(sizes)}"
    elif kind == "window_attention":
        text = f"window_attention {draw(sizes)} window={draw(sizes)}" + draw(st.sampled_from(["", " grid=true", " shift=1"]))
    elif kind in ("to_map", "space_to_depth"):
        text = f"{kind} {draw(sizes)}" + (f"x{draw(sizes)}" if kind == "to_map" else "")
    elif kind == "dropout":
        text = f"dropout {draw(floats)}"
    elif kind == "leaky_relu":
        text = f"leaky_relu {draw(floats)}"
    elif kind == "gn":
        text = f"gn {draw(sizes)}"
    elif kind == "dense":
        text = f"dense {draw(small)}x{draw(small)}"
    elif kind == "transition":
        text = f"transition {draw(floats)}"
    else:
        text = kind
    return text + draw(st.sampled_from(["", "", "", "", "", "", " extra", " =", " a=1"]))


def layers(depth: int = 0):
    odd = st.one_of(st.just("   "), st.integers(-3, 3), st.none())
    mapping = st.fixed_dictionaries({"conv": st.fixed_dictionaries({"kernel": sizes, "filters": sizes, "pad": st.just(1)})})
    leaf = weighted(weighted(leaf_text(), mapping, 15), odd, 5)
    if depth >= 2:
        return leaf
    inner = st.lists(layers(depth + 1), min_size=0, max_size=4)
    block = st.one_of(
        st.builds(lambda body: {"residual": body}, inner),
        st.builds(lambda a, b: {"parallel": [a, b]}, inner, inner),
        st.builds(lambda times, body: {"repeat": {"times": times, "layers": body}}, sizes, inner),
    )
    odd_block = st.builds(lambda body: {"relu": 1, "bn": body}, inner)
    return weighted(weighted(leaf, block, 30), odd_block, 3)


@st.composite
def spec_documents(draw):
    document = {"name": draw(weighted(st.just("net"), st.sampled_from(["a.b-c", "bad name", "", "nl\n"]), 10)),
                "layers": draw(st.lists(layers(), min_size=0, max_size=6)) + draw(st.sampled_from([["fc 10"], [], ["fc 3"]]))}
    if draw(st.booleans()):
        document["input"] = [draw(st.integers(1, 3)), draw(weighted(st.just(28), st.sampled_from([1, 5, 0]), 20)),
                             draw(weighted(st.just(28), st.sampled_from([1, 7]), 20))]
    if draw(st.booleans()):
        document["classes"] = draw(weighted(st.just(10), st.sampled_from([3, 0]), 20))
    if draw(st.integers(0, 4)) == 0:
        value = draw(weighted(st.one_of(st.floats(0.001, 0.5), st.integers(1, 64)), floats, 30))
        document["train"] = {draw(st.sampled_from(["lr", "batch_size", "seed", "warmup_epochs", "dropout"])): value}
    return document


def _warm_up() -> None:
    """The first plan of a process imports torch's FLOP counter and meta kernels: the 1 s bound is for the work."""
    plan(parse_spec(load_yaml("name: w\nlayers: [conv 3x3x1, bn, fc 10]\n", "w.yaml"), "w.yaml"))


_warm_up()


def check_spec(text: str) -> None:
    try:
        built = plan(parse_spec(load_yaml(text, "random.yaml"), "random.yaml"))
    except FmnistError as error:
        assert all(len(str(problem).splitlines()) == 1 for problem in error.all())
        return
    spec = built.spec
    if built.params["total"] > BUILD_LIMIT:
        return
    model = build_model(spec, check_expect=False).eval()
    assert sum(p.numel() for p in model.parameters()) == built.params["total"]
    assert real_shapes(model, spec.input) == [r.output_shape for r in built.records if r.depth == 0]


def real_shapes(model, input_shape) -> list[tuple[int, ...]]:
    """What each top-level module really outputs for one input: the plan's rows must say the same."""
    shapes = []
    hooks = [module.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for module in model]
    try:
        with torch.no_grad():
            model(torch.rand(2, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec_documents())
def test_random_spec_builds_right_or_is_refused_in_one_line(document):
    check_spec(yaml.safe_dump(document, sort_keys=False))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}:,- \n\t'\"&*!<>|#x0123conv\x00\x07")), max_size=80))
def test_random_yaml_text_is_refused_in_one_line(text):
    try:
        load_spec_text = parse_spec(load_yaml("name: x\nlayers: " + text, "t.yaml"), "t.yaml")
        plan(load_spec_text)
    except FmnistError as error:
        assert all(len(str(problem).splitlines()) == 1 for problem in error.all())


NUMERIC_FLAGS = ["--lr", "--rs", "--dropout", "--momentum", "--warmup-epochs", "--label-smoothing", "--batch-size",
                 "--num-epochs", "--seed", "--crop-pad", "--train-limit"]
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**25, 10**25),
                    st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "", "two"]))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NUMERIC_FLAGS), numbers)
def test_random_numeric_flag_is_accepted_or_one_line(flag, value, ):
    from fmnist.cli import main
    import contextlib
    import io

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["run", str(SPECS / "cnn_4.yaml"), flag, str(value), "--dry-run"])
    assert code in (0, 2), err.getvalue()
    if code == 2:
        assert err.getvalue().startswith("fmnist: error: ") and len(err.getvalue().splitlines()) == 1
    else:
        resolved = yaml.safe_load(out.getvalue())["hparams"]
        assert all(not isinstance(v, float) or math.isfinite(v) for v in resolved.values())


def test_shipped_specs_match_a_real_forward_pass():
    for path in sorted(SPECS.glob("*.yaml")):
        check_spec(path.read_text())


def test_mult_adds_are_the_figures_worked_out_by_hand(write_spec):
    """Each counted kind against its formula, worked out here: conv = Cout x Cin/groups x KH x KW x Hout x Wout,
    fc = in x out, everything else 0; a block's row is its layers' sum."""
    built = plan(write_spec("""
        name: hand
        input: [3, 32, 32]
        layers:
          - conv 5x5x16 stride=2 pad=2      # out 16x16x16: 16 x 3 x 25 x 256 = 307,200
          - bn
          - relu
          - pool 2x2                        # 8x8
          - conv 3x3x32 pad=1 groups=4      # 32 x 4 x 9 x 64 = 73,728
          - residual:                       # body 32 x 32 x 9 x 16 = 147,456; projection 64 x 32 x 16 = 32,768
              - conv 3x3x64 stride=2 pad=1  # 4x4
              - bn
          - parallel:                       # 1x1: 8 x 64 x 16 = 8,192; 3x3: 8 x 64 x 9 x 16 = 73,728
              - [conv 1x1x8]
              - [conv 3x3x8 pad=1]
          - gap
          - fc 10                           # 16 x 10 = 160
        """))
    rows = {str(r.index): r.macs for r in built.records}
    assert [rows[i] for i in ("1", "2", "3", "4", "5", "6.1", "6.shortcut.1", "7", "8", "9")] == \
        [307_200, 0, 0, 0, 73_728, 64 * 32 * 9 * 16, 64 * 32 * 16, 8_192 + 73_728, 0, 160]
    assert built.macs == 307_200 + 73_728 + 64 * 32 * 9 * 16 + 64 * 32 * 16 + 8_192 + 73_728 + 160
