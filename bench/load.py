"""Benchmark: mixed traffic from 50 clients against the portal run as README's "Run it in production" says.

    make bench-load    (or: .venv/bin/python bench/load.py [--duration 600] [--clients 50] [--drain 600])

Everything is its own: a fresh database (portal_bench_load) and Terraform state database
(portal_tfstate_bench_load) on the machine's PostgreSQL, a WID repository with a bare remote, the
site, working directories, lake and pipelines under var/bench-load/, queues of its own on the Redis at
127.0.0.1:6379, and a webhook receiver. The environment is README's `/etc/portal/env` with its paths
moved under var/bench-load/ and its secrets in files there; e-mails go to files (no SMTP server here)
and SECURE_SSL_REDIRECT is false (no TLS-ending proxy in front: clients speak plain HTTP to gunicorn).
The processes are README's units, each under scripts/supervise.py (systemd's `Restart=always`):
gunicorn as `portal-web` starts it, one Celery worker per queue (portal, portal-runs, portal-site) and
beat once. The local warehouse is the checkout's (`make services`); the products' roles and schemas
this run creates there are dropped at the end.

Seeds 10 teams of 5 users (one client each, with a token and a session), a platform user and
provisioned products (target local: each approved by the policy, applied by real terraform). Then
each client, for `--duration` seconds, repeats a weighted choice with a think time between:
reads (product list page and API, product page and API, history, job page, dashboard), WID saves
(create a draft, PATCH it at its version, submit it: low-risk, so the policy approves it and an apply
job starts), plan jobs on provisioned products (platform token) and pipeline runs. Every request has
a timeout. After the load stops, the work it accepted is given `--drain` seconds to finish.

Reports requests per kind, p50/p95 per kind, errors (5xx, timeouts) apart from the refusals the API
documents (409, 503 with Retry-After), jobs and runs completed, and the proof that nothing was lost:
every save answered 2xx is at HEAD of the WID repository (its commit in HEAD's history, the file at
least at its version), in the index and on the remote; `rebuild_index --check` finds no difference;
every accepted job and run, and every apply the policy started, ended in a final state. Writes
var/bench-load/result.json; leaves the database and var/bench-load/logs/ for inspection.
"""
import argparse
import http.client
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HOME = ROOT / "var" / "bench-load"
LOGS = HOME / "logs"
DATABASE = "portal_bench_load"
STATE_DATABASE = "portal_tfstate_bench_load"
PG = "postgres://postgres@127.0.0.1:5432"
QUEUE = "portal-bench-load"
HOST = "portal.example.com"  # README's ALLOWED_HOSTS
SLUG_PREFIX = "ld-"  # every product of this run, so its warehouse roles can be told apart and dropped
TEAMS, USERS_PER_TEAM = 10, 5
# Relative weights of what a client does next: mostly reads, as in a portal's day. The writes start
# terraform (an apply per save, a plan per job) and pipelines: on 2 cores, about what 2 worker
# processes finish, so that the run measures a steady state rather than a growing queue.
MIX = {
    "read-products": 10, "read-api-products": 10, "read-product": 10, "read-api-product": 10,
    "read-history": 8, "read-job": 6, "read-dashboard": 4, "save": 1, "job": 1, "run": 3,
}
KINDS = [k for k in MIX if k != "save"] + ["save-create", "save-patch", "save-submit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--products", type=int, default=10, help="provisioned products seeded before the load")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds a client waits between actions")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a request may take (default 30)")
    parser.add_argument("--drain", type=float, default=600, help="seconds the accepted work has to finish")
    args = parser.parse_args()

    load_before = os.getloadavg()
    prepare()
    webhook = WebhookReceiver()
    portal = Portal(webhook.port)
    try:
        portal.start()
        seeded = seed(args.products, args.clients)
        print(f"seeded {len(seeded['products'])} provisioned products, {args.clients} users; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        load = Load(portal.port, seeded, args)
        cpu_before, busy_before, mine = portal.cpu_seconds(), machine_busy_seconds(), time.process_time()
        load.run()
        load.cpu = {name: round(used - cpu_before[name], 1) for name, used in portal.cpu_seconds().items()}
        load.clients_cpu = round(time.process_time() - mine, 1)
        load.machine_busy = round(machine_busy_seconds() - busy_before, 1)
        print(f"load stopped after {args.duration:.0f} s; draining (at most {args.drain:.0f} s)", flush=True)
        drained = drain(args.drain)
        proof = prove(load)
        result = report(load, drained, proof, portal, webhook, args, load_before)
    finally:
        portal.stop()
        webhook.stop()
        clean_warehouse()
    (HOME / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"written {HOME / 'result.json'}")
    if not proof["nothing_lost"]:
        sys.exit(1)


# --- the portal, as the README runs it ----------------------------------------------------------
def readme_block(first_line: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Run it in production\n", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in re.findall(r"```\w*\n(.*?)```", section, flags=re.S) if b.startswith(first_line)]
    return block


def exec_start(unit: str) -> list[str]:
    [line] = [l for l in readme_block(f"# /etc/systemd/system/{unit}").splitlines() if l.startswith("ExecStart=")]
    program, *args = shlex.split(line.removeprefix("ExecStart="))
    return [str(ROOT / ".venv" / "bin" / Path(program).name), *args]


def production_environment(web_port: int, webhook_port: int) -> dict:
    """README's /etc/portal/env with its files and directories under var/bench-load/."""
    contents = {"SECRET_KEY_FILE": secrets.token_urlsafe(50), "DATABASE_URL_FILE": f"{PG}/{DATABASE}",
                "TF_STATE_DATABASE_URL_FILE": f"{PG}/{STATE_DATABASE}"}
    env = {}
    for line in readme_block("# /etc/portal/env").splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.split("=", 1)
        if value.startswith("/etc/portal/"):
            path = HOME / "etc" / Path(value).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(contents.get(name, secrets.token_urlsafe(24)) + "\n")
            path.chmod(0o600)
            value = str(path)
        elif value.startswith(("/var/lib/portal/", "/srv/")):
            value = str(HOME / Path(value).name)
        env[name] = value
    return {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(HOME)), **env,
        "PORTAL_BASE_URL": f"http://127.0.0.1:{web_port}",
        "SECURE_SSL_REDIRECT": "false",
        "WID_REPO_REMOTE": str(HOME / "remote.git"),
        "NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{webhook_port}/hook",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(HOME / "mail"),
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE, "RUNS_QUEUE": f"{QUEUE}-runs", "WID_SITE_QUEUE": f"{QUEUE}-site",
    }


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine used since boot (all cores)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare() -> None:
    """A fresh var/bench-load/, databases and queues; PostgreSQL, Redis and the warehouse up."""
    import psycopg

    shutil.rmtree(HOME, ignore_errors=True)
    LOGS.mkdir(parents=True)
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        for name in (DATABASE, STATE_DATABASE):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "services.py")], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DATABASE_URL": f"{PG}/{DATABASE}",
                        "TF_STATE_DATABASE_URL": f"{PG}/{STATE_DATABASE}"})
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch", "main", str(HOME / "remote.git")],
                   check=True)


