"""An estimate of the cycles Vitis HLS would schedule a project's HLS engines to take, beside the RTL
model's cycles for the same work: per FE descriptor, per RL training step and per descriptor of the
steady step.

No Vitis HLS runs here, so this is an estimate by a stated rule, never a csynth or cosim figure. It
joins two readings of the project's own C++:
- **trip counts, measured**: the engine sources are compiled a second time with a counter at the entry
  and at each iteration of every loop that Vitis schedules as a loop (not one it unrolls: a loop
  inside a pipeline or under UNROLL), and run on the project's data, so the number of times each
  loop is entered and iterated is exact for these descriptors;
- **a cost per loop, read statically** (dtlgen.csim.hls_check's parser and findings): a pipelined
  loop costs `depth` per entry and `II` per iteration, a sequential loop `LOOP_OVERHEAD` per entry
  and per iteration plus a memory round trip per m_axi read in its own body.

The cost of a pipelined loop:
- II is the PIPELINE pragma's, raised where hls_check finds a pattern that stops Vitis meeting it: an
  m_axi access under a condition gets single-beat requests, at most `OUTSTANDING` in flight (Vitis's
  default num_read_outstanding), so II >= ceil(latency / OUTSTANDING); a completely partitioned
  array indexed at run time is a multiplexer over all its banks, and its accesses of one iteration
  (each textual access times the unrolled loops around it) share two ports, so II >= ceil(accesses / 2);
- depth is `PIPELINE_DEPTH` cycles of address, block-RAM read, operation and write, plus the board's
  DRAM latency if the body touches an m_axi port (the first beat's round trip, once per entry: a
  burst, or pipelined single beats), plus `DIVIDER_LATENCY` for a division hls_check finds there;
- an entry of a loop that issues burst requests (read_request / write_request in its body) lasts at
  least requests x latency / `OUTSTANDING` cycles: no more requests are in flight at once, and each
  is a round trip (Little's law), so short bursts are bound by requests, not beats (counted as the
  loop's `waits`). Requests a helper issues for it are not counted.
The loops then add up, except a DATAFLOW loop of process calls, whose processes overlap through
ping-pong buffers (DtlEstFlow: the recurrence, with DRAM processes sharing the bus); any other
DATAFLOW form is refused. Not modelled: function-call and state-machine overhead outside loops, DRAM refresh and
row misses, and the II Vitis cannot meet for reasons hls_check does not read (memory ports of
unpartitioned arrays, recurrences through block RAM). The RTL figures are the analytical model's
(dtlgen.perf), equal to RTL simulation within the tolerances its tests hold.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import math
import re
from collections import ChainMap
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dtlgen.csim.engines import CsimDevice, CsimEngines
from dtlgen.csim.hls_check import _IDENT, _Checker, _Eval, _Func, _Loop, _Unit, _access, _innermost, _shared
from dtlgen.errors import DesignError
from dtlgen.isa.fe import DESCRIPTOR_BYTES
from dtlgen.isa.rl import DESCRIPTOR_BYTES as RL_DESCRIPTOR_BYTES

PIPELINE_DEPTH = 6  # a pipelined body: address, block-RAM read (2), operation, write back
DIVIDER_LATENCY = 36  # a pipelined 32-bit divider core
OUTSTANDING = 16  # Vitis HLS's default num_read_outstanding / num_write_outstanding
LOOP_OVERHEAD = 1  # a sequential loop's exit test and counter, per entry and per iteration
HANDSHAKE = 2  # a dataflow process's start and done handshake, per iteration
REQUEST_RULE = (f"burst requests issued in the loop: at most {OUTSTANDING} in flight, so an entry lasts at least "
                f"requests x latency / {OUTSTANDING} cycles")
MAX_STAGES = 8  # processes of one DATAFLOW loop the estimate follows
SOURCE = ("estimate: trip counts from the project's C++ run on its data (instrumented C-simulation), per-loop "
          "cost from a static reading (dtlgen.csim.hls_estimate); no Vitis HLS")
RTL_SOURCE = "analytical model (dtlgen.perf), equal to RTL simulation within its tests' tolerances"
ENGINES = {"dtl_fe_engine.cpp": "fe", "dtl_rl_engine.cpp": "rl"}
SHARED = ("dtl_params.h", "dtl_engines.h", "dtl_numerics.h")


class UnmodelledSchedule(DesignError):
    """The engine's C++ has a construct whose schedule the estimate does not model (DATAFLOW)."""


