"""uscmail: the mailing-list and newsletter manager of the Uyghur Solidarity Campaign UK."""

from .app import PROJECT_DIR, create_app

__all__ = ["PROJECT_DIR", "create_app"]
