"""What the newcomer trial of the integrated branch hit with databases (issue 19, trial).

In process (the messages come from `copilot.db.engines.explain`, which the CLI's `main`
prints for every command; `tests/copilot/cli/test_cli_newcomer.py` runs that path as a
process), against a real PostgreSQL server and real SQLite files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from copilot.cli.app import app
from copilot.db.engines import explain, make_engine, ping, upgrade
from copilot.errors import DatabaseConfigError
from copilot.settings import Settings, shown_url
from tests.support.services import PG_DSN, unavailable

ABSENT = "copilot_trial_absent"
_PG = dict(kv.split("=", 1) for kv in PG_DSN.split())
PG_HOST, PG_PORT = _PG.get("host", "127.0.0.1"), _PG.get("port", "5432")


def _runs_list_message(url: str, home: Path) -> str:
    """What `copilot runs list` prints for `url`: its query's error, explained."""
    engine = make_engine(Settings(home=home, database_url=url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT id FROM runs"))
    except DBAPIError as exc:
        return explain(exc, url)
    finally:
        engine.dispose()
    raise AssertionError("the query should have failed")


def test_a_postgres_database_that_does_not_exist_is_named_with_its_server(
    tmp_path: Path,
) -> None:
    """SQLSTATE 3D000 is not "run copilot db upgrade" (which fails the same way)."""
    url = f"postgresql+psycopg://{PG_HOST}:{PG_PORT}/{ABSENT}"
    expected = (
        f"database '{ABSENT}' does not exist on {PG_HOST}:{PG_PORT}; create it "
        f"(`createdb -h {PG_HOST} -p {PG_PORT} {ABSENT}`) or fix COPILOT_DATABASE_URL"
    )
    said = _runs_list_message(url, tmp_path)
    if said.startswith("cannot reach"):
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", RuntimeError(said))
    assert said == expected
    engine = make_engine(Settings(home=tmp_path, database_url=url))
    for attempt in (upgrade, ping):  # `copilot db upgrade`, and start-up's ping
        with pytest.raises(DatabaseConfigError) as caught:
            attempt(engine)
        assert caught.value.code == "config.database" and caught.value.message == expected
    engine.dispose()


def test_a_sqlite_url_with_no_file_names_the_absolute_path_and_upgrade_says_it_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nested" / "copilot.db"
    url = f"sqlite:///{path}"  # an absolute path: four slashes
    missing = _runs_list_message(url, tmp_path)
    assert missing.startswith(f"no database file at {path} (sqlite:///path is relative")
    assert "three slashes or four" in missing and "`copilot db upgrade` to create it" in missing
    monkeypatch.chdir(tmp_path)  # a relative URL names the file from the current directory
    relative = _runs_list_message("sqlite:///rel/x.db", tmp_path)
    assert relative.startswith(f"no database file at {tmp_path / 'rel' / 'x.db'} (")
    runner = CliRunner()
    env = {"COPILOT_HOME": str(tmp_path), "COPILOT_DATABASE_URL": url}
    made = runner.invoke(app, ["db", "upgrade"], env=env)
    assert made.exit_code == 0, made.output
    assert made.output.splitlines() == [
        f"created the database file {path}",
        f"database at {url} is up to date",
    ]
    again = runner.invoke(app, ["db", "upgrade"], env=env)
    assert again.output.splitlines() == [f"database at {url} is up to date"]


def test_messages_show_urls_without_password_or_the_engines_options(tmp_path: Path) -> None:
    url = "postgresql+psycopg://app:s3cret@127.0.0.1:1/x"
    engine = make_engine(Settings(home=tmp_path, database_url=url))
    assert "lock_timeout" in engine.url.render_as_string()  # the engine adds its options
    with pytest.raises(DatabaseConfigError) as caught:
        ping(engine)
    shown = caught.value.message
    assert shown.startswith(
        "cannot reach the database at postgresql+psycopg://app:***@127.0.0.1:1/x ("
    )
    assert "s3cret" not in shown and "lock_timeout" not in shown and "options" not in shown
    given = "postgresql+psycopg://u:pw@h/db?options=-c%20lock_timeout%3D5000&sslmode=require"
    assert shown_url(given) == "postgresql+psycopg://u:***@h/db?sslmode=require"
    assert shown_url("amqp://guest:guest@rabbit:5672//") == "amqp://guest:***@rabbit:5672//"
