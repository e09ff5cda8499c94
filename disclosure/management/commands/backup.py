from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from disclosure import backup, backup_targets, pgp, storage


class Command(BaseCommand):
    help = ("Write one encrypted archive of the database, the stored files and a manifest where BACKUP_TARGET says "
            "(BACKUP_DIR, or the bucket under BACKUP_S3_PREFIX), encrypted to the team key and "
            "BACKUP_KEY_FINGERPRINT; never written in clear. --list lists the archives there.")

    def add_arguments(self, parser):
        parser.add_argument("--dir", dest="directory", help="write into this folder instead of BACKUP_TARGET")
        parser.add_argument("--list", action="store_true", dest="list_archives",
                            help="list the archives where backups go, newest first, as restore takes them")

    def handle(self, *args, directory=None, list_archives=False, **options):
        try:
            if list_archives:
                return self.list()
            if directory:
                location = str(backup.create_backup(timezone.now(), directory))
            else:
                location = backup_targets.make_backup(timezone.now())
        except (backup.BackupError, pgp.PGPError, DatabaseError, *storage.ERRORS) as error:
            raise CommandError(f"Backup failed: {error}") from None
        self.stdout.write(f"Backup written to {location}")

    def list(self):
        found = backup_targets.archives()
        if not found:
            self.stdout.write(f"No backups in {backup_targets.describe()}")
        for archive in reversed(found):
            self.stdout.write(f"{archive.location}  {archive.made_at:%Y-%m-%d %H:%M:%S} UTC  "
                              f"{filesizeformat(archive.size)}")
