"""The HLS cycle estimate (dtlgen.csim.hls_estimate): loop counters that count exactly and leave the
program's behaviour alone, per-loop costs on small sources whose schedule is obvious, and the report
`dtlgen csim` writes."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from dtlgen.csim.engines import compiler
from dtlgen.csim.hls_estimate import (DIVIDER_LATENCY, HANDSHAKE, LOOP_OVERHEAD, OUTSTANDING, PIPELINE_DEPTH,
                                      UnmodelledSchedule, engine_loops)

LATENCY = 40
ENGINE = "dtl_fe_engine.cpp"  # the estimator reads engine sources by their project names

MAIN = r"""
#include <cstdio>
int main() {
  static int mem[4096], out[4096];
  for (int i = 0; i < 4096; i++) mem[i] = (i * 37) % 11 - 5;
  long long check = run(mem, out);
  unsigned long long counts[64];
  unsigned n = dtl_est_fe_read(counts, 64);  // the estimated cycles, then (entries, iterations) per loop
  printf("%lld %u", check, n);
  for (unsigned i = 0; i < 1 + 2 * n; i++) printf(" %llu", counts[i]);
  printf("\n");
  return 0;
}
"""


def _compile_run(source: str, tmp_path: Path, name: str) -> list[int]:
    path = tmp_path / f"{name}.cpp"
    path.write_text(source)
    exe = tmp_path / name
    subprocess.run([compiler(), "-std=c++14", "-O1", "-Wno-unknown-pragmas", "-Wno-unused-label", str(path), "-o",
                    str(exe)], check=True, capture_output=True, text=True)
    return [int(v) for v in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]


def _estimate(text: str) -> tuple:
    return engine_loops(ENGINE, {ENGINE: text}, LATENCY)


TWO_LOOPS = """
void dtl_fe_engine(int *mem, int n, int *out) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
outer:
  for (int r = 0; r < 3; r++) {
#pragma HLS LOOP_TRIPCOUNT max = 3
  inner:
    for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT max = 64
#pragma HLS PIPELINE II = 1
      out[i] += mem[i];
    }
  }
}
"""


def test_a_pipelined_loop_in_a_sequential_one_costs_depth_per_entry_and_ii_per_iteration(tmp_path):
    plan = _estimate(TWO_LOOPS)
    outer, inner = plan.loops
    assert (outer.label, outer.pipelined, outer.ii, outer.depth) == ("outer", False, LOOP_OVERHEAD, LOOP_OVERHEAD)
    # the m_axi read's round trip once per entry of the pipeline: a burst (or pipelined single beats)
    assert (inner.label, inner.pipelined, inner.ii, inner.depth) == ("inner", True, 1, PIPELINE_DEPTH + LATENCY)
    n = 50
    run = plan.instrumented + f"\nlong long run(int *mem, int *out) {{ dtl_fe_engine(mem, {n}, out); " \
        "long long s = 0; for (int i = 0; i < 64; i++) s += out[i]; return s; }\n" + MAIN
    check, loops, cycles, *counts = _compile_run(run, tmp_path, "two")
    assert loops == 2 and counts == [1, 3, 3, 3 * n]  # (entries, iterations) of outer, then inner
    assert check == sum(3 * ((i * 37) % 11 - 5) for i in range(n))
    assert cycles == sum(cost.cycles(e, i) for cost, e, i in zip(plan.loops, counts[::2], counts[1::2]))
    assert cycles == LOOP_OVERHEAD * (1 + 3) + 3 * (PIPELINE_DEPTH + LATENCY) + 3 * n


def test_counters_leave_unbraced_bodies_and_loops_under_unbraced_ifs_as_they_were(tmp_path):
    # a loop as the body of an `if` without braces, and loop bodies without braces: wrapping each in a
    # block must keep every statement where it was; the sum is the program's own check
    source = """