@dataclass(frozen=True)
class LoopCost:
    """One loop Vitis schedules as a loop, and what an entry and an iteration of it cost."""

    file: str
    function: str
    label: str | None
    line: int
    pipelined: bool
    ii: int  # cycles per iteration (a sequential loop: its overhead and blocking memory reads)
    depth: int  # cycles per entry
    reasons: tuple[str, ...]  # why II or depth exceed the plain figures

    def cycles(self, entries: int, iterations: int, waits: int = 0) -> int:
        """`waits`: the cycles its entries waited for burst requests (see `_instrument`)."""
        return entries * self.depth + iterations * self.ii + waits

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}


@dataclass(frozen=True)
class EngineLoops:
    """The loops of one engine source, in the counters' order, and the source with its counters."""

    engine: str  # "fe" or "rl"
    loops: tuple[LoopCost, ...]
    instrumented: str


def _csim_only(text: str) -> list[tuple[int, int]]:
    """Spans of `#ifdef DTL_CSIM_CHECKED` blocks (host-only code: never synthesised, never counted)."""
    spans, stack, pos = [], [], 0
    for line in text.splitlines(keepends=True):
        directive = re.match(r"\s*#\s*(ifdef|ifndef|if|else|elif|endif)\b\s*(\w*)", line)
        if directive:
            kind, name = directive.groups()
            if kind.startswith("if"):
                stack.append([kind == "ifdef" and name == "DTL_CSIM_CHECKED", pos])
            elif stack and kind in ("else", "elif"):
                if stack[-1][0]:
                    spans.append((stack[-1][1], pos))
                stack[-1] = [False, pos]
            elif stack and kind == "endif":
                checked, start = stack.pop()
                if checked:
                    spans.append((start, pos))
        pos += len(line)
    return spans


def _scheduled(loop: _Loop) -> bool:
    """A loop Vitis schedules as a loop: neither unrolled itself nor inside a pipeline or an unrolled loop."""
    return not any(l.full_unroll for l in loop.chain()) and not loop.in_pipeline


def engine_loops(name: str, sources: dict[str, str], latency: int) -> EngineLoops:
    """The scheduled loops of engine source `name` (one of `sources`, which also holds the shared
    headers for constants and types) with their costs at a DRAM latency of `latency` cycles."""
    units = {n: _Unit(t) for n, t in sources.items()}
    consts, typedefs = _shared(units.values())
    unit, text = units[name], sources[name]
    checker = _Checker(unit, name, None, ChainMap(unit.consts, consts), ChainMap(unit.typedefs, typedefs))
    findings = checker.run()
    host = _csim_only(text)
    picked: list[tuple[_Func, _Loop]] = [(f, loop) for f in unit.funcs for loop in f.loops
                                        if _scheduled(loop) and not any(a <= loop.kw < b for a, b in host)]
    loops = [l for _, l in picked]
    flows: dict[int, list[tuple[int, int, bool]]] = {}  # dataflow loop -> its processes (call, end, touches DRAM)
    for k, (f, loop) in enumerate(picked):
        if not loop.has("DATAFLOW"):
            continue
        calls = [(pos, g, args) for g, pos, args in checker.calls[id(f)] if loop.body[0] <= pos < loop.body[1]
                 and _innermost(f.loops, pos) is loop]
        body = unit.code[loop.body[0]:loop.body[1]]
        bare = all(re.search(r"(?:^|[;{}])\s*$", unit.code[loop.body[0]:pos]) for pos, _, _ in calls)
        if not calls or len(calls) > MAX_STAGES or any(l.parent is loop for l in f.loops) or not bare \
                or re.search(r"\b(?:continue|break|return|goto)\b", body):
            raise UnmodelledSchedule(f"{name}: the DATAFLOW loop at line {unit.line(loop.kw)} is not a sequence of 1 to "
                                     f"{MAX_STAGES} process calls, each a statement of its own, with no jump out of it (the form the estimate "
                                     "models)")
        flows[k] = [(pos, unit.code.index(";", pos) + 1,
                     any(g.params[j][1] in checker.touches.get(id(g), ()) for j in range(min(len(args), len(g.params)))))
                    for pos, g, args in calls]
    costs = [_cost(checker, unit, name, f, loop, loops, findings, latency, k in flows) for k, (f, loop) in enumerate(picked)]
    # burst requests issued inside a pipelined loop (its own body or the loops it unrolls): their port's
    # name, each request's loop
    requests: dict[int, list[tuple[int, int]]] = {}
    for k, (f, loop) in enumerate(picked):
        for port in checker.maxi.get(id(f), {}) if loop.pipelined else ():
            for m in re.finditer(rf"(?<![\w.>]){re.escape(port)}(?=\s*\.\s*(?:read|write)_request\s*\()", unit.code):
                if loop.body[0] <= m.start() < loop.body[1] and _innermost(loops, m.start()) is loop:
                    requests.setdefault(k, []).append((m.start(), m.end()))
    costs = [replace(c, reasons=c.reasons + (REQUEST_RULE,)) if k in requests else c for k, c in enumerate(costs)]
    return EngineLoops(ENGINES[name], tuple(costs),
                       _instrument(text, unit, loops, costs, flows, ENGINES[name], requests, latency))


