"""When PostgreSQL or Redis is out of reach (restarting, say), pages and the API answer 503 with Retry-After and
plain words, never a 500 or a stack trace; a statement the database refuses (a bug) stays a 500."""

import pytest

from tests.bounce_support import free_port
from tests.conftest import form_fields


def app_with(**settings):
    from config import TestConfig
    from uscmail import create_app

    config = TestConfig()
    for name, value in settings.items():
        setattr(config, name, value)
    return create_app(config)


def test_a_database_out_of_reach_gets_503_with_retry_after_on_pages_and_the_api():
    away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/uscmail"
    client = app_with(SQLALCHEMY_DATABASE_URI=away).test_client()
    page = client.get("/subscribe")
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "30"
    text = page.get_data(as_text=True)
    assert "try again in a minute" in text and "Traceback" not in text and "psycopg" not in text
    api = client.get("/api/v1/lists", headers={"Authorization": "Bearer x" * 3})
    assert api.status_code == 503 and "restarting" in api.get_json()["error"]


def test_redis_out_of_reach_gets_503_for_a_signup(app, db):
    client = app_with(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").test_client()
    page = client.get("/subscribe")
    answer = client.post(
        "/subscribe",
        data={**form_fields(page.get_data(as_text=True)), "email": "amina@example.org", "lists": ["newsletter"]},
    )
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert "try again in a minute" in answer.get_data(as_text=True)


def test_a_statement_the_database_refuses_is_still_a_500(tmp_path):
    client = app_with(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.sqlite'}").test_client()
    page = client.get("/subscribe")  # no tables: the database answers, and refuses the statement
    assert page.status_code == 500 and "Retry-After" not in page.headers


@pytest.mark.parametrize(
    "task_name", ["apply_signup", "send_signup_mail", "send_preferences_link", "send_welcome_mail"]
)
def test_a_supporter_mail_task_is_retried_when_the_database_is_out_of_reach(task_name):
    """A confirmation mail whose task met the database restarting is tried again later, not lost (`make chaos`
    found one lost that way): the task raises DatabaseAway, an OSError, which its autoretry covers."""
    from uscmail.outages import DatabaseAway
    from uscmail.subscriptions import tasks

    task = getattr(tasks, task_name)
    assert issubclass(DatabaseAway, task.autoretry_for)
    app = app_with(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/uscmail")
    with app.app_context(), pytest.raises(DatabaseAway, match="out of reach"):
        arguments = {"apply_signup": (1,), "send_preferences_link": ("x" * 32,)}.get(task_name, (1, [1]))
        task(*arguments)


def test_a_statement_the_database_refuses_is_not_retried_as_an_outage(tmp_path):
    from sqlalchemy.exc import OperationalError

    from uscmail.subscriptions import tasks

    app = app_with(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with app.app_context(), pytest.raises(OperationalError, match="no such table"):
        tasks.send_signup_mail(1, [1])


def test_a_broker_out_of_reach_when_a_view_queues_a_task_gets_503():
    """kombu's OperationalError, as Celery raises it when the broker refuses the connection while a view queues a
    task (Redis restarting mid-request), is an outage too (raised here by a view added for the test)."""
    import kombu.exceptions

    app = app_with()

    @app.get("/test-only/queue-a-task")
    def queue_a_task():
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    answer = app.test_client().get("/test-only/queue-a-task")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert "Connection refused" not in answer.get_data(as_text=True)
