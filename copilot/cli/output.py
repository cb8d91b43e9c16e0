"""Where tables print: a terminal at its width, piped output wide enough to cut nothing.

Rich lays out a non-terminal at 80 columns, which cut a piped `approvals list` (two
32-character ids beside five columns) into ellipses. A pipe has no width to respect, so
it gets PIPED_WIDTH unless COLUMNS names one; ids never fold either way (`ids.column`).
"""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 240


def console() -> Console:
    """The Console a command prints its tables with."""
    shown = Console()
    if shown.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return shown
    return Console(width=PIPED_WIDTH)


def span(seconds: float) -> str:
    """A duration as people read it: `45s`, `12m`, `3h 05m`, `2d 4h`."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def until(deadline: float, now: float) -> str:
    """`in 3h 05m` before the deadline, `12m ago` after it."""
    left = deadline - now
    return f"in {span(left)}" if left >= 0 else f"{span(left)} ago"
