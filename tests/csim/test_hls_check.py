"""The static Vitis-scheduling checker of the HLS C++ (dtlgen.csim.hls_check).

Each rule on a seeded snippet that holds exactly its anti-pattern (found at its line and loop) and on
the corrected snippet (not found); today's engines hold the findings the HLS rewrite must remove; any
text, and any mangling of the real FE engine, gives a list and never an exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlgen.csim.hls_check import RULES, Finding, check_files, check_source
from dtlgen.generator.hls import hls_template_dir

HLS = hls_template_dir()
FE, RL, HEADER = HLS / "dtl_fe_engine.cpp", HLS / "dtl_rl_engine.cpp", HLS / "dtl_engines.h"


def line_of(text: str, needle: str, after: int = 0) -> int:
    """The 1-based line of the first occurrence of `needle` on or after line `after`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if i >= after and needle in line)


# --- one seeded anti-pattern per rule, and its correction -----------------------------------------------------------
# (rule, bad source, the text on the line it must be reported at, its loop label, the corrected source)

NARROW = """#include <ap_int.h>
void dma(ap_int<8> *mem, ap_uint<32> n) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem offset = slave
#pragma HLS INTERFACE mode = s_axilite port = n bundle = control
copy:
  for (int i = 0; i < 1024; i++) {
#pragma HLS PIPELINE II = 1
    mem[i + 1024] = mem[i];
  }
}
"""

NEST = """void bias_add(ap_int<32> acc[64][16], const ap_int<32> bias[64], int rows) {
rows_loop:
  for (int r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT max = 64
    const ap_int<32> b = bias[r];
  cols_loop:
    for (int c = 0; c < 16; c++) {
#pragma HLS PIPELINE II = 1
      acc[r][c] += b;
    }
  }
}
"""
NEST_FIXED = NEST.replace("    const ap_int<32> b = bias[r];\n", "").replace("+= b;", "+= bias[r];")

CONDITIONAL = """void gather(ap_uint<128> *mem, ap_uint<128> buf[256], int n) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
read_beats:
  for (int i = 0; i < 256; i++) {
#pragma HLS PIPELINE II = 1
    ap_uint<128> v = 0;
    if (i < n)
      v = mem[i];
    buf[i] = v;
  }
}
"""
CONDITIONAL_FIXED = CONDITIONAL.replace("""    ap_uint<128> v = 0;
    if (i < n)
      v = mem[i];
""", """    const ap_uint<128> v = mem[i];  // always read: one burst
""").replace("buf[i] = v;", "buf[i] = i < n ? v : ap_uint<128>(0);")

DIVISION = """const int LANES = 12;
void split(const ap_int<16> in[192], ap_int<16> bank[16][16]) {
lanes:
  for (int v = 0; v < 192; v++) {
#pragma HLS PIPELINE II = 1
    bank[v / LANES][v % LANES] = in[v];  /* v / 3 in a comment is no divider */
  }
}
"""
DIVISION_FIXED = DIVISION.replace("LANES = 12", "LANES = 16").replace("192", "256")

WIDE = """void copy(ap_uint<32> dst[4096], const ap_uint<32> src[4096]) {
copy_words:
  for (long long i = 0; i < 4096; i++) {
#pragma HLS PIPELINE II = 1
    dst[i] = src[i];
  }
}
"""
WIDE_FIXED = WIDE.replace("long long i", "int i")

PARTITION = """const int LANES = 8;
static ap_int<16> stash[512][LANES];

void scatter(const ap_int<16> in[4096]) {
#pragma HLS ARRAY_PARTITION variable = stash dim = 2 complete
fill:
  for (int v = 0; v < 4096; v++) {
#pragma HLS PIPELINE II = 1
    stash[v / LANES][v % LANES] = in[v];
  }
}
"""
PARTITION_FIXED = PARTITION.replace("""  for (int v = 0; v < 4096; v++) {
#pragma HLS PIPELINE II = 1
    stash[v / LANES][v % LANES] = in[v];
  }""", """  for (int w = 0; w < 512; w++) {
#pragma HLS PIPELINE II = 1
  lane:
    for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
      stash[w][l] = in[w * LANES + l];
    }
  }""")

TRIPCOUNT = """void relu(ap_int<8> buf[1024], int n) {
act:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
    if (buf[i] < 0) buf[i] = 0;
  }
}
"""
TRIPCOUNT_FIXED = TRIPCOUNT.replace("#pragma HLS PIPELINE II = 1", "#pragma HLS PIPELINE II = 1\n"
                                                                  "#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024")

