"""The formula guard of the statsmodels engine: formula text is checked against an
allow-list before patsy sees it.

patsy evaluates every term of a formula as Python (``y ~ x + __import__('os').system(...)``
would run), so the R engines' rule applies here too: a formula is *parsed*, never run,
and only a small grammar is accepted.

Allowed grammar (anything else is refused with a :class:`~pylme_alliance.errors.PylmeError`
that names the offending piece)::

    formula    := [side] "~" side | side            (at most one "~", outside parentheses)
    side       := term (op term)*                   op: + - * / : ** ^
    term       := NAME | NUMBER | "(" side ")" | "-" term | "+" term
                | C(var [, contrast] [, levels=[CONST, ...]])
                | I(arith) | Q("column name") | np.log(arith) | np.exp(arith) | np.sqrt(arith)
    var        := NAME | Q("column name")
    contrast   := Treatment | Sum | Helmert | Diff | Poly, bare or called with constant
                  arguments (e.g. Treatment("control"), Treatment(reference=2))
    arith      := arithmetic (+ - * / ** and unary minus) on NAMEs, Q("..."), numbers and
                  np.log/np.exp/np.sqrt

A NAME must be a column of the data (checked by the caller) and must not contain a
double underscore. Strings are allowed only as the column name of ``Q()`` and as the
arguments of a contrast. Refused, among others: attribute access other than
``np.log/exp/sqrt``, subscripts, lambdas, comprehensions, keyword arguments outside
``C()``/contrasts, calls to anything not listed, ``|`` (random effects go in
``groups=``/``re_formula=``), and the NUL character.
"""
from __future__ import annotations

import ast
import io
import math
import tokenize
import unicodedata

from ..errors import PylmeError
from ._limits import MAX_FORMULA_TERMS, check_formula_size  # noqa: F401 (the limit, public here)

#: Formula operators between terms (":" is read as Python's "@" for parsing only).
_FORMULA_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: ":",
                ast.Pow: "**", ast.BitXor: "^"}
#: Operators inside I() and np.*() bodies: plain arithmetic.
_ARITH_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_UNARY_OPS = (ast.USub, ast.UAdd)
NP_FUNCTIONS = frozenset({"log", "exp", "sqrt"})
CONTRASTS = frozenset({"Treatment", "Sum", "Helmert", "Diff", "Poly"})
#: Operator tokens a formula may contain at all (others, e.g. "[", "{", "<", "|", "@",
#: ";", are refused before parsing).
_TOKENS_OK = frozenset({"(", ")", ",", "+", "-", "*", "/", "**", ":", "~", "^", ".", "=", "[", "]"})
_ALLOWED_TEXT = ("column names, numbers, the operators + - * / : ** ^ ~ and parentheses, "
                 "C(), I(), Q(\"name\"), np.log(), np.exp(), np.sqrt()")


#: Largest number allowed as an exponent of ``**`` inside I()/np.*(): patsy evaluates
#: those bodies as Python, and ``9**9**9`` is an integer of 370 million digits.
MAX_EXPONENT = 100


class _Refused(Exception):
    def __init__(self, node: ast.AST, why: str) -> None:
        super().__init__(why)
        self.node = node
        self.why = why


