"""A static reading of the HLS C++ for the Vitis scheduler: the code patterns that make Vitis HLS
schedule an engine far slower than the RTL the project's cycle figures come from.

This is the checker of the issue "HLS C++ that Vitis would schedule like the measured RTL": today's
engines (dtlgen/hw_templates/hls) produce findings, and their rewrite aims for none. It is a careful
heuristic over the source text (comments, literals and preprocessor lines blanked, then regular
expressions and bracket matching), not a compiler: no Vitis HLS runs here, so a finding is a pattern
known to cost cycles, never a measured II or latency, and a clean report promises neither. Both sides
of every #if are read; typedefs and constants are shared between the files given to `check_files`.

Rules, and the Vitis behaviour each relies on:

narrow-maxi-port
    An m_axi port moves one element of its declared type per beat (automatic port widening needs
    aligned, fixed-length bursts), so a port narrower than the bus the cycle model assumes
    (`bus_bytes`) moves a fraction of the model's bytes per cycle. Checked only with `bus_bytes`.
pipeline-in-imperfect-nest
    Vitis flattens a nest into one pipeline only if it is perfect (an outer body holds nothing but the
    inner loop) and only its outermost bound varies ("semi-perfect"). Otherwise the pipelined loop
    fills and drains on every iteration of the loop where flattening stops. A fully unrolled parent
    is transparent; a loop inside a pipelined loop is unrolled, not pipelined.
conditional-maxi-access
    Bursts are inferred only from accesses made on every iteration at a predictable address; an m_axi
    access under if / else / switch / ?: in a pipelined loop becomes single-beat requests. A manual
    burst port's (hls::burst_maxi) read() and write(...) are its data accesses (a beat that is not
    taken stalls the pipeline); its requests and responses are control and may be conditional. The ports
    are the m_axi parameters of the top function, followed into helpers through call arguments and to
    helper parameters of the same type; a call under a condition of a helper that accesses the port it
    is given counts as such an access.
division-in-pipeline
    `/` and `%` by anything but a constant power of two is a multi-cycle divider core. Constants are
    evaluated (to a set of values where a ternary tests an unknown macro); one that cannot be shown to
    be a power of two is flagged. Only the pipelined loop's own text is read, not the helpers it calls.
wide-index-arithmetic
    64-bit counters and indices widen the adders and comparators on a loop's critical path. Flags a
    64-bit C integer declared in a pipelined body, an ap_[u]int wider than 32 bits there only when it
    is used in a subscript (a wide accumulator is datapath), and a wide induction variable or bound.
runtime-partitioned-index
    A completely partitioned dimension is separate banks; an index that is neither constant nor an
    unrolled loop's variable selects the bank at run time: a multiplexer over all banks, and parallel
    accesses Vitis must assume to conflict. Flagged in pipelined and unrolled bodies (in a pipelined
    one only when the index changes while it runs: its own or an inner loop's variable, or a name
    assigned in its body; an outer loop's variable selects the bank once per entry), anywhere when the
    index divides (`col % LANES`), and where a pipelined or unrolled body calls a helper whose flagged
    index comes from a parameter (also through helpers that pass it on). Partitions follow arrays into
    helpers through call arguments.
missing-tripcount
    A `for` loop with a runtime bound and no LOOP_TRIPCOUNT (before any nested loop) has latency "?"
    in csynth, and so has everything that calls it: the schedule cannot be held against the model.
serial-load-compute-store
    Without DATAFLOW a loop's iterations run one after another, so its load / compute / store calls
    never overlap across iterations; calls under `if` also keep it out of the form DATAFLOW needs.

Not modelled: inlining (except partitioned indices, as above), Vitis's automatic pipelining of small
loops, and the pipeline drain once per call of the function that holds a pipelined loop.
"""

from __future__ import annotations

import bisect
import operator
import re
from collections import ChainMap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

RULES = ("narrow-maxi-port", "pipeline-in-imperfect-nest", "conditional-maxi-access", "division-in-pipeline",
         "wide-index-arithmetic", "runtime-partitioned-index", "missing-tripcount", "serial-load-compute-store")

