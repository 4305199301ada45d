"""Make sure PostgreSQL and Redis answer at DATABASE_URL / REDIS_URL, and that the database exists.

Used by `make run` and `make test`. Starts only what is not already reachable, and only on this
machine (a remote URL that does not answer is an error, not something to start).
Standard library plus psycopg, so it runs straight after the virtualenv is installed.
"""
import glob
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def say(message: str) -> None:
    print(f"services: {message}", flush=True)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not reachable(host, port):
        if time.monotonic() > deadline:
            sys.exit(f"services: {what} did not start on {host}:{port}")
        time.sleep(0.2)


def apt_install(package: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"services: {package} is not installed; install it (apt-get install {package}) and retry")
    say(f"installing {package} with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def start_postgres(port: int) -> None:
    clusters = sorted(glob.glob("/etc/postgresql/*/main"))
    if clusters and port == 5432 and shutil.which("pg_ctlcluster"):
        version = Path(clusters[-1]).parent.name
        say(f"starting the machine's PostgreSQL {version} cluster")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        return
    bindir = _pg_bindir()
    data = cluster_dir("pgdata")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if not (data / "PG_VERSION").exists():
        say(f"creating a private PostgreSQL cluster in {data}")
        data.mkdir(parents=True, exist_ok=True)
        if as_postgres:
            shutil.chown(data, "postgres", "postgres")
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
    say(f"starting the private PostgreSQL cluster on port {port}")
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "-w", "start"], check=True)


def start_redis(host: str, port: int) -> None:
    if not shutil.which("redis-server"):
        apt_install("redis-server")
    VAR.mkdir(exist_ok=True)
    say(f"starting Redis on {host or '127.0.0.1'}:{port}")
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", host or "127.0.0.1", "--port", str(port),
                    "--save", "", "--appendonly", "no", "--dir", str(VAR),
                    "--logfile", str(VAR / "redis.log")], check=True)


def _pg_bindir() -> Path:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        apt_install("postgresql")
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(bins[-1])


def warehouse_port(home: Path, data: Path) -> int:
    """WAREHOUSE_PORT, or the port this checkout's cluster has (var/warehouse/port), or the first
    free one from 5433: another checkout's warehouse may already hold 5433 on this machine."""
    if os.environ.get("WAREHOUSE_PORT"):
        return int(os.environ["WAREHOUSE_PORT"])
    recorded = home / "port"
    ours_running = (data / "postmaster.pid").exists()
    if recorded.exists():
        port = int(recorded.read_text())
        if ours_running or not reachable("127.0.0.1", port):
            return port
    port = next(p for p in range(5433, 5533) if not reachable("127.0.0.1", p))
    recorded.write_text(str(port))
    return port


def cluster_dir(name: str) -> Path:
    """Where a private cluster of this checkout keeps its data.

    As root, clusters run as the postgres user, who may not be able to enter the checkout (a
    clone under a 0700 temporary directory, say): their data then lives in postgres's home, in a
    folder named after this checkout. Otherwise under var/.
    """
    if os.geteuid() != 0:
        return VAR / name / "data"
    digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]
    parent = Path("/var/lib/postgresql/portal") / f"{name}-{digest}"
    parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chown", "postgres:postgres", str(parent.parent), str(parent)], check=True)
    return parent / "data"


