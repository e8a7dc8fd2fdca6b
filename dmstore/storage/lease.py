"""Writer leases: which units a live writer, on any machine sharing the store, may still commit.

    STORE/_leases/<token>.json     {"token", "host", "hostname", "pid", "started", "purpose"}

A writer holds a lease (`held(root)`) for as long as it may stage or commit units; every unit
and private temp entry it creates carries the lease's token in its name (`…~<token>`). A
daemon thread refreshes the lease file's modification time every `HEARTBEAT_S` seconds.
Vacuum and stale-temp cleanup never delete an entry whose lease is *fresh*: touched less than
`TTL_S` seconds ago. A lease is dead when its file is gone, when it was not touched for
`TTL_S`, or — only on the very host and PID namespace that wrote it — when its process no
longer exists. A PID is never compared across machines (or containers): a writer on another
host with the same PID is alive as long as its heartbeat is.

The one assumption: the clocks of the machines sharing the store agree to well within `TTL_S`
(default 10 minutes), and no writer stalls (SIGSTOP, a suspended VM) for longer than that
without committing or failing; a writer re-checks at commit that every unit it names exists.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path

from . import paths as P

LEASES = P.LEASES
TTL_S = 600.0          # a lease not touched for this long is dead
HEARTBEAT_S = 30.0     # how often a held lease is touched
_TOKEN = re.compile(r"~([0-9a-f]{16})(?:\.|$)")


def host_id() -> str:
    """This machine and PID namespace: hostname, boot id and the PID namespace's inode (two
    containers on one kernel, or two hosts with one name, differ)."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            parts.append(Path(path).read_text().strip())
        except OSError:
            pass
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=8).hexdigest()


def token_of(name: str) -> str | None:
    """The lease token in a unit or temp entry name, or None (written by an older dmstore)."""
    m = _TOKEN.search(name)
    return m.group(1) if m else None


class Lease:
    """One held lease of a store (see the module docstring); use `held(root)`."""

    def __init__(self, root: Path, purpose: str):
        self.root = Path(root)
        self.token = secrets.token_hex(8)
        self.path = self.root / LEASES / f"{self.token}.json"
        self.record = {"token": self.token, "host": host_id(), "hostname": socket.gethostname(),
                       "pid": os.getpid(), "started": time.time(), "purpose": purpose}
        self._stop = threading.Event()
        self._thread = None
        self._counter = 0
        self._lock = threading.Lock()

    def start(self) -> "Lease":
        self._write()
        self._thread = threading.Thread(target=self._beat, name=f"dmstore-lease-{self.token}", daemon=True)
        self._thread.start()
        return self

    def _write(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.{time.time_ns()}"
        tmp.write_text(json.dumps(self.record) + "\n")
        os.replace(tmp, self.path)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:   # judged dead while we stalled: say we are alive again
                with contextlib.suppress(OSError):
                    self._write()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.path.unlink()

    def name(self, prefix: str = "") -> str:
        """A new, unique, sortable entry name carrying this lease's token."""
        with self._lock:
            self._counter += 1
            k = self._counter
        return f"{prefix}{time.time_ns():020d}-{os.getpid()}-{k}~{self.token}"


# one lease per (process, store), shared by the threads of the process and reference-counted
_HELD: dict[str, list] = {}
_HELD_LOCK = threading.Lock()


@contextlib.contextmanager
def held(root, purpose: str = "write"):
    """Hold this process's lease of the store at `root` for the duration (nested holds share it)."""
    key = str(Path(root).resolve())
    with _HELD_LOCK:
        entry = _HELD.get(key)
        if entry is None:
            entry = _HELD[key] = [Lease(Path(root), purpose).start(), 0]
        entry[1] += 1
    try:
        yield entry[0]
    finally:
        with _HELD_LOCK:
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
                entry[0].stop()


def current(root) -> Lease | None:
    """The lease this process holds on `root`, or None."""
    with _HELD_LOCK:
        entry = _HELD.get(str(Path(root).resolve()))
    return entry[0] if entry else None


@atexit.register
def _release_all() -> None:
    with _HELD_LOCK:
        for lease, _ in _HELD.values():
            lease.stop()
        _HELD.clear()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def state(root, token: str, now: float | None = None) -> tuple[bool, str]:
    """(alive, why) of lease `token` of the store at `root`."""
    path = Path(root) / LEASES / f"{token}.json"
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False, "its writer's lease is gone"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        rec = {}
    who = f"{rec.get('hostname', '?')} pid {rec.get('pid', '?')}"
    if age > TTL_S:
        return False, f"its writer ({who}) last renewed its lease {age:.0f} s ago (limit {TTL_S:.0f} s)"
    if isinstance(rec, dict) and rec.get("host") == host_id() and isinstance(rec.get("pid"), int) \
            and rec["pid"] != os.getpid() and not _pid_alive(rec["pid"]):
        return False, f"its writer ({who}, this machine) has exited"
    return True, f"held by a live writer ({who}, lease renewed {max(age, 0):.0f} s ago)"


def entry_alive(root, name: str, mtime: float, now: float | None = None) -> bool:
    """Whether a unit or temp entry named `name` (last modified at `mtime`) may belong to a live
    writer: its lease is alive, or (no token: an older dmstore's entry) it is younger than TTL_S."""
    tok = token_of(name)
    now = time.time() if now is None else now
    if tok is None:
        return now - mtime < TTL_S
    return state(root, tok, now)[0]
