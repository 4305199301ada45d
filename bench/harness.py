"""What the benchmarks that provision for real share: a portal of their own (databases, folders,
queue) in this process, a real Celery worker on its queue, and a clean-up of everything they made
in the warehouse, even after an interrupted run.

    portal = BenchPortal("access", prefix="a")   # before importing Django: it sets the environment
    with portal.running():                       # fresh databases, services, migrate, a worker
        slug = portal.slug("tier")               # a{run}-tier: cleaned up afterwards
"""
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


class BenchPortal:
    def __init__(self, name: str, *, prefix: str, database_url: str | None = None):
        """`name` keys its databases and folders (portal_bench_<name>, var/bench-<name>-*); `prefix`,
        one letter, starts every product slug it makes, followed by this run's four hex digits."""
        self.name, self.prefix, self.run = name, prefix, uuid.uuid4().hex[:4]
        self.database = f"portal_bench_{name}"
        self.state_database = f"portal_tfstate_bench_{name}"
        self.readers: list[str] = []  # extra warehouse logins made in this run (personal access), dropped at the end
        self.env = {
            "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
            "DATABASE_URL": database_url or f"postgres://postgres@127.0.0.1:5432/{self.database}",
            "TF_STATE_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.state_database}",
            "TERRAFORM_WORKDIR": str(ROOT / "var" / f"bench-{name}-tf-work"),
            "LAKE_ROOT": str(ROOT / "var" / f"bench-{name}-lake"),
            "PIPELINES_ROOT": str(ROOT / "var" / f"bench-{name}-pipelines"),
            "WID_REPO_PATH": str(Path(tempfile.mkdtemp(prefix=f"bench-{name}-wids-")) / "repo"),
            "CELERY_TASK_DEFAULT_QUEUE": f"portal-bench-{name}-{self.run}",
            "RUNS_QUEUE": f"portal-bench-{name}-{self.run}-runs",
            "PROVISION_ON_APPROVAL_TARGETS": "local",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(self.env)

    def slug(self, tag: str) -> str:
        return f"{self.prefix}{self.run}-{tag}"

    def _drop_databases(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for name in (self.database, self.state_database):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @contextmanager
    def running(self, *, worker: bool = True, beat: bool = False):
        """`beat`: Celery beat too, with the whole schedule (the triggers' ticks among it)."""
        self._drop_databases()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "services.py")], check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        processes = []
        celery = [sys.executable, "-m", "celery", "-A", "portal"]
        if worker:
            queues = f"{self.env['CELERY_TASK_DEFAULT_QUEUE']},{self.env['RUNS_QUEUE']}"
            processes.append(subprocess.Popen(
                [*celery, "worker", "-Q", queues, "--concurrency", "2", "--loglevel", "WARNING",
                 "-n", f"bench-{self.name}-{self.run}@%h"],
                cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        if beat:
            schedule = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-beat-")) / "celerybeat-schedule"
            processes.append(subprocess.Popen(
                [*celery, "beat", "--loglevel", "WARNING", "--schedule", str(schedule)],
                cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        try:
            yield self
        finally:
            for process in reversed(processes):
                process.terminate()
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait()
            if beat:
                shutil.rmtree(schedule.parent, ignore_errors=True)
            self.cleanup()

    def cleanup(self) -> None:
        """The warehouse's schemas, roles and queues of this benchmark's products (this run's, and
        an interrupted earlier run's), its databases and its folders."""
        import psycopg
        from psycopg import sql

        from provisioning import services

        pattern = f"^(p|pub|r)_{self.prefix}[0-9a-f]{{4}}_"
        with psycopg.connect(services.warehouse_dsn(), autocommit=True) as admin:
            for (name,) in admin.execute("SELECT nspname FROM pg_namespace WHERE nspname ~ %s", [pattern]).fetchall():
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            for (name,) in admin.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s OR rolname = ANY(%s)",
                                         [pattern, self.readers]).fetchall():
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
            admin.execute("DELETE FROM platform_registry.compute_queues WHERE product ~ %s",
                          [f"^{self.prefix}[0-9a-f]{{4}}-"])
        self._drop_databases()
        for key in ("TERRAFORM_WORKDIR", "LAKE_ROOT", "PIPELINES_ROOT"):
            shutil.rmtree(self.env[key], ignore_errors=True)
        shutil.rmtree(Path(self.env["WID_REPO_PATH"]).parent, ignore_errors=True)