STAGES = """void run_tiles(ap_uint<128> *mem, int tiles) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
  static ap_int<8> in_buf[2][4096], out_buf[4096];
tile:
  for (int t = 0; t <= tiles; t++) {
#pragma HLS LOOP_TRIPCOUNT max = 64
    if (t < tiles) load_tile(mem, t, in_buf[t % 2]);
    if (t > 0) compute_tile(in_buf[(t + 1) % 2], out_buf);
    if (t > 0) store_tile(mem, t - 1, out_buf);
  }
}
"""
STAGES_FIXED = STAGES.replace("bundle = gmem\n", "bundle = gmem\n#pragma HLS DATAFLOW\n")

CASES = [
    ("narrow-maxi-port", NARROW, "INTERFACE mode = m_axi", None, NARROW.replace("ap_int<8> *mem", "ap_uint<128> *mem")),
    ("pipeline-in-imperfect-nest", NEST, "for (int c", "cols_loop", NEST_FIXED),
    ("conditional-maxi-access", CONDITIONAL, "v = mem[i]", "read_beats", CONDITIONAL_FIXED),
    ("division-in-pipeline", DIVISION, "v / LANES", "lanes", DIVISION_FIXED),
    ("wide-index-arithmetic", WIDE, "long long i", "copy_words", WIDE_FIXED),
    ("runtime-partitioned-index", PARTITION, "stash[v / LANES]", "fill", PARTITION_FIXED),
    ("missing-tripcount", TRIPCOUNT, "for (int i", "act", TRIPCOUNT_FIXED),
    ("serial-load-compute-store", STAGES, "for (int t", "tile", STAGES_FIXED),
]


@pytest.mark.parametrize("rule,bad,at,label,fixed", CASES, ids=[case[0] for case in CASES])
def test_rule_seeded_and_corrected(rule, bad, at, label, fixed):
    found = check_source(bad, "seeded.cpp", bus_bytes=16)
    assert [(f.rule, f.file, f.line, f.loop) for f in found] == [(rule, "seeded.cpp", line_of(bad, at), label)]
    assert found[0].message.count(": ") >= 1 and found[0].message.endswith(".")
    assert fixed != bad and check_source(fixed, "fixed.cpp", bus_bytes=16) == []


def test_a_bank_select_that_holds_still_during_the_pipeline_is_not_an_ii_cost():
    """Indexing a partitioned dimension with an outer loop's variable selects the bank once per entry of
    the pipelined loop (a multiplexer in front of it): no finding. The pipelined loop's own variable, or
    a name assigned in its body, selects it per iteration: a finding."""
    outer = PARTITION.replace("""  for (int v = 0; v < 4096; v++) {
#pragma HLS PIPELINE II = 1
    stash[v / LANES][v % LANES] = in[v];
  }""", """  for (int l = 0; l < LANES; l++) {
  rows:
    for (int w = 0; w < 512; w++) {
#pragma HLS PIPELINE II = 1
      stash[w][l] = in[w * LANES + l];
    }
  }""")
    assert check_source(outer) == []  # (a perfect nest with constant bounds: Vitis flattens it)
    per_iteration = outer.replace("stash[w][l]", "stash[w][k]").replace(
        "#pragma HLS PIPELINE II = 1\n", "#pragma HLS PIPELINE II = 1\n      int k = w & (LANES - 1);\n")
    found = [(f.rule, f.loop) for f in check_source(per_iteration) if f.rule == "runtime-partitioned-index"]
    assert found == [("runtime-partitioned-index", "rows")]
    by_var = outer.replace("stash[w][l]", "stash[l][w & (LANES - 1)]")
    assert [(f.rule, f.loop) for f in check_source(by_var) if f.rule == "runtime-partitioned-index"] == [
        ("runtime-partitioned-index", "rows")]


def test_every_rule_has_a_seeded_case():
    assert sorted(case[0] for case in CASES) == sorted(RULES)


