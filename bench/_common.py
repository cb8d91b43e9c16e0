"""Shared bench plumbing: arguments, PostgreSQL schemas, and the closing JSON line.

Benches run as modules from the checkout (`python -m bench.runtime`); what they share
with the tests (`build_runtime`, the flows) they import from `tests.support`.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: cwd of the processes benches start
PG_DSN = os.environ.get("COPILOT_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@dataclass
class Result:
    """One figure beside its same-run baseline."""

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str

    def met(self) -> bool:
        """Whether the target holds: '>= 0.5' reads the ratio, 'value >= 20000' the value
        (a figure printed for context has the target `info` and always holds)."""
        if self.target == INFO:
            return True
        parts = self.target.split()
        on_value = parts[0] == "value"
        op, num = parts[-2:]
        x = self.value if on_value or self.ratio is None else self.ratio
        return x >= float(num) if op == ">=" else x <= float(num)


def parser(description: str) -> argparse.ArgumentParser:
    """Every bench takes --quick (under a minute)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes; finishes in under a minute")
    return p


def _dsn_parts() -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in PG_DSN.split())


def pg_url(schema: str) -> str:
    """A SQLAlchemy URL for `schema`'s fresh database (see `pg_schema`), the schema first on
    the search path."""
    parts = _dsn_parts()
    return (
        f"postgresql+psycopg://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
        f"{parts.get('port', '5432')}/{schema}?options=-csearch_path%3D{schema}"
    )


def pg_dsn(schema: str) -> str:
    """A libpq DSN for `schema`'s fresh database (the search path set with `options`)."""
    parts = {**_dsn_parts(), "dbname": schema}
    return " ".join(f"{k}={v}" for k, v in parts.items())


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL database with a schema of the same name, both dropped afterwards.

    A fresh database, not a schema in a shared one: a catalog bloated by many created and
    dropped schemas (a test suite's) slows every connection's catalog lookups, and with them
    the figures (`VACUUM FULL` of `pg_class`, `pg_attribute`, `pg_depend` restored them).
    """
    import psycopg

    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    try:
        with psycopg.connect(pg_dsn(name), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


INFO = "info"  # the target of a figure printed for context, with none of its own


def report(bench: str, results: list[Result]) -> None:
    """Print a readable table, then the one JSON line every bench ends with."""
    for r in results:
        base = f"{r.baseline:,.1f}" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        flag = "" if r.target == INFO else "ok" if r.met() else "MISSED"
        print(f"{r.name:<44} {r.value:>12,.1f} {r.unit:<10} base {base:>12} ratio {ratio:>6} "
              f"target {r.target:<8} {flag}")  # fmt: skip
    print(json.dumps({"bench": bench, "results": [asdict(r) for r in results]}))