long long run(int *mem, int *out) {
  long long s = 0;
  for (int r = 0; r < 4; r++)
    if (r % 2)
      for (int i = 0; i < 5; i++) s += mem[i + r];
    else
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) s += i * j + mem[j];
  int k = 0;
  while (k < 7) k++;
  return s + k + out[0];
}
void dtl_fe_engine() {}
"""
    plan = _estimate(source)
    plain = _compile_run(source.replace("void dtl_fe_engine() {}", "") + MAIN.replace(
        "unsigned n = dtl_est_fe_read(counts, 64);", "unsigned n = 0; (void)counts;"), tmp_path, "plain")
    counted = _compile_run(plan.instrumented + MAIN, tmp_path, "counted")
    assert counted[0] == plain[0]
    # r: 1 entry, 4 iterations; the odd branch's loop 2 entries x 5; the even one's 2 x 3 and its inner 6 x 2; the while 1 x 7
    assert counted[1] == 5 and counted[3:] == [1, 4, 2, 10, 2, 6, 6, 12, 1, 7]
    assert counted[2] == LOOP_OVERHEAD * sum(counted[3:])  # sequential loops: one cycle an entry and an iteration


def test_a_conditional_memory_read_is_single_beats_and_an_unconditional_one_a_burst():
    conditional = _estimate(TWO_LOOPS.replace("out[i] += mem[i];", "if (i % 2) out[i] += mem[i];")).loops[1]
    assert conditional.ii == math.ceil(LATENCY / OUTSTANDING) and "single-beat" in conditional.reasons[0]
    assert _estimate(TWO_LOOPS).loops[1].ii == 1


BURST_ROWS = """
struct Port {  // a manual-burst port's methods, as the engines call them
  int *p;
  unsigned at;
  void read_request(unsigned offset, unsigned len) { at = offset; }
  int read() { return p[at++]; }
};
void dtl_fe_engine(Port mem, int n, int *out) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
rows:
  for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT max = 64
#pragma HLS PIPELINE II = 1
    if (i % EVERY == 0) mem.read_request(3 * i, EVERY);
    out[i] = mem.read();
  }
}
long long run(int *mem, int *out) {
  Port port = {mem, 0};
  dtl_fe_engine(port, ROWS, out);
  long long s = 0;
  for (int i = 0; i < ROWS; i++) s += out[i];
  return s;
}
"""


@pytest.mark.parametrize("every", [1, 4])
def test_short_burst_requests_are_bound_by_the_requests_in_flight(tmp_path, every):
    # a pipelined loop reading one beat an iteration: with a 1-beat request each, the requests (16 in
    # flight, a round trip each) bound it, not its beats; with 4-beat requests, its beats do
    rows = 64
    source = BURST_ROWS.replace("EVERY", str(every)).replace("ROWS", str(rows))
    plan = _estimate(source)
    loop, total = plan.loops  # the engine's loop, and the test's sum
    assert loop.pipelined and loop.ii == 1 and "in flight" in loop.reasons[-1] and not total.pipelined
    main = MAIN.replace("1 + 2 * n", "1 + 3 * n")  # the cycles, (entries, iterations) per loop, then the waits
    check, loops, cycles, entries, iterations, *rest = _compile_run(plan.instrumented + main, tmp_path, f"rows{every}")
    assert check == sum(((i // every * 3 * every + i % every) * 37) % 11 - 5 for i in range(rows))
    assert (loops, entries, iterations, rest[:2], rest[3]) == (2, 1, rows, [1, rows], 0)
    waits, requests = rest[2], rows // every
    plain = loop.depth + rows  # depth once, a beat an iteration
    assert waits == max(0, math.ceil(requests * LATENCY / OUTSTANDING) - plain)
    assert cycles - total.cycles(1, rows) == loop.cycles(entries, iterations, waits) \
        == max(plain, math.ceil(requests * LATENCY / OUTSTANDING))
    assert (waits > 0) == (every == 1)


def test_a_divider_in_a_pipeline_deepens_it():
    divided = _estimate(TWO_LOOPS.replace("out[i] += mem[i];", "out[i] += mem[i] / n;")).loops[1]
    assert divided.depth == PIPELINE_DEPTH + LATENCY + DIVIDER_LATENCY


@pytest.mark.parametrize("lanes", [4, 7, 16])
def test_banks_selected_at_run_time_share_two_ports(lanes):
    # `col % LANES` picks the bank of each of the `lanes` unrolled reads: II ceil(lanes / 2)
    source = f"""
#define LANES {lanes}
static int stash[64][LANES];
void dtl_fe_engine(int *mem, int n, int base) {{
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
#pragma HLS ARRAY_PARTITION variable = stash dim = 2 complete
  int acc[LANES];
rows:
  for (int g = 0; g < n; g++) {{
#pragma HLS LOOP_TRIPCOUNT max = 64
#pragma HLS PIPELINE II = 1
    for (int j = 0; j < LANES; j++) {{
      const int col = base + j;
      acc[j] += stash[g][col % LANES];
    }}
  }}
  mem[0] = acc[0];
}}
"""
    rows = _estimate(source).loops[0]
    assert rows.ii == math.ceil(lanes / 2) and any("`stash`" in reason for reason in rows.reasons)
    assert (DIVIDER_LATENCY in (rows.depth - PIPELINE_DEPTH,)) == (lanes & (lanes - 1) != 0)  # `% 7` divides


def test_host_only_code_and_unrolled_loops_are_not_counted():
    source = TWO_LOOPS.replace("outer:", """#ifdef DTL_CSIM_CHECKED
  for (int c = 0; c < n; c++) out[c] = 0;
