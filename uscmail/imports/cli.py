"""`flask --app uscmail subscribers import|export`: bulk import from CSV with a report, and a full CSV export."""

import contextlib
from pathlib import Path

import click
from flask import Flask

from ..extensions import db
from ..subscribers.services import ConsentBasis
from ..validation import InvalidInput
from . import export, services
from .reader import ImportFileError

ACTOR = "cli"


def init_imports_cli(app: Flask) -> None:
    """Register the `subscribers` command group."""
    group = click.Group("subscribers", help="Import and export subscribers.")

    @group.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--list", "slugs", multiple=True, required=True, help="Slug of a list to import into (repeatable).")
    @click.option("--basis", type=click.Choice([b.value for b in ConsentBasis]), required=True)
    @click.option("--note", required=True, help="The consent basis, recorded on every consent row.")
    @click.option("--dry-run", is_flag=True, help="Report what would happen; write nothing.")
    @click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Skipped rows CSV.")
    def import_command(file: Path, slugs, basis: str, note: str, dry_run: bool, report_path: Path | None) -> None:
        """Import a CSV file with an `email` column (and optionally `name`)."""
        try:
            lists = services.resolve_lists(slugs)
            with file.open("rb") as binary, _report_file(report_path) as report:
                result = services.import_subscribers(
                    binary, lists, ConsentBasis(basis), note, ACTOR, dry_run=dry_run, report=report
                )
        except (InvalidInput, ImportFileError, services.ImportConflict) as exc:
            db.session.rollback()
            if report_path is not None:
                report_path.unlink(missing_ok=True)
            raise click.ClickException(str(exc)) from None
        queued = services.queue_confirmation_mails(result)
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
        click.echo(("dry run, nothing written\n" if dry_run else "") + result.summary())
        if queued:
            click.echo(f"confirmation mails queued: {queued}")
        if report_path is not None:
            click.echo(f"report of skipped rows: {report_path}")

    @group.command("export")
    @click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
    def export_command(out: Path) -> None:
        """Write every subscriber with their list memberships to a CSV file (audited)."""
        export.record_export(ACTOR)
        db.session.commit()
        with out.open("w", encoding="utf-8", newline="") as handle:
            count = export.write_export(handle)
        click.echo(f"exported {count} subscribers to {out}")

    app.cli.add_command(group)


def _report_file(path: Path | None):
    return path.open("w", encoding="utf-8", newline="") if path is not None else contextlib.nullcontext()