def ensure_warehouse() -> None:
    """The local target's warehouse: a PostgreSQL cluster of the project's own, with passwords.

    Not the portal's database: the machine's cluster trusts every local connection, so roles and
    passwords would prove nothing there. Admin password in var/warehouse/admin-password.
    """
    bindir = _pg_bindir()
    home = VAR / "warehouse"
    home.mkdir(parents=True, exist_ok=True)
    data = Path(os.environ.get("WAREHOUSE_DATA_DIR") or cluster_dir("warehouse"))
    port = warehouse_port(home, data)
    password_file = home / "admin-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if not (data / "PG_VERSION").exists():
        say(f"creating the local warehouse cluster in {data}")
        data.mkdir(parents=True, exist_ok=True)
        pwfile = data.parent / ".initdb-password"
        pwfile.write_text(password_file.read_text())
        if as_postgres:
            subprocess.run(["chown", "postgres:postgres", str(data), str(pwfile)], check=True)
        try:
            subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "warehouse_admin",
                            "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"],
                           check=True, stdout=subprocess.DEVNULL)
        finally:
            pwfile.unlink()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("\n# Usage measured in the warehouse (docs/adr/0019).\n")
            conf.writelines(f"{name} = '{value}'\n" for name, value in WAREHOUSE_SETTINGS.items())
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
              "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "-w"]
    if not reachable("127.0.0.1", port):
        say(f"starting the local warehouse cluster on port {port}")
        subprocess.run([*pg_ctl, "start"], check=True, stdout=subprocess.DEVNULL, timeout=120)
        wait_for("127.0.0.1", port, "the warehouse")
    import psycopg

    admin = f"postgresql://warehouse_admin:{password_file.read_text().strip()}@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        restart = configure_warehouse(conn)
    if restart:
        if not (data / "postmaster.pid").exists():
            sys.exit(f"services: the warehouse on port {port} is not the cluster in {data}; restart it yourself "
                     "to load pg_stat_statements")
        say("restarting the local warehouse once to load pg_stat_statements and its JSON log")
        subprocess.run([*pg_ctl, "-m", "fast", "restart"], check=True, stdout=subprocess.DEVNULL, timeout=120)
        wait_for("127.0.0.1", port, "the warehouse")
        with psycopg.connect(admin, autocommit=True) as conn:
            configure_warehouse(conn)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'warehouse'").fetchone():
            conn.execute("CREATE DATABASE warehouse")
    with psycopg.connect(admin.rsplit("/", 1)[0] + "/warehouse", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # The portal reads it as the admin; a product's login has no business with others' statistics.
        conn.execute("REVOKE ALL ON pg_stat_statements, pg_stat_statements_info FROM PUBLIC")
        conn.execute("REVOKE ALL ON FUNCTION pg_stat_statements(boolean), pg_stat_statements_info() FROM PUBLIC")


# Usage is measured in the warehouse (docs/adr/0019): pg_stat_statements counts every role's
# statements, and a JSON log of errors names the role and the statement of every refused read. The
# log is one file per weekday, overwritten a week later, so it never grows past a week.
WAREHOUSE_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "logging_collector": "on",
    "log_destination": "stderr,jsonlog",
    "log_filename": "postgresql-%a.log",
    "log_truncate_on_rotation": "on",
    "log_min_error_statement": "error",
    "log_timezone": "UTC",
}


def configure_warehouse(conn) -> bool:
    """Give a running warehouse WAREHOUSE_SETTINGS (ALTER SYSTEM, kept in postgresql.auto.conf) where
    it differs, keeping any other preloaded library. True when a restart is needed to take them: a
    cluster made before usage was measured is restarted once, then configured again (the settings
    of pg_stat_statements exist only once it is loaded), and never restarted again."""
    from psycopg import sql

    rows = conn.execute("SELECT name, setting, context FROM pg_settings WHERE name = ANY(%s)",
                        [list(WAREHOUSE_SETTINGS)]).fetchall()
    current, context = {name: setting for name, setting, _ in rows}, {name: ctx for name, _, ctx in rows}
    restart = False
    for name, value in WAREHOUSE_SETTINGS.items():
        if name not in context:
            continue  # pg_stat_statements' own, unknown until the library is loaded: set on the pass after
        if name == "shared_preload_libraries":
            loaded = [lib.strip() for lib in current.get(name, "").split(",") if lib.strip()]
            if value in loaded:
                continue
            values = [*loaded, value]
        elif current.get(name) == value:
            continue
        else:
            values = [value]
        conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
            sql.SQL(name), sql.SQL(", ").join(sql.Literal(v) for v in values)))
        restart = restart or context[name] == "postmaster"
    conn.execute("SELECT pg_reload_conf()")
    return restart


def ensure_database(url) -> None:
    import psycopg
    from psycopg import sql

    name = url.path.lstrip("/") or "portal"
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            say(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main() -> None:
    db = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal"))
    redis = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    db_port, redis_port = db.port or 5432, redis.port or 6379
    if not reachable(db.hostname or "", db_port):
        if (db.hostname or "") not in LOCAL_HOSTS:
            sys.exit(f"services: PostgreSQL at {db.hostname}:{db_port} does not answer")
        start_postgres(db_port)
        wait_for(db.hostname or "", db_port, "PostgreSQL")
    if not reachable(redis.hostname or "", redis_port):
        if (redis.hostname or "") not in LOCAL_HOSTS:
            sys.exit(f"services: Redis at {redis.hostname}:{redis_port} does not answer")
        start_redis(redis.hostname or "", redis_port)
        wait_for(redis.hostname or "", redis_port, "Redis")
    ensure_database(db)
    ensure_database(urlparse(os.environ.get("TF_STATE_DATABASE_URL", db._replace(path="/portal_tfstate").geturl())))
    ensure_warehouse()
    say(f"PostgreSQL {db.hostname}:{db_port}, Redis {redis.hostname}:{redis_port} and the warehouse are up")


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium (Playwright cannot download its own offline)."""
    if not shutil.which("chromium"):
        apt_install("chromium")
    if not shutil.which("chromium"):
        sys.exit("services: chromium is still not on PATH after installing it")


if __name__ == "__main__":
    if sys.argv[1:] == ["--chromium"]:
        ensure_chromium()
    else:
        main()