def formula_variables(text: object, *, what: str) -> tuple[list[str], list[str]]:
    """Check ``text`` against the allowed grammar and return the columns it reads.

    Parameters
    ----------
    text : str
        A patsy formula (``"y ~ x + C(g)"``) or one side of it (``"~ x"``, ``"0 + C(g)"``).
    what : str
        How error messages name the argument (``"formula"``, ``"re_formula"``, ...).

    Returns
    -------
    (list of str, list of str)
        Column names read on the left and on the right of ``~``, in order of appearance,
        without repeats. Nothing is evaluated.

    Raises
    ------
    PylmeError
        For anything outside the grammar (see the module docstring), naming the piece.
    """
    if not isinstance(text, str) or not text.strip():
        raise PylmeError(f"{what} must be a non-empty formula string, got {text!r}")
    if "\x00" in text:
        raise PylmeError(f"{what} {text!r} contains a NUL character (\\x00); remove it")
    wrapped = f"({text}\n)"  # parentheses let the tokenizer read newlines as spaces
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(wrapped).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise PylmeError(f"cannot read {what} {text!r}: {exc}") from None
    lines = wrapped.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    chars = list(wrapped)
    split_at: int | None = None
    depth = 0
    for tok in tokens:
        if tok.type == tokenize.ERRORTOKEN and not tok.string.isspace():
            raise PylmeError(f"{what} {text!r}: {tok.string!r} is not allowed in a statsmodels formula "
                             f"(allowed: {_ALLOWED_TEXT})")
        if tok.type == tokenize.NAME and unicodedata.normalize("NFKC", tok.string) != tok.string:
            normal = unicodedata.normalize("NFKC", tok.string)
            raise PylmeError(f"{what} {text!r}: Python (and so patsy) reads the name {tok.string!r} as "
                             f"{normal!r} (Unicode NFKC), which is another name; write Q({tok.string!r}) "
                             "to use the column as it is spelled")
        if tok.type != tokenize.OP:
            continue
        if tok.string not in _TOKENS_OK:
            hint = " (random effects go in groups= and re_formula=)" if tok.string == "|" else ""
            raise PylmeError(f"{what} {text!r}: the operator {tok.string!r} is not allowed in a statsmodels "
                             f"formula{hint} (allowed: {_ALLOWED_TEXT})")
        if tok.string in "([":
            depth += 1
        elif tok.string in ")]":
            depth -= 1
        elif tok.string == "~" and depth == 1:
            if split_at is not None:
                raise PylmeError(f"{what} {text!r} has more than one '~'")
            split_at = offset(tok.start)
        elif tok.string == ":":
            # same length, so node positions still point into the original text
            chars[offset(tok.start)] = "@"
    parsed = "".join(chars)
    if split_at is None:
        sides = [("", ""), (parsed[1:-2], wrapped[1:-2])]
    else:
        sides = [(parsed[1:split_at], wrapped[1:split_at]),
                 (parsed[split_at + 1:-2], wrapped[split_at + 1:-2])]
    out: list[list[str]] = []
    for k, (side, original) in enumerate(sides):
        found: list[str] = []
        if side.strip():
            _check_side(side, original, found, what=what, text=text)
        elif k == 1:
            raise PylmeError(f"{what} {text!r} has nothing on the right of '~'")
        out.append(found)
    return out[0], out[1]


def _pieces(side: str) -> list[tuple[int, int]]:
    """(start, end) of the text between top-level + and - of one side, so that a formula
    of thousands of terms is parsed term by term (one long chain would exhaust Python's
    parser stack)."""
    wrapped = f"({side}\n)"
    starts = [0]
    for line in wrapped.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    cuts, depth = [], 0
    for tok in tokenize.generate_tokens(io.StringIO(wrapped).readline):
        if tok.type != tokenize.OP:
            continue
        if tok.string in "([":
            depth += 1
        elif tok.string in ")]":
            depth -= 1
        elif tok.string in ("+", "-") and depth == 1:
            cuts.append(starts[tok.start[0] - 1] + tok.start[1] - 1)
    bounds = [-1, *cuts, len(side)]
    return [(bounds[k] + 1, bounds[k + 1]) for k in range(len(bounds) - 1)]


def _check_side(side: str, original: str, found: list[str], *, what: str, text: str) -> None:
    pieces = _pieces(side)
    if not side[pieces[-1][0]:].strip():
        raise PylmeError(f"cannot read {what} {text!r}: it ends with an operator")
    total, atoms = 0.0, set[str]()
    for start, end in pieces:
        if not side[start:end].strip():
            continue  # a unary sign: "-1", "x + -1"
        source = f"(\n{side[start:end]}\n)"
        shown = f"(\n{original[start:end]}\n)"
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            raise PylmeError(f"cannot read {what} {text!r}: {exc.msg} in {original[start:end].strip()!r}") from None
        except (RecursionError, MemoryError):
            raise PylmeError(f"{what} {text!r} is nested too deeply to read") from None
        try:
            _formula_node(tree.body, found)
            total += _terms_bound(tree.body, atoms)
        except _Refused as exc:
            piece = ast.get_source_segment(shown, exc.node) or type(exc.node).__name__
            raise PylmeError(f"{what} {text!r}: {piece!r} is not allowed in a statsmodels formula "
                             f"({exc.why}; allowed: {_ALLOWED_TEXT})") from None
        except RecursionError:  # ast.dump of a deeply nested term (Python 3.13 recurses sooner)
            raise PylmeError(f"{what} {text!r} is nested too deeply to read") from None
    total = min(total, 4.0 ** len(atoms))  # a term is a set of atoms: x + x + x is one term
    check_formula_size(what, text, total, power="**")


