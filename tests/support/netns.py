"""Hosts made of Linux network namespaces on one bridge, and the faults a network has.

Every namespace, link and address belongs to one `Network` and goes with `close()`: the
bridge lives in a namespace of its own and each host's veth pair is created directly in
its two namespaces, so nothing appears in the machine's own network namespace, and the
addresses (10.213.N.0/24, N picked per run) exist only on the bridge. Names carry a
per-run prefix, so two runs never share one. Each host gets `/etc/netns/<ns>/hosts`
(which `ip netns exec` mounts over /etc/hosts) naming every host, so a process reads the
same host names (`db`, `broker`) a compose file gives it.

Faults, each undone by its pair:
- `cut(a, b)` / `mend(a, b)`: a and b route each other via an address nobody answers, so
  their packets vanish silently (a partition, not a refused connection);
- `isolate(a)` / `rejoin(a)`: `cut` between a and every other host;
- `slow(a, b, ...)` / `unslow()`: packets between a and b through a token bucket with a
  short queue: queueing delay plus tail drops (this kernel has no `netem`; see
  docs/deploying.md).
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

NETNS_ETC = Path("/etc/netns")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; its output (with `check`, a failure is an error quoting its stderr)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)[:300]} exited {done.returncode}: {done.stderr[-2000:]}"
        )
    return done


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    probe = f"cpprobe{uuid.uuid4().hex[:6]}"
    done = sh("ip", "netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


class Network:
    """A bridge and the hosts on it, all namespaces of this run (see the module docstring)."""

    def __init__(self) -> None:
        self.prefix = f"cp{uuid.uuid4().hex[:6]}"
        self.subnet = random.randint(1, 254)
        self.bridge_ns = f"{self.prefix}-net"
        self.hosts: dict[str, str] = {}  # name -> address
        self._shaped: dict[str, list[str]] = {}  # host -> hosts its slow links go to
        sh("ip", "netns", "add", self.bridge_ns)
        self._in(self.bridge_ns, "ip", "link", "add", "br0", "type", "bridge")
        self._in(self.bridge_ns, "ip", "link", "set", "br0", "up")

    def ns(self, host: str) -> str:
        """The namespace of `host`."""
        return f"{self.prefix}-{host}"

    def add(self, host: str) -> str:
        """A new host on the bridge; its address."""
        address = f"10.213.{self.subnet}.{len(self.hosts) + 2}"
        ns = self.ns(host)
        sh("ip", "netns", "add", ns)
        port = f"p{len(self.hosts)}"
        sh("ip", "link", "add", "eth0", "netns", ns, "type", "veth",
           "peer", "name", port, "netns", self.bridge_ns)  # fmt: skip
        self._in(self.bridge_ns, "ip", "link", "set", port, "master", "br0", "up")
        self._in(ns, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        self._in(ns, "ip", "link", "set", "eth0", "up")
        self._in(ns, "ip", "link", "set", "lo", "up")
        self.hosts[host] = address
        self._write_hosts()
        return address

    def port(self, host: str) -> str:
        return f"p{list(self.hosts).index(host)}"

    def _write_hosts(self) -> None:
        lines = ["127.0.0.1 localhost", *(f"{a} {h}" for h, a in self.hosts.items())]
        for host in self.hosts:
            etc = NETNS_ETC / self.ns(host)
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("\n".join([*lines, ""]))

    def _in(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def run(self, host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on `host`."""
        return self._in(self.ns(host), *argv, check=check)

    def prefix_argv(self, host: str) -> list[str]:
        """What to put before a command to start it on `host`: its network namespace and a
        UTS namespace named after it (so workers' lease owners and Celery node names read
        `w1:<pid>`, `celery@w1`, as on separate machines)."""
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', host]  # fmt: skip

    # -- faults -----------------------------------------------------------------------------

    def _dead_end(self) -> str:
        return f"10.213.{self.subnet}.250"  # on the subnet, never assigned: ARP never answers

    def cut(self, a: str, b: str) -> None:
        """Packets between a and b vanish (both directions); others flow."""
        for src, dst in ((a, b), (b, a)):
            self.run(src, "ip", "route", "replace", f"{self.hosts[dst]}/32",
                     "via", self._dead_end(), "dev", "eth0")  # fmt: skip

    def mend(self, a: str, b: str) -> None:
        """Undo `cut(a, b)`."""
        for src, dst in ((a, b), (b, a)):
            self.run(src, "ip", "route", "del", f"{self.hosts[dst]}/32", check=False)

    def isolate(self, host: str) -> None:
        """The host reaches nobody and nobody reaches it: `cut` from every other host."""
        for other in self.hosts:
            if other != host:
                self.cut(host, other)

    def rejoin(self, host: str) -> None:
        """Undo `isolate(host)`."""
        for other in self.hosts:
            if other != host:
                self.mend(host, other)

    def slow(self, a: str, b: str, *, rate: str, burst: str, limit: str) -> None:
        """Packets between a and b (both ways) pass a token bucket with a short queue:
        queueing delay plus tail drops. Others flow at full speed."""
        for src, dst in ((a, b), (b, a)):
            shaped = self._shaped.setdefault(src, [])
            if not shaped:
                self.run(src, "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:",
                         "htb", "default", "1")  # fmt: skip
                self.run(src, "tc", "class", "replace", "dev", "eth0", "parent", "1:",
                         "classid", "1:1", "htb", "rate", "10gbit", "quantum", "60000")  # fmt: skip
            shaped.append(dst)
            cls = f"1:{len(shaped) + 1}"
            self.run(src, "tc", "class", "replace", "dev", "eth0", "parent", "1:",
                     "classid", cls, "htb", "rate", rate, "ceil", rate)  # fmt: skip
            self.run(src, "tc", "qdisc", "replace", "dev", "eth0", "parent", cls,
                     "tbf", "rate", rate, "burst", burst, "limit", limit)  # fmt: skip
            self.run(src, "tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol",
                     "ip", "prio", "1", "u32", "match", "ip", "dst", f"{self.hosts[dst]}/32",
                     "flowid", cls)  # fmt: skip

    def dropped(self) -> int:
        """Packets the slow links dropped so far, over every host."""
        total = 0
        for host in self._shaped:
            out = self.run(host, "tc", "-s", "qdisc", "show", "dev", "eth0").stdout
            for line in out.splitlines():
                if "tbf" in line or not line.strip().startswith("Sent"):
                    continue
                total += int(line.split("dropped", 1)[1].split(",")[0].strip())
        return total

    def unslow(self) -> None:
        """Undo every `slow`."""
        for host in self._shaped:
            self.run(host, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        self._shaped.clear()

    # -- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Delete every namespace of this run (their links go with them) and hosts files."""
        for host in self.hosts:
            sh("ip", "netns", "del", self.ns(host), check=False)
            shutil.rmtree(NETNS_ETC / self.ns(host), ignore_errors=True)
        sh("ip", "netns", "del", self.bridge_ns, check=False)
