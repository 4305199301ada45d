"""Writes of onboarding: teams, and the whole life of a WID.

A WID save is: take the repository's write lock, open a database transaction, re-read the file
(git is the truth), check version and status, commit the new file as the signed-in user, update
the index rows, send the domain event, commit the transaction. A failure before the git commit
changes nothing; a failure after it (the index, a receiver of the event, the transaction's
commit) rolls the transaction back and takes the git commits back, still under the lock.
"""
import logging
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone as dj_timezone
from django.utils.module_loading import import_string

from onboarding import selectors, signals, widfile
from onboarding.models import Membership, MembershipEvent, Product, ReviewEvent, Team
from onboarding.validation import clean_text, clean_wid_input, merge_input, one_line, plain, refuse_unstorable
from onboarding.widfile import ReviewEntry, WidDocument
from onboarding.widrepo import (Author, CommitInfo, GitError, PushRejected, RepositoryBusy, RepositoryMissing,
                                get_repository)
from portal.errors import Conflict, InvalidInput, NotAllowed, NotFound, Unavailable
from portal.work import dispatch

logger = logging.getLogger(__name__)

POLICY_AUTHOR = Author("Onboarding policy", "policy@portal.invalid")
EDITABLE_STATUSES = {"draft", "changes_requested", "rejected"}
# An amendment's status: open while the approved version's infrastructure keeps running.
AMENDMENT_STATUSES = {"draft", "submitted", "changes_requested", "rejected"}
# Statuses of a WID whose approved version may be live (with an approved version on record).
LIVE_STATUSES = {"approved", "deprecated", *AMENDMENT_STATUSES}
# action: (statuses it may start from, status it leads to (None: it stays), review log entry, commit
# verb, signal)
TRANSITIONS = {
    "submit": ({"draft", "changes_requested", "rejected"}, "submitted", "submitted", "Submit", signals.wid_submitted),
    "approve": ({"submitted"}, "approved", "approved", "Approve", signals.wid_approved),
    "reject": ({"submitted"}, "rejected", "rejected", "Reject", signals.wid_rejected),
    "request_changes": ({"submitted"}, "changes_requested", "changes_requested", "Request changes to",
                        signals.wid_changes_requested),
    # A product whose infrastructure is live is retired by its destroy, whatever its amendment's state.
    "retire": (LIVE_STATUSES, "retired", "retired", "Retire", signals.wid_retired),
    # Drop an open amendment: the WID goes back to its approved version.
    "withdraw": (AMENDMENT_STATUSES, "approved", "withdrawn", "Withdraw the amendment of", signals.wid_withdrawn),
    # Announce the end: no amendment, no new dependant; the live version runs until its destroy.
    "deprecate": ({"approved"}, "deprecated", "deprecated", "Deprecate", signals.wid_deprecated),
    # Access off and on, data kept; the live version is what is suspended, whatever its amendment's state.
    "suspend": (LIVE_STATUSES, None, "suspended", "Suspend", signals.wid_suspended),
    "resume": (LIVE_STATUSES, None, "resumed", "Resume", signals.wid_resumed),
}
# Actions whose signal carries plain values (slug, version, actor's username, ...): see signals.py.
VALUE_SIGNAL_ACTIONS = {"deprecate", "suspend", "resume"}
# Optional keys that record the product's life, not its description: an edit or a withdrawal keeps them.
LIFE_KEYS = ("suspended", "sunset")
CLASSIFICATION_RANK = {name: rank for rank, name in enumerate(widfile.CLASSIFICATIONS)}
SENSITIVE_CLASSIFICATIONS = {"confidential", "restricted"}
COMMENT_MAX_LENGTH = 10_000


# --- teams -------------------------------------------------------------------------------------
@transaction.atomic
def team_create(*, user, slug: str, name: str) -> Team:
    from onboarding.validation import SlugField

    errors = {}
    try:
        slug = SlugField().run_validation(slug)  # the cleaned value (trimmed), not the raw one
    except Exception as exc:  # DRF ValidationError
        errors["slug"] = [str(m) for m in getattr(exc, "detail", [str(exc)])]
    name = (name or "").strip()
    if not name:
        errors["name"] = ["This field is required."]
    elif len(name) > 200:
        errors["name"] = ["At most 200 characters."]
    if errors:
        raise InvalidInput(errors=errors)
    if Team.objects.filter(slug=slug).exists():
        raise InvalidInput.on("slug", f"A team {slug!r} already exists.")
    team = Team.objects.create(slug=slug, name=name)
    Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
    _membership_event(team, user, MembershipEvent.Kind.JOINED, Membership.Role.OWNER, actor=user)
    return team


@transaction.atomic
def team_member_add(*, actor, team: Team, username: str, role: str) -> Membership:
    if not selectors.user_can_manage_team(actor, team):
        raise NotAllowed("Only the team's owners manage its members.")
    if role not in Membership.Role.values:
        raise InvalidInput.on("role", f"Choose one of: {', '.join(Membership.Role.values)}.")
    user = selectors.user_by_username(username)
    _lock_team(team)
    membership, created = Membership.objects.select_for_update().get_or_create(
        team=team, user=user, defaults={"role": role}
    )
    if created:
        _membership_event(team, user, MembershipEvent.Kind.JOINED, role, actor=actor)
    elif membership.role != role:
        if role != Membership.Role.OWNER:
            _keep_an_owner(team, leaving=membership)
        membership.role = role
        membership.save(update_fields=["role"])
        _membership_event(team, user, MembershipEvent.Kind.ROLE_CHANGED, role, actor=actor)
    return membership


