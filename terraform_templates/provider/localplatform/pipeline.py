"""localplatform_pipeline: the product's pipeline repository, scaffolded from a template version.

`.portal-template.json` records the template version, the values the scaffold was rendered with
and a digest of each rendered file: read can tell when the repository is gone or differs from the
configuration, and an update rewrites only the files the team has not changed since.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from string import Template

from tf.schema import Attribute, Schema
from tf.types import String, Unknown

from localplatform.common import (
    PlatformResource, ProviderError, check_absolute, check_slug, child_dir, known, reported, role_name,
)

RECORD = ".portal-template.json"
RECORDED = ("template_version", "wid_url", "lake_path", "schema", "role")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
# RFC 3986 characters only: no quotes, spaces, angle brackets or backslashes reach a rendered file.
URL_RE = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
AUTHOR = ("Onboarding portal", "onboarding-portal@localhost")
SKIPPED = {"__pycache__", ".pytest_cache"}
# A variant scaffold (an ingestion pattern's) holds this file, naming the scaffold it extends relative to
# itself: the base's files, then the variant's in their place.
BASE = ".portal-base"


def git(repo: Path, *args: str, binary: bool = False, check: bool = True):
    # No system or user git config: commits look the same wherever the provider runs.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/nonexistent"),
        "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1],
        # A broken .git here must never send git to a repository above (PIPELINES_ROOT may sit in one).
        "GIT_CEILING_DIRECTORIES": str(Path(repo).resolve().parent),
    }
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, check=check,
                          text=not binary)


def has_commit(repo: Path, sha: str | None) -> bool:
    if not sha or not SHA_RE.fullmatch(sha):
        return False
    return git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0


def render(scaffold: Path, values: dict, *, extended: bool = False) -> dict[str, bytes]:
    """The scaffold's files by relative path; only `*.tmpl` files get the values, as `$name`."""
    if not scaffold.is_dir():
        raise ProviderError(f"scaffold_dir {scaffold} is not a directory")
    files = {}
    if (scaffold / BASE).is_file():
        base = (scaffold / (scaffold / BASE).read_text().strip()).resolve()
        if extended or base.parent.parent != scaffold.resolve().parent.parent:
            raise ProviderError(f"{scaffold / BASE} must name a scaffold beside it that extends none")
        files.update(render(base, values, extended=True))
    for source in sorted(scaffold.rglob("*")):
        relative = source.relative_to(scaffold)
        if not source.is_file() or SKIPPED & set(relative.parts) or source.suffix == ".pyc" or relative.name == BASE:
            continue
        if source.suffix == ".tmpl":
            try:
                text = Template(source.read_text()).substitute(values)
            except (KeyError, ValueError) as exc:
                raise ProviderError(f"{relative}: bad placeholder {exc}") from exc
            files[relative.with_suffix("").as_posix()] = text.encode()
        else:
            files[relative.as_posix()] = source.read_bytes()
    return files