def _cost(checker: _Checker, unit: _Unit, name: str, f: _Func, loop: _Loop, scheduled: list[_Loop],
          findings: list, latency: int, dataflow: bool = False) -> LoopCost:
    code = unit.code
    ports = [p for p in checker.maxi.get(id(f), {})]
    lo, hi = unit.line(loop.body[0]), unit.line(loop.body[1])
    inner = [l for l in scheduled if l is not loop and loop in l.chain()]
    mine = [x for x in findings if lo <= x.line <= hi
            and not any(unit.line(l.body[0]) <= x.line <= unit.line(l.body[1]) for l in inner)]
    if dataflow:  # its iterations are the processes' overlap (DtlEstFlow below), not a count of II
        return LoopCost(name, f.name, loop.label, unit.line(loop.kw), False, 0, LOOP_OVERHEAD,
                        ("DATAFLOW: per iteration, its processes overlapped through ping-pong buffers",))
    accesses = [(m.start(), m.group()) for port in ports for m in _access(port).finditer(code[:loop.body[1]])
                if m.start() >= loop.body[0] and not any(l.body[0] <= m.start() < l.body[1] for l in inner)]
    reads = [pos for pos, text in accesses
             if re.search(r"\.\s*read\b", text) or (text.rstrip().endswith("[") and not _written(unit, pos))]
    # a pipeline's helper that accesses a port it is given is inlined into it (hls_check follows ports into
    # helpers); a sequential loop's helper call is its own function, whose loops are counted themselves
    helpers = [pos for g, pos, args in checker.calls[id(f)]
               if loop.pipelined and loop.body[0] <= pos < loop.body[1]
               and not any(l.body[0] <= pos < l.body[1] for l in inner)
               and any(g.params[k][1] in checker.touches.get(id(g), ()) and arg.strip() in ports
                       for k, arg in enumerate(args[:len(g.params)]))]
    accesses += [(pos, "") for pos in helpers]
    reads += helpers
    if not loop.pipelined:
        return LoopCost(name, f.name, loop.label, unit.line(loop.kw), False, LOOP_OVERHEAD + latency * len(reads),
                        LOOP_OVERHEAD, (f"{len(reads)} blocking m_axi read(s) per iteration",) if reads else ())
    ii = max(int(p.opts["ii"]) for p in loop.has("PIPELINE") if p.opts.get("ii", "").isdigit()) \
        if any(p.opts.get("ii", "").isdigit() for p in loop.has("PIPELINE")) else 1
    depth, reasons = PIPELINE_DEPTH, []
    # the first beat's round trip: a read's data, or the write responses a loop waits for at its end (a
    # pointer's writes; a manual burst's writes are posted and their responses collected explicitly)
    waits = any(re.search(rf"(?<![\w.>]){re.escape(port)}\s*\.\s*write_response\s*\(", code[loop.body[0]:loop.body[1]])
                for port in ports)
    if reads or waits or any(text.rstrip().endswith("[") for _, text in accesses):
        depth += latency
    if any(x.rule == "conditional-maxi-access" for x in mine):
        single = math.ceil(latency / OUTSTANDING)
        if single > ii:
            ii = single
            reasons.append(f"single-beat m_axi requests (a conditional access): II {single}")
    if any(x.rule == "division-in-pipeline" for x in mine):
        depth += DIVIDER_LATENCY
        reasons.append(f"a divider: depth +{DIVIDER_LATENCY}")
    # the array a finding names: `a[...]` indexed here, or a helper's call indexing "dimension d of `a`"
    arrays = {m.group(1) or m.group(2) for x in mine if x.rule == "runtime-partitioned-index"
              and (m := re.match(r"`(\w+)\[|.*?dimension \d+ of `(\w+)`", x.message))}
    for array in sorted(arrays):
        count = sum(_unrolled_trips(checker, f, m.start(), loop)  # its accesses: the name, directly or as an argument
                    for m in re.finditer(rf"(?<![\w.>]){re.escape(array)}\b", code[:loop.body[1]])
                    if m.start() >= loop.body[0])
        if math.ceil(count / 2) > ii:
            ii = math.ceil(count / 2)
            reasons.append(f"`{array}` indexed at run time across its banks, {count} accesses an iteration: II {ii}")
    return LoopCost(name, f.name, loop.label, unit.line(loop.kw), True, ii, depth, tuple(reasons))