@transaction.atomic
def team_member_remove(*, actor, team: Team, username: str) -> None:
    if not selectors.user_can_manage_team(actor, team) and actor.username != username:
        raise NotAllowed("Only the team's owners remove other members.")
    _lock_team(team)
    try:
        membership = Membership.objects.select_for_update().get(team=team, user__username=username)
    except Membership.DoesNotExist:
        raise NotFound(f"{username!r} is not a member of {team.slug!r}.") from None
    _keep_an_owner(team, leaving=membership)
    membership.delete()
    _membership_event(team, membership.user, MembershipEvent.Kind.LEFT, membership.role, actor=actor)


def _lock_team(team: Team) -> None:
    """Membership changes and decisions on the team's WIDs take turns (the four-eyes check
    reads the team's members and must not see them change under it)."""
    Team.objects.select_for_update().get(pk=team.pk)


def _membership_event(team: Team, user, kind: str, role: str, *, actor) -> None:
    MembershipEvent.objects.create(team=team, user=user, kind=kind, role=role, actor=actor, at=dj_timezone.now())


def _keep_an_owner(team: Team, *, leaving: Membership) -> None:
    owners = Membership.objects.select_for_update().filter(team=team, role=Membership.Role.OWNER)
    if leaving.role == Membership.Role.OWNER and owners.exclude(pk=leaving.pk).count() == 0:
        raise Conflict("A team keeps at least one owner: make someone else owner first.")


# --- WIDs ---------------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def user_author(user) -> Author:
    return Author(user.get_full_name() or user.username, user.email or f"{user.username}@users.portal.invalid")


def _check_references(cleaned: dict, *, user, slug: str, depended_on: list[str] = ()) -> Team:
    """Refuse references the fields alone cannot judge (team, products read, the checks of other
    apps); `depended_on`: the products the WID read before this change."""
    try:
        team = Team.objects.get(slug=cleaned["team"])
    except Team.DoesNotExist:
        raise InvalidInput.on("team", f"No team {cleaned['team']!r}.") from None
    depends_on = cleaned["depends_on"]
    if slug in depends_on:
        raise InvalidInput.on("depends_on", "A product cannot depend on itself.")
    existing = selectors.product_statuses(depends_on)
    unknown = [s for s in depends_on if s not in existing]
    if unknown:
        raise InvalidInput.on("depends_on", f"Unknown products: {', '.join(unknown)}.")
    retired = [s for s in depends_on if existing[s] == "retired"]
    if retired:
        raise InvalidInput.on("depends_on", f"Retired products cannot be read from: {', '.join(retired)}.")
    deprecated = [s for s in depends_on if existing[s] == "deprecated" and s not in depended_on]
    if deprecated:
        raise InvalidInput.on("depends_on", f"Deprecated products take no new readers: {', '.join(deprecated)}.")
    cycle = selectors.dependency_cycle(slug, depends_on)
    if cycle:
        raise InvalidInput.on("depends_on", f"This would make a cycle: {' → '.join(cycle)}.")
    if not selectors.user_is_member(user, team):
        raise NotAllowed(f"Only members of {team.slug!r} write its products.")
    _run_reference_checks(cleaned)
    return team


def _run_reference_checks(cleaned: dict) -> None:
    """The checks other apps plug in (`WID_REFERENCE_CHECKS`: "source not registered", say), so that
    onboarding refuses what it cannot know about without importing them. Each is a callable
    `(cleaned) -> {field: [message, ...]}`, called with the WID's input shape."""
    errors: dict[str, list[str]] = {}
    for path in settings.WID_REFERENCE_CHECKS:
        for field, messages in (import_string(path)(cleaned) or {}).items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise InvalidInput(errors=errors)


def approved_version(meta: dict) -> int | None:
    """The version whose infrastructure is live: recorded since amendments exist; a file approved
    before them is live at its own version."""
    if meta.get("approved_version") is not None:
        return meta["approved_version"]
    return meta["version"] if meta["status"] == "approved" else None


def _document(cleaned: dict, *, status: str, version: int, reviews: list[ReviewEntry],
              approved: int | None = None, life: dict | None = None) -> WidDocument:
    """The file for `cleaned` (the input shape); `life`: the LIFE_KEYS the current file holds."""
    meta = {
        "slug": cleaned["slug"],
        "name": cleaned["name"],
        "domain": cleaned["domain"],
        "team": cleaned["team"],
        "status": status,
        "version": version,
        "target": cleaned["target"],
        "classification": cleaned["classification"],
        "pii": cleaned["pii"],
        "compute_tier": cleaned["compute_tier"],
        "contacts": {role: dict(cleaned["contacts"][role]) for role in ("business", "technical")},
        "data_custodian": dict(cleaned["data_custodian"]),
        "depends_on": list(cleaned["depends_on"]),
        "outputs": plain(list(cleaned["outputs"])),
    }
    if approved is not None:
        meta["approved_version"] = approved
    meta.update({key: value for key, value in (life or {}).items() if key in LIFE_KEYS})
    if cleaned.get("ingestion") not in (None, "none"):  # absent means none
        meta["ingestion"] = cleaned["ingestion"]
    for key in ("source", "schedule", "triggers"):
        if cleaned.get(key) is not None:
            meta[key] = plain(cleaned[key])
    return WidDocument(meta=meta, sections=dict(cleaned["sections"]), reviews=list(reviews))


def document_as_input(doc: WidDocument) -> dict:
    data = {k: v for k, v in doc.meta.items() if k not in ("status", "version", *widfile.PORTAL_KEYS)}
    data["sections"] = dict(doc.sections)
    return data


