"""Arithmetic in block arguments: '${c * 4}', '${k // 2}', '${divisible(c * 0.25, 8)}', evaluated without eval().

Only numbers, the block's parameters, + - * / // % ** and a few named functions; anything else is a one-line problem.
Every value an expression makes, on the way as well as at the end, is checked: a whole number or a finite float
within ±MAX_MAGNITUDE, so no expression can take long, run out of memory or end in a complex number.
"""
from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any, Callable

from .fields import LayerProblem

EXPRESSION = re.compile(r"\$\{([^{}]*)\}")
NAME = re.compile(r"\$([A-Za-z_]\w*)")  # '$c2' is the name c2, never '$c' followed by '2'
_OPERATORS: dict[type, Callable[..., Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_POWER = 64  # 2 ** 64 is as far as a width or a count can sensibly go
MAX_MAGNITUDE = 2 ** 53  # past this a float no longer holds every whole number; no width, count or rate comes near
MAX_ROUND_DIGITS = 15  # round(x, n): a float has about 15 significant digits
MAX_EXPRESSION = 500  # characters inside one ${...}
MAX_EXPANDED = 2_000  # characters a layer may grow to once $names are written in: a parameter used twice in an
# argument doubles the text at every level of nesting, so nested blocks would otherwise grow it exponentially
REPEAT = "repeat"  # inside 'block(...) * N', $repeat is 0, 1, ... N-1 (a ramp of drop_path rates, say)


def divisible(value: float, divisor: int = 8, minimum: int | None = None) -> int:
    """The nearest multiple of `divisor`, never 10% below `value` (MobileNet's and EfficientNet's channel rounding)."""
    minimum = divisor if minimum is None else minimum
    rounded = max(minimum, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _round(value: float, digits: int | None = None):
    """Python's round(), with the digits bounded (round(5, -10**15) would compute 10**(10**15))."""
    if digits is not None and (not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS):
        raise ValueError(f"round()'s digits must be a whole number from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return round(value) if digits is None else round(value, digits)


FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "round": _round, "int": int, "abs": abs, "ceil": math.ceil, "floor": math.floor,
             "divisible": divisible}


def _checked(value, expression: str):
    """`value` if it is a whole number or a finite float within ±MAX_MAGNITUDE; else the one-line problem."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a complex number" if isinstance(value, complex) else type(value).__name__
        raise LayerProblem(f"${{{expression}}}: gives {kind}, not a real number (a negative number to a fractional power?)")
    if isinstance(value, float) and not math.isfinite(value):
        raise LayerProblem(f"${{{expression}}}: not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise LayerProblem(f"${{{expression}}}: a value past 2**53 on the way (every value an expression makes must "
                           f"stay within ±{MAX_MAGNITUDE:,})")
    return value


def _number(text: str, name: str, expression: str):
    if re.fullmatch(r"\s*[+-]?\d{1,30}\s*", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise LayerProblem(f"${{{expression}}}: {name} is '{text[:40]}', not a number") from None
    if not math.isfinite(value):
        raise LayerProblem(f"${{{expression}}}: {name} is '{text[:40]}', not a finite number")
    return value


def _power(left, right, expression: str):
    """left ** right, refused before it is computed where it could only end past the bound."""
    if abs(right) > MAX_POWER:
        raise LayerProblem(f"${{{expression}}}: a power above {MAX_POWER}")
    if abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > math.log2(MAX_MAGNITUDE) + 1:
        raise LayerProblem(f"${{{expression}}}: a value past 2**53 on the way (every value an expression makes must "
                           f"stay within ±{MAX_MAGNITUDE:,})")
    return left ** right


def _evaluate(node, names: dict, expression: str):
    """The value of an expression's syntax tree; every value it makes goes through _checked."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, names, expression)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _checked(node.value, expression)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise LayerProblem(f"${{{expression}}}: {unknown_name(node.id, names)}")
        return _checked(_number(names[node.id], node.id, expression), expression)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _checked(_OPERATORS[type(node.op)](_evaluate(node.operand, names, expression)), expression)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, names, expression), _evaluate(node.right, names, expression)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right, expression), expression)
        return _checked(_OPERATORS[type(node.op)](left, right), expression)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
        args = [_evaluate(arg, names, expression) for arg in node.args]
        return _checked(FUNCTIONS[node.func.id](*args), expression)
    raise LayerProblem(f"${{{expression}}}: only numbers, parameter names, + - * / // % ** and "
                       f"{', '.join(FUNCTIONS)} are allowed")


def _reason(error: Exception) -> str:
    """Why Python's arithmetic refused, in words (ZeroDivisionError's own text names the operator, not the problem)."""
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    if isinstance(error, OverflowError):
        return "a value too large to compute"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return " ".join(str(error).split())[:100] or type(error).__name__


