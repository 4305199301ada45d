"""Adapter around the WID git repository: the only code that touches git.

Writers from several web and worker processes serialise on an exclusive `flock` held for the
whole read-check-write-commit sequence; the kernel releases it if a process dies, so a crash
never leaves the repository locked. Every error leaves as `GitError`, which says whether trying
again can help.
"""
import fcntl
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import git
from django.conf import settings


def _stdin(text: str):
    """A readable file holding `text`, for git commands that read standard input."""
    stream = tempfile.TemporaryFile()
    stream.write(text.encode("utf-8"))
    stream.seek(0)
    return stream


class GitError(Exception):
    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class RepositoryBusy(GitError):
    def __init__(self):
        super().__init__("the WID repository is busy; try again", permanent=False)


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author_name: str
    author_email: str
    date: datetime
    message: str


_FIELD_SEP = "\x1f"
_LOG_FORMAT = _FIELD_SEP.join(["%H", "%an", "%ae", "%aI", "%s"])


class WidRepository:
    def __init__(self, path: Path, *, branch: str = "main", remote: str = ""):
        self.path = Path(path)
        self.branch = branch
        self.remote = remote
        self._repo: git.Repo | None = None

    # --- set-up ---------------------------------------------------------------------------
    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open_or_create()
        return self._repo

    def _open_or_create(self) -> git.Repo:
        if (self.path / ".git").is_dir():
            repo = git.Repo(self.path)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            with self._flock(self.path.with_name(f".{self.path.name}.init-lock"), timeout=30):
                if (self.path / ".git").is_dir():
                    repo = git.Repo(self.path)
                else:
                    repo = git.Repo.init(self.path, initial_branch=self.branch)
                    readme = self.path / "README.md"
                    readme.write_text(
                        "# Work Initiation Documents\n\nOne file per data product under "
                        "`wids/<domain>/<slug>.md`, written by the onboarding portal.\n"
                    )
                    repo.index.add(["README.md"])
                    portal = git.Actor("Onboarding portal", "portal@localhost")
                    repo.index.commit("Create the WID repository", author=portal, committer=portal)
        if self.remote:
            if "origin" not in [r.name for r in repo.remotes]:
                repo.create_remote("origin", self.remote)
            elif repo.remotes.origin.url != self.remote:
                repo.remotes.origin.set_url(self.remote)
        return repo

    # --- locking --------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def _flock(lock_path: Path, *, timeout: float):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RepositoryBusy() from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextmanager
    def locked(self, timeout: float | None = None):
        """Hold the repository's write lock; commit_file must run inside it."""
        timeout = settings.WID_REPO_LOCK_TIMEOUT if timeout is None else timeout
        with self._flock(Path(self.repo.git_dir) / "portal-write.lock", timeout=timeout):
            yield

    # --- reads ----------------------------------------------------------------------------
    def read(self, relpath: str) -> str | None:
        """The file as committed at the tip (the work tree always equals it under the lock)."""
        try:
            return (self.path / relpath).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def show(self, sha: str, relpath: str) -> str:
        try:
            return self.repo.git.show(f"{sha}:{relpath}")
        except git.GitCommandError as exc:
            raise GitError(f"no {relpath} at {sha}", permanent=True) from exc

    def history(self, relpath: str) -> list[CommitInfo]:
        """Commits that changed the file, newest first."""
        out = self.repo.git.log(f"--format={_LOG_FORMAT}", "--", relpath)
        commits = []
        for line in out.splitlines():
            sha, name, email, date, message = line.split(_FIELD_SEP, 4)
            commits.append(CommitInfo(sha, name, email, datetime.fromisoformat(date), message))
        return commits

    def tracked_files(self, prefix: str) -> list[str]:
        out = self.repo.git.ls_files("-z", "--", prefix)
        return [p for p in out.split("\0") if p]

    def file_spans(self, prefix: str) -> dict[str, tuple[CommitInfo, CommitInfo]]:
        """For every file under `prefix` ever committed: (its first commit, its latest commit).

        One `git log` over the whole history instead of one per file.
        """
        out = self.repo.git.log(f"--format=%x1e{_LOG_FORMAT}", "--name-only", "--", prefix)
        spans: dict[str, tuple[CommitInfo, CommitInfo]] = {}
        for record in out.split("\x1e"):
            if not record.strip():
                continue
            header, *paths = record.strip("\n").split("\n")
            sha, name, email, date, message = header.split(_FIELD_SEP, 4)
            info = CommitInfo(sha, name, email, datetime.fromisoformat(date), message)
            for path in filter(None, paths):
                first, latest = spans.get(path, (info, info))
                spans[path] = (info, latest)  # log runs newest first: the last seen is the first
        return spans

    def histories(self, prefix: str) -> dict[str, list[CommitInfo]]:
        """Every file's commits under `prefix`, newest first, from one `git log` (the site build)."""
        out = self.repo.git.log(f"--format=%x1e{_LOG_FORMAT}", "--name-only", "--", prefix)
        commits: dict[str, list[CommitInfo]] = {}
        for record in out.split("\x1e"):
            if not record.strip():
                continue
            header, *paths = record.strip("\n").split("\n")
            sha, name, email, date, message = header.split(_FIELD_SEP, 4)
            info = CommitInfo(sha, name, email, datetime.fromisoformat(date), message)
            for path in filter(None, paths):
                commits.setdefault(path, []).append(info)
        return commits

    def head(self) -> str:
        return self.repo.head.commit.hexsha

    # --- writes ---------------------------------------------------------------------------
    def commit_file(self, relpath: str, content: str, *, author: Author, message: str) -> CommitInfo:
        """Write one file and commit it alone; on any failure the tree is put back as it was.

        Git's plumbing rather than GitPython's pure-Python index: `write-tree` reuses the index's
        cache-tree, so a commit costs the same with 10 or 10,000 WIDs in the repository.
        """
        target = self.path / relpath
        previous = self.read(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".wid-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(content)
            os.replace(tmp, target)
            g = self.repo.git
            parent = self.head()
            g.update_index("--add", "--", relpath)
            tree = g.write_tree()
            when = datetime.now(timezone.utc).replace(microsecond=0)
            stamp = f"{int(when.timestamp())} +0000"
            env = {
                "GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email, "GIT_AUTHOR_DATE": stamp,
                "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email, "GIT_COMMITTER_DATE": stamp,
            }
            sha = g.commit_tree(tree, "-p", parent, "-F", "-", istream=_stdin(message), env=env)
            # Compare-and-swap on the branch: never moves it if someone else did in between.
            g.update_ref("-m", f"commit: {message[:60]}", "HEAD", sha, parent)
            return CommitInfo(sha, author.name, author.email, when, message)
        except Exception as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            self._restore(relpath, previous)
            raise GitError(f"could not commit {relpath}: {exc}", permanent=False) from exc

    def _restore(self, relpath: str, previous: str | None) -> None:
        try:
            self.repo.git.reset("-q", "HEAD", "--", relpath)
        except git.GitCommandError:
            pass
        target = self.path / relpath
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_text(previous, encoding="utf-8")

    def rewind(self, sha: str) -> None:
        """Drop the commits made after `sha`, with the index and work tree, if there are any.

        Only for commits made under the write lock in a save that then failed (its database
        transaction rolled back, a domain-event receiver raised): nothing was built on them, and
        the push after a save waits for its transaction to commit (only a periodic push in that
        very instant could have sent one).
        """
        if self.head() == sha:
            return
        try:
            self.repo.git.reset("-q", "--hard", sha)
        except git.GitCommandError as exc:
            raise GitError(f"could not rewind to {sha}: {exc}", permanent=False) from exc

    def commit_tree(self, *, author: Author, message: str) -> str:
        """Commit everything under wids/ as it is on disk (bulk imports and the benchmark)."""
        self.repo.git.add("--all", "--", "wids")
        actor = git.Actor(author.name, author.email)
        return self.repo.index.commit(message, author=actor, committer=actor).hexsha

    def push(self) -> None:
        if not self.remote:
            return
        # Read the tip under the write lock: a save that fails takes its commit back (`rewind`)
        # before releasing the lock, so a tip read under it is never one that will disappear.
        with self.locked():
            tip = self.head()
        try:
            self.repo.git.push("origin", f"{tip}:refs/heads/{self.branch}")
        except git.GitCommandError as exc:
            text = f"{exc.stderr or ''} {exc.stdout or ''}"
            rejected = any(word in text for word in ("rejected", "non-fast-forward", "fetch first"))
            raise GitError(f"push to {self.remote} failed: {text.strip()}", permanent=rejected) from exc


# GitPython's Repo keeps long-lived `git cat-file` processes and is not thread-safe: one per thread.
_local = threading.local()


def get_repository() -> WidRepository:
    key = (str(settings.WID_REPO_PATH), settings.WID_REPO_BRANCH, settings.WID_REPO_REMOTE)
    cache = _local.__dict__.setdefault("repositories", {})
    if key not in cache:
        cache[key] = WidRepository(
            settings.WID_REPO_PATH, branch=settings.WID_REPO_BRANCH, remote=settings.WID_REPO_REMOTE
        )
    return cache[key]