def test_narrow_port_older_pragma_typedefs_and_no_bus():
    older = NARROW.replace("mode = m_axi port = mem bundle = gmem offset = slave", "m_axi port=mem offset=slave")
    assert [f.rule for f in check_source(older, bus_bytes=16)] == ["narrow-maxi-port"]
    assert check_source(NARROW) == [] and check_source(NARROW, bus_bytes=1) == []  # no bus, or one it fills
    typedef = "typedef ap_int<16> *word_ptr_t;\n" + NARROW.replace("ap_int<8> *mem", "word_ptr_t mem")
    assert "16-bit" in check_source(typedef, bus_bytes=4)[0].message
    assert check_source(NARROW.replace("ap_int<8> *mem", "long long *mem"), bus_bytes=8) == []


def test_typedef_from_another_file(tmp_path):
    """The port's type comes from a header with a C-simulation class and a synthesis pointer, as
    dtl_engines.h: resolved only when the header is checked with the engine."""
    header = tmp_path / "mem.h"
    header.write_text("#ifdef CSIM\ntypedef Mem<ap_int<8> > mem_t;\n#else\ntypedef ap_int<8> *mem_t;\n#endif\n")
    engine = tmp_path / "engine.cpp"
    engine.write_text('#include "mem.h"\n' + NARROW.replace("ap_int<8> *mem", "mem_t mem"))
    assert check_source(engine.read_text(), bus_bytes=16) == []
    found = check_files([engine, header], bus_bytes=16)
    assert [(f.rule, f.file, f.line) for f in found] == [("narrow-maxi-port", str(engine), 4)]


def test_nest_rules_of_flattening():
    inner_variable = NEST_FIXED.replace("c < 16", "c < rows")
    assert [(f.rule, f.loop) for f in check_source(inner_variable) if f.rule != "missing-tripcount"] == [
        ("pipeline-in-imperfect-nest", "cols_loop")]
    unrolled_parent = NEST_FIXED.replace("#pragma HLS LOOP_TRIPCOUNT max = 64", "#pragma HLS UNROLL").replace(
        "r < rows", "r < 4")
    assert check_source(unrolled_parent) == []  # copies of a pipeline that runs once per call
    pipelined_parent = NEST.replace("#pragma HLS LOOP_TRIPCOUNT max = 64", "#pragma HLS PIPELINE II = 1\n"
                                    "#pragma HLS LOOP_TRIPCOUNT max = 64")
    assert check_source(pipelined_parent) == []  # the inner loop is unrolled, not pipelined


def test_conditional_access_through_a_helper():
    """A helper's parameter is a port when the top passes the port to it, or when it has the port's type."""
    source = """static void fetch(const ap_uint<128> src[64], ap_uint<128> buf[64], int n) {
fetch_beats:
  for (int i = 0; i < 64; i++) {
#pragma HLS PIPELINE II = 1
    buf[i] = i < n ? src[i] : ap_uint<128>(0);
  }
}
void top(ap_uint<128> *mem, int n) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
  static ap_uint<128> buf[64];
  fetch(mem, buf, n);
}
"""
    assert [(f.rule, f.line, f.loop) for f in check_source(source)] == [("conditional-maxi-access", 5, "fetch_beats")]
    uncalled = source.replace("fetch(mem, buf, n);", "")
    assert check_source(uncalled) == []  # `src` is an on-chip array then
    same_type = uncalled.replace("const ap_uint<128> src[64]", "const ap_uint<128> *src")
    assert [(f.rule, f.line) for f in check_source(same_type)] == [("conditional-maxi-access", 5)]


def test_conditional_call_of_a_helper_that_reads_the_port():
    """A helper that reads the port it is given, called under a condition in a pipelined loop, reads
    conditionally there (the helper's own body has no loop to flag)."""
    source = """static ap_uint<8> byte_of(const ap_uint<128> *src, unsigned i) {
  return ap_uint<8>(src[i / 16].range(8 * (i % 16) + 7, 8 * (i % 16)));
}
void top(ap_uint<128> *mem, ap_uint<8> buf[64], int n) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem
gather:
  for (int i = 0; i < 64; i++) {
#pragma HLS PIPELINE II = 1
    buf[i] = i < n ? byte_of(mem, 3 * i) : ap_uint<8>(0);
  }
}
"""
    found = [(f.rule, f.line, f.loop) for f in check_source(source)]
    assert found == [("conditional-maxi-access", 9, "gather")]
    assert check_source(source.replace("i < n ? byte_of(mem, 3 * i) : ap_uint<8>(0)", "byte_of(mem, 3 * i)")) == []


