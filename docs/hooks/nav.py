"""MkDocs hook: the navigation, built from the files so a new page needs no mkdocs.yml edit.

Sections, in order: Home (`index.md`), Tutorials (`tutorials/`), How-to guides (`how-to/`),
Concepts (`concepts/`), Guides (a wing's own pages, `docs/<area>.md`), Reference
(`reference/`, with the pages docs/hooks/reference.py generates). A top-level page goes to
the section `TOP_LEVEL` maps its name to (first match), else to Guides; a `section:` line in
a page's front matter overrides either, and `order: N` sorts it (default 100, then by name).

Tutorial placeholders: a page may hold `<!-- pages: GLOB -->`; the hook replaces it with links
to the top-level pages matching GLOB (say `placements*.md`), or says none is written yet,
so a tutorial can point at pages other branches add without a link that breaks `--strict`.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

SECTIONS = {
    "tutorials": "Tutorials",
    "how-to": "How-to guides",
    "concepts": "Concepts",
    "reference": "Reference",
}
ORDER = ["Tutorials", "How-to guides", "Concepts", "Guides", "Reference"]
# Top-level pages by name (first match wins); anything else is a Guide.
TOP_LEVEL = [
    ("liveness*.md", "How-to guides"),
    ("deploying*.md", "How-to guides"),
    ("placements*.md", "Guides"),
    ("learn*.md", "Guides"),
    ("evidence*.md", "Guides"),
]
# Reference pages made at build time by docs/hooks/reference.py (its PAGES; a test pins both).
GENERATED = ["reference/cli.md", "reference/errors.md", "reference/http-api.md",
             "reference/settings.md"]  # fmt: skip
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_PLACEHOLDER = re.compile(r"<!-- pages: (\S+) -->")


def front_matter(path: Path) -> dict[str, str]:
    """The `key: value` lines of a page's front matter (enough for `section` and `order`)."""
    found = _FRONT.match(path.read_text(encoding="utf-8"))
    if not found:
        return {}
    pairs = (line.split(":", 1) for line in found.group(1).splitlines() if ":" in line)
    return {k.strip(): v.strip().strip("\"'") for k, v in pairs}


def section_of(rel: str, meta: dict[str, str]) -> str:
    """Which section a page (path relative to docs/) belongs to."""
    if meta.get("section"):
        return meta["section"]
    head, _, name = rel.rpartition("/")
    if head:
        return SECTIONS.get(head.split("/")[0], "Guides")
    return next((s for pattern, s in TOP_LEVEL if fnmatch.fnmatch(name, pattern)), "Guides")


def build_nav(docs: Path, generated: list[str]) -> list[Any]:
    """The nav for every page under `docs` (examples/ and hooks/ hold no pages)."""
    pages: dict[str, list[tuple[int, str]]] = {}
    rels = {
        p.relative_to(docs).as_posix()
        for p in docs.rglob("*.md")
        if p.relative_to(docs).parts[0] not in ("examples", "hooks")
    }
    for rel in sorted(rels | set(generated)):
        if rel == "index.md":
            continue
        meta = front_matter(docs / rel) if rel in rels else {}
        order = int(meta.get("order", "100"))
        pages.setdefault(section_of(rel, meta), []).append((order, rel))
    nav: list[Any] = [{"Home": "index.md"}]
    for section in [*ORDER, *sorted(set(pages) - set(ORDER))]:
        if section in pages:
            nav.append({section: [rel for _, rel in sorted(pages[section])]})
    return nav


def top_level_links(docs: Path, pattern: str, page_dir: str) -> str:
    """Markdown links from a page in `page_dir` to the top-level pages matching `pattern`."""
    up = "../" * (page_dir.count("/") + 1) if page_dir else ""
    found = sorted(p for p in docs.glob(pattern) if p.is_file())
    if not found:
        return f"*No page matching `{pattern}` is written yet; it appears here when it is.*"
    lines = []
    for p in found:
        title = next((ln[2:].strip() for ln in p.read_text(encoding="utf-8").splitlines()
                      if ln.startswith("# ")), p.stem)  # fmt: skip
        lines.append(f"- [{title}]({up}{p.name})")
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    """Set the nav from the files on disk (and the reference pages generated later)."""
    config["nav"] = build_nav(Path(config["docs_dir"]), GENERATED)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill `<!-- pages: GLOB -->` placeholders with links to the pages that exist."""
    docs = Path(config["docs_dir"])
    page_dir = Path(page.file.src_uri).parent.as_posix()
    page_dir = "" if page_dir == "." else page_dir
    return _PLACEHOLDER.sub(lambda m: top_level_links(docs, m.group(1), page_dir), markdown)