class Portal:
    """gunicorn, a worker per queue and beat, each under scripts/supervise.py."""

    def __init__(self, webhook_port: int):
        self.port = free_port()
        self.env = production_environment(self.port, webhook_port)
        os.environ.update(self.env)  # this process seeds and checks the same portal
        self.processes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, command: list[str], grace: float) -> None:
        log = open(LOGS / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "supervise.py"), "--name", name, "--grace", str(grace), "--",
             *command], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("terraform_setup", verbosity=0)
        clean_warehouse()  # what an interrupted run left
        celery = [sys.executable, "-m", "celery", "-A", "portal"]
        subprocess.run([*celery, "purge", "-f", "-Q", f"{QUEUE},{QUEUE}-runs,{QUEUE}-site"], env=self.env, cwd=ROOT,
                       check=True, capture_output=True)
        web = exec_start("portal-web.service")
        web[web.index("--bind") + 1] = f"127.0.0.1:{self.port}"
        web[web.index("--access-logfile") + 1] = str(LOGS / "access.log")
        self._start("web", web, grace=30)
        worker = exec_start("portal-worker@.service")
        for queue, unit in ((QUEUE, "portal"), (f"{QUEUE}-runs", "portal-runs"), (f"{QUEUE}-site", "portal-site")):
            command = [part.replace("%i", queue).replace("%H", socket.gethostname()) for part in worker]
            if unit == "portal-site":  # README's table: site builds one at a time
                command[command.index("--concurrency") + 1] = "1"
            self._start(unit, command, grace=60)
        beat = exec_start("portal-beat.service")
        beat[beat.index("--schedule") + 1] = str(HOME / "celerybeat-schedule")
        self._start("beat", beat, grace=10)
        deadline = time.monotonic() + 90
        while not all("ready." in self.log(unit) for unit in ("portal", "portal-runs", "portal-site")):
            self._check_alive(deadline, "the workers to start")
        while True:
            try:
                if request(self.port, "GET", "/healthz/", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            self._check_alive(deadline, "gunicorn to answer /healthz/")

    def _check_alive(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{self.log(name)[-2000:]}" for name in self.processes)
            raise SystemExit(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.3)

    def log(self, name: str) -> str:
        return (LOGS / f"{name}.log").read_text(errors="replace")

    def health(self) -> dict:
        """What the logs say went wrong: restarts by the supervisor, tracebacks, killed gunicorn workers."""
        return {name: {"restarts": self.log(name).count("; starting again"),
                       "tracebacks": self.log(name).count("Traceback (most recent call last)"),
                       "worker_timeouts": self.log(name).count("WORKER TIMEOUT")} for name in self.processes}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time of each unit so far: every live process under its supervisor, with its reaped children."""
        ticks = os.sysconf("SC_CLK_TCK")
        parent, times = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            parent[pid], times[pid] = int(fields[1]), sum(int(f) for f in fields[11:15]) / ticks
        used = {}
        for name, process in self.processes.items():
            def under(pid: int) -> bool:
                while pid > 1:
                    if pid == process.pid:
                        return True
                    pid = parent.get(pid, 0)
                return False
            used[name] = sum(seconds for pid, seconds in times.items() if under(pid))
        return used

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the supervisor passes it on to the whole group
        for process in self.processes.values():
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class WebhookReceiver:
    """The endpoint README's NOTIFY_WEBHOOK_URL names: answers 204 and counts."""

    def __init__(self):
        self.received = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    receiver.received[json.loads(body).get("event", "?")] += 1
                except ValueError:
                    receiver.received["unreadable"] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def request(port: int, method: str, path: str, *, token: str = "", session: str = "", body=None,
            timeout: float = 30) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Host": HOST, "Accept": "application/json" if path.startswith("/api/") else "text/html"}
    if token:
        headers["Authorization"] = f"Token {token}"
    if session:
        headers["Cookie"] = f"sessionid={session}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


# --- seeding ------------------------------------------------------------------------------------
def wid_body(slug: str, team: str, rng: random.Random) -> dict:
    """A low-risk WID (internal, no personal data, small): the policy approves it at submit."""
    return {
        "slug": slug, "name": f"Load product {slug}", "domain": f"load-domain-{rng.randrange(5)}", "team": team,
        "target": "local", "classification": "internal", "pii": False, "compute_tier": "small",
        "contacts": {"business": {"name": "Bea Business", "email": "bea@example.com"},
                     "technical": {"name": "Tim Technical", "email": "tim@example.com"}},
        "data_custodian": {"name": "Cas Custodian", "email": "cas@example.com"},
        "depends_on": [], "outputs": [{"name": slug.replace("-", "_") + "_rows", "kind": "table"}],
        "sections": {"value_proposition": "Counts what the load test sends.", "architecture": "raw/ to curated/.",
                     "integration_points": "None.", "data_surfacing": "A table."},
    }


def seed(products: int, clients: int) -> dict:
    """Teams, users with tokens and sessions, and `products` provisioned by real terraform."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from onboarding import services as wids
    from onboarding.models import Membership, Team
    from onboarding.selectors import PLATFORM_GROUP
    from provisioning.models import Job, Provisioning

    User = get_user_model()

    def session_of(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    platform = User.objects.create(username="load-platform", first_name="Pat", last_name="Platform",
                                   email="pat@example.com")
    platform.groups.add(Group.objects.get_or_create(name=PLATFORM_GROUP)[0])
    teams = [Team.objects.create(slug=f"load-team-{n}", name=f"Load team {n}") for n in range(TEAMS)]
    users = []
    for n in range(max(clients, TEAMS)):
        user = User.objects.create(username=f"load-user-{n:02d}", first_name=f"User{n}", last_name="Load",
                                   email=f"load-user-{n:02d}@example.com")
        team = teams[n % TEAMS]
        Membership.objects.create(team=team, user=user, role="owner" if n < TEAMS else "member")
        users.append({"team": team.slug, "token": Token.objects.create(user=user).key, "session": session_of(user)})

    rng = random.Random(1)
    slugs = []
    for n in range(products):
        owner = User.objects.get(username=f"load-user-{n % TEAMS:02d}")
        slug = f"{SLUG_PREFIX}seed-{n:02d}"
        wids.wid_create(user=owner, data=wid_body(slug, teams[n % TEAMS].slug, rng))
        wids.wid_submit(user=owner, slug=slug)  # approved by the policy: an apply job starts
        slugs.append(slug)
    deadline = time.monotonic() + 60 + 10 * products
    while Job.objects.filter(status__in=Job.ACTIVE).exists():
        if time.monotonic() > deadline:
            raise SystemExit("the seeded products' apply jobs did not finish")
        time.sleep(0.5)
    failed = list(Job.objects.exclude(status="succeeded").values_list("product__slug", "status", "error"))
    if failed:
        raise SystemExit(f"seeding failed: {failed}")
    for state in Provisioning.objects.all():  # something for the pipelines to load
        lake = Path(state.outputs["lake_path"]) / "raw"
        lake.mkdir(parents=True, exist_ok=True)
        (lake / "orders.csv").write_text("Order Id,Amount\n" + "".join(f"{i},{i * 3}\n" for i in range(200)))
    return {"platform": {"token": Token.objects.create(user=platform).key, "session": session_of(platform)},
            "users": users, "products": slugs,
            "jobs": list(Job.objects.values_list("pk", flat=True))}


# --- the load -----------------------------------------------------------------------------------
class Load:
    def __init__(self, port: int, seeded: dict, args):
        self.port, self.args = port, args
        self.platform = seeded["platform"]
        self.users = seeded["users"]
        self.lock = threading.Lock()
        self.products = list(seeded["products"])  # slugs any client may read
        self.provisioned = list(seeded["products"])  # approved: plan jobs and runs go there
        self.job_ids = list(seeded["jobs"])
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.outcomes: dict[str, Counter] = defaultdict(Counter)
        self.samples: dict[str, list[str]] = defaultdict(list)  # a few bodies of each error, for the report
        self.saves: dict[str, dict] = {}  # slug -> {version, sha} of its last save answered 2xx
        self.unsure_saves: list[dict] = []  # saves answered 5xx or not at all: fate unknown
        self.policy_approved: list[str] = []
        self.accepted_jobs: list[int] = []
        self.accepted_runs: list[int] = []
        self.load_samples: list[float] = []
        self.elapsed = 0.0
        self.cpu: dict[str, float] = {}  # CPU seconds of each unit during the load
        self.machine_busy = 0.0  # ... and of every process on the machine
        self.clients_cpu = 0.0  # ... and of this script's clients

    def run(self) -> None:
        self.deadline = time.monotonic() + self.args.duration
        started = time.monotonic()
        threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(self.args.clients)]
        for thread in threads:
            thread.start()
        next_progress = started + 60
        while any(t.is_alive() for t in threads):
            self.load_samples.append(os.getloadavg()[0])
            if time.monotonic() >= next_progress:
                next_progress += 60
                with self.lock:
                    count = sum(sum(c.values()) for c in self.outcomes.values())
                print(f"  {time.monotonic() - started:5.0f} s: {count} requests, "
                      f"load average {self.load_samples[-1]:.1f}", flush=True)
            for thread in threads:
                thread.join(timeout=10 / len(threads))
        self.elapsed = time.monotonic() - started

    def call(self, kind: str, method: str, path: str, *, token="", session="", body=None) -> tuple[int, dict]:
        """One request, timed and classified; returns (status or 0 when none came, JSON body or {})."""
        start = time.perf_counter()
        try:
            status, headers, raw = request(self.port, method, path, token=token, session=session, body=body,
                                           timeout=self.args.timeout)
        except (TimeoutError, socket.timeout):
            outcome, status, headers, raw = "timeout", 0, {}, b""
        except OSError as exc:
            outcome, status, headers, raw = f"connection error ({type(exc).__name__})", 0, {}, b""
        else:
            if 200 <= status < 300:
                outcome = "ok"
            elif status == 409 or (status == 503 and "Retry-After" in headers):
                outcome = f"refused {status}"
            elif status >= 500:
                outcome = f"error {status}"
            else:
                outcome = f"unexpected {status}"
        elapsed = time.perf_counter() - start
        with self.lock:
            self.latencies[kind].append(elapsed)
            self.outcomes[kind][outcome] += 1
            if outcome != "ok" and len(self.samples[f"{kind} {outcome}"]) < 3:
                self.samples[f"{kind} {outcome}"].append(f"{method} {path}: {raw[:300].decode(errors='replace')}")
        try:
            data = json.loads(raw) if raw and path.startswith("/api/") else {}
        except ValueError:
            data = {}
        return status, data if isinstance(data, dict) else {}

    def client(self, n: int) -> None:
        rng = random.Random(n)
        me = self.users[n % len(self.users)]
        kinds, weights = list(MIX), list(MIX.values())
        made = 0
        while time.monotonic() < self.deadline:
            kind = rng.choices(kinds, weights)[0]
            with self.lock:
                slug = rng.choice(self.products)
                target = rng.choice(self.provisioned)
                job = rng.choice(self.job_ids)
            if kind == "read-products":
                self.call(kind, "GET", "/products/", session=me["session"])
            elif kind == "read-api-products":
                self.call(kind, "GET", "/api/v1/products/", token=me["token"])
            elif kind == "read-product":
                self.call(kind, "GET", f"/products/{slug}/", session=me["session"])
            elif kind == "read-api-product":
                self.call(kind, "GET", f"/api/v1/products/{slug}/", token=me["token"])
            elif kind == "read-history":
                self.call(kind, "GET", f"/api/v1/products/{slug}/history/", token=me["token"])
            elif kind == "read-job":
                self.call(kind, "GET", f"/jobs/{job}/", session=me["session"])
            elif kind == "read-dashboard":
                self.call(kind, "GET", "/dashboard/", session=self.platform["session"])
            elif kind == "save":
                made += 1
                self.save(f"{SLUG_PREFIX}c{n:02d}-{made:04d}", me, rng)
            elif kind == "job":
                status, data = self.call(kind, "POST", f"/api/v1/products/{target}/jobs/",
                                         token=self.platform["token"], body={"action": "plan"})
                if status == 202:
                    with self.lock:
                        self.accepted_jobs.append(data["id"])
                        self.job_ids.append(data["id"])
            elif kind == "run":
                status, data = self.call(kind, "POST", f"/api/v1/products/{target}/runs/",
                                         token=self.platform["token"])
                if status == 202:
                    with self.lock:
                        self.accepted_runs.append(data["id"])
            time.sleep(min(rng.expovariate(1 / self.args.think), 5 * self.args.think) if self.args.think else 0)

    def save(self, slug: str, me: dict, rng: random.Random) -> None:
        """Create, PATCH at the version read, submit: three saves, each one git commit."""
        steps = [("save-create", "POST", "/api/v1/products/", lambda v: wid_body(slug, me["team"], rng)),
                 ("save-patch", "PATCH", f"/api/v1/products/{slug}/",
                  lambda v: {"version": v, "sections": {"architecture": f"raw/ to curated/, edited at {time.time()}."}}),
                 ("save-submit", "POST", f"/api/v1/products/{slug}/submit/", lambda v: {"comment": "Load test."})]
        version = None
        for kind, method, path, body in steps:
            status, data = self.call(kind, method, path, token=me["token"], body=body(version))
            if status >= 500 or status == 0:
                with self.lock:
                    self.unsure_saves.append({"slug": slug, "step": kind, "status": status})
            if not 200 <= status < 300:
                return
            version = data["version"]
            with self.lock:
                self.saves[slug] = {"version": version, "sha": data["head_sha"]}
                if kind == "save-create":
                    self.products.append(slug)
                elif kind == "save-submit" and data["status"] == "approved":
                    self.policy_approved.append(slug)
                    self.provisioned.append(slug)


# --- after the load -----------------------------------------------------------------------------
def drain(seconds: float) -> dict:
    """Waits for the accepted work to end and the remote to hold every commit; says how long it took."""
    from provisioning.models import Job, Run

    started = time.monotonic()
    next_progress = started + 30
    while time.monotonic() - started < seconds:
        active_jobs = Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.APPLYING]).count()
        active_runs = Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).count()
        if not active_jobs and not active_runs and remote_head() == local_head():
            break
        if time.monotonic() >= next_progress:
            next_progress += 30
            print(f"  draining: {active_jobs} jobs and {active_runs} runs still active", flush=True)
        time.sleep(1)
    return {"seconds": round(time.monotonic() - started, 1)}


def git(*args: str, repo: Path | None = None) -> str:
    from django.conf import settings

    return subprocess.run(["git", "-C", str(repo or settings.WID_REPO_PATH), *args], capture_output=True,
                          text=True).stdout


def local_head() -> str:
    return git("rev-parse", "HEAD").strip()


def remote_head() -> str:
    return git("rev-parse", "main", repo=HOME / "remote.git").strip()


def prove(load: Load) -> dict:
    """Every save answered 2xx in git, the index and the remote; every accepted job and run final."""
    from django.conf import settings

    from onboarding.models import Product
    from provisioning.models import Job, Run

    history = set(git("rev-list", "HEAD").split())
    on_remote = set(git("rev-list", "main", repo=HOME / "remote.git").split())
    index = {p.slug: p for p in Product.objects.all()}
    lost = []
    for slug, save in load.saves.items():
        product = index.get(slug)
        text = git("show", f"HEAD:{product.path}") if product else ""
        found = re.search(r"^version: (\d+)$", text, flags=re.M)
        in_git = int(found.group(1)) if found else 0
        problems = [problem for problem, failed in (
            ("its commit is not in HEAD's history", save["sha"] not in history),
            (f"HEAD holds version {in_git}, not {save['version']} or later", in_git < save["version"]),
            ("not in the index" if product is None else f"the index holds version {product.version}, git {in_git}",
             product is None or product.version != in_git),
            ("its commit is not on the remote", save["sha"] not in on_remote),
        ) if failed]
        if problems:
            lost.append({"slug": slug, "accepted_version": save["version"], "problems": problems})
    check = subprocess.run([sys.executable, "manage.py", "rebuild_index", "--check"], cwd=ROOT, env=os.environ,
                           capture_output=True, text=True)

    def final_or_not(model, ids) -> list[dict]:
        return [{"id": row.pk, "product": row.product.slug, "status": row.status, "step": getattr(row, "step", ""),
                 "worker": row.worker, "heartbeat_at": row.heartbeat_at}
                for row in model.objects.filter(pk__in=ids).exclude(status__in=model.FINISHED).select_related("product")]

    approved_applies = Job.objects.filter(product__slug__in=load.policy_approved, action=Job.Action.APPLY)
    missing_applies = sorted(set(load.policy_approved) - set(approved_applies.values_list("product__slug", flat=True)))
    stuck_jobs = final_or_not(Job, [*load.accepted_jobs, *approved_applies.values_list("pk", flat=True)])
    stuck_runs = final_or_not(Run, load.accepted_runs)
    missing_jobs = sorted(set(load.accepted_jobs) - set(Job.objects.filter(pk__in=load.accepted_jobs).values_list("pk", flat=True)))
    missing_runs = sorted(set(load.accepted_runs) - set(Run.objects.filter(pk__in=load.accepted_runs).values_list("pk", flat=True)))
    proof = {
        "saves_accepted": len(load.saves), "saves_lost": lost, "saves_unsure": load.unsure_saves,
        "index_check_exit": check.returncode, "index_check_output": (check.stdout + check.stderr)[-3000:],
        "remote_at_head": remote_head() == local_head(), "commits": len(history),
        "jobs_not_final": stuck_jobs, "runs_not_final": stuck_runs,
        "jobs_missing": missing_jobs, "runs_missing": missing_runs, "applies_missing": missing_applies,
        "wid_repo": str(settings.WID_REPO_PATH),
    }
    proof["nothing_lost"] = not (lost or check.returncode or stuck_jobs or stuck_runs or missing_jobs
                                 or missing_runs or missing_applies or not proof["remote_at_head"])
    return proof


def outcomes_of(model, ids) -> dict:
    rows = model.objects.filter(pk__in=ids)
    errors = Counter(re.sub(r"\d+", "N", e)[:200] for e in rows.exclude(error="").values_list("error", flat=True))
    return {"by_status": dict(Counter(rows.values_list("status", flat=True))),
            "errors": dict(errors.most_common(5)),
            "seconds_to_finish_p50_p95": percentiles([
                (r.finished_at - r.created_at).total_seconds() for r in rows.exclude(finished_at=None)])}


def percentiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [round(v, 3) for v in values * 2]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [round(cuts[49], 3), round(cuts[94], 3)]


def report(load: Load, drained: dict, proof: dict, portal: Portal, webhook: WebhookReceiver, args,
           load_before) -> dict:
    from docs_site.models import SiteBuild
    from portal.work.models import Delivery
    from provisioning.models import Job, Run

    kinds = {}
    print(f"\n{'kind':<18}{'requests':>9}{'ok':>7}{'refused':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}")
    for kind in KINDS:
        if kind not in load.latencies:
            continue
        outcomes = load.outcomes[kind]
        total = sum(outcomes.values())
        refused = sum(c for o, c in outcomes.items() if o.startswith("refused"))
        errors = total - outcomes["ok"] - refused
        p50, p95 = (v * 1000 for v in percentiles(load.latencies[kind]))
        kinds[kind] = {"requests": total, "outcomes": dict(outcomes), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
        print(f"{kind:<18}{total:>9}{outcomes['ok']:>7}{refused:>9}{errors:>8}{p50:>9.1f}{p95:>9.1f}")
    total = sum(k["requests"] for k in kinds.values())
    everything = Counter()
    for outcomes in load.outcomes.values():
        everything.update(outcomes)
    server_errors = sum(c for o, c in everything.items() if o.startswith("error"))
    timeouts = sum(c for o, c in everything.items() if o == "timeout" or o.startswith("connection"))
    unexpected = sum(c for o, c in everything.items() if o.startswith("unexpected"))
    refused = sum(c for o, c in everything.items() if o.startswith("refused"))
    all_p50, all_p95 = (v * 1000 for v in percentiles([x for v in load.latencies.values() for x in v]))
    jobs = outcomes_of(Job, [*load.accepted_jobs, *Job.objects.filter(
        product__slug__in=load.policy_approved, action="apply").values_list("pk", flat=True)])
    runs = outcomes_of(Run, load.accepted_runs)
    result = {
        "duration_s": round(load.elapsed, 1), "clients": args.clients, "think_s": args.think,
        "cores": os.cpu_count(), "load_average_before": round(load_before[0], 2),
        "load_average_during_mean": round(statistics.fmean(load.load_samples or [0]), 2),
        "cpu_seconds_during_load": {"available": round(load.elapsed * os.cpu_count(), 1),
                                    "machine_busy": load.machine_busy, "clients": load.clients_cpu, **load.cpu},
        "requests": total, "requests_per_s": round(total / max(load.elapsed, 1), 1),
        "p50_ms": round(all_p50, 1), "p95_ms": round(all_p95, 1),
        "error_rate": round((server_errors + timeouts) / max(total, 1), 5),
        "server_errors_5xx": server_errors, "timeouts_and_connection_errors": timeouts,
        "unexpected_4xx": unexpected, "refused_409_503": refused, "kinds": kinds,
        "error_samples": dict(load.samples),
        "saves": {"products_created": sum(1 for s in load.saves), "policy_approved": len(load.policy_approved),
                  "commits_accepted": sum(load.outcomes[k]["ok"] for k in ("save-create", "save-patch", "save-submit"))},
        "jobs": {"accepted_plans": len(load.accepted_jobs), "policy_applies": len(load.policy_approved), **jobs},
        "runs": {"accepted": len(load.accepted_runs), **runs},
        "site_builds": dict(Counter(SiteBuild.objects.values_list("status", flat=True))),
        "deliveries": {f"{c} {s}": n for (c, s), n in Counter(Delivery.objects.values_list("channel", "status")).items()},
        "webhooks_received": dict(webhook.received),
        "drain": drained, "processes": portal.health(), "proof": proof,
    }
    print(f"\nall: {total} requests in {load.elapsed:.0f} s ({result['requests_per_s']} req/s), p50 {all_p50:.1f} ms, "
          f"p95 {all_p95:.1f} ms; error rate {result['error_rate']:.3%} ({server_errors} 5xx, {timeouts} timeouts or "
          f"connection errors); {unexpected} unexpected 4xx; {refused} refused as documented (409, 503)")
    print(f"saves: {result['saves']['commits_accepted']} commits accepted over {len(load.saves)} new products, "
          f"{len(load.policy_approved)} approved by the policy")
    print(f"jobs: {len(load.accepted_jobs)} plans accepted + {len(load.policy_approved)} applies: "
          f"{jobs['by_status']}, accepted-to-finished p50/p95 {jobs['seconds_to_finish_p50_p95']} s")
    print(f"runs: {len(load.accepted_runs)} accepted: {runs['by_status']}, "
          f"accepted-to-finished p50/p95 {runs['seconds_to_finish_p50_p95']} s")
    for label, errors in (("job", jobs["errors"]), ("run", runs["errors"])):
        for error, count in errors.items():
            print(f"  {label} error x{count}: {error}")
    print(f"drain: {drained['seconds']} s; site builds {result['site_builds']}; deliveries {result['deliveries']}")
    ours = sum(load.cpu.values())
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.1f} before, "
          f"{result['load_average_during_mean']:.1f} on average during the load; CPU seconds during the load: "
          f"{load.elapsed * os.cpu_count():.0f} available, {load.machine_busy:.0f} used, of which the portal "
          f"{ours:.0f} (" + ", ".join(f"{n} {c:.0f}" for n, c in load.cpu.items()) + f"), the clients {load.clients_cpu:.0f}, "
          "the rest other processes")
    print("processes: " + ", ".join(f"{name} {h['restarts']} restarts, {h['tracebacks']} tracebacks"
                                    + (f", {h['worker_timeouts']} worker timeouts" if h["worker_timeouts"] else "")
                                    for name, h in result["processes"].items()))
    print(f"proof: {proof['saves_accepted']} products' accepted saves checked: {len(proof['saves_lost'])} lost; "
          f"{len(proof['saves_unsure'])} saves answered 5xx or nothing; rebuild_index --check exit "
          f"{proof['index_check_exit']}; remote at HEAD: {proof['remote_at_head']}; jobs not final "
          f"{[j['id'] for j in proof['jobs_not_final']]}, runs not final {[r['id'] for r in proof['runs_not_final']]}, "
          f"missing {proof['jobs_missing'] + proof['runs_missing'] + proof['applies_missing']}")
    print("NOTHING LOST" if proof["nothing_lost"] else "SOMETHING WAS LOST OR IS STUCK: see result.json's proof")
    for key, bodies in load.samples.items():
        print(f"  sample {key}: {bodies[0][:240]}")
    return result


def clean_warehouse() -> None:
    """Drops the roles, schemas and queue registrations of this run's products from the shared warehouse."""
    import psycopg
    from psycopg import sql

    from provisioning import services

    try:
        with psycopg.connect(services.warehouse_dsn(), autocommit=True) as admin:
            pattern = "^p_" + SLUG_PREFIX.replace("-", "_")
            for (name,) in admin.execute("SELECT nspname FROM pg_namespace WHERE nspname ~ %s", [pattern]).fetchall():
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            for (name,) in admin.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s", [pattern]).fetchall():
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
            if admin.execute("SELECT to_regclass('platform_registry.compute_queues')").fetchone()[0]:
                admin.execute("DELETE FROM platform_registry.compute_queues WHERE starts_with(product, %s)",
                              [SLUG_PREFIX])
    except Exception as exc:  # django not set up (it failed before) or the warehouse is down
        print(f"could not clean the warehouse: {exc}")


if __name__ == "__main__":
    main()