# Why each pattern costs cycles under Vitis, and the fix: the second half of every finding's message.
_WHY = {
    "narrow-maxi-port": "Vitis moves one element per beat unless its automatic port widening applies (aligned "
                        "fixed-length bursts only), a fraction of the bytes per cycle the model counts; declare the "
                        "port as wide as the bus (ap_uint or hls::vector) and unpack on chip",
    "pipeline-in-imperfect-nest": "Vitis flattens only perfect nests whose inner bounds are constant, so the pipeline "
                                  "fills and drains on every outer iteration; hoist the outer statements and make the "
                                  "inner bounds constant, or pipeline one hand-flattened loop",
    "conditional-maxi-access": "Vitis infers a burst only from an access made on every iteration at a predictable "
                               "address, so this one becomes single-beat requests each paying the memory latency; "
                               "read in an unconditional burst loop into a local buffer and select on chip",
    "division-in-pipeline": "a divisor that is not a constant power of two makes Vitis build a multi-cycle divider "
                            "(tens of cycles of latency, and a raised II on any recurrence through it); divide by "
                            "constant powers of two (shifts, masks) or step a counter instead",
    "wide-index-arithmetic": "64-bit counters and indices lengthen the adders and comparators on the loop's critical "
                             "path, costing clock rate or II; use the narrowest int or ap_uint that holds the range",
    "runtime-partitioned-index": "Vitis cannot tell which bank is meant, so it builds a multiplexer over all banks "
                                 "and must assume parallel accesses conflict (raising II); index partitioned "
                                 "dimensions with constants or unrolled loop variables (e.g. a rotating bank counter "
                                 "instead of `% LANES`)",
    "missing-tripcount": "csynth reports its latency, and its callers', as \"?\", so the schedule cannot be held "
                         "against the cycle model; add #pragma HLS LOOP_TRIPCOUNT",
    "serial-load-compute-store": "without DATAFLOW the iterations run one after another, so each store and the next "
                                 "load wait for the compute, and conditional calls keep the body out of the form "
                                 "DATAFLOW needs; make the stages unconditional functions of a DATAFLOW region linked "
                                 "by ping-pong buffers or streams",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    file: str
    line: int
    loop: str | None
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def check_source(text: str, file: str = "<source>", bus_bytes: int | None = None) -> list[Finding]:
    """The findings for one C++ source, with its own typedefs and constants only."""
    unit = _Unit(text)
    return _Checker(unit, file, bus_bytes, unit.consts, unit.typedefs).run()


def check_files(paths: Iterable[Path], bus_bytes: int | None = None) -> list[Finding]:
    """The findings for several sources (the engines with dtl_engines.h): every file's typedefs and
    constants are seen by all, a file's own definitions first."""
    units = [(str(p), _Unit(Path(p).read_text(encoding="utf-8", errors="replace"))) for p in paths]
    consts, typedefs = _shared(unit for _, unit in units)
    return [finding for name, unit in units for finding in
            _Checker(unit, name, bus_bytes, ChainMap(unit.consts, consts), ChainMap(unit.typedefs, typedefs)).run()]


def _shared(units: Iterable[_Unit]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Every unit's constants and typedefs together (a unit's own come first where it reads them)."""
    consts: dict[str, list[str]] = {}
    typedefs: dict[str, list[str]] = {}
    for unit in units:
        for mine, shared in ((unit.consts, consts), (unit.typedefs, typedefs)):
            for name, values in mine.items():
                shared.setdefault(name, []).extend(values)
    return consts, typedefs


# --- reading the source -------------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_]\w*")
_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "catch", "do", "else", "case", "new", "delete",
             "throw", "static_assert", "decltype", "alignof", "defined", "goto", "typedef", "using", "namespace",
             "break", "continue", "default", "const", "static", "volatile", "inline", "struct", "class", "enum"}
_TYPE_WORDS = {"int", "unsigned", "signed", "long", "short", "char", "bool", "ap_int", "ap_uint", "size_t",
               "static_cast", "const", "sizeof", "true", "false"}
_LEX = re.compile(r"//[^\n]*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*\"?|(?<!\w)'(?:\\.|[^'\\\n])*'?"
                  r"|^[ \t]*#(?:[^\n]*\\\r?\n)*[^\n]*", re.S | re.M)
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*(?:<[\w\s:,*&<>]*>)?\s*\(")  # template arguments: type-like text only
_SPACE = re.compile(r"\s*")
_LOOP = re.compile(r"\b(for|while)\s*\(")
_COND = re.compile(r"\b(if|switch)\s*\(")
_CONTROL = re.compile(r"(?:(if|for|while|switch)\s*\(|(else|do)\b)")
_CONST_DECL = re.compile(r"\b(?:constexpr|const)\s+(?:static\s+)?[\w:<>,\s*&]+?\s+([A-Za-z_]\w*\s*=[^;{}]*);")
_DECL = re.compile(r"(?<![\w.>:])((?:(?:unsigned|signed)\s+)?long(?:\s+long)?(?:\s+int)?"
                   r"|[A-Za-z_]\w*(?:\s*<[^<>;{}()]*(?:<[^<>;{}()]*>[^<>;{}()]*)?>)?)"
                   r"(?:\s*[*&]+\s*|\s+)([A-Za-z_]\w*)(?=\s*[=;,\[{(])")
_AP = re.compile(r"\bap_u?(?:int|fixed)\s*<\s*([^,<>]+)")
_PRIMS = ((re.compile(r"\blong\b|\bu?int64_t\b|\bdouble\b"), 64), (re.compile(r"\bshort\b|\bu?int16_t\b"), 16),
          (re.compile(r"\bchar\b|\bu?int8_t\b"), 8), (re.compile(r"\bint\b|\bunsigned\b|\bu?int32_t\b|\bfloat\b"), 32))


def _access(name: str) -> re.Pattern:
    """A data access on m_axi port `name`: a subscript, or a manual burst's beat (hls::burst_maxi's
    read() / write(...); its read_request / write_request / write_response are control, not data)."""
    return re.compile(rf"(?<![\w.>]){re.escape(name)}\s*(?:\[|\.\s*(read|write)\s*(?:<[^<>;()]*>)?\s*\()")


def _split(text: str, sep: str = ",", angle: bool = False) -> list[str]:
    """`text` split at `sep` outside brackets (and outside <> in parameter lists)."""
    parts, depth, start = [], 0, 0
    opens, closes = ("([{<", ")]}>") if angle else ("([{", ")]}")
    for i, c in enumerate(text):
        depth += (c in opens) - (c in closes)
        if c == sep and depth <= 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _scan(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The text with comments, literals and preprocessor lines blanked (offsets and newlines kept), and
    the directives as (offset, text with continuations joined and comments dropped)."""
    directives = []

    def blank(m: re.Match) -> str:
        if m.group().lstrip().startswith("#"):
            directives.append((m.start(), re.sub(r"\\\r?\n|//.*|/\*.*?\*/", " ", m.group())))
        return re.sub(r"[^\n]", " ", m.group())
    return _LEX.sub(blank, text), directives