def _written(unit: _Unit, pos: int) -> bool:
    """Whether the subscript expression starting at `pos` (`name[...]`) is assigned to, not read."""
    i = unit.code.index("[", pos)
    while (j := unit.match.get(i)) is not None and unit.code[(k := unit.skip(j + 1))] == "[":
        i = k
    return j is not None and re.match(r"\s*=(?!=)", unit.code[j + 1:j + 8]) is not None


def _unrolled_trips(checker: _Checker, f: _Func, pos: int, pipeline: _Loop) -> int:
    """How many distinct copies of the access at `pos` one iteration of `pipeline` makes: the constant
    trip counts of the loops between them (unrolled inside the pipeline) whose variable the access's
    statement depends on, directly or through a name assigned in the pipeline's body (a copy that does
    not depend on a loop's variable reads the same element, which Vitis merges); 1 where unknown."""
    code = checker.u.code
    start = max(code.rfind(c, pipeline.body[0], pos) for c in ";{}") + 1
    stop = min([pipeline.body[1]] + [i for c in ";{}" if (i := code.find(c, pos, pipeline.body[1])) >= 0])
    names, body = set(_IDENT.findall(code[start:stop])), code[pipeline.body[0]:pipeline.body[1]]
    for _ in range(3):  # through local definitions: `const int col = tn * TN + j;`
        for m in re.finditer(r"\b([A-Za-z_]\w*)\s*=(?!=)([^;]*);", body):
            if m.group(1) in names:
                names |= set(_IDENT.findall(m.group(2)))
    copies, loop = 1, _innermost(f.loops, pos)
    evaluate = _Eval(ChainMap(f.consts, checker.consts))
    while loop is not None and loop is not pipeline:
        bound = evaluate.values(loop.bound) if loop.bound else None
        first = evaluate.values(loop.init) if loop.init else frozenset({0})
        if bound and first and loop.var in names:
            copies *= max(1, max(bound) - min(first))
        loop = loop.parent
    return copies


_LEDGER = """// dtlgen HLS estimate (dtlgen.csim.hls_estimate): loop counters and the estimated cycles
static unsigned long long dtl_est_counts[%(slots)d];
static unsigned long long dtl_est_cycles;
// A DATAFLOW loop's processes, linked by ping-pong buffers: an iteration of process s starts when its
// previous iteration has ended, when process s - 1 has produced this iteration's input, and when
// process s + 1 has released the buffer of two iterations back. Processes that touch DRAM share its
// bus, so the loop lasts at least their cycles added up.
struct DtlEstFlow {
  int stages;
  unsigned memory;
  unsigned long long end1[%(stages)d], end2[%(stages)d], now[%(stages)d], last, bus;
  DtlEstFlow(int s, unsigned m) : stages(s), memory(m), last(0), bus(0) {
    for (int i = 0; i < %(stages)d; i++) end1[i] = end2[i] = now[i] = 0;
  }
  void stage(int s, unsigned long long cycles) {
    now[s] = cycles + %(handshake)d;
    if ((memory >> s) & 1) bus += cycles;
  }
  void next() {
    unsigned long long end[%(stages)d];
    for (int s = 0; s < stages; s++) {
      unsigned long long start = end1[s];
      if (s > 0 && end[s - 1] > start) start = end[s - 1];
      if (s + 1 < stages && end2[s + 1] > start) start = end2[s + 1];
      end[s] = start + now[s];
      if (end[s] > last) last = end[s];
    }
    for (int s = 0; s < stages; s++) {
      end2[s] = end1[s];
      end1[s] = end[s];
      now[s] = 0;
    }
  }
  unsigned long long span() const { return last > bus ? last : bus; }
};
#line 1
"""