class PipelineResource(PlatformResource):
    @classmethod
    def get_name(cls) -> str:
        return "pipeline"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=1, attributes=[
            Attribute("product", String(), required=True, requires_replace=True, description="Product slug."),
            Attribute("pipelines_root", String(), required=True, description="Absolute path of the repositories."),
            Attribute("scaffold_dir", String(), required=True, description="The template version's directory."),
            Attribute("template_version", String(), required=True, description="Recorded in .portal-template.json."),
            Attribute("wid_url", String(), required=True, description="The product's WID, linked from the README."),
            Attribute("lake_path", String(), required=True, description="localplatform_storage.lake_path."),
            Attribute("schema", String(), required=True, description="localplatform_storage.schema."),
            Attribute("role", String(), required=True, description="localplatform_storage.role."),
            Attribute("path", String(), computed=True, description="The repository."),
            Attribute("commit", String(), computed=True, description="HEAD after the scaffold was last written."),
        ])

    def check(self, config: dict) -> None:
        slug = config.get("product")
        if known(slug):
            check_slug(slug)
        for name in ("pipelines_root", "scaffold_dir", "lake_path"):
            if known(config.get(name)):
                check_absolute(name, config[name])
        for name in ("schema", "role"):
            if known(slug, config.get(name)) and config[name] != role_name(slug):
                raise ProviderError(f"{name} must be the product's own {role_name(slug)}")
        if known(slug, config.get("lake_path")) and Path(config["lake_path"]).name != slug:
            raise ProviderError(f"lake_path must be the product's own folder .../{slug}")
        if known(config.get("template_version")) and not VERSION_RE.fullmatch(config["template_version"]):
            raise ProviderError(f"template_version {config['template_version']!r} is not a version name")
        if known(config.get("wid_url")) and not URL_RE.fullmatch(config["wid_url"]):
            raise ProviderError(f"wid_url {config['wid_url']!r} is not a plain http(s) URL")

    def create(self, ctx, planned):
        with reported(ctx.diagnostics, f"Creating the pipeline repository of {planned['product']}"):
            return self._converge(ctx.diagnostics, planned)

    def update(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Updating the pipeline repository of {planned['product']}"):
            old = child_dir(Path(current["pipelines_root"]), current["product"])
            new = child_dir(check_absolute("pipelines_root", planned["pipelines_root"]), planned["product"])
            if old != new and old.is_dir() and not new.exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(old, new)
            return self._converge(ctx.diagnostics, planned)

    def read(self, ctx, current):
        with reported(ctx.diagnostics, f"Reading the pipeline repository of {current['product']}"):
            repo = Path(current["pipelines_root"]) / current["product"]
            if not (repo / ".git").is_dir():
                return None
            record = _record(repo)
            return {**current, **{name: record.get(name) for name in RECORDED}, "path": str(repo),
                    "commit": current["commit"] if has_commit(repo, current["commit"]) else None}
        return current

    def plan(self, ctx, current, planned):
        if known(planned["product"], planned["pipelines_root"]):
            planned["path"] = str(Path(planned["pipelines_root"]) / planned["product"])
        if ctx.changed_fields or not current.get("commit"):
            planned["commit"] = Unknown
        return planned

    def delete(self, ctx, current):
        with reported(ctx.diagnostics, f"Deleting the pipeline repository of {current['product']}"):
            repo = child_dir(Path(current["pipelines_root"]), current["product"])
            if repo.exists():
                shutil.rmtree(repo)
        return None

    def _converge(self, diags, state: dict) -> dict:
        self.check(state)
        slug = state["product"]
        repo = child_dir(check_absolute("pipelines_root", state["pipelines_root"]), slug)
        values = {"product": slug, **{name: state[name] for name in RECORDED}}
        files = render(check_absolute("scaffold_dir", state["scaffold_dir"]), values)
        born = _adopt(repo, slug)
        # Before the first commit every file is ours, whatever a killed apply left half written.
        rendered_before = _record(repo).get("files") or {} if born else {}
        written, conflicts = [], []
        for name, content in files.items():
            target = repo / name
            if target.is_symlink():
                conflicts.append(name)
                continue
            if target.exists() and born:
                present = _digest(target.read_bytes())
                if present != _digest(content) and present != rendered_before.get(name):
                    # The team changed it: theirs stays, with a warning if the template changed it too.
                    if _digest(content) != rendered_before.get(name):
                        conflicts.append(name)
                    continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(name)
        record = {**values, "files": {name: _digest(content) for name, content in files.items()}}
        (repo / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        written.append(RECORD)
        if conflicts:
            diags.add_warning(f"Kept {len(conflicts)} changed file(s) in the repository of {slug}",
                              f"Not updated to template {state['template_version']}: " + ", ".join(conflicts))
        git(repo, "add", "--", *written)
        if git(repo, "diff", "--cached", "--quiet", "--", *written, check=False).returncode:
            verb = "Scaffold" if not rendered_before else "Update the scaffold of"
            git(repo, "commit", "--quiet", "--no-verify", "-m",
                f"{verb} {slug} from pipeline template v{state['template_version']}", "--", *written)
        return {**state, "path": str(repo), "commit": git(repo, "rev-parse", "HEAD").stdout.strip()}


def _adopt(repo: Path, slug: str) -> bool:
    """Make `repo` the product's repository to scaffold into, taking over what an apply killed before
    Terraform recorded it left there; refuse anything else. True if it has commits already."""
    foreign = ProviderError(f"{repo} already exists and is not the scaffolded pipeline repository of {slug}: "
                            "move it away, then apply again")
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").is_dir() and any(repo.iterdir()):
        raise foreign
    if git(repo, "rev-parse", "--git-dir", check=False).returncode:
        # A new repository, or one a killed `git init` left half made: init finishes it.
        git(repo, "init", "--quiet", "--initial-branch=main")
    # Git's own locks can only be a killed apply's: Terraform's state lock lets one apply of the
    # product run at a time, and nothing else writes to this repository.
    git_dir = repo / ".git"
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", *(git_dir / "refs").rglob("*.lock")):
        lock.unlink(missing_ok=True)
    if git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode:
        return False
    roots = git(repo, "log", "--max-parents=0", "--format=%an%x00%s", "HEAD").stdout.splitlines()
    author, _, subject = (roots[0] if len(roots) == 1 else "").partition("\x00")
    if author != AUTHOR[0] or not subject.startswith(f"Scaffold {slug} from pipeline template v"):
        raise foreign
    return True


def _record(repo: Path) -> dict:
    try:
        record = json.loads((repo / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
