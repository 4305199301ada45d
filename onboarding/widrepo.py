"""Adapter around the WID git repository: the only code that touches git.

Writers from every process of a deployment (on one machine or several) serialise on a
PostgreSQL advisory lock, held on a connection of its own for the whole read-check-write-commit
sequence; PostgreSQL releases it when the holder's connection ends, so a crash never leaves the
repository locked. Reads come from the committed tree (HEAD), never from the work tree, so a file
written by a process killed before its commit is never taken as the truth; the next holder of the
lock clears what such a process left (`_recover`). Every error leaves as `GitError`, which says
whether trying again can help.
"""
import fnmatch
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import git
from django.conf import settings

logger = logging.getLogger(__name__)


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


class PushRejected(GitError):
    """The remote has commits this copy lacks (another machine pushed): fetch, replay, push again."""

    def __init__(self, message: str):
        super().__init__(message, permanent=False)


class RepositoryMissing(GitError):
    """The repository is gone and cannot be re-created without losing what the index knows."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


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


# `git log -z` with NUL between fields: the one byte no commit message or author holds. Every
# record starts with an empty field, which no path is, so records split cleanly even with paths.
_LOG_FORMAT = "%x00%H%x00%an%x00%ae%x00%aI%x00%s"


class WidRepository:
    def __init__(self, path: Path, *, branch: str = "main", remote: str = "", shared: bool = False,
                 deployment: str = ""):
        if shared and not remote:
            raise RepositoryMissing("WID_REPO_SHARED needs WID_REPO_REMOTE: the machines share their WIDs through it")
        self.path = Path(path)
        self.branch = branch
        self.remote = remote
        self.shared = shared
        # One lock per deployment: machines name it alike (DEPLOYMENT_NAME) or share the remote's URL.
        identity = deployment or remote or str(self.path.resolve())
        self.lock_key = int.from_bytes(hashlib.sha256(f"wid-repo:{identity}".encode()).digest()[:8], "big",
                                       signed=True)
        self._repo: git.Repo | None = None

    # --- set-up ---------------------------------------------------------------------------
    @property
    def repo(self) -> git.Repo:
        if self._repo is not None and not Path(self._repo.git_dir).is_dir():
            self._repo.close()  # deleted under a running process: open it again, as on start
            self._repo = None
        if self._repo is None:
            self._repo = self._open_or_create()
        return self._repo

    def _open_or_create(self) -> git.Repo:
        if not (self.path / ".git").is_dir():
            with self._deployment_lock(timeout=settings.WID_REPO_LOCK_TIMEOUT):
                if not (self.path / ".git").is_dir():
                    self._clone_or_init()
        repo = git.Repo(self.path)
        if self.remote:
            if "origin" not in [r.name for r in repo.remotes]:
                repo.create_remote("origin", self.remote)
            elif repo.remotes.origin.url != self.remote:
                repo.remotes.origin.set_url(self.remote)
        return repo

    def _clone_or_init(self) -> None:
        """Clone the remote when it has the branch; otherwise start a repository, but never an
        empty one while the index holds products (they would silently lose their files)."""
        if self.remote:
            try:
                tip = self._remote_tip(self.remote)
            except GitError as exc:
                self._refuse_if_indexed(f"its remote {self.remote} cannot be reached ({exc})")
            else:
                if tip:
                    self._clone()
                    return
                self._refuse_if_indexed(f"its remote {self.remote} has no branch {self.branch}")
        else:
            self._refuse_if_indexed("no WID_REPO_REMOTE is set to clone it from")
        if self.path.exists() and any(self.path.iterdir()):
            raise RepositoryMissing(f"{self.path} holds files but no git repository: move them away first")
        # Made aside and moved into place whole: another process that looks meanwhile finds either
        # no repository (and waits for the lock) or a complete one, never a half-made `.git`.
        partial = self.path.with_name(f".{self.path.name}.init-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            repo = git.Repo.init(partial, initial_branch=self.branch)
            (partial / "README.md").write_text(
                "# Work Initiation Documents\n\nOne file per data product under "
                "`wids/<domain>/<slug>.md`, written by the onboarding portal.\n"
            )
            repo.index.add(["README.md"])
            portal = git.Actor("Onboarding portal", "portal@localhost")
            repo.index.commit("Create the WID repository", author=portal, committer=portal)
            repo.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self.path.rmdir()
            partial.rename(self.path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _clone(self) -> None:
        partial = self.path.with_name(f".{self.path.name}.clone-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            git.Repo.clone_from(self.remote, partial, branch=self.branch,
                                kill_after_timeout=settings.WID_REPO_NETWORK_TIMEOUT).close()
            if self.path.exists():
                self.path.rmdir()  # an empty directory left by whoever deleted the repository
            partial.rename(self.path)
        except (git.GitCommandError, OSError) as exc:
            raise GitError(f"could not clone {self.remote} into {self.path}: {exc}", permanent=False) from exc
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        logger.warning("the WID repository %s was missing: cloned it from %s", self.path, self.remote)

    def _refuse_if_indexed(self, why: str) -> None:
        from onboarding.models import Product

        count = Product.objects.count()
        if count:
            raise RepositoryMissing(
                f"The WID repository {self.path} is missing and {why}, but the index holds {count} products: "
                f"restore the repository (or set WID_REPO_REMOTE to a remote holding it) before starting the "
                f"portal; an empty repository would lose their files."
            )

    # --- locking --------------------------------------------------------------------------
    @contextmanager
    def _deployment_lock(self, *, timeout: float):
        """A session-level advisory lock on a connection of our own: not tied to the caller's
        transaction (the rewind after a failed save still runs under it) and not re-entrant
        (another thread or object of this process waits like another machine would)."""
        import psycopg
        from django.db import connection

        try:
            conn = connection.get_new_connection(connection.get_connection_params())
        except Exception as exc:
            raise GitError(f"the database holding the WID repository's lock is unreachable: {exc}",
                           permanent=False) from exc
        try:
            conn.autocommit = True
            conn.execute(f"SET lock_timeout = {max(1, int(timeout * 1000))}")
            conn.execute("SELECT pg_advisory_lock(%s)", [self.lock_key])
        except psycopg.errors.LockNotAvailable:
            conn.close()
            raise RepositoryBusy() from None
        except psycopg.Error as exc:
            conn.close()
            raise GitError(f"could not take the WID repository's lock: {exc}", permanent=False) from exc
        try:
            yield
        finally:
            conn.close()  # ending the session releases the lock, even if the unlock would fail

    @contextmanager
    def locked(self, timeout: float | None = None):
        """Hold the deployment's write lock; commit_file must run inside it."""
        timeout = settings.WID_REPO_LOCK_TIMEOUT if timeout is None else timeout
        self.repo  # opened (cloned, created) first: that takes the same lock
        with self._deployment_lock(timeout=timeout):
            self._recover()
            yield

    def _pending(self) -> Path:
        return Path(self.repo.git_dir) / "portal-pending"

    @contextmanager
    def _writing(self):
        """Mark the index and work tree as being changed: if this process dies before the end,
        the next holder of the lock finds the mark and puts both back as HEAD has them."""
        self._pending().write_text(str(os.getpid()))
        yield
        self._pending().unlink(missing_ok=True)

    def _recover(self) -> None:
        """Under the write lock: clear what a process killed mid-write left (lock files of git,
        a staged or written file that was never committed). No process of the portal runs a
        writing git command without the lock, so any lock file found now belongs to a dead one."""
        git_dir = Path(self.repo.git_dir)
        locks = [git_dir / name for name in ("index.lock", "HEAD.lock", "packed-refs.lock",
                                              f"refs/heads/{self.branch}.lock",
                                              f"refs/remotes/origin/{self.branch}.lock")]
        if not self._pending().exists() and not any(lock.exists() for lock in locks):
            return
        # An outside `git status` refreshes the index under index.lock for a few milliseconds.
        deadline = time.monotonic() + 1
        while any(lock.exists() for lock in locks) and time.monotonic() < deadline:
            time.sleep(0.05)
        for lock in locks:
            if lock.exists():
                lock.unlink(missing_ok=True)
                logger.warning("removed %s, left by a git process that died", lock)
        try:
            self.repo.git.reset("-q", "--hard", "HEAD")
            self.repo.git.clean("-q", "-f", "-d", "--", "wids")
        except git.GitCommandError as exc:
            raise GitError(f"could not restore the work tree of {self.path}: {exc}", permanent=False) from exc
        self._pending().unlink(missing_ok=True)
        logger.warning("the WID repository's index and work tree were put back to HEAD after an interrupted write")

    # --- reads ----------------------------------------------------------------------------
    def read(self, relpath: str, *, after: str = "") -> str | None:
        """The file as committed at HEAD (None if it is not there). `after`: a commit the caller
        knows of (the index's); a copy that lacks it catches up with the remote first."""
        if after:
            self.catch_up(after)
        try:
            blob = self.repo.head.commit.tree / relpath
        except KeyError:
            return None
        return blob.data_stream.read().decode("utf-8")

    def read_all(self, prefix: str) -> dict[str, str]:
        """Every file under `prefix` at HEAD, from one `cat-file --batch`."""
        listing = self.repo.git.ls_tree("-r", "-z", "HEAD", "--", prefix)
        entries = [line.split("\t", 1) for line in listing.split("\0") if line]
        blobs = [(meta.split()[2], path) for meta, path in entries if meta.split()[1] == "blob"]
        if not blobs:
            return {}
        out = self.repo.git.cat_file("--batch", istream=_stdin("".join(f"{sha}\n" for sha, _ in blobs)),
                                     stdout_as_string=False, strip_newline_in_stdout=False)
        files, pos = {}, 0
        for _, path in blobs:
            end = out.index(b"\n", pos)
            size = int(out[pos:end].split()[2])
            files[path] = out[end + 1:end + 1 + size].decode("utf-8")
            pos = end + 1 + size + 1
        return files

    def show(self, sha: str, relpath: str) -> str:
        try:
            return self.repo.git.show(f"{sha}:{relpath}")
        except git.GitCommandError as exc:
            raise GitError(f"no {relpath} at {sha}", permanent=True) from exc

    def _log(self, *args: str) -> list[tuple[CommitInfo, list[str]]]:
        """(commit, paths) of `git log ARGS`, newest first; paths only with --name-only."""
        fields = self.repo.git.log("-z", f"--format={_LOG_FORMAT}", *args).split("\0")
        records, i = [], 0
        while i + 5 < len(fields):
            if fields[i]:  # not the empty field that opens a record: git's output changed shape
                raise GitError(f"unexpected git log output near {fields[i]!r}", permanent=True)
            sha, name, email, date, message = fields[i + 1:i + 6]
            i += 6
            paths = []
            while i < len(fields) and fields[i]:
                paths.append(fields[i].removeprefix("\n"))
                i += 1
            records.append((CommitInfo(sha, name, email, datetime.fromisoformat(date), message), paths))
        return records

    def history(self, relpath: str) -> list[CommitInfo]:
        """Commits that changed the file, newest first."""
        return [info for info, _ in self._log("--", relpath)]

    def tracked_files(self, pattern: str) -> list[str]:
        """Paths at HEAD under a directory or matching a glob (`wids/*/slug.md`)."""
        top = pattern.split("*", 1)[0].rsplit("/", 1)[0] if "*" in pattern else pattern
        out = self.repo.git.ls_tree("-r", "-z", "--name-only", "HEAD", "--", top)
        paths = [p for p in out.split("\0") if p]
        return [p for p in paths if fnmatch.fnmatchcase(p, pattern)] if "*" in pattern else paths

    def file_spans(self, prefix: str) -> dict[str, tuple[CommitInfo, CommitInfo]]:
        """For every file under `prefix` ever committed: (its first commit, its latest commit).

        One `git log` over the whole history instead of one per file.
        """
        spans: dict[str, tuple[CommitInfo, CommitInfo]] = {}
        for info, paths in self._log("--name-only", "--", prefix):
            for path in paths:
                first, latest = spans.get(path, (info, info))
                spans[path] = (info, latest)  # log runs newest first: the last seen is the first
        return spans

    def histories(self, prefix: str) -> dict[str, list[CommitInfo]]:
        """Every file's commits under `prefix`, newest first, from one `git log` (the site build)."""
        commits: dict[str, list[CommitInfo]] = {}
        for info, paths in self._log("--name-only", "--", prefix):
            for path in paths:
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
            with self._writing():
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
                    "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email,
                    "GIT_COMMITTER_DATE": stamp,
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
            return  # the mark stays: the next holder of the lock restores everything
        target = self.path / relpath
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_text(previous, encoding="utf-8")
        self._pending().unlink(missing_ok=True)

    def rewind(self, sha: str) -> None:
        """Drop the commits made after `sha`, with the index and work tree, if there are any.

        Only for commits made under the write lock in a save whose database transaction did not
        commit: nothing was built on them, and the push after a save waits for its transaction to
        commit (a shared deployment's save pushes before, and then never rewinds).
        """
        if self.head() == sha:
            return
        self._reset(sha)

    def _reset(self, sha: str) -> None:
        try:
            with self._writing():
                self.repo.git.reset("-q", "--hard", sha)
        except git.GitCommandError as exc:
            raise GitError(f"could not reset {self.path} to {sha}: {exc}", permanent=False) from exc

    def commit_tree(self, *, author: Author, message: str) -> str:
        """Commit everything under wids/ as it is on disk (bulk imports and the benchmark)."""
        self.repo.git.add("--all", "--", "wids")
        actor = git.Actor(author.name, author.email)
        return self.repo.index.commit(message, author=actor, committer=actor).hexsha

    def changed_paths(self, old: str, new: str, prefix: str = "wids") -> list[str]:
        out = self.repo.git.diff("--name-only", "-z", old, new, "--", prefix)
        return [p for p in out.split("\0") if p]

    def has_commit(self, sha: str) -> bool:
        try:
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    # --- the remote -----------------------------------------------------------------------
    @staticmethod
    def _network(runner: git.Git, command: str, *args: str) -> str:
        """A git command that talks to the remote, ended if it hangs (a remote that stopped answering)."""
        return getattr(runner, command)(*args, kill_after_timeout=settings.WID_REPO_NETWORK_TIMEOUT)

    def _remote_tip(self, url: str) -> str:
        """The sha of the branch on the remote, empty if it has none; GitError if unreachable."""
        try:
            out = self._network(git.Git(), "ls_remote", url, f"refs/heads/{self.branch}")
        except git.GitCommandError as exc:
            raise GitError(f"{url} cannot be reached: {(exc.stderr or '').strip()}", permanent=False) from exc
        return out.split("\t", 1)[0] if out.strip() else ""

    def fetch(self) -> str:
        """Fetch the remote's branch; its tip, empty if the remote has no branch yet."""
        tip = self._remote_tip(self.remote)
        if tip:
            try:
                self._network(self.repo.git, "fetch", "--quiet", "--no-auto-gc", "origin",
                              f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}")
            except git.GitCommandError as exc:
                raise GitError(f"fetch from {self.remote} failed: {(exc.stderr or '').strip()}",
                               permanent=False) from exc
        return tip

    def sync(self) -> None:
        """Under the lock, in a shared deployment: make this copy the remote's tip.

        The remote is the truth there: a save answers only after its push, so a commit that is
        here and not there belongs to a save that was not accepted. It is set aside under
        refs/portal/set-aside/, never deleted, and logged.
        """
        if not self.shared:
            return
        tip, head = self.fetch(), self.head()
        if not tip:
            self.push()  # a new remote: this copy's history starts it
            return
        if tip == head:
            return
        if not self.is_ancestor(head, tip):
            aside = f"refs/portal/set-aside/{head}"
            self.repo.git.update_ref(aside, head)
            logger.warning("commits up to %s never reached %s: set aside as %s", head, self.remote, aside)
        self._reset(tip)

    def catch_up(self, sha: str) -> None:
        """Make sure this copy's HEAD holds `sha` (a commit the shared index names), fetching if not.

        In HEAD's history, not merely among the objects: another process of this machine may be in
        the middle of a sync, its fetch done and its reset not yet; then the lock waits for it."""
        if not self.shared or not sha or self._holds(sha):
            return
        with self.locked():
            if not self._holds(sha):
                self.sync()

    def _holds(self, sha: str) -> bool:
        return self.has_commit(sha) and self.is_ancestor(sha, self.head())

    def is_ancestor(self, old: str, new: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", old, new)
            return True
        except git.GitCommandError:
            return False

    def push(self, sha: str = "") -> str:
        """Push `sha` (HEAD by default) as the remote's branch; PushRejected if the remote moved on."""
        if not self.remote:
            return ""
        sha = sha or self.head()
        try:
            self._network(self.repo.git, "push", "--quiet", "origin", f"{sha}:refs/heads/{self.branch}")
        except git.GitCommandError as exc:
            text = f"{exc.stderr or ''} {exc.stdout or ''}".strip()
            if any(word in text for word in ("rejected", "non-fast-forward", "fetch first")):
                raise PushRejected(f"{self.remote} refused the push: {text}") from exc
            raise GitError(f"push to {self.remote} failed: {text}", permanent=False) from exc
        return sha

    def replay_onto_remote(self) -> tuple[str, str, list[str]]:
        """Under the lock: put the commits the remote lacks on top of its tip, each with its own
        author, date and message, so that history stays linear; (old HEAD, new HEAD, the paths
        under wids/ changed on either side, whose index rows need their new commits).

        Every commit sets whole files, so a replay cannot merge: if the remote changed a file
        that a local commit changes too, nothing moves and the error (permanent) names the files.
        """
        head, tip = self.head(), self.fetch()
        if not tip or self.is_ancestor(tip, head):
            return head, head, []
        g = self.repo.git
        try:
            base = g.merge_base(head, tip)
        except git.GitCommandError:
            raise GitError(f"{self.remote} holds an unrelated history: push refused", permanent=True) from None
        theirs = set(self.changed_paths(base, tip, prefix="."))
        commits = g.rev_list("--reverse", f"{tip}..{head}").split()
        changes = {sha: self._changes(sha) for sha in commits}
        ours = {path for c in changes.values() for _, _, path in c}
        clash = sorted(theirs & ours)
        if clash:
            raise GitError(f"{self.remote} and this copy both changed {', '.join(clash)}: replay them by hand",
                           permanent=True)
        new = tip
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            for sha in commits:
                g.read_tree(new, env=env)
                lines = "".join(f"{mode} {blob}\t{path}\n" for mode, blob, path in changes[sha])
                g.update_index("--index-info", istream=_stdin(lines), env=env)
                tree = g.write_tree(env=env)
                new = g.commit_tree(tree, "-p", new, "-F", "-", istream=_stdin(self._message(sha)),
                                    env={**env, **self._people(sha)})
        with self._writing():
            g.update_ref("-m", f"replay onto {self.remote}", "HEAD", new, head)
            g.reset("-q", "--hard", new)
        logger.warning("replayed %d commits onto %s's tip %s", len(commits), self.remote, tip)
        return head, new, sorted(p for p in theirs | ours if p.startswith("wids/"))

    def _changes(self, sha: str) -> list[tuple[str, str, str]]:
        """(mode, blob, path) that `sha` sets; a deleted path has mode 0 and the null blob."""
        out = self.repo.git.diff_tree("-r", "--no-commit-id", "--root", "-z", sha)
        fields, changes = out.split("\0"), []
        for meta, path in zip(fields[0::2], fields[1::2]):
            _, new_mode, _, new_blob, status = meta.lstrip(":").split()
            changes.append(("0", "0" * 40, path) if status == "D" else (new_mode, new_blob, path))
        return changes

    def _message(self, sha: str) -> str:
        return self.repo.git.cat_file("commit", sha, strip_newline_in_stdout=False).split("\n\n", 1)[1]

    def _people(self, sha: str) -> dict[str, str]:
        env = {}
        for line in self.repo.git.cat_file("commit", sha).split("\n\n", 1)[0].splitlines():
            found = re.match(r"^(author|committer) (.*) <(.*)> (\d+ [+-]\d{4})$", line)
            if found:
                role = "AUTHOR" if found[1] == "author" else "COMMITTER"
                env.update({f"GIT_{role}_NAME": found[2], f"GIT_{role}_EMAIL": found[3],
                            f"GIT_{role}_DATE": found[4]})
        return env


# GitPython's Repo keeps long-lived `git cat-file` processes and is not thread-safe, nor may a
# forked child use its parent's: one per thread and process.
_local = threading.local()


def get_repository() -> WidRepository:
    key = (os.getpid(), str(settings.WID_REPO_PATH), settings.WID_REPO_BRANCH, settings.WID_REPO_REMOTE,
           settings.WID_REPO_SHARED, settings.DEPLOYMENT_NAME)
    cache = _local.__dict__.setdefault("repositories", {})
    if key not in cache:
        cache[key] = WidRepository(
            settings.WID_REPO_PATH, branch=settings.WID_REPO_BRANCH, remote=settings.WID_REPO_REMOTE,
            shared=settings.WID_REPO_SHARED, deployment=settings.DEPLOYMENT_NAME,
        )
    return cache[key]
