"""MkDocs hook: the reference pages, generated from the code at every build so they cannot drift.

- `reference/settings.md`: every field of `copilot.settings.Settings` (variable, default,
  bounds, description).
- `reference/cli.md`: every `copilot` command from the Typer app (usage, options, help).
- `reference/http-api.md`: every operation of the OpenAPI document the API serves, and the
  document itself as `reference/openapi.json`.
- `reference/errors.md`: every error code the code raises (read from the source with `ast`),
  its HTTP status (`copilot.api.errors.STATUS`), its CLI exit, where it is raised, and what
  it means (docs/hooks/error_meanings.yaml, else the class docstring or the raise's message).

Run as a script (`python docs/hooks/reference.py DIR`) it writes the pages into DIR.
"""

from __future__ import annotations

import ast
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("audit", "approvals", "copilot", "workflows")
MEANINGS = Path(__file__).with_name("error_meanings.yaml")
PAGES = ("reference/cli.md", "reference/errors.md", "reference/http-api.md",
         "reference/settings.md")  # fmt: skip


# --- settings ------------------------------------------------------------------------------


def settings_page() -> str:
    """The `COPILOT_*` variables, from the Settings model's fields."""
    from copilot.settings import Settings

    rows = []
    for name, f in Settings.model_fields.items():
        default = "" if f.default is None else f"`{f.default}`"
        if f.default == "":
            default = ""
        bounds = [f"{k} {getattr(m, k)}" for m in f.metadata
                  for k in ("ge", "gt", "le", "lt") if getattr(m, k, None) is not None]  # fmt: skip
        text = (f.description or "").replace("|", "\\|").replace("\n", " ")
        if bounds:
            text += f" ({', '.join(bounds)})"
        rows.append(f"| `COPILOT_{name.upper()}` | {default} | {text} |")
    return "\n".join(
        [
            "# Settings",
            "",
            "One `Settings` (pydantic-settings) read from `COPILOT_*` environment variables at the",
            "edges (the CLI, the API, the worker) and passed down; library code never reads the",
            "environment. This page is generated from `copilot/settings.py` at every build.",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
            *rows,
            "",
            "`COPILOT_HOME` defaults to `./.copilot`: without `COPILOT_DATABASE_URL` the database",
            "is `sqlite:///$COPILOT_HOME/copilot.db`, without `COPILOT_BROKER_URL` the broker is",
            "`sqla+sqlite:///$COPILOT_HOME/broker.db`, and without `COPILOT_SIGNING_KEY_PATH` the",
            "checkpoint key is `$COPILOT_HOME/keys/checkpoint.pem` (created on first use).",
            "",
        ]
    )


# --- CLI -----------------------------------------------------------------------------------


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands")  # Typer's own click (typer._click) or click's


def _commands(cmd: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    yield cmd, ctx
    if _is_group(cmd):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, type(ctx)(sub, info_name=name, parent=ctx))


def cli_page() -> str:
    """Every `copilot` command with its usage, help and options, from the Typer app."""
    import typer.main

    from copilot.cli.app import app

    root = typer.main.get_command(app)
    context = _context_class(root)
    lines = ["# CLI", "",
             "Every command of `copilot` (generated from `copilot/cli/` at every build). Exit",
             "status: 0 success, 1 a negative answer (a failed verification, a conflict), 2 a",
             "usage or configuration error. Every command takes `--help`.", ""]  # fmt: skip
    for cmd, ctx in _commands(root, context(root, info_name="copilot")):
        if _is_group(cmd) and ctx.parent is not None:
            lines += [f"## `{ctx.command_path}`", "", (cmd.help or "").strip(), ""]
            continue
        if ctx.parent is None:
            continue
        usage = " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])
        level = "###" if ctx.parent.parent is not None else "##"
        lines += [f"{level} `{ctx.command_path}`", "", f"```\n{usage}\n```", "",
                  (cmd.help or "").strip(), ""]  # fmt: skip
        rows = []
        for p in cmd.params:
            if p.param_type_name == "option" and p.name == "help":
                continue
            names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            if p.param_type_name == "argument":
                names = f"`{(p.metavar or p.name or '').upper()}` (argument)"
            default = p.default if p.default not in (None, False, ()) else ""
            if callable(default):
                default = ""
            help_ = (getattr(p, "help", None) or "").replace("|", "\\|")
            req = " Required." if p.required else ""
            rows.append(f"| {names} | {default if default == '' else f'`{default}`'} "
                        f"| {help_}{req} |")  # fmt: skip
        if rows:
            lines += ["| option | default | meaning |", "|---|---|---|", *rows, ""]
    return "\n".join(lines)


