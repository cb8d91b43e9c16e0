"""A trainer process for the SIGKILL test: says `ready`, then trains and stores versions forever.

Each round trains a new window (the clock moves a second per round), so every round
writes a new version: a kill lands inside training or inside the write.
"""

from __future__ import annotations

import sys
import time

from copilot.runtime import Runtime
from copilot.settings import Settings


def main() -> None:
    runtime = Runtime(Settings())
    learning = runtime.learning
    surface = sys.argv[1]
    rows, _ = learning.rewarded(runtime.settings.tenant, surface)  # warm the imports and caches
    print("ready", len(rows), flush=True)
    start = time.time()
    for i in range(10_000):
        learning.train(runtime.settings.tenant, surface, now=start + i)


if __name__ == "__main__":
    main()
