"""The one adapter that runs Terraform (docs/adr/0001): a subprocess per command, output streamed.

Each command gets the project's own environment (CLI config, HOME, no checkpoint) and runs
through `portal.work.process`: in its own process group, which a cancel or the deadline shared by
all of a job's commands interrupts and which never outlives the command (nor the worker), with
every output line handed to a callback as soon as it is printed. Failures raise `TerraformError`,
which says whether trying again can help.
"""
import json
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from portal.work import process
from provisioning.toolchain import ensure_toolchain


class TerraformError(Exception):
    def __init__(self, message: str, *, permanent: bool, exit_code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.exit_code = exit_code


class Cancelled(TerraformError):
    def __init__(self):
        super().__init__("cancelled", permanent=True)


@dataclass
class PlanResult:
    add: int = 0
    change: int = 0
    remove: int = 0
    changed_resources: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        return {"add": self.add, "change": self.change, "destroy": self.remove}

    @property
    def touches_existing(self) -> bool:
        return bool(self.change or self.remove)

    @property
    def accounted_for(self) -> bool:
        """Whether the changes listed are exactly the ones the summary counts (nothing missed in reading)."""
        verbs = [entry.partition(" ")[0] for entry in self.changed_resources]
        return (verbs.count("create") + verbs.count("replace"), verbs.count("update"),
                verbs.count("delete") + verbs.count("replace")) == (self.add, self.change, self.remove)

    @property
    def only_updates_in_place(self) -> bool:
        """Every planned change creates, updates in place, or removes a grant of access (a grant or
        a personal login): nothing is replaced, no data is destroyed."""
        for entry in self.changed_resources:
            verb, _, address = entry.partition(" ")
            if verb in ("create", "update", "read", "noop", "drift"):
                continue
            if verb == "delete" and any(f"{kind}." in address for kind in REVOCABLE_RESOURCE_TYPES):
                continue
            return False
        return True


# Terraform 1.0's human plan: one header per resource, then the summary (read by `apply_if`).
_HUMAN_CHANGE = re.compile(r"^\s*# (?P<addr>\S+) (?P<what>will be created|will be updated in-place|will be destroyed|"
                           r"must be replaced|will be read during apply)")
_HUMAN_VERBS = {"will be created": "create", "will be updated in-place": "update", "will be destroyed": "delete",
                "must be replaced": "replace", "will be read during apply": "read"}
_HUMAN_SUMMARY = re.compile(r"^Plan: (?P<add>\d+) to add, (?P<change>\d+) to change, (?P<remove>\d+) to destroy\.")

# Resources whose removal revokes access and destroys no data.
REVOCABLE_RESOURCE_TYPES = ("localplatform_grant", "localplatform_reader")


def _message(line: str) -> tuple[str, dict | None]:
    """A `-json` line as (human text, with a diagnostic's detail, the object); plain lines as (line, None)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line, None
    if not isinstance(obj, dict):
        return line, None
    text = str(obj.get("@message", line))
    diagnostic = obj.get("diagnostic")
    detail = diagnostic.get("detail") if isinstance(diagnostic, dict) else ""
    return (f"{text}: {detail}" if detail else text), obj


class Terraform:
    """Terraform in one working directory, on one workspace, within one deadline for all its commands."""

    def __init__(self, workdir: Path, *, workspace: str, extra_env: dict[str, str] | None = None,
                 on_line: Callable[[str], None] = lambda line: None,
                 should_cancel: Callable[[], bool] = lambda: False,
                 deadline: float | None = None, on_start: Callable[[int], None] | None = None):
        """`deadline`: seconds from now that every command together may take (JOB_TIMEOUT_SECONDS by
        default); `on_start` gets each command's process group id."""
        self.workdir = Path(workdir)
        self.workspace = workspace
        self.toolchain = ensure_toolchain()
        self.env = {**self.toolchain.env, **(extra_env or {}), "TF_WORKSPACE": workspace}
        self.on_line = on_line
        self.should_cancel = should_cancel
        self.on_start = on_start
        self.budget = settings.JOB_TIMEOUT_SECONDS if deadline is None else deadline
        self.ends_at = time.monotonic() + self.budget
        # Two runs on one workspace wait this long for each other's state lock, then fail.
        self.lock_timeout = settings.TERRAFORM_LOCK_TIMEOUT

    def _run(self, *args: str, workspace: bool = True, json_lines: bool = False,
             on_object: Callable[[dict], None] | None = None, ok_codes=(0,),
             on_text: Callable[[str], None] | None = None, answer: Callable[[str], str] | None = None) -> None:
        env = dict(self.env) if workspace else {k: v for k, v in self.env.items() if k != "TF_WORKSPACE"}

        def on_line(line: str) -> None:
            text, obj = _message(line) if json_lines else (line, None)
            if obj is not None and on_object:
                on_object(obj)
            if on_text is not None:
                on_text(text)
            self.on_line(text)

        # An interrupt lets terraform stop cleanly and release its state lock before the grace ends.
        result = process.run([str(self.toolchain.binary), *args], cwd=self.workdir, env=env, on_line=on_line,
                             deadline=self.ends_at - time.monotonic(), should_cancel=self.should_cancel,
                             cancel_signal=signal.SIGINT, grace=30, poll=0.5, on_start=self.on_start,
                             answer=answer)
        if result.timed_out:
            raise TerraformError(f"terraform {args[0]} ran past its deadline ({round(self.budget)} s) and was stopped",
                                 permanent=False, exit_code=result.exit_code)
        if result.cancelled:
            raise Cancelled()
        self._last_exit, self._last_lines = result.exit_code, result.lines_tail
        self._last_tail = next((t for t in (_message(l)[0] for l in reversed(result.lines_tail)) if t.strip()), "")
        if result.exit_code not in ok_codes:
            lines = result.lines_tail
            tail = next((t for t in (_message(l)[0] for l in reversed(lines)) if t.strip()), "")
            raise TerraformError(f"terraform {args[0]} failed (exit {result.exit_code}): {tail}",
                                 permanent=_is_permanent(lines), exit_code=result.exit_code)

    def init(self, backend_config: dict[str, str]) -> None:
        args = ["init", "-input=false", "-no-color", "-reconfigure"]
        args += [f"-backend-config={key}={value}" for key, value in backend_config.items()]
        self._run(*args, workspace=False)

    @staticmethod
    def _collector(result: "PlanResult") -> Callable[[dict], None]:
        """Reads the change summary and the planned changes out of `-json` lines as they stream."""
        def on_object(obj: dict) -> None:
            kind = obj.get("type")
            if kind == "change_summary":
                changes = obj.get("changes", {})
                result.add, result.change, result.remove = (changes.get(k, 0) for k in ("add", "change", "remove"))
            elif kind in ("planned_change", "resource_drift"):
                change = obj.get("change", {})
                resource = change.get("resource", {}).get("addr")
                if resource:
                    verb = change.get("action") if kind == "planned_change" else "drift"
                    result.changed_resources.append(f"{verb} {resource}")
        return on_object

    def plan(self, plan_file: str, *, destroy: bool = False, refresh_only: bool = False,
             lock: bool = True) -> PlanResult:
        result = PlanResult()
        args = ["plan", "-json", "-input=false", f"-lock-timeout={self.lock_timeout}", f"-out={plan_file}",
                "-detailed-exitcode"]
        if destroy:
            args.append("-destroy")
        if refresh_only:
            args.append("-refresh-only")
        if not lock:
            args.append("-lock=false")
        self._run(*args, json_lines=True, on_object=self._collector(result), ok_codes=(0, 2))
        return result

    def apply(self, plan_file: str | None = None) -> PlanResult:
        """Apply a saved plan, or plan and apply in one go (only where nothing exists yet to change)."""
        result = PlanResult()
        target = [plan_file] if plan_file else ["-auto-approve"]
        self._run("apply", "-json", "-input=false", f"-lock-timeout={self.lock_timeout}", *target,
                  json_lines=True, on_object=self._collector(result))
        return result

    def apply_if(self, judge: Callable[[PlanResult], bool]) -> tuple[PlanResult, bool]:
        """Plan and apply in one run, answering Terraform's own confirmation with `judge(plan)`: the
        plan is read from the output before the question (which comes before any change), so a plan
        the judge refuses changes nothing. (plan, applied); one refresh and one provider start fewer
        than `plan -out` followed by `apply` of the file."""
        result = PlanResult()
        decision = {"asked": False, "yes": False}

        def on_text(text: str) -> None:
            match = _HUMAN_CHANGE.match(text)
            if match:
                result.changed_resources.append(f"{_HUMAN_VERBS[match['what']]} {match['addr']}")
            summary = _HUMAN_SUMMARY.match(text)
            if summary:
                result.add, result.change, result.remove = (int(summary[k]) for k in ("add", "change", "remove"))

        def answer(prompt: str) -> str:
            decision["asked"] = True
            decision["yes"] = "Enter a value" in prompt and judge(result)
            return "yes\n" if decision["yes"] else "no\n"

        self._run("apply", "-input=true", "-no-color", f"-lock-timeout={self.lock_timeout}",
                  on_text=on_text, answer=answer, ok_codes=(0, 1))
        if decision["asked"] and not decision["yes"]:
            return result, False
        if self._last_exit != 0:
            raise TerraformError(f"terraform apply failed (exit {self._last_exit}): {self._last_tail}",
                                 permanent=_is_permanent(self._last_lines), exit_code=self._last_exit)
        return result, True

    def new_workspace(self) -> None:
        self._run("workspace", "new", "-no-color", self.workspace, workspace=False)


_PERMANENT_HINTS = ("Invalid", "Unsupported", "Error: Failed to query available provider packages",
                    "Could not load plugin", "Missing required argument", "Reference to undeclared")


def _is_permanent(lines: list[str]) -> bool:
    return any(hint in line for line in lines for hint in _PERMANENT_HINTS)


@dataclass(frozen=True)
class StateSummary:
    resources: int
    outputs: dict


def read_state(conn_str: str, *, workspace: str, schema: str = "terraform_remote_state") -> StateSummary | None:
    """A workspace's state as the pg backend stores it, or None if the workspace does not exist.

    Read straight from the backend's table: it saves starting terraform for `workspace list` and
    `output -json`, and the credentials' only copy is there.
    """
    import psycopg
    from psycopg import errors, sql

    try:
        with psycopg.connect(conn_str) as conn:
            row = conn.execute(
                sql.SQL("SELECT data FROM {}.states WHERE name = %s").format(sql.Identifier(schema)), [workspace]
            ).fetchone()
    except errors.UndefinedTable:
        return None  # no workspace was ever created on this backend
    if row is None:
        return None
    state = json.loads(row[0]) if row[0] else {}
    return StateSummary(resources=len(state.get("resources", [])), outputs=state.get("outputs", {}))