class _IndexBehind(Exception):
    """The index row of a WID disagrees with git (a save pushed but its database commit failed)."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


def _read_current(product: Product) -> WidDocument:
    text = get_repository().read(product.path)
    if text is None:
        raise Conflict(f"{product.path} is missing from the WID repository; run rebuild_index.")
    doc = widfile.parse(text)
    if doc.meta["version"] != product.version:
        raise _IndexBehind(product.path)
    return doc


def _locked_product(slug: str) -> Product:
    try:
        return Product.objects.select_for_update().select_related("team").get(slug=slug)
    except Product.DoesNotExist:
        raise NotFound(f"No product {slug!r}.") from None


@contextmanager
def _write_lock(repo):
    """Hold the deployment's write lock around the caller's transaction.

    Under it, a shared deployment's copy first takes the remote's tip, and a save pushes before
    its transaction commits (other machines read the remote). The commits are taken back only
    when the transaction did not commit and nothing was pushed: a callback that raises after the
    commit (the on_commit mark below runs first) leaves git as the index knows it. When the
    connection breaks, perhaps in the COMMIT itself, PostgreSQL is asked whether the transaction
    committed after all; if it cannot tell, git keeps the commits (the index is rebuilt from git,
    never the other way round).
    """
    try:
        with repo.locked():
            repo.sync()
            start = repo.head()
            outcome = {"committed": False, "pushed": False}
            xid = None
            try:
                with transaction.atomic():
                    transaction.on_commit(partial(outcome.__setitem__, "committed", True))
                    if len(connection.atomic_blocks) == 1:  # the outermost: its COMMIT is the real one
                        xid = _transaction_id()
                    yield
                    if repo.shared and repo.head() != start:
                        repo.push()
                        outcome["pushed"] = True
            except _IndexBehind as behind:
                repo.rewind(start)
                with transaction.atomic():
                    _reindex([behind.path])
                raise Conflict("The index was behind the WID repository and has been brought up to date: "
                               "reload the WID and apply your change again.") from None
            except (OperationalError, InterfaceError) as lost:
                # The connection broke: perhaps during COMMIT, whose outcome the client never heard.
                # Git is the truth and the index can be rebuilt from it, so the commits are taken
                # back only when the database says the transaction did not commit.
                if not (outcome["committed"] or outcome["pushed"]):
                    committed = _committed_after_all(xid)
                    if committed is False:
                        try:
                            repo.rewind(start)
                        except GitError:
                            logger.exception("could not take back the commits after %s", start)
                    else:
                        logger.error("the database connection broke while saving (%s); the transaction %s, "
                                     "so the WID commits after %s stay", lost, "committed" if committed else
                                     "may have committed", start)
                raise
            except BaseException:
                if not (outcome["committed"] or outcome["pushed"]):
                    try:
                        repo.rewind(start)
                    except GitError:
                        logger.exception("could not take back the commits after %s", start)
                raise
    except RepositoryBusy as exc:
        raise Unavailable("The WID repository is busy; nothing was saved. Try again in a moment.") from exc
    except GitError as exc:
        logger.error("WID repository unavailable: %s", exc)
        detail = str(exc) if isinstance(exc, RepositoryMissing) else "it could not reach its remote or its files"
        raise Unavailable(f"The WID repository cannot take changes now ({detail}); nothing was saved.") from exc


def _transaction_id() -> int | None:
    """The transaction's id, to ask PostgreSQL afterwards whether it committed."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            return cursor.fetchone()[0]
    except DatabaseError:
        return None


def _committed_after_all(xid: int | None, *, wait: float = 10.0) -> bool | None:
    """Whether the transaction `xid` committed (True), did not (False), or nobody can tell (None:
    the database stayed out of reach for `wait` seconds). Asked on a new connection, since the
    old one broke; a transaction cut by a crash is reported aborted once the server is back."""
    if xid is None or connection.in_atomic_block:
        return None if xid is not None else False
    deadline = time.monotonic() + wait
    while True:
        try:
            connection.close()
            with connection.cursor() as cursor:
                cursor.execute("SELECT txid_status(%s)", [xid])
                status = cursor.fetchone()[0]
            if status in ("committed", "aborted"):
                return status == "committed"
        except DatabaseError:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def _commit(doc: WidDocument, *, author: Author, message: str) -> Product:
    """Commit the file, then index it (inside the caller's lock and transaction)."""
    repo = get_repository()
    try:
        info = repo.commit_file(doc.path, widfile.render(doc), author=author, message=message)
    except GitError as exc:
        logger.exception("commit of %s failed", doc.path)
        raise Unavailable("The WID repository could not record the change; nothing was saved. Try again.") from exc
    product, created = index_document(doc, head=info)
    if repo.remote and not repo.shared:
        dispatch.after_commit("onboarding.tasks.push_wid_repo")
    signals.wid_saved.send(sender=Product, product=product, created=created)
    return product


def wid_repo_push() -> str:
    """Push the local commits to WID_REPO_REMOTE. A push the remote refuses (another machine or
    person pushed) is fetched, the local commits replayed onto the remote's tip, re-indexed, and
    pushed again. A shared deployment's saves push themselves."""
    repo = get_repository()
    if not repo.remote or repo.shared:
        return ""
    # Read the tip under the lock: a save that fails takes its commit back before releasing it.
    with repo.locked():
        tip = repo.head()
    try:
        return repo.push(tip)
    except PushRejected as exc:
        logger.warning("%s; replaying the local commits onto the remote's tip", exc)
    with repo.locked():
        with transaction.atomic():
            old, new, paths = repo.replay_onto_remote()
            _reindex(paths)
        return repo.push(new)