@dataclass(eq=False)
class _Pragma:
    pos: int
    kind: str
    opts: dict[str, str]
    flags: set[str]


@dataclass(eq=False)
class _Loop:
    kw: int     # the `for` / `while` keyword
    label: str | None
    start: int  # the label, or the keyword
    end: int    # just past the loop statement
    body: tuple[int, int]
    header: str
    is_for: bool
    parent: _Loop | None = None
    pragmas: list[_Pragma] = field(default_factory=list)
    var: str | None = None
    var_type: str = ""
    init: str = ""
    bound: str | None = None

    def has(self, kind: str) -> list[_Pragma]:
        return [p for p in self.pragmas if p.kind == kind and "off" not in p.flags and p.opts.get("off") != "true"]

    @property
    def pipelined(self) -> bool:
        return bool(self.has("PIPELINE"))

    @property
    def full_unroll(self) -> bool:
        return any("factor" not in p.opts for p in self.has("UNROLL"))

    def chain(self) -> list[_Loop]:
        return [self] + (self.parent.chain() if self.parent else [])

    @property
    def in_pipeline(self) -> bool:
        return any(loop.pipelined for loop in self.chain()[1:])


def _innermost(loops: list[_Loop], pos: int) -> _Loop | None:
    return max((loop for loop in loops if loop.body[0] <= pos < loop.body[1]), key=lambda l: l.kw, default=None)


@dataclass(eq=False)
class _Func:
    name: str
    params: list[tuple[str, str]]  # (type, name)
    body: tuple[int, int]
    loops: list[_Loop] = field(default_factory=list)
    pragmas: list[_Pragma] = field(default_factory=list)
    consts: dict[str, list[str]] = field(default_factory=dict)  # local constants
    decls: dict[str, str] = field(default_factory=dict)  # parameters, locals, loop variables -> type

    def param(self, name: str) -> int | None:
        return next((k for k, (_, p) in enumerate(self.params) if p == name), None)