def test_division_constants_evaluated_and_skipped_text():
    ternary = DIVISION_FIXED.replace("const int LANES = 16;", "const int SLOT = (W_BITS <= 4) ? 4 : 8;\n"
                                     "const int LANES = 64 / SLOT;")
    assert check_source(ternary) == []  # 16 or 8: a power of two whatever W_BITS is
    assert check_source(ternary.replace("? 4 : 8", "? 4 : 6")) != []  # 16 or 10: not provably one
    assert check_source(DIVISION_FIXED.replace("const int LANES = 16;", "#define LANES 16")) == []
    macro = check_source(DIVISION_FIXED.replace("const int LANES = 16;", ""))
    assert [(f.rule, f.loop) for f in macro] == [("division-in-pipeline", "lanes")]  # an unknown macro is not proven
    assert "`/ LANES`, `% LANES`" in macro[0].message


def test_wide_accumulator_is_datapath_but_wide_index_is_not():
    acc = WIDE_FIXED.replace("    dst[i] = src[i];", "    const ap_int<48> wide = ap_int<48>(src[i]) * 3;\n"
                             "    dst[i] = wide >> 2;")
    assert check_source(acc) == []
    index = WIDE_FIXED.replace("    dst[i] = src[i];", "    const ap_uint<40> at = i * 3;\n    dst[i] = src[at];")
    assert [(f.rule, f.line) for f in check_source(index)] == [("wide-index-arithmetic", 5)]


def test_partitioned_index_in_a_helper_and_at_its_call():
    source = """const int LANES = 8;
static ap_int<16> stash[512][LANES];

template <int DEPTH>
static inline ap_int<16> &element(ap_int<16> s[DEPTH][LANES], int row, int col) {
#pragma HLS INLINE
  return s[row][col % LANES];
}

void dot(ap_int<32> &out, int r, int n) {
#pragma HLS ARRAY_PARTITION variable = stash dim = 2 complete
  ap_int<32> acc = 0;
sum:
  for (int c = 0; c < n; c++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT max = 64
    acc += element<512>(stash, r, c);
  }
  out = acc;
}
"""
    found = [(f.rule, f.line, f.loop) for f in check_source(source)]
    assert found == [("runtime-partitioned-index", 7, None), ("runtime-partitioned-index", 17, "sum")]
    assert check_source(source.replace("dim = 2", "dim = 1")) == []  # the helper's % is on a whole dimension then


def test_tripcount_constant_bounds_and_placement():
    source = """void f(ap_int<8> buf[64][8], int n) {
rows:
  for (int r = 0; r < n; r++) {
    for (int c = 0; c < 8; c++) {
#pragma HLS UNROLL
      buf[r][c] = 0;
    }
#pragma HLS LOOP_TRIPCOUNT max = 64
  }
}
"""
    assert [(f.rule, f.loop) for f in check_source(source)] == [("missing-tripcount", "rows")]
    for bound in ("#define ROWS 64\n", "const int ROWS = 64;\n", "enum { ROWS = 64 };\n"):
        assert check_source(bound + source.replace("r < n", "r < ROWS / 2")) == []
    shadowed = "const int n = 64;\n" + source  # the parameter `n` hides the constant
    assert [(f.rule, f.loop) for f in check_source(shadowed)] == [("missing-tripcount", "rows")]
    assert check_source(shadowed.replace(", int n)", ")")) == []


def test_stages_unconditional_or_out_of_order_calls_pass():
    unconditional = STAGES.replace("if (t < tiles) ", "").replace("if (t > 0) ", "")
    assert check_source(unconditional) == []
    reordered = STAGES.replace("load_tile", "tmp_tile").replace("store_tile", "load_tile")
    assert check_source(reordered) == []  # compute before the load: not a load / compute / store chain


# --- today's engines ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engines():
    found = check_files([FE, RL, HEADER], bus_bytes=16)
    return found, FE.read_text(), RL.read_text()


def at(found: list[Finding], rule: str, path: Path) -> list[Finding]:
    return [f for f in found if f.rule == rule and f.file == str(path)]