#endif
  for (int u = 0; u < 4; u++) {
#pragma HLS UNROLL
    out[u] = 0;
  }
outer:""")
    assert [loop.label for loop in _estimate(source).loops] == ["outer", "inner"]


DATAFLOW = """
static void produce(int *mem, int k, int buf[64]) {
fill:
  for (int i = 0; i < 10 + 20 * (k % 2); i++) {
#pragma HLS PIPELINE II = 1
    buf[i] = mem[i + k];
  }
}
static void work(int k, const int buf[64], int res[64]) {
mac:
  for (int i = 0; i < 40; i++) {
#pragma HLS PIPELINE II = 1
    res[i] = buf[i % 8] * 3 + k;
  }
}
static void drain(int *out, int k, const int res[64]) {
put:
  for (int i = 0; i < 5; i++) {
#pragma HLS PIPELINE II = 1
    out[k * 5 + i] = res[i];
  }
}
void dtl_fe_engine(int *mem, int *out, int steps) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
#pragma HLS INTERFACE mode = m_axi port = out bundle = gmem
steps_loop:
  for (int k = 0; k < steps; k++) {
#pragma HLS LOOP_TRIPCOUNT max = 8
#pragma HLS DATAFLOW
    int buf[64], res[64];
    produce(mem, k, buf);
    work(k, buf, res);
    drain(out, k, res);
  }
}
"""


def _flow_span(durations: list[list[int]], memory: list[bool]) -> int:
    """The ping-pong recurrence the estimate states, written out independently: process s of
    iteration k starts after its own iteration k - 1, after process s - 1's iteration k, and after
    process s + 1's iteration k - 2 (the buffer it writes); DRAM processes' cycles add up on the bus."""
    end: dict[tuple[int, int], int] = {}
    for k, row in enumerate(durations):
        for s, cycles in enumerate(row):
            start = max(end.get((s, k - 1), 0), end.get((s - 1, k), 0), end.get((s + 1, k - 2), 0))
            end[(s, k)] = start + cycles + HANDSHAKE
    return max(max(end.values()), sum(c for row in durations for c, dram in zip(row, memory) if dram))


def test_a_dataflow_loop_overlaps_its_processes_through_ping_pong_buffers(tmp_path):
    plan = _estimate(DATAFLOW)
    fill, mac, put, steps = plan.loops
    assert steps.label == "steps_loop" and "DATAFLOW" in steps.reasons[0]
    assert (fill.depth, mac.depth, put.depth) == (PIPELINE_DEPTH + LATENCY, PIPELINE_DEPTH, PIPELINE_DEPTH + LATENCY)
    n = 6
    run = plan.instrumented + f"\nlong long run(int *mem, int *out) {{ dtl_fe_engine(mem, out, {n}); " \
        "long long s = 0; for (int i = 0; i < 5 * " + str(n) + "; i++) s += out[i]; return s; }\n" + MAIN
    check, loops, cycles, *counts = _compile_run(run, tmp_path, "flow")
    assert loops == 4 and counts[-2:] == [1, n]
    assert check == sum(3 * ((j % 8 + k) * 37 % 11 - 5) + k for k in range(n) for j in range(5))
    durations = [[fill.depth + 10 + 20 * (k % 2), mac.depth + 40, put.depth + 5] for k in range(n)]
    assert cycles == LOOP_OVERHEAD + _flow_span(durations, [True, False, True])
    # the span lies between the slowest process's cycles and everything one after another
    assert sum(max(row) for row in durations) <= cycles - LOOP_OVERHEAD <= sum(map(sum, durations)) + 3 * n * HANDSHAKE


def test_a_dataflow_loop_that_is_not_a_sequence_of_calls_is_refused():
    # a DATAFLOW loop whose body holds a loop, not process calls: no estimate rather than a wrong one
    with pytest.raises(UnmodelledSchedule, match="DATAFLOW loop at line 5"):
        _estimate(TWO_LOOPS.replace("#pragma HLS LOOP_TRIPCOUNT max = 3\n", "#pragma HLS LOOP_TRIPCOUNT max = 3\n#pragma HLS DATAFLOW\n"))


@pytest.mark.parametrize("change", [("    drain(out, k, res);", "    drain(out, k, res);\n    if (k == 3) break;"),
                                    ("    work(k, buf, res);", "    (void)work(k, buf, res);")])
def test_a_dataflow_body_with_jumps_or_calls_inside_expressions_is_refused(change):
    # the overlap is measured per process call and per iteration: a jump or a call inside an expression
    # would skip or break that measurement, so no estimate rather than a wrong one (or one that fails to compile)
    with pytest.raises(UnmodelledSchedule, match="no jump out of it"):
        _estimate(DATAFLOW.replace(*change))