def _instrument(text: str, unit: _Unit, loops: list[_Loop], costs: list[LoopCost],
                flows: dict[int, list[tuple[int, int, bool]]], engine: str,
                requests: dict[int, list[tuple[int, int]]] | None = None, latency: int = 0) -> str:
    """`text` with, for every loop in `loops` (in order), a counter of its entries and iterations and
    its cost added to `dtl_est_cycles` as it runs (depth per entry, II per iteration); a DATAFLOW loop
    (`flows`: its process calls) instead measures each process's cycles per iteration and adds the
    overlapped span (DtlEstFlow). A loop that issues burst requests (`requests`: the port names'
    spans in its body) counts them per entry, and an entry lasts at least requests x `latency` /
    OUTSTANDING cycles (Little's law: OUTSTANDING requests in flight, each a round trip); the cycles
    added so are its waits. A C entry point `dtl_est_<engine>_read(out, capacity)` copies the cycles,
    then (entries, iterations) per loop, then the waits per loop, into `out` and clears them. Each
    loop is wrapped in a block, so a loop that is the body of an unbraced `if` or `for` stays one
    statement; a body without braces gets them; a request's port becomes `(++count, port)`, one
    expression still."""
    requests = requests or {}
    n = max(1, len(loops))
    edits: list[tuple[int, int, str]] = []  # (offset, order at that offset, text)
    for k, (loop, cost) in enumerate(zip(loops, costs)):
        flow = flows.get(k)
        enter = f"{{ ++dtl_est_counts[{2 * k}]; dtl_est_cycles += {cost.depth}ULL; "
        iterate = f" ++dtl_est_counts[{2 * k + 1}];" + (f" dtl_est_cycles += {cost.ii}ULL;" if cost.ii else "")
        leave = " }"
        if k in requests:
            enter = (f"{{ unsigned long long dtl_req_{k} = 0; const unsigned long long dtl_t_{k} = dtl_est_cycles; "
                     + enter[1:])
            leave = (f" {{ const unsigned long long dtl_min = (dtl_req_{k} * {latency}ULL + {OUTSTANDING - 1}) / "
                     f"{OUTSTANDING}; if (dtl_est_cycles - dtl_t_{k} < dtl_min) {{ dtl_est_counts[{2 * n + k}] += "
                     f"dtl_min - (dtl_est_cycles - dtl_t_{k}); dtl_est_cycles = dtl_t_{k} + dtl_min; }} }}" + leave)
            for start, stop in requests[k]:
                edits.append((start, 5, f"(++dtl_req_{k}, "))
                edits.append((stop, -5, ")"))
        if flow is not None:
            memory = sum(1 << s for s, (_, _, dram) in enumerate(flow) if dram)
            enter += f"DtlEstFlow dtl_flow_{k}({len(flow)}, {memory}u); const unsigned long long dtl_base_{k} = dtl_est_cycles; "
            leave = f" dtl_est_cycles = dtl_base_{k} + dtl_flow_{k}.span(); }}"
            edits.append((loop.body[1], 0, f" dtl_flow_{k}.next(); "))
            for s, (call, stop, _) in enumerate(flow):
                edits.append((call, 3, "{ const unsigned long long dtl_t0 = dtl_est_cycles; "))
                edits.append((stop, -1, f" dtl_flow_{k}.stage({s}, dtl_est_cycles - dtl_t0); dtl_est_cycles = dtl_t0; }}"))
        edits.append((loop.start, 2, enter))
        edits.append((loop.end, -2, leave))
        if unit.code[loop.body[0] - 1:loop.body[0]] == "{":
            edits.append((loop.body[0], 1, iterate))
        else:
            edits.append((loop.body[0], 1, "{" + iterate + " "))
            edits.append((loop.body[1], 1, " }"))
    out = text
    for offset, _, insert in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out = out[:offset] + insert + out[offset:]
    slots = 3 * n
    head = _LEDGER % {"slots": slots, "stages": MAX_STAGES, "handshake": HANDSHAKE}
    tail = (f"\nextern \"C\" unsigned dtl_est_{engine}_read(unsigned long long *out, unsigned capacity) {{\n"
            f"  if (capacity > 0) out[0] = dtl_est_cycles;\n  dtl_est_cycles = 0;\n"
            f"  for (unsigned i = 0; i < {slots}; i++) {{\n"
            f"    if (i + 1 < capacity) out[i + 1] = dtl_est_counts[i];\n    dtl_est_counts[i] = 0;\n  }}\n"
            f"  return {len(loops)};\n}}\n")
    return head + out + tail


