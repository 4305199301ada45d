"""Reads of onboarding: products, teams, permissions, and what git knows of a WID."""
import difflib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from onboarding import widfile
from onboarding.models import Membership, MembershipEvent, Product, ReviewEvent, Team
from onboarding.widrepo import CommitInfo, GitError, get_repository
from portal.errors import InvalidInput, NotFound

PLATFORM_GROUP = "platform"
# Commits that record who asked for or got access to a product's data, or switched it off and on:
# not changes to the WID.
RECORD_COMMIT_PREFIXES = ("Access ", "Suspend ", "Resume ")


def user_is_platform(user) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_is_platform", None)
    if cached is None:
        cached = user.groups.filter(name=PLATFORM_GROUP).exists()
        user._is_platform = cached
    return cached


def user_team_roles(user) -> dict[int, str]:
    """{team id: role} for the user's teams, cached on the user object for the request."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, "_team_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        user._team_roles = cached
    return cached


def user_is_member(user, team: Team) -> bool:
    return team.id in user_team_roles(user)


def user_is_owner(user, team: Team) -> bool:
    return user_team_roles(user).get(team.id) == Membership.Role.OWNER


def user_can_edit_product(user, product: Product) -> bool:
    return user_is_member(user, product.team)


# Review log times are kept to the second: a membership change within the second after the
# logged submit time may have come before the submit or after it, so it counts as "at submit".
SUBMIT_TIME_PRECISION = timedelta(seconds=1)


def user_may_decide(user, product: Product) -> str | None:
    """Why `user` may not approve, reject or ask changes of `product` (four eyes), or None.

    The decider is on the platform team (superusers included) and is none of: the submitter,
    an author of a change since the last approval, a member of the owning team now, or when the
    WID was submitted. Read from git (review log, commit authors) and the membership audit, never
    from caches on the user object: membership may have changed since the request began.
    """
    if not user_is_platform(user):
        return "Only the platform team decides on WIDs."
    team = product.team
    if Membership.objects.filter(team=team, user=user).exists():
        return f"You are in {team.slug!r}, which owns this WID: another platform member decides."
    repo = get_repository()
    text = repo.read(product.path, after=product.head_sha)
    reviews = widfile.parse(text).reviews if text is not None else []
    submit = next((r for r in reversed(reviews) if r.action == "submitted"), None)
    if submit is not None and submit.actor == user.username:
        return "You submitted this WID: another platform member decides."
    if _user_identities(user) & _authors_since_last_approval(product, repo):
        return "You changed this WID since it was last approved: another platform member decides."
    if submit is not None and user_was_member(user, team, start=submit.at, end=submit.at + SUBMIT_TIME_PRECISION):
        return (f"You were in {team.slug!r} when this WID was submitted ({submit.at:%Y-%m-%d %H:%M:%S} UTC): "
                "another platform member decides.")
    return None


def _user_identities(user) -> set[str]:
    """The e-mails a user's commits carry: today's, and the portal's stand-in for users without one."""
    from onboarding.services import user_author  # services import selectors: import at call time

    return {user_author(user).email.lower(), f"{user.username}@users.portal.invalid".lower()}


def _authors_since_last_approval(product: Product, repo) -> set[str]:
    """E-mails of the authors of the WID's commits after its last approval, decisions left out
    (asking for changes is not writing them: the reviewer may decide on the next round)."""
    from onboarding.services import TRANSITIONS

    decisions = {action: TRANSITIONS[action][3] for action in ("approve", "reject", "request_changes")}
    authors = set()
    for commit in repo.history(product.path):
        decision = next((action for action, verb in decisions.items()
                         if commit.message == f"{verb} {product.slug}"
                         or commit.message.startswith(f"{verb} {product.slug}: ")), None)
        if decision == "approve":
            break
        if decision is None and not commit.message.startswith(RECORD_COMMIT_PREFIXES):
            authors.add(commit.author_email.lower())
    return authors


