import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from onboarding.models import Membership, Team
from onboarding.selectors import PLATFORM_GROUP


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.replace("-", " ").title())


def member_of(team: Team, role: str = "member", **kwargs):
    user = UserFactory(**kwargs)
    Membership.objects.create(team=team, user=user, role=role)
    return user


def platform_user(**kwargs):
    user = UserFactory(**kwargs)
    user.groups.add(Group.objects.get_or_create(name=PLATFORM_GROUP)[0])
    return user


def wid_payload(slug: str = "customer-churn", team: str = "growth-analytics", **overrides) -> dict:
    """A valid create body; `overrides` replace top-level keys."""
    data = {
        "slug": slug,
        "name": "Customer churn insights",
        "domain": "growth",
        "team": team,
        "target": "local",
        "classification": "confidential",
        "pii": True,
        "compute_tier": "small",
        "contacts": {
            "business": {"name": "Maria Business", "email": "maria@example.com"},
            "technical": {"name": "Tom Technical", "email": "tom@example.com"},
        },
        "data_custodian": {"name": "Carla Custodian", "email": "carla@example.com"},
        "depends_on": [],
        "outputs": [{"name": "churn_scores", "kind": "table"}],
        "sections": {
            "value_proposition": "Predict churn so retention can act.",
            "architecture": "Nightly batch from `raw/` to `curated/`.",
            "integration_points": "Reads orders.",
            "data_surfacing": "A table and a dashboard.",
        },
    }
    data.update(overrides)
    return data
