"""The application factory: `create_app()` is a short list of `register_*` calls, each binding one concern."""

from pathlib import Path

from flask import Flask
from flask_cors import CORS

from . import api
from .api import campaign_translations as api_campaign_translations  # noqa: F401 - registers its routes on api.bp
from .api import campaigns as api_campaigns  # noqa: F401 - registers its routes on api.bp
from .api import events as api_events  # noqa: F401 - registers its routes on api.bp
from .api import subscribers as api_subscribers  # noqa: F401 - registers its routes on api.bp
from .backups.cli import init_backups_cli
from .bounces import health_routes as deliverability_routes
from .bounces import models as bounce_models  # noqa: F401 - registers the bounce tables
from .bounces import setaside as set_aside_mail  # noqa: F401 - registers the Celery task
from .bounces import tasks as bounce_tasks  # noqa: F401 - registers the Celery task
from .bounces import webhook_routes as bounce_webhooks
from .bounces.cli import init_bounces_cli
from .campaigns import archive as campaign_archive
from .campaigns import draft_routes as campaign_draft_routes  # noqa: F401 - registers its routes on campaigns.bp
from .campaigns import routes as campaign_routes
from .campaigns import tasks as campaign_tasks  # noqa: F401 - registers the Celery tasks
from .campaigns import template_routes as campaign_template_routes
from .campaigns import translation_routes  # noqa: F401 - registers its pages on campaigns.bp
from .campaigns.cli import init_campaigns_cli
from .celery_app import celery_init_app
from .cli import init_cli
from .dbpool import ping_after_idle
from .devmail.routes import bp as devmail_bp
from .errors import init_errorhandlers
from .extensions import csrf, db, limiter, migrate
from .http_security import init_security
from .i18n import init_i18n
from .imports import routes as import_routes
from .imports import tasks as import_tasks  # noqa: F401 - registers the Celery task
from .imports.cli import init_imports_cli
from .inputguard import init_inputguard
from .mail import dkim
from .media import public as media_files
from .media import routes as media_routes
from .organisers import account_routes
from .organisers import routes as organiser_routes
from .organisers.cli import init_organisers_cli
from .reminders import public as event_pages
from .reminders import routes as reminder_routes
from .reminders import tasks as reminder_tasks  # noqa: F401 - registers the Celery task and the models
from .reminders import translation_routes as reminder_translation_routes  # noqa: F401 - registers its pages
from .requestlog import install as install_log_redaction
from .subscribers import routes as subscriber_routes
from .subscriptions import api as signup_api
from .subscriptions import routes as subscription_routes
from .subscriptions import tasks as subscription_tasks  # noqa: F401 - registers the Celery tasks

PROJECT_DIR = Path(__file__).resolve().parent.parent


def create_app(config_object=None) -> Flask:
    """Application factory; config_object defaults to the class named by USCMAIL_ENV."""
    app = Flask(
        "uscmail",
        template_folder=str(PROJECT_DIR / "templates"),
        instance_path=str(PROJECT_DIR / "instance"),
    )
    if config_object is None:
        # Imported here, not at the top: config.py reads the environment when it is imported, and that must be when
        # the app is made (tests and the dev server set the environment after importing uscmail).
        from config import config_from_env

        config_object = config_from_env()
    app.config.from_object(config_object)
    Path(app.instance_path).mkdir(exist_ok=True)
    register_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_security(app)
    register_errorhandlers(app)
    register_cli(app)
    return app


def register_logging(app: Flask) -> None:
    """Keep link tokens, query strings and client addresses out of the app's and werkzeug's logs (gunicorn's are
    handled by uscmail.gunicorn_conf)."""
    install_log_redaction(app.logger)


def register_extensions(app: Flask) -> None:
    """Bind the extensions and Celery to this app."""
    dkim.init_app(app)  # first: the signing key is read once, here, and a wrong one stops the app with the reason
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            ping_after_idle(engine)
    migrate.init_app(app, db, directory=str(PROJECT_DIR / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    init_i18n(app)
    celery_init_app(app)
    if app.config.get("CORS_ORIGINS"):
        CORS(
            app,
            resources={r"/api/v1/public/*": {"origins": app.config["CORS_ORIGINS"]}},
            supports_credentials=False,
        )


def register_blueprints(app: Flask) -> None:
    """Mount the feature blueprints; the dev mail viewer only where configured."""
    for blueprint in (
        subscription_routes.bp,
        signup_api.bp,
        organiser_routes.bp,
        subscriber_routes.bp,
        import_routes.bp,
        api.bp,
        account_routes.bp,
        campaign_routes.bp,
        campaign_template_routes.bp,
        campaign_archive.bp,
        event_pages.bp,
        reminder_routes.bp,
        bounce_webhooks.bp,
        deliverability_routes.bp,
        media_routes.bp,
        media_files.bp,
    ):
        app.register_blueprint(blueprint)
    if app.config.get("DEV_MAIL_VIEWER") and app.config.get("ENV_NAME") != "production":
        app.register_blueprint(devmail_bp)


def register_security(app: Flask) -> None:
    """Proxy handling, the security headers every response carries, and the refusal of input nothing may store."""
    init_security(app)
    init_inputguard(app)


def register_errorhandlers(app: Flask) -> None:
    """Friendly pages (or JSON under /api) instead of stack traces."""
    init_errorhandlers(app)


def register_cli(app: Flask) -> None:
    """`flask seed` and friends."""
    init_cli(app)
    init_organisers_cli(app)
    init_imports_cli(app)
    init_campaigns_cli(app)
    init_bounces_cli(app)
    init_backups_cli(app)