def user_was_member(user, team: Team, *, start: datetime, end: datetime) -> bool:
    """Whether `user` was in `team` at any moment from `start` to `end` (the membership audit)."""
    if Membership.objects.filter(team=team, user=user, created_at__lte=end).exists():
        return True  # a membership row is never re-created in place: it has lasted since its creation
    events = list(MembershipEvent.objects.filter(team=team, user=user).order_by("at", "id"))
    member = bool(events) and events[0].kind != MembershipEvent.Kind.JOINED  # joined before the audit began
    for event in events:
        if event.at > end:
            break
        if event.at <= start:
            member = event.kind != MembershipEvent.Kind.LEFT
        elif event.kind != MembershipEvent.Kind.LEFT:
            return True
    return member


def user_can_manage_team(user, team: Team) -> bool:
    return user_is_owner(user, team) or user_is_platform(user)


def team_list() -> QuerySet[Team]:
    return Team.objects.all()


def team_get(slug: str) -> Team:
    try:
        return Team.objects.get(slug=slug)
    except Team.DoesNotExist:
        raise NotFound(f"No team {slug!r}.") from None


def team_member_emails(team_ids) -> list[str]:
    """The e-mail addresses of the members of these teams (members without one left out)."""
    return list(Membership.objects.filter(team_id__in=team_ids).exclude(user__email="")
                .order_by("team__slug", "user__username").values_list("user__email", flat=True))


def team_memberships(team: Team) -> QuerySet[Membership]:
    return team.memberships.select_related("user").order_by("user__username")


def product_list(*, team: str | None = None, domain: str | None = None, status: str | None = None) -> QuerySet[Product]:
    qs = Product.objects.select_related("team")
    if team:
        qs = qs.filter(team__slug=team)
    if domain:
        qs = qs.filter(domain=domain)
    if status:
        qs = qs.filter(status=status)
    return qs


def product_get(slug: str) -> Product:
    try:
        return Product.objects.select_related("team").get(slug=slug)
    except Product.DoesNotExist:
        raise NotFound(f"No product {slug!r}.") from None


def product_slugs_existing(slugs: list[str]) -> set[str]:
    return set(Product.objects.filter(slug__in=slugs).values_list("slug", flat=True))


def product_statuses(slugs: list[str]) -> dict[str, str]:
    return dict(Product.objects.filter(slug__in=slugs).values_list("slug", "status"))


def product_risks(slugs: list[str]) -> dict[str, dict]:
    """{slug: {classification, pii}} as the index has them now."""
    return {slug: {"classification": classification, "pii": pii} for slug, classification, pii in
            Product.objects.filter(slug__in=slugs).values_list("slug", "classification", "pii")}


def dependency_cycle(slug: str, depends_on: list[str]) -> list[str] | None:
    """The cycle `slug` reading `depends_on` would close (`[slug, a, ..., slug]`), or None.
    Every product's current `depends_on` counts, drafts too: a cycle is refused whichever side comes second."""
    graph = {s: list(d) for s, d in Product.objects.exclude(status="retired").values_list("slug", "depends_on")}
    graph[slug] = list(depends_on)
    path, seen = [slug], set()

    def walk(node: str) -> bool:
        for upstream in graph.get(node, []):
            if upstream == slug:
                path.append(slug)
                return True
            if upstream in seen:
                continue
            seen.add(upstream)
            path.append(upstream)
            if walk(upstream):
                return True
            path.pop()
        return False

    return path if walk(slug) else None


def product_notices(slugs) -> dict[str, dict]:
    """What a reader of these products is warned of: {slug: {slug, name, domain, status, sunset,
    suspended, deprecation, suspension}} for those deprecated or suspended, with the comments of the
    last `deprecated` and `suspended` entries of their review logs ("" when there is none)."""
    products = list(Product.objects.filter(slug__in=list(slugs)).filter(Q(status="deprecated") | Q(suspended=True))
                    .exclude(status="retired"))
    comments = {(product_id, action): comment for product_id, action, comment in ReviewEvent.objects.filter(
        product__in=products, action__in=("deprecated", "suspended")).order_by("position")
        .values_list("product_id", "action", "comment")}  # the last of each wins
    return {p.slug: {"slug": p.slug, "name": p.name, "domain": p.domain, "status": p.status, "sunset": p.sunset,
                     "suspended": p.suspended,
                     "deprecation": comments.get((p.id, "deprecated"), "") if p.status == "deprecated" else "",
                     "suspension": comments.get((p.id, "suspended"), "") if p.suspended else ""}
            for p in products}


