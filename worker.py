"""Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""

from uscmail import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