class _Rewrite:
    """engines.build's `instrument`: the counters of `_instrument` (the plans already made for these
    sources; a source that changed since is planned again), keyed to this module's code and the latency."""

    def __init__(self, sources: dict[str, str], plans: dict[str, EngineLoops], latency: int):
        self.sources, self.plans, self.latency = sources, plans, latency
        self.tag = f"hls-estimate:{latency}:" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

    def rewrite(self, name: str, text: str) -> str:
        if text == self.sources.get(name):
            return self.plans[ENGINES[name]].instrumented
        return engine_loops(name, {**self.sources, name: text}, self.latency).instrumented


class EstimateEngines(CsimEngines):
    """A project's HLS engines compiled with loop counters: `run_fe` / `run_rl` as in CsimEngines, and
    `take(engine)` the estimated cycles since the last take."""

    def __init__(self, project: Path, latency: int, cache: Path | None = None):
        hls = Path(project).resolve() / "hls"
        sources = {n: (hls / n).read_text(encoding="utf-8") for n in (*SHARED, *ENGINES) if (hls / n).exists()}
        self.plans = {ENGINES[n]: engine_loops(n, sources, latency) for n in ENGINES if n in sources}
        super().__init__(project, cache, _Rewrite(sources, self.plans, latency))
        self._readers = {}
        for engine, plan in self.plans.items():
            reader = getattr(self._lib, f"dtl_est_{engine}_read")
            reader.argtypes, reader.restype = [ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_uint], ctypes.c_uint
            self._readers[engine] = reader

    def take(self, engine: str) -> tuple[int, np.ndarray]:
        """(estimated cycles, per-loop (entries, iterations, waits)) since the last take for `engine`."""
        loops, n = self.plans[engine].loops, max(1, len(self.plans[engine].loops))
        counts = (ctypes.c_ulonglong * (1 + 3 * n))()
        self._readers[engine](counts, len(counts))
        pairs = np.array(counts[1:1 + 2 * len(loops)], dtype=np.int64).reshape(-1, 2)
        waits = np.array(counts[1 + 2 * n:1 + 2 * n + len(loops)], dtype=np.int64).reshape(-1, 1)
        return int(counts[0]), np.hstack([pairs, waits])


