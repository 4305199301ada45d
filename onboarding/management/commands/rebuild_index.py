from django.core.management.base import BaseCommand, CommandError

from onboarding.services import index_check, index_rebuild


class Command(BaseCommand):
    help = "Recreate the products, statuses, versions and review logs in the database from the WID repository."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="Only report every difference between git and the index; exit 1 if there are any.")

    def handle(self, *args, **options):
        if options["check"]:
            differences = index_check()
            for line in differences:
                self.stdout.write(line)
            if differences:
                raise CommandError(f"{len(differences)} differences between the WID repository and the index.")
            self.stdout.write(self.style.SUCCESS("The index matches the WID repository."))
            return
        count = index_rebuild()
        self.stdout.write(self.style.SUCCESS(f"Indexed {count} WIDs from the repository."))
