"""The search space: the study's (lr and rs log-uniform, batch size from a set, epochs in a range), the spec's
`search:`, then --space; each range's ends checked as values of their setting; a point drawn from it per trial."""
from __future__ import annotations

from ...errors import UsageError
from ...hparams import DEFAULT_SPACE, SPACE_SCHEMA, value_problem

INTEGER = {"batch_size", "num_epochs"}  # suggested as integers


def parse_space_flag(text: str) -> tuple[str, dict]:
    """'lr=1e-4:1e-2' (a range; log for lr and rs) or 'batch_size=32,64' (choices) -> (name, range)."""
    name, _, value = text.partition("=")
    name = name.strip().replace("-", "_")
    searchable = list(SPACE_SCHEMA["properties"])
    if name not in searchable or not value:
        raise UsageError(f"--space {text}: expected NAME=LOW:HIGH or NAME=A,B,C with NAME one of {', '.join(searchable)}")
    convert = int if name in INTEGER else float
    try:
        if ":" in value:
            low, high = (convert(part) for part in value.split(":", 1))
            return name, {"low": low, "high": high, "log": name in ("lr", "rs")}  # check_space judges the values
        return name, {"choices": [convert(part) for part in value.split(",")]}
    except ValueError:
        kind = "whole numbers" if convert is int else "numbers"
        raise UsageError(f"--space {text}: expected {kind}, as NAME=LOW:HIGH or NAME=A,B,C") from None


def check_space(space: dict, where: str) -> None:
    """Every choice, and both ends of every range, must be a value its hyper-parameter accepts (finite, in bounds)."""
    for name, rule in space.items():
        ends = rule["choices"] if "choices" in rule else [rule["low"], rule["high"]]
        for value in ends:
            if name in INTEGER and isinstance(value, float) and value.is_integer():
                value = int(value)
            problem = value_problem(name, value)
            if problem:
                raise UsageError(f"{where} {name}: {value!r} {problem}")
        if "low" in rule:
            if not rule["low"] <= rule["high"]:
                raise UsageError(f"{where} {name}: low {rule['low']} is above high {rule['high']}")
            if rule.get("log") and rule["low"] <= 0:
                raise UsageError(f"{where} {name}: a log range needs low > 0, got {rule['low']}")


def choose_space(spec_space: dict, flag_texts: tuple[str, ...], fixed: dict, spec_file: str | None) -> dict:
    """The study's space, then the spec's `search:`, then --space; a parameter a flag fixes is not searched."""
    space = dict(DEFAULT_SPACE)
    check_space(spec_space, f"{spec_file or 'spec'}: search:")
    space.update(spec_space)
    for text in flag_texts:
        name, rule = parse_space_flag(text)
        check_space({name: rule}, f"--space {text}:")
        space[name] = rule
    return {name: rule for name, rule in space.items() if fixed.get(name) is None}


def suggest(trial, space: dict) -> dict:
    """One point of the space, as hyper-parameters."""
    chosen = {}
    for name, rule in space.items():
        if "choices" in rule:
            chosen[name] = trial.suggest_categorical(name, rule["choices"])
        elif name in INTEGER:
            chosen[name] = trial.suggest_int(name, int(rule["low"]), int(rule["high"]), log=rule.get("log", False))
        else:
            chosen[name] = trial.suggest_float(name, rule["low"], rule["high"], log=rule.get("log", False))
    return chosen