def _context_class(cmd: Any) -> Any:
    """The click `Context` class of the click that made `cmd` (Typer may carry its own)."""
    import importlib

    return importlib.import_module(type(cmd).__mro__[1].__module__).Context


# --- HTTP API ------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the API serves, from an app on a throwaway SQLite home."""
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

    from copilot.server import create_app
    from copilot.settings import Settings

    class Isolated(Settings):  # the build never reads the deployment's COPILOT_* variables
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    with tempfile.TemporaryDirectory(prefix="copilot-docs-") as home:
        app = create_app(Isolated(home=Path(home)))
        try:
            return app.openapi()
        finally:
            app.state.runtime.close()


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref") or (schema.get("items") or {}).get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return f"[`{name}`](#{name.lower()})" if "items" not in schema else f"list of `{name}`"
    return f"`{schema.get('type', 'object')}`"


def http_page(doc: dict[str, Any]) -> str:
    """Every operation: method, path, roles, parameters, body, responses; then the schemas."""
    lines = ["# HTTP API", "",
             "Generated at every build from the OpenAPI document the API serves at",
             "`/openapi.json` (also [here](openapi.json)). Every `/v1` call needs",
             "`Authorization: Bearer <key>`; errors are `{\"error\": {\"code\", \"message\",",
             "\"details\"}}` with the [codes](errors.md). How to use it:",
             "[the HTTP API guide](../how-to/http-api.md).", "",
             doc.get("info", {}).get("description", "").strip(), ""]  # fmt: skip
    for path, item in sorted(doc["paths"].items()):
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            lines += [f"## `{method.upper()} {path}`", "", op.get("summary", ""), ""]
            if op.get("description"):
                lines += [op["description"].strip(), ""]
            params = op.get("parameters", [])
            if params:
                lines += ["| parameter | in | required | type | meaning |", "|---|---|---|---|---|"]
                for p in params:
                    sch = p.get("schema", {})
                    typ = sch.get("type") or "/".join(
                        s.get("type", "") for s in sch.get("anyOf", [])
                    )
                    desc = (p.get("description") or sch.get("description") or "").replace("\n", " ")
                    lines.append(f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else ''} "
                                 f"| {typ} | {desc} |")  # fmt: skip
                lines.append("")
            body = op.get("requestBody", {}).get("content", {})
            for ctype, media in body.items():
                lines += [f"Body ({ctype}): {_schema_name(media.get('schema', {}))}", ""]
            rows = []
            for status, resp in sorted(op.get("responses", {}).items()):
                content = resp.get("content", {})
                shape = ", ".join(f"{c}: {_schema_name(m.get('schema', {}))}"
                                  for c, m in content.items())  # fmt: skip
                rows.append(f"| {status} | {resp.get('description', '')} | {shape} |")
            if rows:
                lines += ["| status | meaning | body |", "|---|---|---|", *rows, ""]
    lines += ["## Schemas", ""]
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        lines += [f"### {name}", "", (schema.get("description") or "").strip(), ""]
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            lines += ["| field | type | required | meaning |", "|---|---|---|---|"]
            for fname, fs in props.items():
                typ = (
                    _schema_name(fs)
                    if ("$ref" in fs or "items" in fs)
                    else (f"`{fs['type']}`" if "type" in fs else "any")
                )
                desc = (fs.get("description") or "").replace("\n", " ").replace("|", "\\|")
                lines.append(
                    f"| `{fname}` | {typ} | {'yes' if fname in required else ''} | {desc} |"
                )
            lines.append("")
    return "\n".join(lines)


# --- error codes ---------------------------------------------------------------------------


@dataclass
class Code:
    """One error code and what the source says of it."""

    code: str
    classes: set[str] = field(default_factory=set)  # the classes that raise it
    where: set[str] = field(default_factory=set)  # modules
    said: list[str] = field(default_factory=list)  # docstrings and literal messages


def _is_code(value: Any) -> bool:
    """`area.reason` (lowercase words joined by dots), as every error code is spelled."""
    if not isinstance(value, str) or "." not in value:
        return False
    return all(part and part.replace("_", "").isalnum() and part == part.lower()
               for part in value.split("."))  # fmt: skip