def wid_create(*, user, data: dict) -> Product:
    cleaned = clean_wid_input(data)
    slug = cleaned["slug"]
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        _check_references(cleaned, user=user, slug=slug)
        if Product.objects.filter(slug=slug).exists() or repo.tracked_files(f"wids/*/{slug}.md"):
            raise InvalidInput.on("slug", f"A product {slug!r} already exists.")
        doc = _document(cleaned, status="draft", version=1, reviews=[])
        return _commit(doc, author=user_author(user), message=f"Create {slug}")


def wid_update(*, user, slug: str, data: dict) -> Product:
    version = data.get("version")
    if version is None:
        raise InvalidInput.on("version", "Send the version you read; it is required to update.")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput.on("version", "A whole number.")
    changes = {k: v for k, v in data.items() if k != "version"}
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        if not selectors.user_can_edit_product(user, product):
            raise NotAllowed(f"Only members of {product.team.slug!r} edit this product.")
        current = _read_current(product)
        if current.meta["version"] != version:
            raise Conflict(
                f"{slug} is at version {current.meta['version']}, not {version}: reload it and apply your change again.",
                errors={"version": [f"The current version is {current.meta['version']}."]},
            )
        status = current.meta["status"]
        if status == "deprecated":
            raise Conflict(f"{slug} is deprecated: it takes no amendment (its sunset is "
                           f"{current.meta.get('sunset')}). Describe what replaces it in a new WID.")
        if status not in EDITABLE_STATUSES and status != "approved":
            raise Conflict(f"{_a_status(status)} WID cannot be edited.")
        cleaned = clean_wid_input(merge_input(document_as_input(current), changes))
        for field in ("slug", "domain"):
            if cleaned[field] != current.meta[field]:
                raise InvalidInput.on(field, f"The {field} of a product never changes.")
        live = approved_version(current.meta)
        if live is not None and cleaned["target"] != current.meta["target"]:
            raise InvalidInput.on("target", "The target of a provisioned product never changes: "
                                            "create a new product on the other target instead.")
        _check_references(cleaned, user=user, slug=slug, depended_on=current.meta["depends_on"])
        # Editing an approved WID opens an amendment: a draft, while the approved version stays live.
        doc = _document(cleaned, status="draft" if status == "approved" else status, version=version + 1,
                        reviews=current.reviews, approved=live, life=current.meta)
        if document_as_input(doc) == document_as_input(current):
            return product  # nothing changed: no empty commit, no new version
        return _commit(doc, author=user_author(user),
                       message=f"Amend {slug}" if status == "approved" else f"Update {slug}")


def _a_status(status: str) -> str:
    """'An approved', 'A submitted': the status with its article, for messages."""
    text = status.replace("_", " ")
    return f"{'An' if text[:1] in 'aeiou' else 'A'} {text}"


def _clean_comment(comment: str | None, *, required: bool) -> str:
    """The documented clean-up (README, "Hostile input"): line endings to \\n, blank lines at the
    ends dropped, and, since the review log is a quote, the spaces at each line's end."""
    try:
        refuse_unstorable(comment or "")
    except DjangoValidationError as exc:
        raise InvalidInput.on("comment", exc.messages[0]) from None
    text = clean_text("\n".join(line.rstrip() for line in clean_text(comment or "").split("\n")))
    if required and not text.strip():
        raise InvalidInput.on("comment", "Say why: the team reads this comment.")
    if len(text) > COMMENT_MAX_LENGTH:
        raise InvalidInput.on("comment", f"At most {COMMENT_MAX_LENGTH} characters.")
    return text


_PAST_PARTICIPLES = {"submit": "submitted", "retire": "retired", "withdraw": "withdrawn", "deprecate": "deprecated",
                     "suspend": "suspended", "resume": "resumed"}


def _transition(product: Product, current: WidDocument, action: str, *, actor, comment: str,
                sunset: date | None = None) -> Product:
    allowed_from, new_status, entry_action, verb, signal = TRANSITIONS[action]
    status = current.meta["status"]
    if status not in allowed_from:
        raise Conflict(f"{_a_status(status)} WID cannot be {_PAST_PARTICIPLES.get(action, 'decided')}"
                       + (" while an amendment is open: withdraw it or have it decided first." if action == "deprecate"
                          and status in AMENDMENT_STATUSES and approved_version(current.meta) else "."))
    live = approved_version(current.meta)
    if action in ("retire", "withdraw", "suspend", "resume") and live is None:
        raise Conflict(f"{product.slug} was never approved: there is "
                       + ({"retire": "nothing to retire.", "withdraw": "no amendment to withdraw."}
                          .get(action, f"nothing live to {action}.")))
    if action == "suspend" and current.meta.get("suspended"):
        raise Conflict(f"{product.slug} is suspended already.")
    if action == "resume" and not current.meta.get("suspended"):
        raise Conflict(f"{product.slug} is not suspended: there is nothing to resume.")
    entry = ReviewEntry(
        action=entry_action, at=_now(), actor=actor.username if actor else "",
        actor_name=(actor.get_full_name() or actor.username) if actor else "", comment=comment,
    )
    meta = {**current.meta, "status": new_status or status, "version": current.meta["version"] + 1}
    sections = current.sections
    if action == "approve":
        meta["approved_version"] = meta["version"]
    elif action == "withdraw":
        approved = selectors.document_at_version(product, live)
        meta = {**{k: v for k, v in approved.meta.items() if k not in LIFE_KEYS},
                **{k: current.meta[k] for k in LIFE_KEYS if k in current.meta},
                "status": new_status, "version": meta["version"], "approved_version": live}
        sections = approved.sections
    elif live is not None:
        meta["approved_version"] = live
    if action == "deprecate":
        meta["sunset"] = sunset
    elif action == "suspend":
        meta["suspended"] = True
    elif action in ("resume", "retire"):
        meta.pop("suspended", None)  # a retired product has nothing left to suspend
    doc = WidDocument(meta=meta, sections=sections, reviews=[*current.reviews, entry])
    first_line = one_line(comment.split("\n", 1)[0], 100)  # git log's own separators never reach a subject
    message = f"{verb} {product.slug}" + (f": {first_line}" if first_line else "")
    product = _commit(doc, author=user_author(actor) if actor else POLICY_AUTHOR, message=message)
    if action in VALUE_SIGNAL_ACTIONS:
        extras = {"sunset": sunset} if action == "deprecate" else {}
        signal.send(sender=Product, slug=product.slug, version=product.version,
                    actor=actor.username if actor else None, comment=comment, **extras)
    else:
        signal.send(sender=Product, product=product, actor=actor)
    _notify(product, position=len(doc.reviews))
    return product