def product_dependants(slug: str) -> list[Product]:
    """Products whose current WID reads `slug` (retired ones left out)."""
    return list(Product.objects.filter(depends_on__contains=[slug]).exclude(status="retired")
                .select_related("team").order_by("slug"))


def product_live_dependants(slug: str) -> list[Product]:
    """Products whose live WID reads `slug`: the approved version's `depends_on` (an open amendment's
    own list is not live yet), for every product approved once and not retired."""
    from onboarding.services import AMENDMENT_STATUSES  # services import selectors: import at call time

    live = Product.objects.exclude(status="retired").exclude(slug=slug).filter(
        Q(approved_version__isnull=False) | Q(status="approved"))
    dependants = []
    for product in live.filter(Q(depends_on__contains=[slug]) | Q(status__in=AMENDMENT_STATUSES)) \
            .select_related("team").order_by("slug"):
        if product.status in AMENDMENT_STATUSES:
            depends_on = approved_document(product).meta.get("depends_on") or []
        else:
            depends_on = product.depends_on
        if slug in depends_on:
            dependants.append(product)
    return dependants


def document_at_version(product: Product, version: int) -> widfile.WidDocument:
    """The WID as it was at `version`, read from git (every save is one commit: the n-th is version n,
    checked against the file's own number)."""
    history = product_history(product)
    by_number = {v.number: v for v in history}
    repo = get_repository()
    candidates = [by_number[version]] if version in by_number else []
    candidates += [v for v in history if v.number != version]
    for candidate in candidates:
        doc = widfile.parse(repo.show(candidate.commit.sha, product.path))
        if doc.meta["version"] == version:
            return doc
    raise NotFound(f"Version {version} of {product.slug} is not in the WID repository.")


def approved_document(product: Product) -> widfile.WidDocument | None:
    """The WID at its approved version (the one whose infrastructure is live), or None before approval."""
    if product.approved_version is None:
        return None
    return document_at_version(product, product.approved_version)


def product_markdown(product: Product) -> str:
    text = get_repository().read(product.path, after=product.head_sha)
    if text is None:
        raise NotFound(f"{product.path} is not in the WID repository.")
    return text


@dataclass(frozen=True)
class Version:
    number: int
    commit: CommitInfo


def product_history(product: Product) -> list[Version]:
    """The WID's commits, newest first; every save is one commit, so the n-th is version n."""
    repo = get_repository()
    repo.catch_up(product.head_sha)  # another machine's save: this copy fetches it first
    commits = repo.history(product.path)
    total = len(commits)
    return [Version(total - i, commit) for i, commit in enumerate(commits)]


def product_diff(product: Product, *, from_version: int, to_version: int) -> list[str]:
    history = {v.number: v.commit.sha for v in product_history(product)}
    for field, number in (("from", from_version), ("to", to_version)):
        if number not in history:
            raise InvalidInput.on(field, f"Version {number} does not exist (1 to {len(history)}).")
    repo = get_repository()
    try:
        old = repo.show(history[from_version], product.path)
        new = repo.show(history[to_version], product.path)
    except GitError as exc:
        raise NotFound(str(exc)) from exc
    return list(difflib.unified_diff(
        old.splitlines(), new.splitlines(),
        fromfile=f"version {from_version}", tofile=f"version {to_version}", lineterm="",
    ))


def user_by_username(username: str):
    User = get_user_model()
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise InvalidInput.on("username", f"No user {username!r}.") from None


def user_by_username_or_none(username: str):
    return get_user_model().objects.filter(username=username).first()


def product_slugs_naming_source(name: str) -> list[str]:
    """Products whose WID reads the ingestion source `name`: in its current version (the index), or in
    the approved version that an open amendment would change (live until then); retired ones left out."""
    from onboarding.services import AMENDMENT_STATUSES

    live = Product.objects.exclude(status="retired")
    slugs = set(live.filter(source__name=name).values_list("slug", flat=True))
    for product in live.filter(approved_version__isnull=False, status__in=AMENDMENT_STATUSES).exclude(slug__in=slugs):
        if ((approved_document(product).meta.get("source") or {}).get("name")) == name:
            slugs.add(product.slug)
    return sorted(slugs)