def test_engines_ports_are_as_wide_as_the_bus(engines, tmp_path):
    found, fe, rl = engines
    assert not [f for f in found if f.rule == "narrow-maxi-port"]  # no width known without dtl_params.h
    for bus, narrow in ((16, False), (32, True)):  # the ports carry DTL_*_BUS_BYTES; a wider bus than that is flagged
        params = tmp_path / "dtl_params.h"
        params.write_text("#define DTL_FE_BUS_BYTES 16\n#define DTL_RL_BUS_BYTES 16\n#define DTL_HAS_RL 1\n")
        flagged = [f for f in check_files([params, FE, RL, HEADER], bus_bytes=bus) if f.rule == "narrow-maxi-port"]
        assert [(Path(f.file).name, f.line) for f in flagged] == ([
            ("dtl_fe_engine.cpp", line_of(fe, "INTERFACE mode = m_axi port = mem")),
            ("dtl_fe_engine.cpp", line_of(fe, "INTERFACE mode = m_axi port = out")),
            ("dtl_rl_engine.cpp", line_of(rl, "INTERFACE mode = m_axi port = mem"))] if narrow else [])
        assert all("128-bit" in f.message and "32-byte bus" in f.message for f in flagged)


def test_engines_fe_holds_no_pattern(engines, tmp_path):
    # the FE engine written for the Vitis scheduler (issue 16): nothing to find, at its bus width
    found, fe, _ = engines
    assert not [f for f in found if f.file == str(FE)]
    params = tmp_path / "dtl_params.h"
    params.write_text("#define DTL_FE_BUS_BYTES 16\n#define DTL_FE_TM 8\n#define DTL_HAS_RL 0\n")
    assert check_files([params, HEADER, FE], bus_bytes=16) == []
    # its burst reads and writes are what the rule reads as m_axi accesses: one under a condition is found
    conditional = fe.replace("    const fe_word_t beat = mem.read();\n    bool request_done;",
                             "    const fe_word_t beat = in_flight > 0 ? mem.read() : fe_word_t(0);\n    bool request_done;")
    assert conditional != fe
    mutated = tmp_path / "dtl_fe_engine.cpp"
    mutated.write_text(conditional)
    found = check_files([params, HEADER, mutated], bus_bytes=16)
    assert [(f.rule, f.line, f.loop) for f in found] == [
        ("conditional-maxi-access", line_of(conditional, "in_flight > 0 ? mem.read()"), "load")]


RL_PARAMS = ("#define DTL_RL_BUS_BYTES 16\n#define DTL_RL_TM 8\n#define DTL_RL_TN 4\n#define DTL_RL_LANES 8\n"
             "#define DTL_HAS_RL 1\n")

# The stash reads of every GEMM loop: read_tile passes its word and column on to read_pair and take.
GEMM_READS = [("runtime-partitioned-index", "if (inside) read_tile<A_HALF>(stash_a, xr, cc, x);", "fwd"),
              ("runtime-partitioned-index", "if (inside) read_tile<G_HALF>(stash_g, yr, rr, dy);", "bwd"),
              ("runtime-partitioned-index", ("if (inside) read_tile<G_HALF>(stash_g, yr, rr, dy);", 1), "bwd"),
              ("runtime-partitioned-index", "read_tile<A_HALF>(stash_a, d.xa + win.row(), c0, x);", "pool"),
              ("runtime-partitioned-index", "read_tile<G_HALF>(stash_g, y_row, c0, dy);", "pool"),
              ("runtime-partitioned-index", "if (row) read_tile<G_HALF>(stash_g, dy_row, r0, dy);", "upd"),
              ("runtime-partitioned-index", "if (row && inside && int(cc) < d.n) read_tile<A_HALF>", "upd")]

# Each pattern the RL rewrite removed (issue 16), put back into today's engine, and what the checker says.
RL_MUTATIONS = {
    "a barrel shifter by the runtime offset": (
        "      if (on) v[i] = i + (1 << s) < 2 * LANES ? v[i + (1 << s)] : rl_val_t(0);",
        "      if (on) v[i] = i + off < 2 * LANES ? v[i + off] : rl_val_t(0);",
        [("runtime-partitioned-index", "i + off < 2 * LANES ? v[i + off]", None), *GEMM_READS]),
    "a stash lane chosen at run time": (
        "    const rl_val_t even_word = stash[0][(w + 1) >> 1][l], odd_word = stash[1][w >> 1][l];",
        "    const rl_val_t even_word = stash[0][(w + 1) >> 1][(l + w) % LANES], odd_word = stash[1][w >> 1][l];",
        [("runtime-partitioned-index", "[(l + w) % LANES]", None),
         ("runtime-partitioned-index", "read_pair<A_HALF>(stash_a, at.word, word);", "store"),
         *GEMM_READS]),
    "a divider in the GEMM's address": (
        "    // next: n-tile, then row, then m-tile\n    tile++;",
        "    // next: n-tile, then row, then m-tile\n    tile = tile_row + (it + 1) % d.nt;",
        [("division-in-pipeline", "tile = tile_row + (it + 1) % d.nt;", "fwd")]),
    "no trip count": (
        "upd:\n  for (unsigned it = 0; it < total; it++) {\n#pragma HLS LOOP_TRIPCOUNT max = MAX_GEMM\n",
        "upd:\n  for (unsigned it = 0; it < total; it++) {\n",
        [("missing-tripcount", ("upd:", 1), "upd")]),  # the line after the label
    "a conditional burst read": (
        "    const rl_word_t beat = mem.read();",
        "    const rl_word_t beat = b < d.beats ? mem.read() : rl_word_t(0);",
        [("conditional-maxi-access", "b < d.beats ? mem.read()", "load")]),
}


