"""dtlgen.progress: tasks open, move and close (on a terminal as rich bars, elsewhere as lines), a
plain callable keeps working, --json stays silent, and a simulator's step file moves a bar."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from dtlgen import progress as p


def test_silent_progress_yields_a_handle_that_counts():
    with p.Progress().task("x", total=3) as bar:
        bar.advance()
        bar.advance(2)
    assert bar.completed == 3


def test_a_plain_callable_gets_each_task_as_a_message():
    said = []
    wrapped = p.as_progress(said.append)
    wrapped("hello")
    with wrapped.task("building", total=4) as bar:
        bar.update(4)
    assert said == ["hello", "building (4)"]
    assert p.as_progress(None) is p.current()


def test_off_a_terminal_a_task_is_a_line_when_it_opens_and_one_when_it_closes():
    out = io.StringIO()
    rich = p.RichProgress(Console(file=out, force_terminal=False, width=200))
    with rich.task("steps", total=5) as bar:
        for _ in range(5):
            bar.advance()
    with pytest.raises(ValueError), rich.task("spinning"):
        raise ValueError("a failing step still closes its task")
    lines = out.getvalue().splitlines()
    assert lines[0] == "-> steps (5)" and lines[1].startswith("   done in") and lines[1].endswith("5 of 5")
    assert lines[2] == "-> spinning" and lines[3].startswith("   stopped after")  # not "done": its error follows
    assert len(lines) == 4


def test_on_a_terminal_nested_tasks_share_one_live_display_and_it_stops_with_the_last():
    out = io.StringIO()
    rich = p.RichProgress(Console(file=out, force_terminal=True, width=120))
    with rich.task("outer", total=2) as outer:
        with rich.task("inner"):
            assert rich._open == 2
        outer.update(2)
    assert rich._open == 0 and rich._bars is None
    text = out.getvalue()
    assert "outer" in text and "2/2" in text


def test_using_installs_the_current_progress_and_restores_the_previous():
    said = []
    with p.using(p.MessageProgress(said.append)):
        with p.current().task("inside"):
            pass
    assert said == ["inside"] and isinstance(p.current(), p.Progress)


def test_a_step_file_moves_the_bar(tmp_path):
    handle = p.TaskHandle()
    with p.counted_file(tmp_path / "steps", handle, period=0.01) as path:
        for _ in range(3):
            with open(path, "a") as f:
                f.write(".")
        time.sleep(0.05)
    assert handle.completed == 3 and not path.exists()
