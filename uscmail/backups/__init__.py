"""Backups: the database (pg_dump's custom format, or SQLite's backup API) and the media library's files, in one
private directory with a manifest; restore into a fresh database, checked against that manifest.

services.py runs both ways; postgres.py and sqlite.py speak to each kind of database, files.py writes and reads the
directory (private modes, checksums, the media archive); cli.py is `flask --app uscmail backup create|restore|verify`.
"""