class _Unit:
    """One source: blanked code, bracket pairs, pragmas, functions with their loops, file-scope definitions."""

    def __init__(self, text: str) -> None:
        self.code, directives = _scan(text)
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.match: dict[int, int] = {}
        stacks: dict[str, list[int]] = {c: [] for c in "([{"}
        for m in re.finditer(r"[()\[\]{}]", self.code):
            if m.group() in stacks:
                stacks[m.group()].append(m.start())
            elif stack := stacks["([{"[")]}".index(m.group())]]:
                self.match[stack.pop()] = m.start()
        self.pragmas, self.consts, self.typedefs = [], {}, {}
        for pos, d in directives:
            if m := re.match(r"\s*#\s*pragma\s+HLS\s+(\w+)(.*)", d, re.I | re.S):
                opts = {k.lower(): v for k, v in re.findall(r"(\w+)\s*=\s*([^\s=]+)", m.group(2))}
                flags = {w.lower() for w in _IDENT.findall(re.sub(r"\w+\s*=\s*[^\s=]+", " ", m.group(2)))}
                self.pragmas.append(_Pragma(pos, m.group(1).upper(), opts, flags))
            elif m := re.match(r"\s*#\s*define\s+([A-Za-z_]\w*)\b(?!\()(.*)", d, re.S):
                self.consts.setdefault(m.group(1), []).append(m.group(2).strip())
        self.funcs = self._functions()
        scope = list(self.code)
        for f in self.funcs:
            scope[f.body[0]:f.body[1]] = " " * (f.body[1] - f.body[0])
        self.file_scope = "".join(scope)
        for m in _CONST_DECL.finditer(self.file_scope):
            self.declarators(m.group(1), self.consts)
        for m in re.finditer(r"\benum\b[^{};]*\{([^{}]*)\}", self.code):
            base, k = "0", 0
            for item in _split(m.group(1)):
                if e := re.match(r"\s*([A-Za-z_]\w*)\s*(?:=(.*))?$", item, re.S):
                    base, k = (e.group(2), 0) if e.group(2) else (base, k)
                    self.consts.setdefault(e.group(1), []).append(f"({base}) + {k}")
                    k += 1
        for m in re.finditer(r"\btemplate\s*<([^<>]*)>", self.code):
            for name in re.findall(r"\b(?:int|unsigned|bool|long|size_t)\s+([A-Za-z_]\w*)", m.group(1)):
                self.consts.setdefault(name, [])  # a constant of unknown value
        for m in re.finditer(r"\btypedef\b([^;{}()]+?)\b([A-Za-z_]\w*)\s*;|\busing\s+(\w+)\s*=([^;{}]+);", self.code):
            self.typedefs.setdefault(m.group(2) or m.group(3), []).append((m.group(1) or m.group(4)).strip())

    @staticmethod
    def declarators(text: str, into: dict[str, list[str]]) -> dict[str, list[str]]:
        for d in _split(text):
            if m := re.match(r"\s*([A-Za-z_]\w*)\s*=(.*)", d, re.S):
                into.setdefault(m.group(1), []).append(m.group(2).strip())
        return into

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def skip(self, i: int) -> int:
        return _SPACE.match(self.code, i).end()

    def stmt_end(self, s: int, limit: int, depth: int = 0) -> int:
        """Just past the statement that starts at `s`: a block, a control statement or an expression."""
        code, s = self.code, self.skip(s)
        if s >= limit:
            return limit
        if code[s] == "{":
            return min(self.match.get(s, limit - 1) + 1, limit)
        if (m := _CONTROL.match(code, s)) and depth < 50:
            if m.group(2):  # else, do
                e = self.stmt_end(m.end(), limit, depth + 1)
                semi = code.find(";", e, limit) if m.group(2) == "do" else e - 1  # do ... while (...);
                return limit if semi < 0 else semi + 1
            close = self.match.get(m.end() - 1, limit)
            e = self.stmt_end(close + 1, limit, depth + 1) if close < limit else limit
            n = self.skip(e)
            return self.stmt_end(n + 4, limit, depth + 1) if m.group(1) == "if" and re.match(r"else\b", code[n:n + 5]) \
                else e
        i = s
        while i < limit and code[i] not in ";}":
            i = self.match[i] + 1 if code[i] in "([{" and i in self.match else i + 1
        return min(i + (i < limit and code[i] == ";"), limit)

    def _functions(self) -> list[_Func]:
        code, funcs, pos = self.code, [], 0
        while m := _CALL.search(code, pos):
            close = self.match.get(m.end() - 1)
            after = re.compile(r"\s*(?:(?:const|noexcept|override)\b\s*)*\{").match(code, close + 1) if close else None
            end = self.match.get(after.end() - 1) if after else None
            if m.group(1) in _KEYWORDS or end is None:
                pos = m.end()
                continue
            params = [(p.group(1).strip(), p.group(2)) for part in _split(code[m.end():close], angle=True)
                      if (p := re.match(r"\s*(.*?)\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*(?:=.*)?$", part, re.S))
                      and p.group(1).strip()]
            funcs.append(self._fill(_Func(m.group(1), params, (after.end(), end))))
            pos = end + 1
        return funcs

    def _fill(self, f: _Func) -> _Func:
        code, (b0, b1), stack = self.code, f.body, []
        for m in _LOOP.finditer(code, b0, b1):
            close = self.match.get(m.end() - 1, b1)
            s = self.skip(close + 1)
            if close >= b1 or (m.group(1) == "while" and code.startswith(";", s)):
                continue  # unbalanced, or the tail of a do-while
            if code.startswith("{", s) and self.match.get(s, b1) < b1:
                body, end = (s + 1, self.match[s]), self.match[s] + 1
            else:
                end = self.stmt_end(s, b1)
                body = (s, end)
            before = code[max(b0, m.start() - 200):m.start()]
            lab = re.search(r"(?<![\w:])([A-Za-z_]\w*)\s*:\s*$", before)
            if lab and (lab.group(1) in _KEYWORDS or re.search(r"\bcase\s+$", before[:lab.start(1)])):
                lab = None
            loop = _Loop(m.start(), lab and lab.group(1), m.start() - len(before) + lab.start() if lab else m.start(),
                         end, body, code[m.end():close], m.group(1) == "for")
            while stack and not stack[-1].body[0] <= m.start() < stack[-1].body[1]:
                stack.pop()
            loop.parent = stack[-1] if stack else None
            stack.append(loop)
            f.loops.append(loop)
            parts = _split(loop.header, ";")
            if loop.is_for and len(parts) == 3 and (init := re.match(r"\s*(.*?)\b([A-Za-z_]\w*)\s*=(.*)$", parts[0],
                                                                     re.S)):
                loop.var_type, loop.var, loop.init = init.group(1).strip(), init.group(2), init.group(3)
                v = re.escape(loop.var)
                cond = (re.match(rf"\s*{v}\s*(?:<=|<|!=|>=|>)\s*(.+?)\s*$", parts[1], re.S)
                        or re.match(rf"\s*(.+?)\s*(?:<=|<|>=|>)\s*{v}\s*$", parts[1], re.S))
                loop.bound = cond.group(1) if cond and not re.search(r"&&|\|\||\?", cond.group(1)) else None
        for p in self.pragmas:
            if b0 <= p.pos < b1:
                f.pragmas.append(p)  # a pragma belongs to the innermost loop whose body holds it
                if owner := _innermost(f.loops, p.pos):
                    owner.pragmas.append(p)
        f.decls = {name: typ for typ, name in f.params}
        for m in _DECL.finditer(code, b0, b1):
            if m.group(1) not in _KEYWORDS:
                f.decls.setdefault(m.group(2), m.group(1))
        f.decls.update({l.var: l.var_type for l in f.loops if l.var})
        return f


# --- constants ----------------------------------------------------------------------------------------------------

_TOK = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|([A-Za-z_]\w*)|(<<|>>|[<>=!]=|&&|\|\||[-+*/%<>&|^~!?:()]))")
_BIN = {op: p for p, ops in enumerate(("||", "&&", "|", "^", "&", "== !=", "< <= > >=", "<< >>", "+ -", "* / %"), 1)
        for op in ops.split()}
_FN = {"||": lambda a, b: bool(a or b), "&&": lambda a, b: bool(a and b), "|": operator.or_, "^": operator.xor,
       "&": operator.and_, "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge, "<<": operator.lshift, ">>": operator.rshift, "+": operator.add,
       "-": operator.sub, "*": operator.mul}