def format_number(value) -> str:
    """3.0 -> '3' (a width), 0.1 / 17 -> '0.00588235' (a rate, to 6 significant digits)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return str(value) if isinstance(value, int) else format(value, ".6g")


def unknown_name(name: str, names, written: str | None = None) -> str:
    """The problem of a name that is not known where it is used, with the names that are."""
    if name == REPEAT:
        return (f"${REPEAT} is known only in the arguments of a repeated block call, e.g. 'b(${{0.1 * ${REPEAT}}}) * "
                f"3'; pass it to the block as a parameter")
    known = ", ".join(sorted(names)) or "none"
    text = f"unknown name '{written or name}' (known here: {known})"
    prefix = max((known_name for known_name in names if name.startswith(known_name)), key=len, default=None)
    if prefix and written:
        text += f"; to follow ${prefix} with '{name[len(prefix):]}', write ${{{prefix}}}{name[len(prefix):]}"
    return text


def evaluate(expression: str, names: dict[str, str]) -> str:
    """The value of one '${...}' body, as text; names map block parameters to the text given at the block's use."""
    source = re.sub(r"\$(?=[A-Za-z_])", "", expression.strip())  # ${$c * 4} reads as ${c * 4}
    if source in names:  # ${k} alone is the text given, whatever it is ('1x7' as well as '3')
        return names[source]
    if len(source) > MAX_EXPRESSION:
        raise LayerProblem(f"${{{expression[:40]}...}}: longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise LayerProblem(f"${{{expression}}}: not an arithmetic expression") from None
    try:  # the whole arithmetic family, caught in one place: whatever Python's operators and functions refuse
        value = _evaluate(tree, names, expression)
    except (ArithmeticError, ValueError, TypeError, RecursionError) as error:
        raise LayerProblem(f"${{{expression}}}: {_reason(error)}") from None
    return format_number(value)


def _bind(body: str, names: dict[str, str], later: tuple[str, ...]) -> str:
    """An expression with the names known now written in as values and those of `later` kept; any other name is
    refused now, where the block is used, not at some later repetition."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in FUNCTIONS and not match.group(0).startswith("$"):
            return name
        if name in names:
            return f"({names[name]})"
        if name in later:
            return match.group(0)
        raise LayerProblem(f"${{{body}}}: {unknown_name(name, names)}")

    return re.sub(r"\$?\b([A-Za-z_]\w*)\b", value, body)


def substitute(text: str, names: dict[str, str], later: tuple[str, ...] = ()) -> str:
    """`text` with '$name' replaced by its value and each '${...}' evaluated; an expression that uses a name in
    `later` (set per repetition) keeps its place, with the names known now bound, to be evaluated then. A name
    known neither now nor later is refused, in both forms."""
    pieces = []
    position = 0
    for match in EXPRESSION.finditer(text):
        pieces.append(_plain(text[position:match.start()], names, later))
        body = match.group(1)
        if any(re.search(rf"\$?\b{name}\b", body) for name in later):
            pieces.append("${" + _bind(body, names, later) + "}")
        else:
            pieces.append(evaluate(body, names))
        position = match.end()
    pieces.append(_plain(text[position:], names, later))
    result = "".join(pieces)
    if len(result) > MAX_EXPANDED and len(result) > len(text):
        raise LayerProblem(f"block arguments expand this layer to {len(result):,} characters (limit {MAX_EXPANDED:,}): "
                           f"a parameter written several times in an argument multiplies the text at every level of "
                           f"nesting")
    return result


# a run of arithmetic outside ${...} that uses a name: '$cin*$t', '$c + 1', '2*$c'
_TERM = r"(?:\$[A-Za-z_]\w*|\d+(?:\.\d+)?)"
_BARE_ARITHMETIC = re.compile(rf"{_TERM}(?:\s*(?:\*\*|//|[*/+%]|-(?=\s*[\d$]))\s*{_TERM})+")


def _refuse_bare_arithmetic(text: str) -> None:
    for match in _BARE_ARITHMETIC.finditer(text):
        if "$" in match.group(0):
            written = match.group(0)
            inside = re.sub(r"\s*(\*\*|//|[*/+%-])\s*", r" \1 ", written.replace("$", ""))
            raise LayerProblem(f"'{written}': arithmetic goes inside ${{...}}: write ${{{inside}}}")


def _plain(text: str, names: dict[str, str], later: tuple[str, ...] = ()) -> str:
    """'$name' outside expressions replaced as written at the block's use; a name of `later` is kept for then."""
    _refuse_bare_arithmetic(text)

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in names:
            return names[name]
        if name in later:
            return match.group(0)
        raise LayerProblem(unknown_name(name, names, match.group(0)))

    return NAME.sub(value, text)
