from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from disclosure import backup, pgp


class Command(BaseCommand):
    help = ("Write one encrypted archive of the database, the stored files and a manifest into BACKUP_DIR "
            "(encrypted to the team key and BACKUP_KEY_FINGERPRINT; never written in clear).")

    def add_arguments(self, parser):
        parser.add_argument("--dir", dest="directory", help="write into this folder instead of BACKUP_DIR")

    def handle(self, *args, directory=None, **options):
        try:
            path = backup.create_backup(timezone.now(), directory)
        except (backup.BackupError, pgp.PGPError, DatabaseError, OSError) as error:
            raise CommandError(f"Backup failed: {error}") from None
        self.stdout.write(f"Backup written to {path}")
