#!/usr/bin/env python3
"""Run one command for ever: restart it whenever it exits, stop it and all it started when told.

    supervise.py [--name NAME] [--grace SECONDS] -- COMMAND [ARG...]

The command runs in a process group of its own. When it exits without being asked to, whatever
it left in its group is stopped and it starts again at once; a command that keeps dying within
seconds of its start waits a little longer before each new start (0.5 s, doubling, at most 30 s).
SIGINT, SIGTERM or SIGHUP is passed on to the whole group; whatever still runs `--grace` seconds
later is killed, and then this exits. Should this process itself be killed, the kernel kills the
command too (parent-death signal), so nothing outlives it.

`make run` puts every Procfile line under it, so that honcho, which stops everything when one
process exits, only ever sees a process exit after Ctrl-C
(docs/adr/0011-every-make-run-process-supervised.md).
"""
import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.05
QUICK_EXIT_SECONDS = 10.0  # a command that dies sooner than this after its start "keeps crashing"
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Supervisor:
    def __init__(self, command: list[str], *, name: str, grace: float):
        self.command, self.name, self.grace = command, name, grace
        self.child: subprocess.Popen | None = None
        self.stop_deadline: float | None = None
        self.killed = False

    def say(self, text: str) -> None:
        print(f"supervise[{self.name}]: {text}", file=sys.stderr, flush=True)

    def on_signal(self, signum, _frame) -> None:
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.grace
            self.say(f"{signal.Signals(signum).name}: stopping (killed after {self.grace:g} s)")
        if self.child is not None:
            _signal_group(self.child.pid, signum)

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        # Orphans of the command (its stragglers) become ours, not init's, so that they are reaped
        # here: a zombie would keep its group alive, and not every init reaps them.
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        quick_exits = 0
        while self.stop_deadline is None:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command, start_new_session=True, preexec_fn=_die_with_parent)
            if self.stop_deadline is not None:  # a signal that came while it was being started
                _signal_group(self.child.pid, signal.SIGTERM)
            code = self._wait_for_child()
            if self.stop_deadline is not None:
                break
            lived = time.monotonic() - started
            quick_exits = quick_exits + 1 if lived < QUICK_EXIT_SECONDS else 0
            delay = 0.0 if quick_exits <= 1 else min(FIRST_BACKOFF_SECONDS * 2 ** (quick_exits - 2),
                                                     MAX_BACKOFF_SECONDS)
            self.say(f"exited with {_describe(code)} after {lived:.1f} s; starting again"
                     + (f" in {delay:g} s" if delay else ""))
            self._sleep(delay)
        return 0

    def _wait_for_child(self) -> int:
        """Wait for the command to exit, then end what it left in its group; its exit status."""
        pid = self.child.pid
        while (code := self._reap(pid)) is None:
            self._kill_when_late(pid)
            time.sleep(POLL_SECONDS)
        # Stragglers (a worker's pool processes, a server's children) go with their leader, within
        # the grace period. The group's id stays reserved by the kernel while any of them lives.
        deadline = self.stop_deadline or time.monotonic() + self.grace
        if _group_alive(pid):
            _signal_group(pid, signal.SIGTERM)
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                self._reap(pid)
            _signal_group(pid, signal.SIGKILL)
        self.child = None
        return code

    def _reap(self, pid: int) -> int | None:
        """Reap every exited child (the command and orphans); the command's exit status if it exited."""
        code = None
        while True:
            try:
                reaped, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return code
            if reaped == 0:
                return code
            if reaped == pid:
                code = self.child.returncode = os.waitstatus_to_exitcode(status)

    def _kill_when_late(self, pid: int) -> None:
        if self.stop_deadline is not None and time.monotonic() > self.stop_deadline and not self.killed:
            self.say(f"still running {self.grace:g} s after the stop: killing its process group")
            _signal_group(pid, signal.SIGKILL)
            self.killed = True

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.stop_deadline is None and time.monotonic() < end:
            time.sleep(POLL_SECONDS)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", help="how its messages name the command (default: the program)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds the command has to stop once told, before it is killed (default 10)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    return Supervisor(command, name=args.name or os.path.basename(command[0]), grace=args.grace).run()


if __name__ == "__main__":
    sys.exit(main())
