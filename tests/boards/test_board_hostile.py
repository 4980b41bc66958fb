"""Board files from strangers: whatever a board file or board dict holds, loading it either gives a
Board whose strings are safe to paste into tcl / .lpf / SystemVerilog / Makefiles and whose numbers
are finite and plausible, or one one-line BoardError that names the file, the field and the value.
Also the board's content hash (`Board.digest`), which design.json relies on."""

import copy
import hashlib
import json
import math
import os
import re
import time
from dataclasses import fields, replace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.boards import Board, list_boards, load_board
from dtlgen.errors import BoardError

# Every string a loaded board may hold: no whitespace but a plain space, no quoting or tcl
# substitution characters, so no newline can survive into a generated file.
SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:\- ]*")

XILINX, LATTICE = "pynq-z2", "ulx3s-85f"


def board_dict(name):
    return copy.deepcopy(load_board(name).to_dict())


def assert_safe(board):
    for field in fields(Board):
        value = getattr(board, field.name)
        if isinstance(value, str):
            assert SAFE_TEXT.fullmatch(value), (field.name, value)
        elif isinstance(value, float):
            assert math.isfinite(value), (field.name, value)
    assert all(isinstance(count, int) and 0 <= count <= 10**8 for count in vars(board.resources).values())


def write_board(tmp_path, data, name="board.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def refused(path_or_name):
    """The BoardError that loading gives; it must be a single line."""
    with pytest.raises(BoardError) as caught:
        load_board(path_or_name)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def set_field(data, path, value):
    section, _, key = path.rpartition(".")
    (data[section] if section else data)[key] = value


# ---- strings: every field that reaches a generated file has a strict pattern ------------------

INJECTIONS = [
    "xc7z020clg400-1\nset_part evil",  # a second tcl line
    "xc7z020clg400-1\n",  # a trailing newline alone
    "a b", "a\tb", 'a"b', "a'b", "a[exec rm]", "{a}", "$env", "a;b", "a\\b", "a#b", "", "-force",
    "é1",
]
XILINX_TEXT_FIELDS = ["name", "part", "package", "speed_grade", "board_part"]
LATTICE_TEXT_FIELDS = ["clock_pin", "uart_rx_pin", "uart_tx_pin", "led_pins", "keep_high_pins"]


@pytest.mark.parametrize("bad", INJECTIONS, ids=repr)
@pytest.mark.parametrize("board,field", [(XILINX, f) for f in XILINX_TEXT_FIELDS]
                         + [(LATTICE, f) for f in LATTICE_TEXT_FIELDS])
def test_unsafe_string_is_refused_naming_file_field_value_and_pattern(tmp_path, board, field, bad):
    data = board_dict(board)
    set_field(data, field, bad)
    path = write_board(tmp_path, data)
    message = refused(path)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert repr(bad) in message
    assert "it must be" in message and ("letters" in message or "pins" in message)


@pytest.mark.parametrize("field,value", [
    ("part", "xcvu9p-flga2104-2L-e"), ("part", "xc7a35ticsg324-1L"), ("part", "xcvc1902-vsva2197-2MP-e-S"),
    ("part", "xczu28dr-ffvg1517-2-e"), ("package", "fbga676"), ("speed_grade", "1LV"), ("speed_grade", 3),
    ("board_part", "xilinx.com:vck190:part0:3.1"), ("name", "my_board.v2"),
])
def test_real_xilinx_names_are_accepted(field, value):
    data = board_dict(XILINX)
    data[field] = value
    board = Board.from_dict(data)
    assert getattr(board, field) == str(value)


@pytest.mark.parametrize("field,value", [
    ("part", "LFE5UM5G-85F"), ("part", "LFE5U-45F-8BG381C"), ("package", "CSFBGA285"), ("speed_grade", 8),
    ("clock_pin", "AB12"), ("uart_rx_pin", "A1"), ("led_pins", "K4"), ("led_pins", "AA1 AB22 C3 D4"),
])
def test_real_lattice_names_and_sites_are_accepted(field, value):
    data = board_dict(LATTICE)
    data[field] = value
    assert getattr(Board.from_dict(data), field) == str(value)


@pytest.mark.parametrize("field,value", [
    ("led_pins", "B2  C2"), ("led_pins", " B2"), ("led_pins", "b2"), ("clock_pin", "G2 H3"),
    ("clock_pin", "G123"), ("clock_pin", "ABC1"), ("led_pins", " ".join(["A1"] * 65)),
])
def test_malformed_pin_lists_are_refused(field, value):
    data = board_dict(LATTICE)
    data[field] = value
    with pytest.raises(BoardError, match=f"field '{field}'.*package pin"):
        Board.from_dict(data)


def test_overlong_name_is_refused_with_a_short_message():
    data = board_dict(XILINX)
    data["name"] = "a" * 10_000
    with pytest.raises(BoardError) as caught:
        Board.from_dict(data)
    assert len(str(caught.value)) < 500


@pytest.mark.parametrize("name", list_boards())
def test_every_string_of_a_shipped_board_is_safe(name):
    assert_safe(load_board(name))


# ---- numbers: finite and plausible --------------------------------------------------------

NUMBER_FIELDS = {  # field: (board, values refused, the lowest and highest accepted)
    "clock_mhz": (XILINX, [1e-300, 0.5, 1000.5, 1e300, -150, 0], [1, 1000]),
    "clock_in_mhz": (LATTICE, [1e-300, 0.99, 1001, 1e300], [1, 1000]),
    "dram.bytes_per_cycle": (LATTICE, [1e-300, 0.1, 1025, 0], [0.125, 1024]),
    "dram.ports": (XILINX, [0, 3, 10**30], [1, 2]),
    "dram.port_bytes": (XILINX, [0, 256, 10**30], [1, 128]),
    "dram.usable_mb_per_s": (XILINX, [1e-300, 0.5, 10_000_001, 1e300, 0], [1, 10_000_000]),
    "dram.latency_cycles": (XILINX, [0, 10_001, 10**30], [1, 10_000]),
    "resources.lut": (XILINX, [0, 10**8 + 1, 10**400], [1, 10**8]),
    "resources.uram": (XILINX, [0, 10**8 + 1], [1, 10**8]),
    "dram.row_bytes": (XILINX, [0, 32, 131_072], [64, 65_536]),
    "dram.banks": (XILINX, [0, 128], [1, 64]),
    # (its range ends at 100,000; pynq-z2's refresh interval of 702 cycles leaves room for 677)
    "dram.row_miss_cycles": (XILINX, [0, 100_001], [1, 677]),
}


@pytest.mark.parametrize("field", sorted(NUMBER_FIELDS))
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_number_is_refused(tmp_path, field, bad):
    board, _, _ = NUMBER_FIELDS[field]
    data = board_dict(board)
    set_field(data, field, bad)
    if field.endswith(("cycles", "lut", "uram", "row_bytes", "banks", "ports", "port_bytes")):  # integer fields: a float is the wrong type
        pattern = "must be an integer"
    else:
        pattern = "not a finite number"
    message = refused(write_board(tmp_path, data))
    assert f"field '{field}'" in message and pattern in message


@pytest.mark.parametrize("field", sorted(NUMBER_FIELDS))
def test_implausible_numbers_are_refused_and_the_range_ends_accepted(tmp_path, field):
    board, bad_values, good_values = NUMBER_FIELDS[field]
    for bad in bad_values:
        data = board_dict(board)
        set_field(data, field, bad)
        message = refused(write_board(tmp_path, data))
        assert f"field '{field}'" in message and "plausible range" in message, message
    for good in good_values:
        data = board_dict(board)
        set_field(data, field, good)
        assert_safe(Board.from_dict(data))


def test_tiny_clock_no_longer_reaches_the_period():
    data = board_dict(XILINX)
    data["clock_mhz"] = 1e-300
    with pytest.raises(BoardError, match=r"field 'clock_mhz' is 1e-300, outside the plausible range from 1 to 1,000"):
        Board.from_dict(data)


# ---- the content hash and the exact round trip ---------------------------------------------

@pytest.mark.parametrize("name", list_boards())
def test_round_trip_is_exact_and_keeps_the_digest(name):
    board = load_board(name)
    data = board.to_dict()
    assert Board.from_dict(data) == board
    assert Board.from_dict(data).to_dict() == data
    # design.json embeds the board record: the JSON round trip must keep it and its digest.
    again = Board.from_dict(json.loads(json.dumps(data)))
    assert again == board and again.digest() == board.digest()


@pytest.mark.parametrize("name", list_boards())
def test_digest_is_sha256_of_sorted_canonical_json(name):
    board = load_board(name)
    canonical = json.dumps(board.to_dict(), sort_keys=True, separators=(",", ":"))
    assert board.digest() == hashlib.sha256(canonical.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", board.digest())


def test_digests_differ_between_boards_and_after_any_change():
    digests = {load_board(name).digest() for name in list_boards()}
    assert len(digests) == len(list_boards())
    board = load_board(XILINX)
    for changed in (replace(board, clock_mhz=125), replace(board, part="xc7z020clg400-2"),
                    replace(board, dram_latency_cycles=41), replace(board, board_part=None)):
        assert changed.digest() != board.digest()


def test_digest_ignores_key_order_and_whole_number_float_spelling():
    data = board_dict(XILINX)
    reordered = dict(reversed(list(data.items())))
    assert Board.from_dict(reordered).digest() == load_board(XILINX).digest()
    data["clock_mhz"] = float(data["clock_mhz"])
    data["dram"]["usable_mb_per_s"] = 1500.0
    assert Board.from_dict(data).digest() == load_board(XILINX).digest()
    # A Board built in code with a float clock hashes like the one loaded from its file.
    board = load_board(XILINX)
    assert replace(board, clock_mhz=float(board.clock_mhz)).digest() == board.digest()


# ---- files that are not board files ---------------------------------------------------------

def test_directory_is_refused(tmp_path):
    directory = tmp_path / "boards.yaml"
    directory.mkdir()
    assert "is a directory" in refused(directory)


def test_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = write_board(tmp_path, board_dict(XILINX))

    def denied(*args, **kwargs):  # chmod 0 does not bind when the tests run as root
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("dtlgen.boards.open", denied, raising=False)
    message = refused(path)
    assert str(path) in message and "cannot be read (Permission denied)" in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    assert "not a regular file" in refused(path)


def test_path_with_a_newline_gives_a_one_line_message(tmp_path):
    refused(tmp_path / "a\nb.yaml")


def test_unknown_name_with_a_newline_gives_a_one_line_message():
    assert r"'pynq-z2\nx'" in refused("pynq-z2\nx")


@pytest.mark.parametrize("content,expected", [
    (b"name: pynq-z2\npart: xc7z020\xff\n", "not UTF-8"),
    ("\ufeffname: \udcff".encode("utf-8", "surrogatepass"), "not UTF-8"),
    (b"- pynq-z2\n- zcu104\n", "expected a mapping"),
    (b"pynq-z2\n", "expected a mapping"),
    (b"42\n", "expected a mapping"),
    (b"", "is empty"),
    (b"# only a comment\n", "is empty"),
    (b"name: pynq-z2\x00\n", "not valid YAML"),
    (b"? [a]\n: b\n", "not valid YAML"),
    (b"name: !!python/object/apply:os.system [ls]\n", "not valid YAML"),
    (b"name: 2001-02-30\n", "cannot be read as board data"),
    (b"clock_mhz: " + b"9" * 5000 + b"\n", "cannot be read as board data"),
    (b"[" * 5_000, "cannot be read as board data"),
], ids=["bad-byte", "surrogate", "list", "scalar", "int", "empty", "comment-only", "nul", "unhashable-key",
        "python-tag", "bad-date", "5000-digit-int", "deep-nesting"])
def test_file_that_is_no_board_gives_one_line_error(tmp_path, content, expected):
    path = tmp_path / "board.yaml"
    path.write_bytes(content)
    message = refused(path)
    assert str(path) in message and expected in message, message


def test_huge_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(board_dict(XILINX)) + "# padding\n" * 200_000)
    assert "larger than 1 MiB" in refused(path)


def test_alias_bomb_is_refused_quickly(tmp_path):
    # Nine levels of nine aliases: 9**9 strings if expanded; the message must not expand it.
    lines = ["name:", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    data = yaml.safe_dump(board_dict(XILINX)).replace("name: pynq-z2\n", "")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n" + data)
    start = time.perf_counter()
    message = refused(path)
    assert time.perf_counter() - start < 5
    assert "field 'name' must be a string" in message and len(message) < 1000


# ---- any mutation of a real board: a Board or a BoardError, nothing else ---------------------

SHIPPED = {name: load_board(name).to_dict() for name in list_boards()}
# Strings and numbers that real boards hold, so that mutations also build near-valid boards.
REAL_SCALARS = sorted({repr(v): v for d in SHIPPED.values() for v in [*d.values(), *d["resources"].values(),
                                                                       *d["dram"].values()]
                       if not isinstance(v, dict)}.values(), key=repr)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.from_regex(r"[A-Za-z0-9 _.:\-\n\t\"$;\[\]{}\\]{0,12}", fullmatch=True),
    st.sampled_from(REAL_SCALARS), st.integers(100, 4400).map(lambda digits: 10**digits),
    st.binary(max_size=4))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
                      max_leaves=8)