def _apply(op: str, a: int, b: int) -> int:
    if op in "/%":
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b > 0) else -1)  # C truncates toward zero
        return q if op == "/" else a - b * q
    if op in ("<<", ">>") and not 0 <= b <= 128:
        raise ValueError(op)
    return int(_FN[op](a, b))


class _Eval:
    """The possible values of a constant expression: a set (a ternary on an unknown macro keeps both
    branches), or None where any part is unknown."""

    def __init__(self, consts: Mapping[str, list[str]]) -> None:
        self.consts, self.active, self.memo = consts, set(), {}

    def values(self, expr: str) -> frozenset[int] | None:
        toks, pos, expr = [], 0, expr.strip()
        try:
            while pos < len(expr):
                m = _TOK.match(expr, pos)
                toks.append(int(m.group(1), 16 if m.group(1)[1:2] in "xX" else 10) if m.group(1)
                            else m.group(2) or m.group(3))
                pos = m.end()
            vals, i = self._expr(toks, 0, 0)
        except (AttributeError, ValueError, IndexError, ZeroDivisionError, RecursionError):
            return None
        return vals if i == len(toks) else None

    def _expr(self, toks: list, i: int, prec: int) -> tuple[frozenset[int] | None, int]:
        lhs, i = self._unary(toks, i)
        while i < len(toks) and isinstance(op := toks[i], str):
            if op == "?" and prec == 0:
                a, i = self._expr(toks, i + 1, 0)
                if toks[i] != ":":
                    raise ValueError(op)
                b, i = self._expr(toks, i + 1, 0)
                if lhs is not None and (all(lhs) or not any(lhs)):
                    lhs = a if all(lhs) else b
                else:
                    lhs = a | b if a is not None and b is not None else None
            elif _BIN.get(op, 0) >= max(prec, 1):
                rhs, i = self._expr(toks, i + 1, _BIN[op] + 1)
                lhs = None if lhs is None or rhs is None or len(lhs) * len(rhs) > 256 else \
                    frozenset(_apply(op, a, b) for a in lhs for b in rhs)
            else:
                break
        return lhs, i

    def _unary(self, toks: list, i: int) -> tuple[frozenset[int] | None, int]:
        t = toks[i]
        if isinstance(t, int) or t in ("true", "false"):
            return frozenset({t if isinstance(t, int) else int(t == "true")}), i + 1
        if t in ("-", "+", "!", "~"):
            v, i = self._unary(toks, i + 1)
            fn = {"-": operator.neg, "+": operator.pos, "!": operator.not_, "~": operator.invert}[t]
            return (None if v is None else frozenset(int(fn(x)) for x in v)), i
        if t == "(" or (t in _TYPE_WORDS and toks[i + 1] == "("):  # a parenthesis, or a function-style cast
            v, i = self._expr(toks, i + 1 + (t != "("), 0)
            if toks[i] != ")":
                raise ValueError(t)
            return v, i + 1
        if not _IDENT.fullmatch(t) or t in self.active or len(self.active) > 20:
            raise ValueError(t)
        if t not in self.memo:
            self.active.add(t)
            sets = [self.values(e) for e in self.consts.get(t) or [""]]
            self.active.discard(t)
            self.memo[t] = None if None in sets else frozenset().union(*sets)
        return self.memo[t], i + 1


def _pow2(vals: frozenset[int] | None) -> bool:
    return bool(vals) and all(v > 0 and v & (v - 1) == 0 for v in vals)


# --- the rules ----------------------------------------------------------------------------------------------------