def _terms_bound(root: ast.AST, atoms: set[str] | None = None) -> float:
    """An upper bound on the terms patsy makes of one piece of a formula (a*b: 3,
    (a+b+c)**2: 6), without expanding it; capped by 4^(distinct atoms), since a term is
    a set of atoms (``x*x*x`` is one term). Post-order with an explicit stack."""
    bounds: dict[int, float] = {}
    atoms = set() if atoms is None else atoms
    stack: list[tuple[ast.AST, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, ast.BinOp) and isinstance(node.op, tuple(_FORMULA_OPS)):
            if not done:
                stack += [(node, True), (node.right, False), (node.left, False)]
                continue
            a, z = bounds.pop(id(node.left)), bounds.pop(id(node.right))
            if isinstance(node.op, (ast.Add, ast.Sub)):
                b = a + z
            elif isinstance(node.op, ast.Mult):
                b = (a + 1) * (z + 1) - 1
            elif isinstance(node.op, ast.MatMult):
                b = a * z
            elif isinstance(node.op, ast.Div):
                b = a + a * z
            else:  # ** and ^: all interactions up to the exponent's order
                k = node.right.value if _number(node.right) else a  # type: ignore[attr-defined]
                k = int(min(max(k, 1), a))
                b = float(sum(math.comb(int(a), j) for j in range(1, k + 1))) if a < 1e6 else math.inf
            bounds[id(node)] = b
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY_OPS):
            if not done:
                stack += [(node, True), (node.operand, False)]
                continue
            bounds[id(node)] = bounds.pop(id(node.operand))
        else:
            atoms.add(ast.dump(node))
            bounds[id(node)] = 1.0
    return min(bounds[id(root)], 4.0 ** len(atoms))  # atoms here may include other pieces' atoms


def _number(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool))


def _name(node: ast.Name, found: list[str]) -> None:
    if "__" in node.id:
        raise _Refused(node, "names with a double underscore are refused")
    if node.id not in found:
        found.append(node.id)


def _q_column(node: ast.Call, found: list[str]) -> None:
    if (len(node.args) != 1 or node.keywords or not isinstance(node.args[0], ast.Constant)
            or not isinstance(node.args[0].value, str)):
        raise _Refused(node, 'Q() takes one column name in quotes, e.g. Q("my column")')
    if node.args[0].value not in found:
        found.append(node.args[0].value)


def _np_call(node: ast.Call) -> bool:
    func = node.func
    return (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id == "np" and func.attr in NP_FUNCTIONS)


def _one_arith_argument(node: ast.Call, found: list[str], name: str) -> None:
    if len(node.args) != 1 or node.keywords:
        raise _Refused(node, f"{name}() takes exactly one argument")
    _arith_node(node.args[0], found)


def _walk(root: ast.AST, found: list[str], *, arithmetic: bool) -> None:
    """Check a formula (``arithmetic=False``) or the inside of I()/np.f() (``True``).

    An explicit stack: a*b*c*... chains are as deep as they are long."""
    ops = _ARITH_OPS if arithmetic else tuple(_FORMULA_OPS)
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BinOp) and isinstance(node.op, ops):
            if arithmetic and isinstance(node.op, ast.Pow):
                _exponent(node)
            stack += [node.right, node.left]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY_OPS):
            stack.append(node.operand)
        elif _number(node):
            continue
        elif isinstance(node, ast.Name):
            _name(node, found)
        elif not arithmetic and isinstance(node, ast.Call):
            _call(node, found)
        elif isinstance(node, ast.Call) and _np_call(node):
            _one_arith_argument(node, found, f"np.{node.func.attr}")  # type: ignore[attr-defined]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Q":
            _q_column(node, found)
        elif arithmetic:
            raise _Refused(node, "only arithmetic (+ - * / **) on column names and numbers is allowed "
                                 "inside I() and np.log/exp/sqrt()")
        else:
            raise _Refused(node, _why(node))