KEYS = sorted({key for d in SHIPPED.values() for key in d}
              | {f"{s}.{k}" for d in SHIPPED.values() for s in ("resources", "dram") for k in d[s]}
              | {"resources.uram", "ps", "board_part", "clock_pin", "clock_in_mhz", "nextpnr_device"})


@st.composite
def mutated_boards(draw):
    data = copy.deepcopy(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "delete", "add"]))
        path = draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)))
        section, _, key = path.rpartition(".")
        parent = data.get(section) if section else data
        if not isinstance(parent, dict):
            parent = data
        if kind == "delete":
            parent.pop(key, None)
        else:
            parent[key] = draw(values)
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_boards())
def test_mutated_board_gives_a_board_or_a_board_error(data):
    try:
        board = Board.from_dict(data)
    except BoardError as err:
        assert "\n" not in str(err) and len(str(err)) < 2000
        return
    assert_safe(board)
    assert Board.from_dict(board.to_dict()) == board
    assert Board.from_dict(json.loads(json.dumps(board.to_dict()))).digest() == board.digest()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SHIPPED)), st.integers(0, 2000), st.text(min_size=1, max_size=6))
def test_edited_board_file_gives_a_board_or_a_board_error(tmp_path_factory, name, at, insert):
    text = yaml.safe_dump(SHIPPED[name])
    at %= len(text) + 1
    path = tmp_path_factory.mktemp("edited") / "board.yaml"
    path.write_bytes((text[:at] + insert + text[at:]).encode("utf-8", "surrogatepass"))
    try:
        assert_safe(load_board(path))
    except BoardError as err:
        assert "\n" not in str(err)
