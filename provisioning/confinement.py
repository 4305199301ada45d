"""A pipeline run in a sandbox: it sees, reaches and uses only what is its own (docs/adr/0016).

`run` is what the executor calls. The run gets a root of its own (a size-capped tmpfs, entered with
pivot_root, so nothing of the machine is left behind it): the system's and the interpreter's files
read-only, its lake folder read-write at /lake/<slug>, each dependency's curated/ read-only at
/lake/<producer>/curated, a working copy of its commit at /pipeline, /tmp, and of the warehouse only its
Unix socket, at /warehouse. Its network namespace has nothing but a loopback of its own, its pid
namespace nothing but its own processes (and /proc shows no more). It runs as the product's own
unprivileged uid, so it holds no capability and RLIMIT_NPROC binds (it does not bind root), under
rlimits on memory, CPU seconds, file size and processes. Landlock comes on top: the same file rules
enforced a second way, TCP denied, abstract sockets and signals kept inside. The lake folder's size
is checked before and after every run (there is no filesystem quota on these machines).

This file is also the sandbox's launcher (`python -I confinement.py`, the sandbox's description in
the environment, never on a command line where every user of the machine reads it). It therefore
imports only the standard library at its top; `landlock` is imported where the launcher uses it.
"""
import ctypes
import fcntl
import json
import os
import platform
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

SPEC_VARIABLE = "PORTAL_SANDBOX"
LAKE, WORK, WAREHOUSE = "/lake", "/pipeline", "/warehouse"
SETUP_FAILED = 125  # the launcher's exit code when the sandbox could not be made (its reason is in the log)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "host.conf", "gai.conf",
       "protocols", "services", "mime.types", "alternatives", "ssl/certs", "ssl/openssl.cnf")
DEVICES = ("null", "zero", "full", "random", "urandom")


