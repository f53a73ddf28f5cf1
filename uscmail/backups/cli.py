"""`flask --app uscmail backup create|verify|restore` (and `make backup`, `make restore`). Nothing printed names a
person: only paths, table names and counts."""

from pathlib import Path

import click
from flask import Flask

from .files import BackupError
from .services import create_backup, restore_backup, verify_backup

# The tables whose counts `create` and `restore` print; every table is checked all the same.
SHOWN_TABLES = ("subscribers", "subscriptions", "consents", "suppressions", "campaigns", "deliveries", "media_images")


def _counts(row_counts: dict[str, int]) -> str:
    shown = [f"{table} {row_counts[table]}" for table in SHOWN_TABLES if table in row_counts]
    return ", ".join(shown) + f" ({len(row_counts)} tables in all)"


def init_backups_cli(app: Flask) -> None:
    """Register the `backup` command group."""
    group = click.Group("backup", help="Back up the database and media files, check a backup, restore one.")

    @group.command("create")
    @click.option("--to", "parent", type=click.Path(file_okay=False, path_type=Path), help="Default: BACKUP_DIR.")
    def create_command(parent: Path | None) -> None:
        """Write a new backup directory (private: it holds the list) and print its path."""
        try:
            path, manifest = create_backup(parent)
        except BackupError as error:
            raise click.ClickException(str(error)) from None
        database, media = manifest["database"], manifest["media"]
        click.echo(f"backup written to {path}")
        click.echo(
            f"  database ({database['kind']}, schema {database['schema_revision']}): {_counts(database['row_counts'])}"
        )
        if media["kind"] == "files":
            click.echo(f"  media files: {len(media['files'])}")
        else:
            click.echo(
                f"  media files: in the S3 bucket {media['bucket']}, not in this backup (back the bucket up too)"
            )

    @group.command("verify")
    @click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
    def verify_command(backup: Path) -> None:
        """Check every file of a backup against its manifest's checksums."""
        try:
            manifest = verify_backup(backup)
        except BackupError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"{backup}: every file matches its manifest ({manifest['created_at']})")

    @group.command("restore")
    @click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option(
        "--database",
        "target",
        required=True,
        help="A database URL, or for PostgreSQL just a name: a database on DATABASE_URL's server.",
    )
    @click.option(
        "--media-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where to put the media files. Default: MEDIA_DIR (or the S3 bucket).",
    )
    @click.option("--force", is_flag=True, help="Replace whatever the database (and media files) hold.")  # fmt: skip
    def restore_command(backup: Path, target: str, media_dir: Path | None, force: bool) -> None:
        """Restore a backup into a new database and check it against the manifest."""
        try:
            restored = restore_backup(backup, target, media_dir, force)
        except BackupError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"restored into {restored.database}" + (" (created)" if restored.created else ""))
        click.echo(f"  every table's rows match the manifest: {_counts(restored.row_counts)}")
        click.echo(f"  media files written: {restored.media_written}, already there: {restored.media_present}")
        click.echo("  then: DATABASE_URL=<that database> flask --app uscmail db upgrade, if this code is newer")

    app.cli.add_command(group)