def _text(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, the holes as "..."
        return "".join(v.value if isinstance(v, ast.Constant) else "..." for v in node.values)
    return None


def scan_codes(root: Path = ROOT) -> tuple[dict[str, Code], dict[str, str]]:
    """Every error code in the packages' source, and each exception class's base class."""
    codes: dict[str, Code] = {}
    bases: dict[str, str] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    if node.bases and isinstance(node.bases[0], ast.Name):
                        bases[node.name] = node.bases[0].id
                    for stmt in node.body:
                        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                                and isinstance(stmt.targets[0], ast.Name)
                                and stmt.targets[0].id == "code"
                                and _is_code(_text(stmt.value))):  # fmt: skip
                            c = codes.setdefault(
                                str(_text(stmt.value)), Code(str(_text(stmt.value)))
                            )
                            c.classes.add(node.name)
                            c.where.add(module)
                            doc = ast.get_docstring(node)
                            if doc:
                                c.said.append(doc.split("\n\n")[0].replace("\n", " "))
                elif isinstance(node, ast.Dict):  # a stored error: {"code": ..., "message": ...}
                    pairs = {_text(k): v for k, v in zip(node.keys, node.values, strict=True)
                             if k is not None}  # fmt: skip
                    value = _text(pairs.get("code"))
                    if _is_code(value) and "message" in pairs:
                        c = codes.setdefault(str(value), Code(str(value)))
                        c.where.add(module)
                elif isinstance(node, ast.Call):
                    value = next((_text(k.value) for k in node.keywords if k.arg == "code"), None)
                    func = (
                        node.func.id
                        if isinstance(node.func, ast.Name)
                        else (node.func.attr if isinstance(node.func, ast.Attribute) else "")
                    )
                    # error_response(code, message); a lease's fail(run, code, message)
                    at = {"error_response": 0, "fail": 1}.get(func)
                    if value is None and at is not None and len(node.args) > at:
                        value = _text(node.args[at])
                    if not _is_code(value):
                        continue
                    c = codes.setdefault(str(value), Code(str(value)))
                    c.where.add(module)
                    if func and func[0].isupper():
                        c.classes.add(func)
                    args = node.args[at + 1:] if at is not None and value == _text(
                        node.args[at]) else node.args  # fmt: skip
                    message = _text(args[0]) if args else None
                    if message:
                        c.said.append(message)
    return codes, bases


def _descends(name: str, ancestor: str, bases: dict[str, str]) -> bool:
    seen = set()
    while name in bases and name not in seen:
        if name == ancestor:
            return True
        seen.add(name)
        name = bases[name]
    return name == ancestor


def meanings() -> dict[str, str]:
    """The curated meanings (docs/hooks/error_meanings.yaml): code -> one sentence."""
    return dict(yaml.safe_load(MEANINGS.read_text(encoding="utf-8")) or {})


def errors_page() -> str:
    """The error-code table: code, HTTP status, CLI exit, what it means, where it is raised."""
    from copilot.api.errors import STATUS
    from copilot.cli.app import USAGE_CODES

    codes, bases = scan_codes()
    for code in STATUS:  # codes only the HTTP layer knows (http.not_found, ...)
        codes.setdefault(code, Code(code, where={"copilot.api.errors"}))
    curated = meanings()
    rows = []
    for code in sorted(codes):
        c = codes[code]
        usage = (
            code in USAGE_CODES
            or code.startswith("config.")
            or any(_descends(k, "ConfigError", bases) for k in c.classes)
        )
        meaning = curated.get(code) or (c.said[0] if c.said else "")
        meaning = meaning.replace("|", "\\|").replace("\n", " ")
        status = STATUS.get(code)
        where = ", ".join(f"`{w}`" for w in sorted(c.where))
        rows.append(f"| `{code}` | {status or ''} | {2 if usage else 1} | {meaning} | {where} |")
    return "\n".join([
        "# Error codes", "",
        "Every error is a `CopilotError` with a stable `code`, a message that says what to do,",
        "and `details`. This table is generated at every build from the source: each code",
        "assigned to an error class or passed as `code=` where an error is raised, with its",
        "HTTP status (`copilot/api/errors.py`; a code not listed there never reaches an HTTP",
        "client as such, or is a 500) and the `copilot` CLI's exit status (2: usage or",
        "configuration, 1: a negative answer). Codes of a run's failure (`run.step_failed`,",
        "`run.action_restricted`, ...) are stored on the failed run as its `error`.", "",
        "| code | HTTP | exit | meaning | raised in |",
        "|---|---|---|---|---|",
        *rows, "",
    ])  # fmt: skip


# --- the hook ------------------------------------------------------------------------------


def generate() -> dict[str, str]:
    """Every generated page: path under docs/ -> content."""
    doc = openapi_document()
    return {
        "reference/settings.md": settings_page(),
        "reference/cli.md": cli_page(),
        "reference/http-api.md": http_page(doc),
        "reference/errors.md": errors_page(),
        "reference/openapi.json": json.dumps(doc, indent=2, sort_keys=True),
    }


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages to the build (nothing is written into docs/)."""
    from mkdocs.structure.files import File

    for path, content in generate().items():
        files.append(File.generated(config, path, content=content))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "site-reference")
    for rel, text in generate().items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
        print(out / rel)
