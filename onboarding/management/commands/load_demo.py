"""Demo teams, users and WIDs for `make run`. Safe to run again: it only adds what is missing."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from onboarding import services
from onboarding.models import Membership, Product, Team
from onboarding.selectors import PLATFORM_GROUP
from onboarding.widrepo import get_repository

PASSWORD = "portal-demo"
USERS = [
    # username, first, last, platform?, superuser?
    ("alice", "Alice", "Analyst", False, False),
    ("bob", "Bob", "Builder", False, False),
    ("carol", "Carol", "Curious", False, False),
    ("priya", "Priya", "Platform", True, False),
    ("admin", "Ada", "Admin", True, True),
]
TEAMS = [
    ("growth-analytics", "Growth analytics", [("alice", "owner"), ("bob", "member")]),
    ("finance-data", "Finance data", [("bob", "owner")]),
    ("sales-ops", "Sales operations", [("carol", "owner")]),
]


def _wid(slug, name, domain, team, classification, pii, tier, depends_on, outputs, value, **extra):
    return {**extra,
        "slug": slug, "name": name, "domain": domain, "team": team, "target": "local",
        "classification": classification, "pii": pii, "compute_tier": tier,
        "contacts": {
            "business": {"name": "Maria Business", "email": f"maria.business+{slug}@example.com"},
            "technical": {"name": "Tom Technical", "email": f"tom.technical+{slug}@example.com"},
        },
        "data_custodian": {"name": "Carla Custodian", "email": "carla.custodian@example.com"},
        "depends_on": depends_on, "outputs": outputs,
        "sections": {
            "value_proposition": value,
            "architecture": "Ingest nightly from the source system into `raw/`, clean into `staging/`, "
                            "publish to `curated/`.\n\n- Orchestration: the product's own pipeline\n"
                            "- Storage: its own schema and lake folder",
            "integration_points": "Reads: " + (", ".join(depends_on) or "the source system") + ".\n\n"
                                  "Writes: only its own curated area.",
            "data_surfacing": "\n".join(f"- `{o['name']}` ({o['kind']})" for o in outputs),
        },
    }


WIDS = [
    # (user, data, then: list of (actor, action, comment))
    ("bob", _wid("orders-core", "Orders core", "sales", "finance-data", "internal", False, "small", [],
                 # Never run in the demo: stale ten minutes after it is provisioned (README, "Freshness and quality").
                 [{"name": "orders", "kind": "table", "freshness": "2h", "checks": {"rows_min": 1}},
                  {"name": "order_lines", "kind": "table", "freshness": "10m"}],
                 "One trusted table of orders for every team, refreshed hourly.",
                 triggers={"on_file": True, "on_upstream": []}),  # a CSV dropped into its raw/ runs it
     [("bob", "submit", "")]),
    ("alice", _wid("customer-churn", "Customer churn insights", "growth", "growth-analytics", "confidential", True,
                   "medium", ["orders-core"], [{"name": "churn_scores", "kind": "table"},
                                               {"name": "churn_dashboard", "kind": "dashboard"}],
                   "Predict which customers are likely to leave so that retention can act **before** they do."),
     [("alice", "submit", "Ready for review; PII is limited to customer ids.")]),
    ("bob", _wid("revenue-forecast", "Revenue forecast", "finance", "finance-data", "restricted", False, "large",
                 ["orders-core"], [{"name": "forecast_model", "kind": "model"}],
                 "A weekly revenue forecast for the finance team."),
     [("bob", "submit", ""), ("priya", "request_changes", "Please explain why the large compute tier is needed.")]),
    ("alice", _wid("marketing-attribution", "Marketing attribution", "growth", "growth-analytics", "internal", False,
                   "small", ["customer-churn"], [{"name": "attribution_feed", "kind": "feed"}],
                   "Which campaigns bring customers who stay."),
     []),
    # Reads orders-core's published tables through a grant in its own Terraform state (approved by policy).
    ("carol", _wid("sales-dashboard", "Sales dashboard", "sales", "sales-ops", "internal", False, "small",
                   ["orders-core"], [{"name": "weekly_sales", "kind": "dashboard"}],
                   "Weekly sales per region for the sales leads, from the trusted orders.",
                   triggers={"on_file": False, "on_upstream": ["orders-core"]}),  # runs after each orders-core run
     [("carol", "submit", "")]),
]


class Command(BaseCommand):
    help = "Load demo teams, users (password 'portal-demo') and WIDs; running it again changes nothing."

    def handle(self, *args, **options):
        User = get_user_model()
        platform, _ = Group.objects.get_or_create(name=PLATFORM_GROUP)
        users = {}
        for username, first, last, is_platform, is_superuser in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com",
                          "is_superuser": is_superuser, "is_staff": is_superuser},
            )
            if created:
                user.set_password(PASSWORD)
                user.save()
            if is_platform:
                user.groups.add(platform)
            users[username] = user
        with transaction.atomic():
            for slug, name, members in TEAMS:
                team, _ = Team.objects.get_or_create(slug=slug, defaults={"name": name})
                for username, role in members:
                    Membership.objects.get_or_create(team=team, user=users[username], defaults={"role": role})
        if not Product.objects.exists() and get_repository().tracked_files("wids"):
            self.stdout.write(f"Indexing {services.index_rebuild()} WIDs already in the repository.")
        actions = {"submit": services.wid_submit, "approve": services.wid_approve,
                   "request_changes": services.wid_request_changes, "reject": services.wid_reject}
        added = 0
        for author, data, steps in WIDS:
            if Product.objects.filter(slug=data["slug"]).exists():
                continue
            services.wid_create(user=users[author], data=data)
            for actor, action, comment in steps:
                actions[action](user=users[actor], slug=data["slug"], comment=comment)
            added += 1
        self.stdout.write(self.style.SUCCESS(
            f"Demo data ready: {len(USERS)} users (password {PASSWORD!r}), {len(TEAMS)} teams, {added} new WIDs."
        ))
