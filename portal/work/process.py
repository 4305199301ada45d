"""The one way long work runs a child process: output streamed, a deadline, cancellation, nothing left behind.

`run` starts the child in a session (so a process group) of its own and hands every output line to
`on_line` as soon as it is printed. At the deadline, or when `should_cancel` says so, the group gets
`cancel_signal` (terraform then stops cleanly and releases its state lock), then SIGKILL after
`grace` seconds. However `run` ends (a callback raising, Celery's soft time limit, the child
exiting while something it started lives on), its `finally` kills the whole group and reaps the child.

When the worker itself is killed (SIGKILL, the OOM killer), two things end what it started: the
child gets SIGKILL from the kernel as its parent dies (PR_SET_PDEATHSIG), and a watchdog, in a
session of its own, kills the whole group when the pipe only the worker writes to closes without
"done". Grandchildren (terraform's provider plugins, `cmd &`) never get the parent-death signal:
the watchdog is what ends them.
"""
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_LINE_BYTES = 10_000
TAIL_LINES = 200
_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child only calls it.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_WATCHDOG = """
import os, signal, sys
if sys.stdin.buffer.read() != b"done":
    try:
        os.killpg(int(sys.argv[1]), signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


@dataclass(frozen=True)
class Result:
    exit_code: int  # negative: ended by that signal, as subprocess reports it
    lines_tail: list[str]  # the last TAIL_LINES lines
    timed_out: bool
    cancelled: bool


def run(argv: list, *, cwd=None, env: dict | None = None, on_line: Callable[[str], None] = lambda line: None,
        deadline: float | None = None, should_cancel: Callable[[], bool] = lambda: False,
        cancel_signal: int = signal.SIGINT, grace: float = 30.0, preexec: Callable[[], None] | None = None,
        poll: float = 1.0, on_start: Callable[[int], None] | None = None,
        answer: Callable[[str], str] | None = None) -> Result:
    """Run `argv` to its end; `deadline` is in seconds from now, `should_cancel` is asked every `poll`
    seconds, `on_start` gets the process group id. stderr is merged into stdout. With `answer`, the
    first time the output stops at a prompt (a line not ended, ending in ": "), `answer(prompt)` is
    written to the child's standard input, which is then closed. Exceptions raised by the callbacks
    propagate, after the group is killed."""
    started = time.monotonic()
    ends_at = None if deadline is None else started + deadline
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if answer else subprocess.DEVNULL,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_child_setup(os.getpid(), preexec))
    pgid = child.pid
    watchdog = None
    timed_out = cancelled = False
    lines = _Lines(on_line)
    try:
        watchdog = _Watchdog(pgid)
        if on_start is not None:
            on_start(pgid)
        out = child.stdout.fileno()
        os.set_blocking(out, False)
        exited = os.pidfd_open(child.pid)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(out, selectors.EVENT_READ)
                selector.register(exited, selectors.EVENT_READ)
                next_check, kill_at = started, None
                while True:
                    now = time.monotonic()
                    if kill_at is None:
                        if ends_at is not None and now >= ends_at:
                            timed_out = True
                        elif now >= next_check:
                            next_check = now + poll
                            cancelled = bool(should_cancel())
                        if timed_out or cancelled:
                            _signal_group(pgid, cancel_signal)
                            kill_at = now + grace
                    elif now >= kill_at:
                        _signal_group(pgid, signal.SIGKILL)
                        kill_at = float("inf")
                    if kill_at is not None:
                        wake = kill_at
                    else:
                        wake = next_check if ends_at is None else min(next_check, ends_at)
                    timeout = None if wake == float("inf") else max(0.0, wake - now)
                    ready = {key.fd for key, _ in selector.select(timeout)}
                    if out in ready and not _read(out, lines):
                        selector.unregister(out)
                    if answer is not None and lines.pending.endswith(b": "):
                        prompt = lines.pending.decode("utf-8", errors="replace")
                        reply, answer = answer(prompt), None
                        try:
                            child.stdin.write(reply.encode())
                            child.stdin.close()
                        except (BrokenPipeError, OSError):
                            pass
                    if exited in ready:
                        # What the child printed before it exited is in the pipe: take it, but no more
                        # than a second of what a grandchild may still be printing.
                        drain_until = time.monotonic() + 1.0
                        while time.monotonic() < drain_until and _read(out, lines, stop_when_empty=True):
                            pass
                        break
        finally:
            os.close(exited)
        lines.flush()
    finally:
        # The child is not reaped yet, so its pid (the group's id) cannot have been reused.
        _signal_group(pgid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        if child.stdin is not None and not child.stdin.closed:
            try:
                child.stdin.close()
            except OSError:
                pass
        if watchdog is not None:
            watchdog.dismiss()
    return Result(exit_code=child.returncode, lines_tail=list(lines.tail), timed_out=timed_out,
                  cancelled=cancelled)


def _child_setup(parent: int, preexec: Callable[[], None] | None) -> Callable[[], None]:
    def setup() -> None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os.kill(os.getpid(), signal.SIGKILL)
        if preexec is not None:
            preexec()
    return setup


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _read(fd: int, lines: "_Lines", *, stop_when_empty: bool = False) -> bool:
    """Read what the pipe holds into `lines`; False at end of file (or when empty, if asked)."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return not stop_when_empty
    if not chunk:
        return False
    lines.feed(chunk)
    return True


class _Lines:
    """Splits the output into lines, decoded leniently and cut at MAX_LINE_BYTES, keeping a tail."""

    def __init__(self, on_line: Callable[[str], None]):
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.pending = b""
        self.skipping = False  # in the rest of a line already cut and handed on

    def feed(self, chunk: bytes) -> None:
        *complete, self.pending = (self.pending + chunk).split(b"\n")
        for line in complete:
            if self.skipping:
                self.skipping = False
            else:
                self._emit(line)
        if len(self.pending) > MAX_LINE_BYTES:
            if not self.skipping:
                self._emit(self.pending)
            self.skipping, self.pending = True, b""

    def flush(self) -> None:
        if self.pending and not self.skipping:
            self._emit(self.pending)
        self.pending = b""

    def _emit(self, raw: bytes) -> None:
        text = raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r")
        if len(raw) > MAX_LINE_BYTES:
            text += " [line cut]"
        self.tail.append(text)
        self.on_line(text)


class _Watchdog:
    """A process of its own that kills the group unless told "done" before its pipe closes."""

    def __init__(self, pgid: int):
        read, self.write = os.pipe()
        try:
            self.process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pgid)], stdin=read,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True)
        except BaseException:
            os.close(self.write)
            raise
        finally:
            os.close(read)

    def dismiss(self) -> None:
        try:
            os.write(self.write, b"done")
        except OSError:
            pass
        finally:
            os.close(self.write)
        self.process.wait()