def _notify(product: Product, *, position: int) -> None:
    """E-mail the contacts and the data custodian about a review log entry, through the outbox:
    the message is written with the change and sent after it commits, retried if the mail server fails."""
    from django.conf import settings
    from django.template.loader import render_to_string

    from portal.work import deliveries

    event = ReviewEvent.objects.get(product=product, position=position)
    context = {"event": event, "product": product, "url": f"{settings.PORTAL_BASE_URL}/products/{product.slug}/"}
    deliveries.record_email(
        f"wid.{event.action}",
        recipients=[person["email"] for person in (product.contacts["business"], product.contacts["technical"],
                                                   product.data_custodian)],
        subject=render_to_string("onboarding/email/review_event_subject.txt", context).strip(),
        body=render_to_string("onboarding/email/review_event_body.txt", context),
    )


def policy_verdict(meta: dict) -> tuple[bool, str]:
    """Whether a WID is low-risk enough to approve without a person, and why (or why not)."""
    reasons = []
    if meta["classification"] not in ("public", "internal"):
        reasons.append(f"classification is {meta['classification']}")
    if meta["pii"]:
        reasons.append("it holds personal data")
    if meta["compute_tier"] == "large":
        reasons.append("compute tier is large")
    if reasons:
        return False, "needs a platform decision: " + ", ".join(reasons)
    return True, (
        f"approved by policy: {meta['classification']} data, no personal data, "
        f"{meta['compute_tier']} compute tier"
    )


def amendment_verdict(approved: dict, meta: dict, producers: dict[str, dict]) -> tuple[bool, str]:
    """The policy on an amendment, judged against the approved version: a change that raises risk
    goes to a person; one that lowers or keeps it is approved, whoever approved the product first.
    `producers`: {slug: {classification, pii}} of the products the amendment newly depends on."""
    reasons = []
    if CLASSIFICATION_RANK[meta["classification"]] > CLASSIFICATION_RANK[approved["classification"]]:
        reasons.append(f"classification rises from {approved['classification']} to {meta['classification']}")
    if meta["pii"] and not approved["pii"]:
        reasons.append("it now holds personal data")
    if meta["compute_tier"] == "large" and approved["compute_tier"] != "large":
        reasons.append("compute tier rises to large")
    sensitive = sorted(slug for slug in set(meta["depends_on"]) - set(approved["depends_on"])
                       if slug in producers and (producers[slug]["classification"] in SENSITIVE_CLASSIFICATIONS
                                                 or producers[slug]["pii"]))
    if sensitive:
        reasons.append(f"it newly reads sensitive products: {', '.join(sensitive)}")
    if reasons:
        return False, "the amendment needs a platform decision: " + ", ".join(reasons)
    return True, f"amendment approved by policy: it does not raise risk over version {approved['version']}"


def _verdict(product: Product, meta: dict) -> tuple[bool, str]:
    live = approved_version(meta)
    if live is None:
        return policy_verdict(meta)
    approved = selectors.document_at_version(product, live).meta
    return amendment_verdict(approved, meta, selectors.product_risks(meta["depends_on"]))


def wid_submit(*, user, slug: str, comment: str = "") -> Product:
    comment = _clean_comment(comment, required=False)
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        if not selectors.user_can_edit_product(user, product):
            raise NotAllowed(f"Only members of {product.team.slug!r} submit this product.")
        current = _read_current(product)
        if current.meta["status"] in TRANSITIONS["submit"][0]:  # else the transition says why not (409)
            _run_reference_checks(document_as_input(current))  # what they check may have changed since the save
        product = _transition(product, current, "submit", actor=user, comment=comment)
        approve, reason = _verdict(product, _read_current(product).meta)
        if approve:
            product = _transition(product, _read_current(product), "approve", actor=None, comment=reason)
        return product


def _decide(action: str, *, user, slug: str, comment: str, comment_required: bool) -> Product:
    comment = _clean_comment(comment, required=comment_required)
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        _lock_team(product.team)
        refusal = selectors.user_may_decide(user, product)
        if refusal:
            raise NotAllowed(refusal)
        return _transition(product, _read_current(product), action, actor=user, comment=comment)


def wid_approve(*, user, slug: str, comment: str = "") -> Product:
    return _decide("approve", user=user, slug=slug, comment=comment, comment_required=False)


