"""portal.work.process with real processes: streaming, deadline, cancel, and nothing left behind,
not even when the worker running it is killed."""
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from portal.work import process

ROOT = Path(__file__).resolve().parents[2]
# Prints "<background sleep's pid> <shell's pid>", then waits: a child with a grandchild.
FAMILY = ["sh", "-c", "sleep 1000 & echo $! $$; sleep 1000"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's wait is missing


def wait_until_gone(pids, seconds: float = 2.0) -> list[int]:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def test_it_hands_on_each_line_in_order_as_soon_as_it_is_printed():
    started = time.monotonic()
    seen = []

    result = process.run(["sh", "-c", "echo one; echo two >&2; sleep 1; printf 'three\\nfour'"],
                         on_line=lambda line: seen.append((line, time.monotonic() - started)))

    assert [line for line, _ in seen] == ["one", "two", "three", "four"]
    assert seen[1][1] < 0.8 <= seen[2][1]  # the first two arrived while the child was still sleeping
    assert (result.exit_code, result.timed_out, result.cancelled) == (0, False, False)
    assert result.lines_tail == ["one", "two", "three", "four"]


def test_it_reports_the_exit_code_and_keeps_only_a_tail_of_the_output():
    result = process.run(["sh", "-c", "seq 1 500; exit 3"])

    assert result.exit_code == 3
    assert result.lines_tail == [str(n) for n in range(501 - process.TAIL_LINES, 501)]


def test_bad_bytes_are_replaced_and_very_long_lines_are_cut():
    seen = []

    process.run(["sh", "-c", "printf 'caf\\351\\n'; head -c 100000 /dev/zero | tr '\\0' x; echo; echo after"],
                on_line=seen.append)

    assert seen[0] == "caf\ufffd"
    assert seen[1] == "x" * process.MAX_LINE_BYTES + " [line cut]"
    assert seen[2:] == ["after"]


def test_a_child_that_prints_nothing_is_stopped_at_its_deadline():
    started = time.monotonic()

    result = process.run(["sleep", "1000"], deadline=1, grace=5)

    assert result.timed_out and not result.cancelled
    assert result.exit_code == -signal.SIGINT
    assert time.monotonic() - started < 3


def test_a_child_that_ignores_the_interrupt_is_killed_after_the_grace():
    started = time.monotonic()

    result = process.run(["sh", "-c", "trap '' INT; echo ready; sleep 1000"], deadline=0.5, grace=1)

    assert result.timed_out and result.exit_code == -signal.SIGKILL
    assert 1.4 < time.monotonic() - started < 4


def test_a_cancel_interrupts_the_child_which_may_finish_cleanly():
    asked = []

    def should_cancel() -> bool:
        asked.append(time.monotonic())
        return len(asked) >= 3

    script = "trap 'echo releasing the lock; exit 0' INT; echo working; while :; do sleep 0.1; done"
    seen = []
    result = process.run(["sh", "-c", script], on_line=seen.append, should_cancel=should_cancel, poll=0.2)

    assert result.cancelled and not result.timed_out
    assert seen == ["working", "releasing the lock"] and result.exit_code == 0
    assert asked[2] - asked[0] == pytest.approx(0.4, abs=0.15)  # asked every `poll` seconds, no more


def test_when_on_line_raises_the_whole_group_is_killed_grandchild_included():
    pids = []

    def on_line(line: str) -> None:
        pids.extend(int(pid) for pid in line.split())
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        process.run(FAMILY, on_line=on_line)

    assert len(pids) == 2
    assert wait_until_gone(pids) == []


def test_what_the_child_started_is_killed_when_the_child_exits_first():
    seen = []
    started = time.monotonic()

    result = process.run(["sh", "-c", "sleep 1000 & echo $!"], on_line=seen.append)

    assert result.exit_code == 0 and time.monotonic() - started < 3  # the grandchild's open stdout is no reason to wait
    assert wait_until_gone([int(seen[0])]) == []


def test_on_start_gets_the_process_group_and_preexec_runs_in_the_child():
    groups = []

    result = process.run(["sh", "-c", "ps -o pgid= -p $$; ulimit -n"], on_start=groups.append,
                         preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (77, 77)))

    assert [int(result.lines_tail[0])] == groups
    assert result.lines_tail[1] == "77"


PARENT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from portal.work import process

    def on_line(line):
        print(line, flush=True)

    process.run(sys.argv[2:], on_line=on_line, on_start=lambda pgid: print("group", pgid, flush=True))
""")


def test_nothing_the_worker_started_survives_the_worker_being_killed():
    worker = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT), *FAMILY], stdout=subprocess.PIPE, text=True)
    try:
        group = int(worker.stdout.readline().split()[1])
        pids = [int(pid) for pid in worker.stdout.readline().split()]
        assert group == pids[1] and all(alive(pid) for pid in pids)

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()

        assert wait_until_gone(pids) == []
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
