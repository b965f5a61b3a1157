"""Arithmetic in block arguments: '${c * 4}', '${k // 2}', '${divisible(c * 0.25, 8)}', evaluated without eval().

Only numbers, the block's parameters, + - * / // % ** and a few named functions; anything else is a one-line problem.
"""
from __future__ import annotations

import ast
import math
import operator
import re

from .fields import LayerProblem

EXPRESSION = re.compile(r"\$\{([^{}]*)\}")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_POWER = 64  # 2 ** 64 is as far as a width or a count can sensibly go


def divisible(value: float, divisor: int = 8, minimum: int | None = None) -> int:
    """The nearest multiple of `divisor`, never 10% below `value` (MobileNet's and EfficientNet's channel rounding)."""
    minimum = divisor if minimum is None else minimum
    rounded = max(minimum, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


FUNCTIONS = {"min": min, "max": max, "round": round, "int": int, "abs": abs, "ceil": math.ceil, "floor": math.floor,
             "divisible": divisible}


def _number(text: str, name: str, expression: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise LayerProblem(f"${{{expression}}}: {name} is '{text}', not a number") from None
    if not math.isfinite(value):
        raise LayerProblem(f"${{{expression}}}: {name} is '{text}', not a finite number")
    return value


def _evaluate(node, names: dict, expression: str):
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, names, expression)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            known = ", ".join(sorted(names)) or "none"
            raise LayerProblem(f"${{{expression}}}: unknown name '{node.id}' (known here: {known})")
        return _number(names[node.id], node.id, expression)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand, names, expression))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, names, expression), _evaluate(node.right, names, expression)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER:
            raise LayerProblem(f"${{{expression}}}: a power above {MAX_POWER}")
        try:
            return _OPERATORS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise LayerProblem(f"${{{expression}}}: division by zero") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
        args = [_evaluate(arg, names, expression) for arg in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as error:
            raise LayerProblem(f"${{{expression}}}: {node.func.id}(): {error}") from None
    raise LayerProblem(f"${{{expression}}}: only numbers, parameter names, + - * / // % ** and "
                       f"{', '.join(FUNCTIONS)} are allowed")


def format_number(value) -> str:
    """3.0 -> '3' (a width), 0.1 / 17 -> '0.00588235' (a rate, to 6 significant digits)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return str(value) if isinstance(value, int) else format(value, ".6g")


def evaluate(expression: str, names: dict[str, str]) -> str:
    """The value of one '${...}' body, as text; names map block parameters to the text given at the block's use."""
    source = re.sub(r"\$(?=[A-Za-z_])", "", expression.strip())  # ${$c * 4} reads as ${c * 4}
    if source in names:  # ${k} alone is the text given, whatever it is ('1x7' as well as '3')
        return names[source]
    if len(source) > 500:
        raise LayerProblem(f"${{{expression[:40]}...}}: longer than 500 characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise LayerProblem(f"${{{expression}}}: not an arithmetic expression") from None
    value = _evaluate(tree, names, expression)
    if isinstance(value, float) and not math.isfinite(value):
        raise LayerProblem(f"${{{expression}}}: not a finite number")
    return format_number(value)


def _bind(body: str, names: dict[str, str]) -> str:
    """An expression with the names known now written in as values, the others kept."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        return f"({names[name]})" if name in names and name not in FUNCTIONS else match.group(0)

    return re.sub(r"\$?\b([A-Za-z_]\w*)\b", value, body)


def substitute(text: str, names: dict[str, str], later: tuple[str, ...] = ()) -> str:
    """`text` with '$name' replaced by its value and each '${...}' evaluated; an expression that uses a name in
    `later` (set per repetition) keeps its place, with the names known now bound, to be evaluated then."""
    pieces = []
    position = 0
    for match in EXPRESSION.finditer(text):
        pieces.append(_plain(text[position:match.start()], names))
        body = match.group(1)
        if any(re.search(rf"\$?\b{name}\b", body) for name in later):
            pieces.append("${" + _bind(body, names) + "}")
        else:
            pieces.append(evaluate(body, names))
        position = match.end()
    pieces.append(_plain(text[position:], names))
    return "".join(pieces)


def _plain(text: str, names: dict[str, str]) -> str:
    """'$name' outside expressions replaced as written at the block's use (longest names first: $cin before $c)."""
    for name, given in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(f"${name}", given)
    return text
