"""Progress of long steps: messages, spinners and bars with an ETA, on stderr.

The CLI makes one `Progress` per command (`RichProgress` on a terminal or a log, `Progress` with --json:
silent) and installs it with `using(progress)`; the long steps deep inside (Verilator and g++ builds,
RTL re-training steps, C-simulated training, the bitstream tools) open tasks on `current()` without the
progress being passed down to them. A task has a total (a bar with an ETA) or none (a spinner with the
elapsed time); `TaskHandle.update(completed)` moves it, from any thread.

A plain callable (what the Python API takes as `progress`) still works: `as_progress` wraps it, and each
task's description goes out as one of its messages.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console


class TaskHandle:
    """One open task: `advance` and `update` move it; a task without a total ignores them."""

    def __init__(self, move: Callable[[int], None] = lambda completed: None):
        self._move = move
        self.completed = 0

    def advance(self, n: int = 1) -> None:
        self.update(self.completed + n)

    def update(self, completed: int) -> None:
        self.completed = completed
        self._move(completed)


class Progress:
    """Silent progress (--json): messages and tasks go nowhere."""

    def __call__(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[TaskHandle]:
        yield TaskHandle()


class MessageProgress(Progress):
    """A plain callable's progress: messages to it, each task's description as one message."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say

    def __call__(self, message: str) -> None:
        self.say(message)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[TaskHandle]:
        self.say(description if total is None else f"{description} ({total})")
        yield TaskHandle()


class RichProgress(Progress):
    """Messages as dim `-> ...` lines and tasks as rich bars (a total: bar, M/N, elapsed, ETA) or spinners
    (no total: elapsed time) on `console` (stderr). On a console that is not a terminal rich draws
    nothing live: each task prints its description when it opens and its time when it closes."""

    def __init__(self, console: Console):
        self.console = console
        self._lock = threading.Lock()
        self._bars: Any = None
        self._open = 0

    def __call__(self, message: str) -> None:
        self.console.print(f"[dim]-> {message}[/dim]", highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[TaskHandle]:
        if not self.console.is_terminal:
            self(description + (f" ({total})" if total is not None else ""))
            start = time.perf_counter()
            handle = TaskHandle()
            try:
                yield handle
            except BaseException:  # a failed or interrupted task is not "done"
                self.console.print(f"[dim]   stopped after {time.perf_counter() - start:.1f} s[/dim]", highlight=False)
                raise
            done = f", {handle.completed} of {total}" if total is not None else ""
            self.console.print(f"[dim]   done in {time.perf_counter() - start:.1f} s{done}[/dim]", highlight=False)
            return
        bars = self._start()
        task = bars.add_task(description, total=total)
        try:
            yield TaskHandle(lambda completed: bars.update(task, completed=completed))
        finally:
            bars.remove_task(task) if total is None else bars.update(task, visible=True)
            self._stop()

    def _start(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars
        from rich.progress import TimeRemainingColumn

        with self._lock:
            if self._bars is None:
                self._bars = Bars(
                    SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console,
                    redirect_stdout=False, redirect_stderr=False, transient=False)
                self._bars.start()
            self._open += 1
            return self._bars

    def _stop(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._bars is not None:
                self._bars.stop()
                self._bars = None


_current: Progress = Progress()


def current() -> Progress:
    """The progress the running command installed (silent when none did)."""
    return _current


@contextlib.contextmanager
def using(progress: Progress) -> Iterator[Progress]:
    """Install `progress` as `current()` for the duration."""
    global _current
    before, _current = _current, progress
    try:
        yield progress
    finally:
        _current = before


def as_progress(progress: Any) -> Progress:
    """`progress` as a Progress: itself, a plain callable wrapped, or `current()` for None."""
    if progress is None:
        return current()
    return progress if isinstance(progress, Progress) else MessageProgress(progress)


def step_counter(handle: TaskHandle) -> Callable[[int, Any], Any]:
    """An `after_step` for `RLHost.train` (an in-process engine: the C-simulation) that moves `handle`
    to the steps done."""
    async def after_step(k: int, result: Any) -> None:
        handle.update(k + 1)
    return after_step


@contextlib.contextmanager
def counted_file(path: Path, handle: TaskHandle, period: float = 0.5) -> Iterator[Path]:
    """Move `handle` to the number of bytes in `path` while the block runs: a simulator in another
    process appends one byte per finished step (its test reads the path from DTLGEN_PROGRESS_FILE)."""
    path.unlink(missing_ok=True)
    path.touch()
    done = threading.Event()

    def poll() -> None:
        while not done.wait(period):
            try:
                handle.update(path.stat().st_size)
            except OSError:
                pass

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join()
        with contextlib.suppress(OSError):
            handle.update(path.stat().st_size)
        path.unlink(missing_ok=True)  # (the simulator's folder is published into the project: no litter)