def wid_reject(*, user, slug: str, comment: str) -> Product:
    return _decide("reject", user=user, slug=slug, comment=comment, comment_required=True)


def wid_request_changes(*, user, slug: str, comment: str) -> Product:
    return _decide("request_changes", user=user, slug=slug, comment=comment, comment_required=True)


def wid_withdraw(*, user, slug: str, comment: str = "") -> Product:
    """Drop an open amendment: the WID returns to its approved version, which never stopped running."""
    comment = _clean_comment(comment, required=False)
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        if not (selectors.user_can_edit_product(user, product) or selectors.user_is_platform(user)):
            raise NotAllowed(f"Only members of {product.team.slug!r} and the platform withdraw its amendment.")
        return _transition(product, _read_current(product), "withdraw", actor=user, comment=comment)


def wid_log_access(*, slug: str, entries: list[dict]) -> Product:
    """Append access entries (`access_requested`, ...) to a WID's review log: one commit, by the first
    entry's actor, that changes neither the WID's status nor its decision dates. Called by
    provisioning's access outbox; each entry: {action, actor, actor_name, at, comment}."""
    if not entries or any(e["action"] not in widfile.ACCESS_ACTIONS for e in entries):
        raise ValueError("access entries only")
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        current = _read_current(product)
        added = [ReviewEntry(action=e["action"], at=e["at"].astimezone(timezone.utc).replace(microsecond=0),
                             actor=e["actor"] or "", actor_name=e["actor_name"] or "",
                             comment=_clean_comment(e["comment"] or "", required=False)) for e in entries]
        meta = {**current.meta, "version": current.meta["version"] + 1}
        doc = WidDocument(meta=meta, sections=current.sections, reviews=[*current.reviews, *added])
        first = added[0]
        who = first.actor or "the portal"
        verb = first.action.removeprefix("access_")
        message = f"Access {verb} to {slug} by {who}" + (f" (and {len(added) - 1} more)" if len(added) > 1 else "")
        author = None
        if first.actor == "custodian":
            author = Author("Data custodian", first.actor_name.removeprefix("data custodian ").strip())
        elif first.actor:
            user = selectors.user_by_username_or_none(first.actor)
            author = user_author(user) if user else None
        return _commit(doc, author=author or POLICY_AUTHOR, message=one_line(message, 100))


def wid_retire(*, user, slug: str, comment: str) -> Product:
    """Mark a decommissioned product retired (provisioning calls this once its destroy succeeded)."""
    comment = _clean_comment(comment, required=True)
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        if not selectors.user_is_platform(user):
            raise NotAllowed("Only the platform team retires products.")
        return _transition(product, _read_current(product), "retire", actor=user, comment=comment)


def _clean_sunset(sunset) -> date:
    """A date strictly after today (UTC): the day the product goes. Takes a date or "YYYY-MM-DD"."""
    if sunset in (None, ""):
        raise InvalidInput.on("sunset", "Give the sunset date (YYYY-MM-DD): when the product goes.")
    if isinstance(sunset, str):
        try:
            sunset = date.fromisoformat(sunset) if len(sunset) == 10 else None
        except ValueError:
            sunset = None
    if not isinstance(sunset, date) or isinstance(sunset, datetime):
        raise InvalidInput.on("sunset", "A date as YYYY-MM-DD.")
    today = datetime.now(timezone.utc).date()
    if sunset <= today:
        raise InvalidInput.on("sunset", f"A date after today ({today.isoformat()}): its readers need time to move.")
    return sunset


def wid_deprecate(*, user, slug: str, sunset, comment: str = "") -> Product:
    """Announce a product's end: it takes no amendment and no new dependant from now, its live
    version runs (jobs and its destroy allowed) until the sunset, and every team that reads it is told."""
    sunset = _clean_sunset(sunset)
    comment = _clean_comment(comment, required=False)
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        if not (selectors.user_can_edit_product(user, product) or selectors.user_is_platform(user)):
            raise NotAllowed(f"Only members of {product.team.slug!r} and the platform deprecate this product.")
        product = _transition(product, _read_current(product), "deprecate", actor=user, comment=comment,
                              sunset=sunset)
        _notify_consumers(product)
        return product


def wid_suspend(*, user, slug: str, comment: str = "") -> Product:
    """Switch off access to the live product, data kept (the "did anyone scream" test): recorded as
    `suspended: true` in the WID; its status and its decision dates stay as they are."""
    return _platform_switch("suspend", user=user, slug=slug, comment=comment)


def wid_resume(*, user, slug: str, comment: str = "") -> Product:
    return _platform_switch("resume", user=user, slug=slug, comment=comment)


def suspend_at_sunset(*, today: date | None = None) -> list[str]:
    """Suspend, by the portal itself, every deprecated product whose sunset date has come (beat runs
    it): its access goes off, its data stays, and the dashboard lists it for the platform to destroy.
    The slugs suspended; one that fails (git busy, the row locked) is tried again on the next tick."""
    today = today or dj_timezone.localdate()
    done, repo = [], get_repository()
    for slug in Product.objects.filter(status="deprecated", suspended=False, sunset__lte=today) \
            .order_by("sunset", "slug").values_list("slug", flat=True):
        try:
            with _write_lock(repo), transaction.atomic():
                product = _locked_product(slug)
                current = _read_current(product)
                sunset = _date(current.meta.get("sunset"))
                if current.meta["status"] != "deprecated" or current.meta.get("suspended") or not sunset \
                        or sunset > today or _resumed_since_deprecation(current):
                    continue  # moved on since the query, or resumed by the platform after a scream
                _transition(product, current, "suspend", actor=None,
                            comment=f"Sunset date {sunset.isoformat()} reached: suspended by the portal, its data "
                                    "kept. Destroy it once nobody needs it, or resume it.")
            done.append(slug)
        except Exception:
            logger.exception("%s: could not suspend it at its sunset; trying again on the next tick", slug)
    return done


