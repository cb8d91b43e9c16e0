"""A feed consumer process: `python -m tests.support.consumer URL KEY LOG [--hang-after N]`.

Claims through `copilot.client`, acks each action `delivered` (with `--batch`, each page
in one `ack_many` call), and appends `acked <ids>` to LOG (flushed and fsynced before the next one). With `--hang-after N` it stops acking
after N acks, writes `hung <ids>` for the batch it holds and sleeps (to be SIGKILLed with
the claims in hand). Exits after three empty long-polls in a row.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from copilot.client import Client


def main() -> None:
    """Drain the feed (see the module docstring)."""
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("key")
    p.add_argument("log")
    p.add_argument("--hang-after", type=int, default=-1)
    p.add_argument("--pace", type=float, default=0.01)
    p.add_argument("--batch", action="store_true", help="ack each page in one call")
    args = p.parse_args()
    acked, empty = 0, 0
    with Client(args.url, args.key) as api, Path(args.log).open("a") as log:
        while empty < 3:
            page = api.actions(wait=1.5, limit=5)
            if not page.items:
                empty += 1
                continue
            empty = 0
            if 0 <= args.hang_after <= acked:
                log.write(f"hung {' '.join(str(a.id) for a in page.items)}\n")
                log.flush()
                os.fsync(log.fileno())
                time.sleep(3600)
            if args.batch:
                time.sleep(args.pace * len(page.items))  # the app's own work
                results = api.ack_many(page.items, "delivered", {"by": os.getpid()}).results
                assert all(r.error is None for r in results), results
                log.write(f"acked {' '.join(str(r.id) for r in results)}\n")
                log.flush()
                os.fsync(log.fileno())
                acked += len(results)
                continue
            for action in page.items:
                time.sleep(args.pace)  # the app's own work
                api.ack(action, "delivered", {"by": os.getpid()})
                log.write(f"acked {action.id}\n")
                log.flush()
                os.fsync(log.fileno())
                acked += 1


if __name__ == "__main__":
    main()