class _EstimateDevice(CsimDevice):
    """The host loop's Device on the instrumented RL engine: `run` returns the estimated cycles, and
    `calls` collects each call's per descriptor (the engine runs a list one descriptor after another,
    so running them one call each is the same computation; it costs the descriptor loop's entry, one
    cycle, per descriptor rather than per call)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[list[int]] = []

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        cycles = []
        for i in range(count):
            await super().run(desc_addr + i * RL_DESCRIPTOR_BYTES, 1, perf_base)
            cycles.append(self.engines.take("rl")[0])
        self.calls.append(cycles)
        return sum(cycles)


def hls_estimate(data, rl, steps: int = 2) -> dict[str, Any]:
    """The estimate for a loaded project (`data`: generator.loader.ProjectData, `rl`: its RLProject or
    None): FE cycles per descriptor and in all, RL cycles per training step, each beside the RTL model's."""
    from dtlgen.perf.fe import op_cycles

    latency, bus = data.params.dram.latency, data.params.fe.bus_bytes
    engines = EstimateEngines(data.root, latency)
    memory = np.array(data.memory, dtype=np.uint8).reshape(-1)
    program, fe_program = data.program, data.fe_program()
    engines.take("fe")
    ops = []
    for i, (entry, image) in enumerate(zip(program["ops"], fe_program.ops)):
        engines.run_fe(memory, program["desc_addr"] + i * DESCRIPTOR_BYTES, 1, origin="the project's sim/program.json")
        hls, counts = engines.take("fe")
        rtl = op_cycles(image.op, data.design.fe, bus, latency).cycles
        ops.append({"name": entry["name"], "hls_cycles": hls, "rtl_cycles": int(rtl), "ratio": hls / rtl if rtl else None,
                    "worst_loops": _worst(engines.plans["fe"].loops, counts)})
    fe_total, rtl_total = sum(o["hls_cycles"] for o in ops), sum(o["rtl_cycles"] for o in ops)
    report: dict[str, Any] = {
        "source": SOURCE, "rtl_source": RTL_SOURCE, "latency_cycles": latency, "bus_bytes": bus,
        "fe_cycles": fe_total, "rtl_fe_cycles": rtl_total, "fe_ratio": fe_total / rtl_total if rtl_total else None,
        "fe_ops": ops, "loops": {e: [c.to_dict() for c in p.loops] for e, p in engines.plans.items()},
        "build_s": engines.build_s}
    if rl is not None and "rl" in engines.plans and steps > 0:
        report.update(_rl_estimate(engines, rl, latency, steps))
    return report


def _worst(loops: tuple[LoopCost, ...], counts: np.ndarray, top: int = 3) -> list[dict[str, Any]]:
    """The loops that cost most in one run, with their share."""
    cycles = [cost.cycles(int(e), int(i), int(w)) for cost, (e, i, w) in zip(loops, counts)]
    total = sum(cycles) or 1
    order = sorted(range(len(loops)), key=lambda k: -cycles[k])[:top]
    return [{"loop": loops[k].label or f"{loops[k].function}:{loops[k].line}", "line": loops[k].line,
             "cycles": cycles[k], "share": cycles[k] / total} for k in order if cycles[k]]


def _rl_estimate(engines: EstimateEngines, rl, latency: int, steps: int) -> dict[str, Any]:
    from dtlgen.host.rl_host import RLHost, sample_plan
    from dtlgen.sim.rl_sim import predict_plan

    layout = rl.layout
    plan = sample_plan(rl.features, rl.labels, layout.batch, steps, rl.qnet.precision.lr_shift, masks=rl.masks)
    engines.take("rl")
    device = _EstimateDevice(engines, layout.memory_bytes)
    steps_run: list[list[int]] = []  # each step's descriptors: its forward and backward calls

    async def after_step(k, result) -> None:
        steps_run.append([c for call in device.calls[-2:] for c in call])

    run = asyncio.run(RLHost(device, layout).train(plan, rl.state, after_step))
    hls_steps = [int(s) for s in run.cycles.sum(axis=1)]
    model = predict_plan(layout, latency, plan.batch_sizes)
    rtl_steps = [sum(d.cycles for d in step) for step in model]
    shown = len(hls_steps) - 1  # the last step: past the first step's extra loads, as a re-training run repeats it
    report = {"rl_step_cycles": hls_steps[shown], "rtl_rl_step_cycles": int(rtl_steps[shown]),
              "rl_ratio": hls_steps[shown] / rtl_steps[shown] if rtl_steps[shown] else None,
              "rl_steps": [{"hls_cycles": h, "rtl_cycles": int(r)} for h, r in zip(hls_steps, rtl_steps)]}
    if len(steps_run[shown]) != len(model[shown]) or sum(steps_run[shown]) != hls_steps[shown]:
        raise AssertionError(f"the host ran {len(steps_run[shown])} descriptors in step {shown}, the model counts "
                             f"{len(model[shown])}")  # the model and the host loop disagree: a bug
    report["rl_descriptors"] = [{"layer": d.layer, "mode": d.mode, "hls_cycles": h, "rtl_cycles": int(d.cycles),
                                 "ratio": h / d.cycles if d.cycles else None}
                                for d, h in zip(model[shown], steps_run[shown])]
    return report