def _resumed_since_deprecation(doc: WidDocument) -> bool:
    """A product the platform resumed after its deprecation stays on until it decides otherwise: the
    sunset suspends it once, never again after a resumption."""
    actions = [entry.action for entry in doc.reviews]
    last = max((i for i, action in enumerate(actions) if action == "deprecated"), default=-1)
    return "resumed" in actions[last + 1:]


def _platform_switch(action: str, *, user, slug: str, comment: str) -> Product:
    comment = _clean_comment(comment, required=False)
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        product = _locked_product(slug)
        if not selectors.user_is_platform(user):
            raise NotAllowed(f"Only the platform team {action}s products.")
        return _transition(product, _read_current(product), action, actor=user, comment=comment)


def _notify_consumers(product: Product) -> None:
    """E-mail the members of every team whose products read this one, and those products' contacts,
    through the outbox (the product's own contacts hear of it with every review log entry)."""
    from django.template.loader import render_to_string

    from portal.work import deliveries

    consumers = selectors.product_dependants(product.slug)
    if not consumers:
        return
    event = product.review_events.order_by("-position").first()
    context = {"event": event, "product": product, "consumers": consumers, "base_url": settings.PORTAL_BASE_URL,
               "url": f"{settings.PORTAL_BASE_URL}/products/{product.slug}/"}
    recipients = selectors.team_member_emails({c.team_id for c in consumers})
    recipients += [c.contacts[role]["email"] for c in consumers for role in ("technical", "business")]
    deliveries.record_email(
        f"wid.{event.action}", recipients=recipients,
        subject=render_to_string("onboarding/email/consumers_subject.txt", context).strip(),
        body=render_to_string("onboarding/email/consumers_body.txt", context),
    )


# --- the index ----------------------------------------------------------------------------------
def _index_fields(doc: WidDocument, *, head: CommitInfo, team: Team) -> dict:
    meta = doc.meta
    reviews = [r for r in doc.reviews if r.action not in widfile.STATUS_NEUTRAL_ACTIONS]
    withdrawn = next((i for i in range(len(reviews) - 1, -1, -1) if reviews[i].action != "retired"), None)
    if withdrawn is not None and reviews[withdrawn].action == "withdrawn":
        # Back to the approved version: its submission and approval are the ones that count.
        approval = next((i for i in range(withdrawn - 1, -1, -1) if reviews[i].action == "approved"), None)
        reviews = reviews[:approval + 1] if approval is not None else reviews
    positions = range(len(reviews) - 1, -1, -1)
    last_submit = next((i for i in positions if reviews[i].action == "submitted"), None)
    last_decision = next(
        (i for i in positions if reviews[i].action in ("approved", "rejected", "changes_requested")), None
    )
    submitted_at = reviews[last_submit].at if last_submit is not None else None
    decided_at = reviews[last_decision].at if last_decision is not None else None
    if last_submit is not None and last_decision is not None and last_decision < last_submit:
        # Resubmitted: the last decision was about an earlier version. Compared by position in the
        # log, not by time: entries are stamped to the second and often share one.
        decided_at = None
    return {
        "name": meta["name"], "domain": meta["domain"], "team": team, "status": meta["status"],
        "version": meta["version"], "target": meta["target"], "classification": meta["classification"],
        "pii": meta["pii"], "compute_tier": meta["compute_tier"], "contacts": meta["contacts"],
        "data_custodian": meta["data_custodian"], "depends_on": meta["depends_on"], "outputs": meta["outputs"],
        "approved_version": approved_version(meta),
        "ingestion": meta.get("ingestion") or "none", "source": meta.get("source"), "schedule": meta.get("schedule"),
        "triggers": meta.get("triggers"), "suspended": bool(meta.get("suspended")), "sunset": _date(meta.get("sunset")),
        "sections": doc.sections, "path": doc.path, "head_sha": head.sha, "updated_at": head.date,
        "submitted_at": submitted_at, "decided_at": decided_at,
    }


def _date(value) -> date | None:
    """YAML reads `sunset: 2027-03-31` as a date; a hand-written quoted one is a string."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    return date.fromisoformat(str(value))


def _review_rows(product: Product, reviews: list[ReviewEntry], *, start: int = 0) -> list[ReviewEvent]:
    return [
        ReviewEvent(product=product, position=i, action=r.action, actor=r.actor, actor_name=r.actor_name,
                    comment=r.comment, at=r.at)
        for i, r in enumerate(reviews[start:], start=start + 1)
    ]


def index_document(doc: WidDocument, *, head: CommitInfo) -> tuple[Product, bool]:
    """Bring one product's index rows in line with the document just committed; (product, created)."""
    team, _ = Team.objects.get_or_create(slug=doc.meta["team"], defaults={"name": doc.meta["team"]})
    fields = _index_fields(doc, head=head, team=team)
    product, created = Product.objects.update_or_create(
        slug=doc.slug, defaults=fields, create_defaults={"created_at": head.date, **fields}
    )
    known = 0 if created else product.review_events.count()
    if known > len(doc.reviews):
        product.review_events.all().delete()
        known = 0
    ReviewEvent.objects.bulk_create(_review_rows(product, doc.reviews, start=known))
    return product, created


