"""Executors are found by entry point, routed per kind by a setting, and refused when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from copilot.engine.executor import Action, ExecutorRegistry
from copilot.engine.executors import OutboxExecutor
from copilot.engine.routes import build_executors, check_routes, parse_routes
from copilot.errors import ConfigError
from copilot.settings import Settings
from tests.support import plugin_dist


def test_routes_parse_into_a_mapping_of_kind_to_executor() -> None:
    assert parse_routes("") == {}
    assert parse_routes(" send_email = webhook, billing_reminder=outbox ,") == {
        "send_email": "webhook",
        "billing_reminder": "outbox",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("send_email", "item 'send_email': use kind=executor"),
        ("=webhook", "item '=webhook': use kind=executor"),
        ("send_email=", "item 'send_email=': use kind=executor"),
        ("send_email=webhook,send_email=outbox", "routes 'send_email' twice"),
    ],
)
def test_malformed_routes_are_refused_naming_the_item(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_routes(text)
    assert info.value.code == "config.invalid"


def test_the_built_ins_are_registered_without_any_installed_metadata() -> None:
    registry = ExecutorRegistry.discover(group="copilot.executors.nothing-installed-here")
    assert registry.names() == ["celery", "outbox", "webhook"]


def test_an_executor_from_an_installed_distribution_is_discovered_and_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    monkeypatch.syspath_prepend(str(plugin_dist.write_distribution(tmp_path / "site")))
    registry = ExecutorRegistry.discover()
    assert {"outbox", "webhook", plugin_dist.NAME} <= set(registry.names())
    executor = registry.build(plugin_dist.NAME, engine, Settings(home=tmp_path))
    action = Action(tenant="t", run_id=None, kind="k", payload={"a": 1}, idempotency_key="x:1")
    assert executor.execute(action).executor == plugin_dist.NAME
    assert [a["idempotency_key"] for a in plugin_dist.received(tmp_path)] == ["x:1"]


def test_a_distribution_redeclaring_a_built_in_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = plugin_dist.write_distribution(
        tmp_path / "site", entry_points="outbox = acme_executors:FileExecutor"
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ConfigError, match="executor 'outbox' is declared twice"):
        ExecutorRegistry.discover()


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("acme_other = acme_executors:FileExecutor", "built an executor named 'acme_file'"),
        ("acme_ghost = acme_missing:FileExecutor", "could not be loaded"),
        ("acme_boom = acme_broken:Factory", "could not be loaded: RuntimeError: boom at import"),
        ("acme_fail = acme_failing:Factory", "failed to start: RuntimeError: no token"),
    ],
)
def test_an_entry_point_that_cannot_build_its_executor_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine, declared: str, message: str
) -> None:
    """Whatever a plug-in raises while loading or building, start-up says which one, as config."""
    site = plugin_dist.write_distribution(tmp_path / "s", declared)
    (site / "acme_broken.py").write_text('raise RuntimeError("boom at import")\n')
    (site / "acme_failing.py").write_text(
        'def Factory(engine, settings):\n    raise RuntimeError("no token")\n'
    )
    monkeypatch.syspath_prepend(str(site))
    registry = ExecutorRegistry.discover()
    name = declared.split(" = ")[0]
    with pytest.raises(ConfigError, match=message):
        registry.build(name, engine, Settings(home=tmp_path))


def test_routes_must_name_registered_executors_and_catalogued_kinds() -> None:
    registry = ExecutorRegistry.discover()
    check_routes({"send_email": "webhook"}, registry, ["send_email"])
    with pytest.raises(ConfigError, match="route send_email=crm: no executor 'crm'") as info:
        check_routes({"send_email": "crm"}, registry, ["send_email"])
    assert info.value.details == {"route": "send_email=crm"}
    with pytest.raises(ConfigError, match="route send_mail=outbox: no registered workflow"):
        check_routes({"send_mail": "outbox"}, registry, ["send_email"])


def test_the_executors_built_are_outbox_the_routed_ones_and_a_configured_webhook(
    engine: Engine, tmp_path: Path
) -> None:
    registry = ExecutorRegistry.discover()
    plain = build_executors({}, registry, engine, Settings(home=tmp_path))
    assert list(plain) == ["outbox"] and isinstance(plain["outbox"], OutboxExecutor)
    hooked = Settings(home=tmp_path, webhook_url="http://127.0.0.1:9/h", webhook_secret="s")
    assert set(build_executors({}, registry, engine, hooked)) == {"outbox", "webhook"}
    with pytest.raises(ConfigError, match="route send_email=webhook: COPILOT_WEBHOOK_SECRET"):
        build_executors(
            {"send_email": "webhook"},
            registry,
            engine,
            Settings(home=tmp_path, webhook_url="http://127.0.0.1:9/h"),
        )
