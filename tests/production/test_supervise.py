"""scripts/supervise.py: every process of `make run` comes back when it dies, and goes when told."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = [sys.executable, str(ROOT / "scripts" / "supervise.py")]

# Writes its pid and its child's to a file (one line per start), then waits: a server with a worker.
SERVER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
time.sleep(600)
"""
# Ignores SIGTERM: only a kill stops it.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open(__import__('sys').argv[1], 'a').write('started\\n'); time.sleep(600)"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def starts(path: Path) -> list[list[int]]:
    return [list(map(int, line.split())) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def supervise(tmp_path):
    started = []

    def start(*args: str, grace: float = 5) -> subprocess.Popen:
        process = subprocess.Popen([*SUPERVISE, "--name", "test", "--grace", str(grace), "--", *args],
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_child_killed_with_sigkill_comes_back_within_two_seconds(supervise, tmp_path):
    log = tmp_path / "starts"
    supervise(sys.executable, "-c", SERVER, str(log))
    [(first, worker)] = wait_for(lambda: starts(log), 10, "the first start")
    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: starts(log)[1:], 2, "a start after the kill")[0][0]
    assert second != first and time.monotonic() - killed < 2
    assert wait_for(lambda: not alive(worker), 5, "the dead server's worker to be stopped")


def test_sigterm_to_the_supervisor_stops_the_childs_whole_group(supervise, tmp_path):
    log = tmp_path / "starts"
    supervisor = supervise(sys.executable, "-c", SERVER, str(log))
    [(server, worker)] = wait_for(lambda: starts(log), 10, "the start")
    assert os.getpgid(worker) == server != os.getpgid(supervisor.pid)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=5) == 0
    assert not alive(server) and not alive(worker)
    assert len(starts(log)) == 1


def test_a_child_that_ignores_the_stop_is_killed_after_the_grace_period(supervise, tmp_path):
    log = tmp_path / "starts"
    supervisor = supervise(sys.executable, "-c", STUBBORN, str(log), grace=1)
    wait_for(log.exists, 10, "the start")
    stopped = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=5) == 0
    assert 1 <= time.monotonic() - stopped < 3
    assert "killing its process group" in supervisor.stderr.read()


def test_a_command_that_keeps_crashing_is_started_again_less_and_less_often(supervise, tmp_path):
    log = tmp_path / "starts"
    supervisor = supervise(sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('1\\n'); sys.exit(3)", str(log))
    time.sleep(4)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=5) == 0
    # At once, then after 0.5, 1 and 2 s: a handful of starts, not one every few milliseconds.
    assert 3 <= len(log.read_text().splitlines()) <= 6
    assert "exited with status 3" in supervisor.stderr.read()


def test_every_process_of_make_run_is_supervised_with_development_settings():
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert sorted(lines) == ["beat", "runs", "site", "web", "worker"]
    for name, command in lines.items():
        assert command.startswith("DJANGO_SETTINGS_MODULE=portal.settings.dev .venv/bin/python scripts/supervise.py "), name
    assert "--queues portal-runs" in lines["runs"] and "-n runs@%h" in lines["runs"]
    assert "--concurrency 2" in lines["runs"]


def test_honcho_keeps_every_process_when_one_dies_and_stops_them_all_on_one_ctrl_c(tmp_path):
    """As `make run` does, with stand-ins for the portal's processes; newcomer-check does it for real."""
    procfile, server = tmp_path / "Procfile", tmp_path / "server.py"
    server.write_text(SERVER)
    python, supervise = sys.executable, ROOT / "scripts" / "supervise.py"
    procfile.write_text("".join(f"{name}: {python} {supervise} --name {name} --grace 4 -- {python} {server} {tmp_path / name}\n"
                                for name in ("one", "two")))
    honcho = subprocess.Popen([str(Path(sys.executable).parent / "honcho"), "-f", str(procfile), "start"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        [(one, _)] = wait_for(lambda: starts(tmp_path / "one"), 20, "process one")
        [(two, two_worker)] = wait_for(lambda: starts(tmp_path / "two"), 20, "process two")
        os.kill(one, signal.SIGKILL)
        wait_for(lambda: starts(tmp_path / "one")[1:], 2, "process one to come back")
        time.sleep(1)
        assert honcho.poll() is None and alive(two)
        os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        honcho.wait(timeout=15)
        processes = [pid for start in starts(tmp_path / "one") + starts(tmp_path / "two") for pid in start]
        assert [pid for pid in processes if alive(pid)] == []
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