def _drop_products_missing_from_git(slugs: set[str]) -> None:
    """Rows whose file is gone from git leave the index, unless other records still need them
    (provisioning jobs, audit): those stay, and are reported, for a person to look at."""
    for product in Product.objects.exclude(slug__in=slugs):
        try:
            with transaction.atomic():
                product.delete()
        except ProtectedError:
            logger.warning("%s is not in the WID repository but other records refer to it; kept", product.slug)


def _reindex(paths: list[str]) -> None:
    """Index the given files as HEAD has them (rows whose file is gone leave, if nothing needs them)."""
    repo = get_repository()
    for path in paths:
        if not (path.startswith("wids/") and path.endswith(".md")):
            continue
        text = repo.read(path)
        if text is None:
            _drop_products_missing_from_git(set(Product.objects.exclude(path=path).values_list("slug", flat=True)))
        else:
            index_document(widfile.parse(text), head=repo.history(path)[0])


def _documents(repo, *, differences: list[str] | None = None) -> list[WidDocument]:
    """Every WID at HEAD. A file that cannot be read or declares another path raises, or, with
    `differences`, is reported there and skipped."""
    documents = []
    for path, text in sorted(repo.read_all("wids").items()):
        if not path.endswith(".md"):
            continue
        try:
            doc = widfile.parse(text)
            if doc.path != path:
                raise widfile.WidFormatError(f"{path} declares the path {doc.path}")
        except widfile.WidFormatError as exc:
            if differences is None:
                raise
            differences.append(f"{path}: cannot be read from git: {exc}")
            continue
        documents.append(doc)
    return documents


def index_rebuild() -> int:
    """Recreate products and review events from the WID repository; teams and users stay.

    Products keep their database ids (so rows of other apps that point at them survive);
    products whose file is gone from git leave the index.
    """
    repo = get_repository()
    with _write_lock(repo), transaction.atomic():
        spans = repo.file_spans("wids")
        documents = _documents(repo)
        teams = {t.slug: t for t in Team.objects.all()}
        missing_teams = {d.meta["team"] for d in documents} - set(teams)
        for team in Team.objects.bulk_create([Team(slug=s, name=s) for s in sorted(missing_teams)]):
            teams[team.slug] = team
        existing = {p.slug: p for p in Product.objects.all()}
        creates, updates = [], []
        for doc in documents:
            first, latest = spans[doc.path]
            fields = {**_index_fields(doc, head=latest, team=teams[doc.meta["team"]]), "created_at": first.date}
            if doc.slug in existing:
                product = existing[doc.slug]
                for name, value in fields.items():
                    setattr(product, name, value)
                updates.append(product)
            else:
                creates.append(Product(slug=doc.slug, **fields))
        ReviewEvent.objects.all().delete()
        _drop_products_missing_from_git({d.slug for d in documents})
        Product.objects.bulk_create(creates, batch_size=500)
        if updates:
            Product.objects.bulk_update(updates, [f.name for f in Product._meta.concrete_fields
                                                  if f.name not in ("id", "slug")], batch_size=500)
        products = {p.slug: p for p in [*creates, *updates]}
        ReviewEvent.objects.bulk_create(
            [row for doc in documents for row in _review_rows(products[doc.slug], doc.reviews)], batch_size=1000
        )
        return len(documents)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _index_differences() -> list[str]:
    repo = get_repository()
    differences: list[str] = []
    documents = {doc.slug: doc for doc in _documents(repo, differences=differences)}
    spans = repo.file_spans("wids")
    products = {p.slug: p for p in Product.objects.select_related("team")}
    events: dict[int, list[tuple]] = {}
    for e in ReviewEvent.objects.order_by("product_id", "position"):
        events.setdefault(e.product_id, []).append((e.position, e.action, e.actor, e.actor_name, e.comment, e.at))
    for slug in sorted(documents.keys() - products.keys()):
        differences.append(f"{slug}: in git ({documents[slug].path}), missing from the index")
    for slug in sorted(products.keys() - documents.keys()):
        differences.append(f"{slug}: in the index, missing from git ({products[slug].path})")
    for slug in sorted(documents.keys() & products.keys()):
        doc, product = documents[slug], products[slug]
        first, latest = spans[doc.path]
        expected = {**_index_fields(doc, head=latest, team=None), "team": doc.meta["team"], "created_at": first.date}
        actual = {name: getattr(product, name) for name in expected}
        actual["team"] = product.team.slug
        for name, value in expected.items():
            if actual[name] != value:
                differences.append(f"{slug}: {name} is {_shown(value)} in git, {_shown(actual[name])} in the index")
        in_git = [(i, *astuple) for i, astuple in enumerate(
            ((r.action, r.actor, r.actor_name, r.comment, r.at) for r in doc.reviews), start=1)]
        in_index = events.get(product.id, [])
        if in_git != in_index:
            differing = sorted({row[0] for row in set(in_git) ^ set(in_index)})
            differences.append(f"{slug}: review events differ at positions {differing} "
                               f"({len(in_git)} in git, {len(in_index)} in the index)")
    return differences


def index_check() -> list[str]:
    """Every difference between the WID repository and the index, changing nothing.

    Read first without the lock; what differs is read again under it (and, in a shared
    deployment, after taking the remote's tip), since a save may have been between its git
    commit and its database commit at the first reading.
    """
    differences = _index_differences()
    if differences:
        repo = get_repository()
        with repo.locked():
            repo.sync()
            differences = _index_differences()
    return differences