def _exponent(node: ast.BinOp) -> None:
    """Inside I()/np.*() patsy runs the arithmetic as Python: a power of numbers alone
    is computed exactly (``9**9**9`` would run for hours). An exponent is a number of at
    most MAX_EXPONENT in absolute value, or an expression that reads a column (then
    numpy computes it in floating point)."""
    right = node.right
    if isinstance(right, ast.UnaryOp) and isinstance(right.op, _UNARY_OPS):
        right = right.operand
    if _number(right):
        if abs(right.value) > MAX_EXPONENT:  # type: ignore[attr-defined]
            raise _Refused(node, f"an exponent may be at most {MAX_EXPONENT} in absolute value")
        return
    if not any(isinstance(n, ast.Name) or (isinstance(n, ast.Call) and not _np_call(n))
               for n in ast.walk(node)):
        raise _Refused(node, f"a power of numbers alone needs a plain number of at most {MAX_EXPONENT} "
                             "as its exponent")


def _formula_node(root: ast.AST, found: list[str]) -> None:
    _walk(root, found, arithmetic=False)


def _arith_node(root: ast.AST, found: list[str]) -> None:
    _walk(root, found, arithmetic=True)


def _call(node: ast.Call, found: list[str]) -> None:
    func = node.func
    if _np_call(node):
        _one_arith_argument(node, found, f"np.{func.attr}")  # type: ignore[attr-defined]
        return
    if not isinstance(func, ast.Name):
        raise _Refused(node, "only C(), I(), Q() and np.log/exp/sqrt() may be called")
    if func.id == "I":
        _one_arith_argument(node, found, "I")
    elif func.id == "Q":
        _q_column(node, found)
    elif func.id == "C":
        _c_call(node, found)
    else:
        raise _Refused(node, f"{func.id}() is not on the list of functions a formula may call")


def _c_call(node: ast.Call, found: list[str]) -> None:
    if not node.args or len(node.args) > 2:
        raise _Refused(node, "C() takes a column and optionally a contrast")
    var = node.args[0]
    if isinstance(var, ast.Name):
        _name(var, found)
    elif isinstance(var, ast.Call) and isinstance(var.func, ast.Name) and var.func.id == "Q":
        _q_column(var, found)
    else:
        raise _Refused(var, "C() takes a column name (or Q(\"name\")) as its first argument")
    if len(node.args) == 2:
        _contrast(node.args[1])
    for kw in node.keywords:
        if kw.arg == "contrast" and len(node.args) == 1:
            _contrast(kw.value)
        elif kw.arg == "levels" and isinstance(kw.value, (ast.List, ast.Tuple)):
            for item in kw.value.elts:
                _constant(item)
        else:
            raise _Refused(kw.value, f"C() accepts contrast= and levels=[...] only, not {kw.arg}=")


def _constant(node: ast.AST) -> None:
    ok = isinstance(node, ast.Constant) and (isinstance(node.value, str) or _number(node))
    if not ok and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        ok = _number(node.operand)
    if not ok:
        raise _Refused(node, "contrast arguments and levels must be plain strings or numbers")


def _contrast(node: ast.AST) -> None:
    if isinstance(node, ast.Name) and node.id in CONTRASTS:
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONTRASTS:
        for arg in node.args:
            _constant(arg)
        for kw in node.keywords:
            if kw.arg is None:
                raise _Refused(node, "no ** arguments")
            _constant(kw.value)
        return
    raise _Refused(node, f"a contrast is one of {sorted(CONTRASTS)}")


def _why(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return "attribute access is refused (only np.log/exp/sqrt)"
    if isinstance(node, ast.Subscript):
        return "subscripts are refused"
    if isinstance(node, ast.Lambda):
        return "lambdas are refused"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "strings are allowed only inside Q() and contrasts"
    if isinstance(node, ast.Constant):
        return f"{type(node.value).__name__} constants are refused"
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return "not a formula operator"
    return f"{type(node).__name__} expressions are refused"
