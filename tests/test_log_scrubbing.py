"""Logs never carry a customer's e-mail, phone or a token, not even inside a database error.

Issue 10, finding 6: SQLAlchemy's parameter dump put a customer's e-mail and phone into the logs
on a database error.
"""
from __future__ import annotations

import io
import logging
import threading
import time

import pytest
from sqlalchemy import text

from app.db import Database
from app.logs import JsonFormatter, PersonalDataFilter, configure_logging
from app.sync.worker import Worker

from .helpers import customer
from .test_member_sync import directory_ready, queue_customer

EMAIL, PHONE, DOMESTIC = "taro.yamada@example.com", "+81 90-1111-2222", "090-1111-2222"


@pytest.fixture
def log_output():
    """What our own handler writes (the one production uses), as text."""
    configure_logging("INFO")
    handler = next(h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def leaked(output: str) -> list[str]:
    return [secret for secret in (EMAIL, PHONE, DOMESTIC, "1111-2222", "taro.yamada") if secret in output]


def test_a_database_error_never_quotes_the_statements_parameters(db_url):
    db = Database(db_url, max_connections=2)
    try:
        with db.transaction() as s:
            s.execute(text("INSERT INTO no_such_table (email, phone) VALUES (:email, :phone)"),
                      {"email": EMAIL, "phone": PHONE})
    except Exception as exc:
        message = str(exc)
    finally:
        db.dispose()
    assert "no_such_table" in message  # the statement is there for whoever debugs it…
    assert EMAIL not in message and PHONE not in message  # …its values are not


@pytest.mark.postgres
def test_a_database_error_while_syncing_a_customer_leaves_no_email_or_phone_in_the_log(pg_url, smaregi_em, make_services,
                                                                                        log_output, monkeypatch):
    _, url = smaregi_em
    services = make_services(pg_url, smaregi_url=url)
    directory_ready(services)
    queue_customer(services, customer(email=EMAIL, phone=PHONE))
    # The database refuses the row and quotes it, as a constraint or a trigger can; a connection-class
    # error, so the worker's loop logs it with its traceback.
    with services.db.transaction() as s:
        s.execute(text("""
            CREATE FUNCTION refuse_link() RETURNS trigger AS $$ BEGIN
              RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = 'refused row ' || NEW.desired::text;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_link BEFORE UPDATE ON member_links FOR EACH ROW EXECUTE FUNCTION refuse_link();"""))
    try:
        try:
            with services.db.transaction() as s:  # what the worker's statement will raise, unfiltered
                s.execute(text("UPDATE member_links SET attempts = attempts"))
        except Exception as exc:
            assert EMAIL in str(exc)  # the danger is real: the error text carries the customer's data
        monkeypatch.setattr("app.sync.worker.ERROR_BACKOFF_S", (0.1,))
        stop = threading.Event()
        worker = threading.Thread(target=Worker(services, "logged").run, args=(stop,), daemon=True)
        worker.start()
        time.sleep(1.5)
        stop.set()
        worker.join(10)
    finally:  # the database outlives this test: later ones must find no trigger
        with services.db.transaction() as s:
            s.execute(text("DROP TRIGGER refuse_link ON member_links; DROP FUNCTION refuse_link()"))
    output = log_output.getvalue()
    assert "worker.loop_error" in output and "refused row" in output and "Traceback" in output
    assert leaked(output) == []
    assert "[email]" in output and "[phone]" in output


def test_the_filter_covers_message_arguments_extra_fields_and_exception_chains(log_output):
    log = logging.getLogger("app.test")
    try:
        try:
            raise ValueError(f"customer {EMAIL} has phone {DOMESTIC}")
        except ValueError as inner:
            raise RuntimeError("while sending Bearer shpat_0123456789abcdef") from inner
    except RuntimeError:
        log.warning("sync of %s (%s) failed", EMAIL, PHONE, exc_info=True,
                    extra={"detail": f"mail={EMAIL}", "link_id": 42, "auth": "shpss_secretsecret"})
    output = log_output.getvalue()
    assert "sync of [email] ([phone]) failed" in output and '"link_id": 42' in output
    assert "ValueError" in output and "RuntimeError" in output  # the chain is kept, scrubbed
    assert leaked(output) == [] and "shpat_" not in output and "shpss_" not in output


def test_ids_dates_and_amounts_survive_the_filter():
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "customer %s link %s at %s: %s points", (
        8840734670934, 42, "2026-12-01 23:35:21", 1250), None)
    PersonalDataFilter().filter(record)
    assert record.getMessage() == "customer 8840734670934 link 42 at 2026-12-01 23:35:21: 1250 points"