class _Checker:
    def __init__(self, unit: _Unit, file: str, bus_bytes: int | None, consts: Mapping[str, list[str]],
                 typedefs: Mapping[str, list[str]]) -> None:
        self.u, self.file, self.bus, self.consts, self.typedefs = unit, file, bus_bytes, consts, typedefs
        self.found: dict[tuple[str, int], Finding] = {}
        self.maxi: dict[int, dict[str, object]] = {}
        self.touches: dict[int, set[str]] = {}
        self.by_name: dict[str, _Func] = {}
        for f in unit.funcs:
            self.by_name.setdefault(f.name, f)
            for m in _CONST_DECL.finditer(unit.code, *f.body):  # local constants with constant values only
                for name, exprs in unit.declarators(m.group(1), {}).items():
                    if self.const(f, exprs[0]):
                        f.consts.setdefault(name, []).append(exprs[0])
        self.calls = {id(f): [(self.by_name[m.group(1)], m.start(), _split(unit.code[m.end():close]))
                              for m in _CALL.finditer(unit.code, *f.body)
                              if m.group(1) in self.by_name and (close := unit.match.get(m.end() - 1)) is not None]
                      for f in unit.funcs}

    def run(self) -> list[Finding]:
        for rule in (self.ports, self.nests, self.divisions, self.wide, self.partitions, self.tripcounts, self.stages):
            rule()
        return sorted(self.found.values(), key=lambda f: (f.line, RULES.index(f.rule)))

    def add(self, rule: str, pos: int, loop: _Loop | None, what: str) -> None:
        line = self.u.line(pos)
        label = loop.label if loop else None
        self.found.setdefault((rule, line), Finding(rule, self.file, line, label, f"{what}: {_WHY[rule]}."))

    def name(self, loop: _Loop | None) -> str:
        at = f"line {self.u.line(loop.kw)}" if loop else ""
        return f"`{loop.label}` ({at})" if loop and loop.label else f"the loop at {at}" if loop else "this function"

    def const(self, f: _Func, expr: str, extra: Iterable[str] = ()) -> bool:
        """A compile-time constant: literals, known constants, ALL_CAPS macros, the given (unrolled) names."""
        text = re.sub(r"(?<![\w.])\d[\w.]*|(?:\.|->)\s*[A-Za-z_]\w*", " ", expr)  # members: the object decides
        return all(name in extra or name in _TYPE_WORDS or name in f.consts or name not in f.decls and (
                   name in self.consts or name == name.upper() and name[0].isalpha())  # a local shadows
                   for name in _IDENT.findall(text))

    def expand(self, typ: str, depth: int = 0) -> str:
        """The type followed by the definitions of its typedef names (every #if alternative, in order)."""
        return " ".join([typ] + [self.expand(t, depth + 1) for name in _IDENT.findall(typ)
                                 for t in self.typedefs.get(name, ()) if depth < 8])

    def width(self, typ: str) -> int | None:
        text = self.expand(typ)
        if m := _AP.search(text):
            vals = _Eval(self.consts).values(m.group(1))
            return max(vals) if vals else None
        return next((bits for pattern, bits in _PRIMS if pattern.search(text)), None)

    def propagate(self, seeds: dict[int, dict[str, object]]) -> None:
        """Carry a property of a name passed bare as a call argument to the callee's parameter there."""
        for _ in range(len(self.u.funcs) + 1):
            changed = False
            for f in self.u.funcs:
                for g, _, args in self.calls[id(f)]:
                    for k, arg in enumerate(args[:len(g.params)]):
                        if arg.strip() in seeds[id(f)] and g.params[k][1] not in seeds[id(g)]:
                            seeds[id(g)][g.params[k][1]] = seeds[id(f)][arg.strip()]
                            changed = True
            if not changed:
                return

    def pipelines(self, f: _Func) -> list[_Loop]:
        return [loop for loop in f.loops if loop.pipelined and not loop.in_pipeline]

    def context(self, f: _Func, pos: int) -> tuple[_Loop | None, str | None, set[str]]:
        """The loop whose schedule holds `pos`, whether it runs in parallel, and the unrolled loop variables there."""
        chain = loop.chain() if (loop := _innermost(f.loops, pos)) else []
        unrolled = {l.var for l in chain if l.var and (l.full_unroll or l.in_pipeline)}
        if piped := [l for l in chain if l.pipelined]:
            return piped[-1], "pipelined loop", unrolled
        if full := [l for l in chain if l.full_unroll]:
            return full[-1], "unrolled loop", unrolled
        return loop, None, unrolled

    def invariant(self, f: _Func, loop: _Loop | None, idx: str) -> bool:
        """Whether `idx` holds still while pipelined `loop` runs: none of its names is the variable of
        that loop or of a loop inside it, nor assigned in its body (then the bank is selected once per
        entry, a multiplexer in front of the pipeline, not a conflict that raises its II)."""
        if loop is None or not loop.pipelined:
            return False
        inner = {l.var for l in f.loops if l.var and (l is loop or loop in l.chain())}
        body = self.u.code[loop.body[0]:loop.body[1]]
        for name in set(_IDENT.findall(re.sub(r"(?:\.|->)\s*[A-Za-z_]\w*", " ", idx))):
            if name in inner or re.search(rf"(?<![\w.>])(?:{name}\s*(?:[-+*/%&|^]?=(?!=)|\+\+|--)|(?:\+\+|--)\s*{name}\b)",
                                          body):
                return False
        return True

    def conditional(self, pos: int, span: tuple[int, int]) -> bool:
        """Whether `pos` sits under an if / else / switch / ?: that starts inside `span`."""
        code = self.u.code
        for m in _COND.finditer(code, *span):
            close = self.u.match.get(m.end() - 1, span[1])
            if close < pos < self.u.stmt_end(m.start(), span[1]):
                return True
        start = max([span[0] - 1] + [code.rfind(c, span[0], pos) for c in ";{}"])
        stop = min([span[1]] + [i for c in ";{}" if (i := code.find(c, pos, span[1])) >= 0])
        return "?" in code[start + 1:stop]

    def ports(self) -> None:
        seeds: dict[int, dict[str, object]] = {id(f): {} for f in self.u.funcs}
        types = set()
        for f in self.u.funcs:
            for p in f.pragmas:
                if p.kind != "INTERFACE" or (k := f.param(p.opts.get("port", ""))) is None or not (
                        p.opts.get("mode", "").lower() == "m_axi" or "m_axi" in p.flags):
                    continue
                typ, name = f.params[k]
                seeds[id(f)][name] = True
                types.add(re.sub(r"\bconst\b|\s|&", "", typ))
                if self.bus and (bits := self.width(typ)) and bits < 8 * self.bus:
                    self.add("narrow-maxi-port", p.pos, None,
                             f"m_axi port `{name}` ({' '.join(typ.split())}) carries {bits}-bit elements where the "
                             f"cycle model assumes a {self.bus}-byte bus ({8 * self.bus // bits}x the bytes per beat)")
        for f in self.u.funcs:
            seeds[id(f)].update({name: True for typ, name in f.params if re.sub(r"\bconst\b|\s|&", "", typ) in types})
        self.propagate(seeds)
        self.maxi = seeds  # per function: the names that are m_axi ports there (hls_estimate reads them)
        # helpers that access an m_axi parameter (directly, or through a helper of their own): a call of
        # one under a condition in a pipelined loop is a conditional access too
        touches = {id(f): {name for name in seeds[id(f)] if _access(name).search(self.u.code, *f.body)}
                   for f in self.u.funcs}
        for _ in range(len(self.u.funcs)):
            for f in self.u.funcs:
                for g, _, args in self.calls[id(f)]:
                    touches[id(f)] |= {arg.strip() for k, arg in enumerate(args[:len(g.params)])
                                       if g.params[k][1] in touches[id(g)] and arg.strip() in seeds[id(f)]}
        self.touches = touches  # per function: the m_axi names it accesses, itself or through helpers
        for f in self.u.funcs:
            for loop in self.pipelines(f):
                for name in seeds[id(f)]:
                    for m in _access(name).finditer(self.u.code, *loop.body):
                        if self.conditional(m.start(), loop.body):
                            what = f"`{name}[...]`" if m.group().endswith("[") else f"`{name}.{m.group(1)}(...)`"
                            self.add("conditional-maxi-access", m.start(), loop, f"{what} on m_axi port "
                                     f"`{name}` is under a condition in pipelined loop {self.name(loop)}")
                for g, pos, args in self.calls[id(f)]:
                    ported = [arg.strip() for k, arg in enumerate(args[:len(g.params)])
                              if g.params[k][1] in touches[id(g)] and arg.strip() in seeds[id(f)]]
                    if ported and loop.body[0] <= pos < loop.body[1] and self.conditional(pos, loop.body):
                        self.add("conditional-maxi-access", pos, loop, f"`{g.name}(...)` accesses m_axi port "
                                 f"`{ported[0]}` under a condition in pipelined loop {self.name(loop)}")

    def trip_const(self, f: _Func, loop: _Loop) -> bool:
        return loop.bound is not None and self.const(f, loop.bound) and self.const(f, loop.init)

    def nests(self) -> None:
        for f in self.u.funcs:
            for loop in self.pipelines(f):
                cur, variable = loop, not self.trip_const(f, loop)
                while (parent := cur.parent) is not None:
                    if not parent.full_unroll:
                        rest = self.u.code[parent.body[0]:cur.start] + self.u.code[cur.end:parent.body[1]]
                        imperfect = bool(rest.strip(" \t\r\n;"))
                        if imperfect or variable:
                            bound = " ".join((cur.bound or cur.header).split())
                            why = "holds statements besides the inner loop" if imperfect else \
                                f"holds it while the inner bound `{bound}` varies"
                            self.add("pipeline-in-imperfect-nest", loop.kw, loop, f"pipelined loop {self.name(loop)} "
                                     f"cannot be flattened into {self.name(parent)}, which {why}")
                            break
                        variable = not self.trip_const(f, parent)
                    cur = parent

    def divisions(self) -> None:
        code, operand_re = self.u.code, re.compile(r"[A-Za-z_]\w*(?:\s*(?:\.|->|::)\s*[A-Za-z_]\w*)*|\d[\w.]*")
        for f in self.u.funcs:
            for loop in self.pipelines(f):
                lines: dict[int, list] = {}
                for m in re.compile(r"[/%]=?").finditer(code, *loop.body):
                    i = self.u.skip(m.end())
                    if code.startswith("(", i) and i in self.u.match:
                        j = self.u.match[i]
                    elif o := operand_re.match(code, i):
                        j = o.end() - 1  # then any call or subscript parentheses
                        while (k := self.u.skip(j + 1)) < len(code) and code[k] in "([" and k in self.u.match:
                            j = self.u.match[k]
                    else:
                        continue
                    if not _pow2(_Eval(ChainMap(f.consts, self.consts)).values(code[i:j + 1])):
                        lines.setdefault(self.u.line(m.start()), [m.start()]).append(
                            f"`{m.group()[0]} {' '.join(code[i:j + 1].split())}`")
                for pos, *ops in lines.values():
                    self.add("division-in-pipeline", pos, loop, f"{', '.join(ops)} in pipelined loop {self.name(loop)}")

    def wide(self) -> None:
        code = self.u.code
        for f in self.u.funcs:
            for loop in self.pipelines(f):
                body = code[loop.body[0]:loop.body[1]]
                hits = [(loop.kw, loop.var, loop.var_type, "is the induction variable of")] if loop.var else []
                hits += [(loop.kw, name, f.decls.get(name, ""), "is the trip bound of")
                         for name in _IDENT.findall(re.sub(r"(?:\.|->)\s*[A-Za-z_]\w*", " ", loop.bound or ""))]
                hits += [(m.start(), m.group(2), m.group(1), "is declared in") for m in _DECL.finditer(code, *loop.body)
                         if m.group(1) not in _KEYWORDS and ("ap_" not in self.expand(m.group(1))  # datapath width
                                                             or re.search(rf"\[[^\[\]]*\b{m.group(2)}\b", body))]
                for pos, name, typ, where in hits:
                    if (bits := self.width(typ)) and bits > 32:
                        self.add("wide-index-arithmetic", pos, loop, f"`{name}` ({' '.join(typ.split())}, {bits} "
                                 f"bits) {where} pipelined loop {self.name(loop)}")

    def partitions(self) -> None:
        u, code = self.u, self.u.code
        seeds: dict[int, dict[str, object]] = {id(f): {} for f in u.funcs}
        shared: dict[str, frozenset[int]] = {}
        for f in u.funcs:
            for p in f.pragmas:
                var, dim = p.opts.get("variable", ""), p.opts.get("dim", "1")
                if p.kind == "ARRAY_PARTITION" and _IDENT.fullmatch(var) and dim.isdigit() and (
                        "complete" in p.flags or p.opts.get("type", "").lower() == "complete"):
                    scope = shared if re.search(rf"\b{var}\s*\[", u.file_scope) else seeds[id(f)]  # a global array?
                    scope[var] = scope.get(var, frozenset()) | {int(dim)}
        for f in u.funcs:
            seeds[id(f)].update({var: dims for var, dims in shared.items() if f.param(var) is None})
        self.propagate(seeds)
        helpers: dict[int, list[tuple[int | None, int, str, int, int]]] = {}
        for f in u.funcs:
            for var, dims in seeds[id(f)].items():
                for m in re.compile(rf"(?<![\w.>]){re.escape(var)}\s*\[").finditer(code, *f.body):
                    subs, i = [], m.end() - 1
                    while i < f.body[1] and code[i] == "[" and (j := u.match.get(i)) is not None:
                        subs.append(" ".join(code[i + 1:j].split()))
                        i = u.skip(j + 1)
                    loop, kind, unrolled = self.context(f, m.start())
                    for d, idx in enumerate(subs, 1):
                        if (0 in dims or d in dims) and not self.const(f, idx, unrolled) and (
                                (kind and not self.invariant(f, loop, idx)) or re.search(r"[/%]", idx)):
                            self.add("runtime-partitioned-index", m.start(), loop, f"`{var}[...]` indexes its "
                                     f"completely partitioned dimension {d} with the runtime `{idx}`"
                                     + (f" in {kind} {self.name(loop)}" if kind else ""))
                            helpers.setdefault(id(f), []).extend((f.param(var), k, idx, d, u.line(m.start()))
                                                                 for k, (_, p) in enumerate(f.params)
                                                                 if re.search(rf"\b{re.escape(p)}\b", idx))
        # a helper that passes its own parameter on to such a helper, outside any loop that runs in
        # parallel, indexes the same banks with it (helpers inline into their callers' loops)
        changed = True
        while changed:
            changed = False
            for f in u.funcs:
                for g, pos, args in self.calls[id(f)]:
                    if g is f or self.context(f, pos)[1]:
                        continue
                    for arr, k, idx, d, line in list(helpers.get(id(g), [])):
                        array = args[arr].strip() if arr is not None and arr < len(args) else ""
                        for kk, (_, name) in enumerate(f.params):
                            entry = (f.param(array), kk, idx, d, line)
                            if k < len(args) and re.search(rf"\b{re.escape(name)}\b", args[k]) and (
                                    entry not in helpers.setdefault(id(f), [])):
                                helpers[id(f)].append(entry)
                                changed = True
        for f in u.funcs:
            for g, pos, args in self.calls[id(f)]:
                loop, kind, unrolled = self.context(f, pos)
                for arr, k, idx, d, line in helpers.get(id(g), []) if kind else []:
                    if k < len(args) and not self.const(f, args[k], unrolled):
                        array = args[arr].strip() if arr is not None and arr < len(args) else "its array"
                        self.add("runtime-partitioned-index", pos, loop, f"`{g.name}(...)` in {kind} {self.name(loop)}"
                                 f" indexes the completely partitioned dimension {d} of `{array}` with `{idx}` (line "
                                 f"{line}) from the runtime argument `{' '.join(args[k].split())}`")
                        break

    def tripcounts(self) -> None:
        for f in self.u.funcs:
            for loop in f.loops:
                if not loop.is_for or loop.full_unroll or loop.in_pipeline or self.trip_const(f, loop):
                    continue
                first_child = min((l.start for l in f.loops if l.parent is loop), default=loop.body[1])
                if not any(p.kind == "LOOP_TRIPCOUNT" and p.pos < first_child for p in loop.pragmas):
                    self.add("missing-tripcount", loop.kw, loop, f"for loop {self.name(loop)} runs to the runtime "
                             f"bound `{' '.join((loop.bound or loop.header).split())}` without LOOP_TRIPCOUNT")

    def stages(self) -> None:
        code, order = self.u.code, ("load", "compute", "store")
        for f in self.u.funcs:
            if any(p.kind == "DATAFLOW" for p in f.pragmas):
                continue
            for loop in f.loops:
                calls = [(m.start(), stage, m.group(1)) for m in _CALL.finditer(code, *loop.body)
                         if m.group(1) not in _KEYWORDS and _innermost(f.loops, m.start()) is loop
                         for stage in order if stage in m.group(1).lower()]
                picked: list[str] = []
                for _, stage, name in calls:
                    if len(picked) < 3 and stage == order[len(picked)]:
                        picked.append(name)
                guarded = sorted({name for pos, _, name in calls if self.conditional(pos, loop.body)})
                if len(picked) == 3 and guarded:
                    self.add("serial-load-compute-store", loop.kw, loop, f"loop {self.name(loop)} calls "
                             f"{', '.join(picked)} in sequence ({', '.join(guarded)} under a condition) in a function "
                             "without DATAFLOW")
