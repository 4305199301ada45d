"""Reads of onboarding: products, teams, permissions, and what git knows of a WID."""
import difflib
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from onboarding.models import Membership, Product, Team
from onboarding.widrepo import CommitInfo, GitError, get_repository
from portal.errors import InvalidInput, NotFound

PLATFORM_GROUP = "platform"


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


def user_can_decide(user, product: Product) -> bool:
    """The platform decides, and never on a WID of a team it is itself in (four eyes)."""
    return user_is_platform(user) and not user_is_member(user, product.team)


def user_can_manage_team(user, team: Team) -> bool:
    return user_is_owner(user, team) or user_is_platform(user)


def team_list() -> QuerySet[Team]:
    return Team.objects.all()


def team_get(slug: str) -> Team:
    try:
        return Team.objects.get(slug=slug)
    except Team.DoesNotExist:
        raise NotFound(f"No team {slug!r}.") from None


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
