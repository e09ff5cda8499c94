from django.core import checks
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from disclosure import backup, backup_targets, health, pgp, storage


class Command(BaseCommand):
    requires_system_checks = []  # the target is empty until the archive is restored; checked afterwards
    help = ("Restore a backup archive into an empty database and empty file storage (after checking every "
            "checksum in its manifest), or, with --verify, into scratch copies that are then thrown away.")

    def add_arguments(self, parser):
        parser.add_argument("archive", help="a portal-backup-*.tar.gpg file, an archive in the bucket as backup "
                                            "prints and lists it (s3://<bucket>/<key>), or an archive's name where "
                                            "backups go")
        parser.add_argument("--verify", action="store_true",
                            help="restore into a scratch database and storage, compare, and discard them")
        parser.add_argument("--force", action="store_true",
                            help="restore over a database and storage that are not empty (replacing their content)")

    def handle(self, *args, archive, verify=False, force=False, **options):
        try:
            with backup_targets.fetched(archive) as path:
                if verify:
                    return self.verify(path)
                manifest = backup.restore(path, force=force)
        except (backup.BackupError, pgp.PGPError, DatabaseError, *storage.ERRORS) as error:
            prefix = "RESTORE VERIFICATION FAILED: " if verify else "Restore failed: "
            raise CommandError(prefix + str(error)) from None
        cache.clear()  # nothing remembered from the portal that was replaced
        pgp.forget()
        health.forget()
        problems = backup.compare_counts(manifest["database"]["counts"], backup.restored_counts())
        if problems:
            raise CommandError("Restored, but the row counts differ from the manifest:\n  " + "\n  ".join(problems))
        self.stdout.write(f"Restored {path.name} (made {manifest['created_at']}, portal {manifest['portal_version']}): "
                          f"{len(manifest['database']['counts'])} tables, {manifest['files']} files.")
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            self.stdout.write(f"{len(pending)} migration(s) of this code are not applied: run manage.py migrate.")
        errors = [message for message in checks.run_checks() if message.level >= checks.ERROR
                  and not message.is_silenced()]
        for message in checks.run_checks():
            if message.level >= checks.WARNING and not message.is_silenced():
                self.stdout.write(f"{message.id}: {message.msg}")
        if errors:
            raise CommandError("The restored portal fails its system checks (see above).")
        self.stdout.write("System checks passed.")

    def verify(self, path):
        result = backup.verify(path)
        counts = result.manifest["database"]["counts"]
        self.stdout.write(f"Archive {path.name}: made {result.manifest['created_at']}, portal "
                          f"{result.manifest['portal_version']}, {result.manifest['database']['vendor']} database.")
        self.stdout.write(f"Checksums: {len(result.manifest['members'])} members match the manifest.")
        self.stdout.write(f"Rows: {sum(result.counts.values())} in {len(result.counts)} tables restored "
                          f"(manifest: {sum(counts.values())} in {len(counts)}).")
        self.stdout.write(f"Files: {result.files_checked} restored and re-read.")
        if result.problems:
            raise CommandError("RESTORE VERIFICATION FAILED:\n  " + "\n  ".join(result.problems))
        self.stdout.write("Verification passed; the scratch copy was deleted.")
