from django.core.management.base import BaseCommand

from onboarding.services import index_rebuild


class Command(BaseCommand):
    help = "Recreate the products, statuses, versions and review logs in the database from the WID repository."

    def handle(self, *args, **options):
        count = index_rebuild()
        self.stdout.write(self.style.SUCCESS(f"Indexed {count} WIDs from the repository."))