class Refused(Exception):
    """The run cannot start (its lake folder is over its quota, or is not a folder)."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    cpu_seconds: int
    processes: int  # of the product's uid, its runs together (threads count)
    disk_mb: int  # the lake folder; also the largest file a run may write
    scratch_mb: int  # /pipeline and /tmp together


@dataclass(frozen=True)
class Sandbox:
    slug: str
    uid: int
    lake: str  # the product's lake folder on the machine
    repo: str
    commit: str
    limits: Limits
    # {"user", "password", "dbname", "port", "host"} (host: for RUN_CONFINEMENT=off) and the path of
    # the warehouse's Unix socket on the machine.
    database: dict
    warehouse_socket: str = ""
    reads: dict = field(default_factory=dict)  # producer slug -> {"schema", "curated_path" (on the machine)}
    env: dict = field(default_factory=dict)  # more variables for the pipeline (PUBLISHED_SCHEMA, OUTPUT_PORTS)
    python: str = sys.executable


@dataclass(frozen=True)
class Outcome:
    result: object  # portal.work.process.Result
    lake_mb: float  # the lake folder's size after the run


def run(sandbox: Sandbox, *, strict: bool = True, **process_options) -> Outcome:
    """Run the sandbox's pipeline.py to its end with portal.work.process.run (deadline, cancel,
    process group killed in a finally: `process_options`). `strict=False` (RUN_CONFINEMENT=off) keeps
    only the rlimits and the working copy, for a machine where the worker is not root."""
    from portal.work import process  # not at the top: the launcher (this file) runs outside the portal

    if strict and os.geteuid() != 0:
        raise Refused("RUN_CONFINEMENT=strict needs the runs worker to be root: it makes namespaces, mounts "
                      "and gives each run its product's own uid")
    lake = Path(sandbox.lake)
    used = _lake_mb(lake, owner=sandbox.uid if strict else None)
    if used > sandbox.limits.disk_mb:
        raise Refused(f"its lake folder holds {used:.0f} MB, over its quota of {sandbox.limits.disk_mb} MB; "
                      "no run starts until it is cleaned up")
    scratch = Path(tempfile.mkdtemp(prefix=f"run-{sandbox.slug}-"))
    try:
        with open(scratch / "work.tar", "wb") as tar:
            subprocess.run(["git", "-C", sandbox.repo, "archive", "--format=tar", sandbox.commit], stdout=tar,
                           stderr=subprocess.PIPE, check=True, timeout=120)
        if strict:
            (scratch / "root").mkdir()
            spec = {**asdict(sandbox), "root": str(scratch / "root"), "tar": str(scratch / "work.tar"),
                    "env": _pipeline_env(sandbox, strict=True)}
            result = process.run([sandbox.python, "-I", str(Path(__file__).resolve())], cwd=scratch,
                                 env={"PATH": "/usr/bin:/bin", SPEC_VARIABLE: json.dumps(spec)}, **process_options)
        else:
            with tarfile.open(scratch / "work.tar") as archive:
                archive.extractall(scratch / "work", filter="data")
            result = process.run([sandbox.python, "pipeline.py"], cwd=scratch / "work",
                                 env=_pipeline_env(sandbox, strict=False),
                                 preexec=lambda: _set_limits(sandbox.limits), **process_options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Outcome(result=result, lake_mb=_lake_mb(lake))


def _pipeline_env(sandbox: Sandbox, *, strict: bool) -> dict:
    db = sandbox.database
    if strict:
        lake, python_bin = f"{LAKE}/{sandbox.slug}", str(Path(sandbox.python).parent)
        reads = {producer: {"schema": r.get("schema", ""), "curated_path": f"{LAKE}/{producer}/curated"}
                 for producer, r in sandbox.reads.items()}
        where = f"host={WAREHOUSE}&port={db['port']}"
        home, path = "/tmp", f"{python_bin}:/usr/local/bin:/usr/bin:/bin"
    else:
        lake, reads = sandbox.lake, sandbox.reads
        where = f"host={quote(str(db['host']))}&port={db['port']}"
        home, path = tempfile.gettempdir(), os.environ.get("PATH", "")
    dsn = f"postgresql://{quote(db['user'], safe='')}:{quote(db['password'], safe='')}@/{quote(db['dbname'])}?{where}"
    return {"PATH": path, "HOME": home, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **sandbox.env,
            "LAKE_PATH": lake, "PRODUCT_DSN": dsn, "READS": json.dumps(reads, sort_keys=True)}


def _lake_mb(lake: Path, *, owner: int | None = None) -> float:
    """The folder's size on disk; with `owner`, everything in it is made the owner's first (files the
    team or the provider put there as root). Nothing is resolved through a link: a run may have made
    them, and may still be making them (another run of the product), hence a walk by descriptors."""
    try:
        top = os.lstat(lake)
    except FileNotFoundError:
        raise Refused(f"its lake folder {lake} does not exist") from None
    if not stat.S_ISDIR(top.st_mode):
        raise Refused(f"its lake folder {lake} is not a folder")
    if owner is not None and (top.st_uid, top.st_gid) != (owner, owner):
        os.lchown(lake, owner, owner)
    total = top.st_blocks * 512
    for _, dirs, files, folder in os.fwalk(lake, follow_symlinks=False):
        for name in dirs + files:
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if owner is not None and (info.st_uid, info.st_gid) != (owner, owner):
                    os.chown(name, owner, owner, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile by a run of the product
                continue
            total += info.st_blocks * 512
    return total / 1024 / 1024


def _set_limits(limits: Limits) -> None:
    for which, value in ((resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024),
                         (resource.RLIMIT_FSIZE, limits.disk_mb * 1024 * 1024),
                         (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))
    # SIGXCPU at the limit (Python ends on it), SIGKILL a few seconds later if that is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))


# --- the launcher: everything below runs in the sandbox's processes --------------------------------
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
PR_SET_PDEATHSIG = 1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_RESTRICT_SELF = 444, 446
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(_libc.mount(c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data)), f"mount {source} on {target}")


def _bind(source: str, target: str, *, writable: bool = False, executable: bool = True) -> None:
    """Bind `source` (a path, or an O_PATH descriptor's /proc/self/fd link) at `target`, read-only
    unless `writable`, never honouring set-uid bits or device files."""
    _mount(source, target, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
    _mount(None, target, None, flags | (0 if executable else MS_NOEXEC))


def _bind_folder_safely(source: str, target: str, *, writable: bool) -> None:
    """A lake folder: its last part may be a link planted by a run (a producer's curated/ pointing at
    the portal's var/, say), so it is opened without following links, and that folder is bound."""
    fd = os.open(source, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY)
    try:
        os.makedirs(target, exist_ok=True)
        _bind(f"/proc/self/fd/{fd}", target, writable=writable, executable=False)
    finally:
        os.close(fd)


def _launch() -> None:
    """Outside the namespaces, in the run's process group: make them, start their first process, end as it ends."""
    spec = json.loads(os.environ.pop(SPEC_VARIABLE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _check(_libc.unshare(CLONE_NEWPID), "unshare")
    # A cancel signals the whole group: the pipeline stops on it; this process waits for that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        try:
            _init(spec)
        except BaseException as exc:  # noqa: BLE001  (the reason goes to the run's log)
            print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        os._exit(SETUP_FAILED)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    ended_by = -code if code < 0 else (code - 128 if 128 < code < 128 + signal.NSIG else 0)
    if ended_by:  # the pipeline ended by a signal: so does this process, for the executor to tell which
        if ended_by not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
        code = 128 + ended_by  # a signal whose default is to be ignored
    os._exit(code)


def _init(spec: dict) -> None:
    """Process 1 of the sandbox, as root: build the root, start the pipeline, end with it (which ends
    every process left in the namespace)."""
    import landlock  # noqa: F401  (imported while the machine's files are still in view)

    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root, limits = spec["root"], Limits(**spec["limits"])
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.scratch_mb}m,mode=0755")
    _build_root(Path(root), spec)
    tar = open(spec["tar"], "rb")  # read once the machine's root is gone
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the machine's root")
    os.chdir("/")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    with tar, tarfile.open(fileobj=tar) as archive:
        archive.extractall(WORK, filter="data")
    for folder, dirs, files in os.walk(WORK):
        for name in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.lchown(name, spec["uid"], spec["uid"])
    socket.sethostname("sandbox")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))
    pipeline = os.fork()
    if pipeline == 0:
        try:
            _become_pipeline(spec, limits)
        except BaseException as exc:  # noqa: BLE001
            print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        os._exit(SETUP_FAILED)
    while True:
        pid, status = os.wait()
        if pid == pipeline:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _build_root(root: Path, spec: dict) -> None:
    def inside(path: str) -> Path:
        return root / path.lstrip("/")

    for path in SYSTEM:
        if os.path.islink(path):
            inside(path).symlink_to(os.readlink(path))
        elif os.path.isdir(path):
            inside(path).mkdir()
            _bind(path, str(inside(path)))
    for path in _python_dirs():
        inside(path).mkdir(parents=True, exist_ok=True)
        _bind(path, str(inside(path)))
    etc = inside("/etc")
    etc.mkdir()
    for name in ETC:
        source = Path("/etc") / name
        if source.exists():
            target = etc / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                target.mkdir()
            else:
                target.touch()
            _bind(str(source), str(target))
    uid = spec["uid"]
    (etc / "passwd").write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                f"run:x:{uid}:{uid}:run:/tmp:/usr/sbin/nologin\n")
    (etc / "group").write_text(f"root:x:0:\nrun:x:{uid}:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
    (etc / "hostname").write_text("sandbox\n")
    (etc / "resolv.conf").write_text("")
    dev = inside("/dev")
    dev.mkdir()
    for name in DEVICES:
        (dev / name).touch()
        _mount(f"/dev/{name}", str(dev / name), None, MS_BIND)
        _mount(None, str(dev / name), None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        (dev / name).symlink_to(target)
    for folder in (dev / "shm", inside("/tmp")):
        folder.mkdir(exist_ok=True)  # /tmp may hold the interpreter's mount already (a clone under /tmp)
        folder.chmod(0o1777)
    inside("/proc").mkdir()
    inside(WORK).mkdir(mode=0o700)
    os.chown(inside(WORK), uid, uid)
    _bind_folder_safely(spec["lake"], str(inside(f"{LAKE}/{spec['slug']}")), writable=True)
    for producer, read in sorted(spec["reads"].items()):
        try:
            _bind_folder_safely(read["curated_path"], str(inside(f"{LAKE}/{producer}/curated")), writable=False)
        except OSError as exc:
            print(f"sandbox: {producer}'s curated/ is not shown ({exc.strerror})", file=sys.stderr, flush=True)
    if spec["warehouse_socket"]:
        target = inside(f"{WAREHOUSE}/{Path(spec['warehouse_socket']).name}")
        target.parent.mkdir()
        target.touch()
        _mount(spec["warehouse_socket"], str(target), None, MS_BIND)


def _python_dirs() -> list[str]:
    """The interpreter's installation and the virtualenv it runs in (the launcher's own), unless
    under /usr already."""
    found = []
    for path in (sys.prefix, sys.base_prefix):
        path = os.path.realpath(path)
        if not any(path == s or path.startswith(s + "/") for s in (*SYSTEM, *found)):
            found.append(path)
    return found


def _become_pipeline(spec: dict, limits: Limits) -> None:
    uid = spec["uid"]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _set_limits(limits)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the uid change cleared it
    os.chdir(WORK)
    os.umask(0o022)
    _restrict_files(spec)
    _restrict_network_and_signals()
    python = spec["python"]
    os.execve(python, [python, "pipeline.py"], spec["env"])


def _restrict_files(spec: dict) -> None:
    from landlock import FSAccess, Ruleset

    read = FSAccess.READ_FILE | FSAccess.READ_DIR | FSAccess.EXECUTE
    ruleset = Ruleset()
    readable = [p for p in (*SYSTEM, *_python_dirs(), "/etc", "/proc") if os.path.exists(p)]
    readable += [f"{LAKE}/{producer}/curated" for producer in spec["reads"]
                 if os.path.isdir(f"{LAKE}/{producer}/curated")]
    ruleset.allow(*readable, rules=read)
    ruleset.allow(f"{LAKE}/{spec['slug']}", WORK, "/tmp", "/dev/shm")
    ruleset.allow(*(f"/dev/{name}" for name in DEVICES), rules=FSAccess.all_file() & ~FSAccess.EXECUTE)
    ruleset.apply()  # also sets no_new_privs: no set-uid program can give privileges back


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _restrict_network_and_signals() -> None:
    """Landlock ABI 4 denies every TCP bind and connect, ABI 6 keeps abstract Unix sockets and signals
    inside the sandbox: what the network and pid namespaces already do, done a second way."""
    from landlock import landlock_abi_version

    abi = landlock_abi_version()
    if abi < 4:
        return
    attr = _RulesetAttr(0, 0b11, 0b11 if abi >= 6 else 0)
    size = ctypes.sizeof(attr) if abi >= 6 else 16
    fd = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
                "landlock_create_ruleset")
    try:
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0), "landlock_restrict_self")
    finally:
        os.close(fd)


if __name__ == "__main__":
    _launch()