def test_engines_rl_holds_no_pattern(engines, tmp_path):
    # the RL engine written for the Vitis scheduler (issue 16): nothing to find, alone or beside the FE
    found, _, rl = engines
    assert not [f for f in found if f.file == str(RL)]
    params = tmp_path / "dtl_params.h"
    params.write_text(RL_PARAMS)
    assert check_files([params, HEADER, RL], bus_bytes=16) == []


@pytest.mark.parametrize("mutation", list(RL_MUTATIONS))
def test_engines_rl_mutations_are_found(tmp_path, mutation):
    old, new, expected = RL_MUTATIONS[mutation]
    rl = RL.read_text()
    assert rl.count(old) == 1
    mutated = tmp_path / "dtl_rl_engine.cpp"
    mutated.write_text(rl.replace(old, new))
    params = tmp_path / "dtl_params.h"
    params.write_text(RL_PARAMS)
    found = check_files([params, HEADER, mutated], bus_bytes=16)
    text = mutated.read_text()
    lines = [line_of(text, where) if isinstance(where, str) else line_of(text, where[0]) + where[1]
             for _, where, _ in expected]
    assert [(f.rule, f.line, f.loop) for f in found] == [(rule, line, loop)
                                                         for (rule, _, loop), line in zip(expected, lines)]


def test_engines_findings_are_well_formed(engines, tmp_path):
    found, _, _ = engines
    assert found == []
    params = tmp_path / "dtl_params.h"
    params.write_text(RL_PARAMS)
    mutated = tmp_path / "dtl_rl_engine.cpp"
    old, new, _ = RL_MUTATIONS["no trip count"]
    mutated.write_text(RL.read_text().replace(old, new))
    found = check_files([params, HEADER, mutated], bus_bytes=16)
    assert all(f.rule in RULES and f.file == str(mutated) for f in found)
    assert found[0].to_dict() == {"rule": found[0].rule, "file": found[0].file, "line": found[0].line,
                                  "loop": found[0].loop, "message": found[0].message}


# --- any input ----------------------------------------------------------------------------------------------------

TOKENS = ["{", "}", "(", ")", "[", "]", ";", ":", "<", ">", "=", "+", "-", "*", "/", "%", "?", "#", '"', "'", "\\",
          "\n", " ", "for", "while", "do", "if", "else", "switch", "case", "int ", "long ", "mem", "x", "0", "8",
          "LANES", "ap_int<", "template <int N>", "typedef ", "//", "/*", "*/", "#pragma HLS PIPELINE\n",
          "#pragma HLS UNROLL\n", "#pragma HLS INTERFACE m_axi port=mem\n", "#pragma HLS ARRAY_PARTITION variable=x "
          "complete dim=0\n", "#define X (1 ? 2 : \n", "const int N = 1 << 200;", "enum { A = B, B = A };"]
FE_LINES = FE.read_text().splitlines()


def mangled_fe(edits: list[tuple[int, int]]) -> str:
    lines = list(FE_LINES)
    for kind, at_line in edits:
        i = at_line % len(lines)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[i])
        else:
            lines[i] = lines[i].replace("{", "").replace("}", "") if kind == 2 else lines[i] + " { ("
    return "\n".join(lines)


EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000)), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(TOKENS), max_size=120).map("".join),
                 EDITS.map(mangled_fe)))
def test_any_text_gives_a_list(text):
    found = check_source(text, "fuzz.cpp", bus_bytes=16)
    assert isinstance(found, list) and all(isinstance(f, Finding) and f.rule in RULES for f in found)
    assert all(1 <= f.line <= text.count("\n") + 1 and f.file == "fuzz.cpp" for f in found)
