"""A throwaway PostgreSQL cluster for the test session, from Debian's (or any) server binaries."""

from __future__ import annotations

import glob
import itertools
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    """Find PostgreSQL's server binaries (initdb, pg_ctl), newest version first."""
    configured = os.environ.get("BORGERDIALOG_TEST_PG_BINDIR")
    if configured:
        return Path(configured)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


# The test session's cluster goes to memory when there is room: every test copies a database of
# ~10 MB, which on a slow disk costs 0.1-0.3 s a test, and removing a session's worth at the end
# seconds more; in memory a copy takes ~20 ms. Tests drop their database when done, so the
# cluster stays small. Containers often give /dev/shm only 64 MB: then the disk it is. (The load
# benchmark keeps its cluster on disk, as it always measured.)
MEMORY_DIR = Path("/dev/shm")
MEMORY_NEEDED = 1 << 30


def scratch_dir() -> str | None:
    """Where a throwaway cluster goes: memory (/dev/shm) if it has room, else the temp dir."""
    try:
        if os.access(MEMORY_DIR, os.W_OK) and shutil.disk_usage(MEMORY_DIR).free >= MEMORY_NEEDED:
            return str(MEMORY_DIR)
    except OSError:
        pass
    return None


# Ports handed to a server started later are drawn below the kernel's ephemeral range, where
# bind(("", 0)) and outgoing connections take theirs, and from a block of each test worker's own:
# a port found free by asking the kernel for one could be handed to another worker too, or be
# taken by a connection, before the server bound it (a bot then exited as "port in use" while
# its test talked to another worker's bot on that port).
PORT_BLOCK = 500
FIRST_PORT = 15000
EPHEMERAL_START = 32768  # Linux's default; /proc/sys/net/ipv4/ip_local_port_range
_turns = itertools.count(random.randrange(PORT_BLOCK))


def free_port() -> int:
    """A port free now that no other test worker will be given, nor this one again soon."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    # As many blocks as fit below the ephemeral range; more workers than that share them.
    blocks = (EPHEMERAL_START - FIRST_PORT) // PORT_BLOCK
    start = FIRST_PORT + PORT_BLOCK * ((int(worker) if worker.isdigit() else 0) % blocks)
    for _ in range(PORT_BLOCK):
        # In turn through the block: a port handed out a moment ago may not be bound yet.
        port = start + next(_turns) % PORT_BLOCK
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + PORT_BLOCK - 1}")


class ThrowawayPostgres:
    """initdb a cluster in a temporary folder (in memory if asked and there is room), start it
    on a free port, remove it at the end.

    initdb refuses to run as root, so as root the cluster runs as the ``postgres`` user.
    """

    def __init__(self, bindir: Path, *, in_memory: bool = False) -> None:
        self.bindir = bindir
        self.port = free_port()
        where = scratch_dir() if in_memory else None
        self.root = Path(tempfile.mkdtemp(prefix="borgerdialog-pg-", dir=where))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        self._start_server()

    def _start_server(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def restart(self, down_seconds: float) -> None:
        """Stop the server (dropping every connection), stay down a while, start it again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        time.sleep(down_seconds)
        self._start_server()

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create an empty database (or a copy of ``template``); return its asyncpg URL."""
    import asyncio

    import asyncpg

    async def create() -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            copy = f' TEMPLATE "{template}"' if template else ""
            await connection.execute(f'CREATE DATABASE "{name}"{copy}')
        finally:
            await connection.close()

    asyncio.run(create())
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    """Drop a database create_database made, closing whatever connections it has left."""
    import asyncio

    import asyncpg

    base, name = url.replace("postgresql+asyncpg://", "postgresql://", 1).rsplit("/", 1)

    async def drop() -> None:
        connection = await asyncpg.connect(f"{base}/postgres")
        try:
            # WITH (FORCE) is PostgreSQL 13's; before it, a connection left open keeps the copy.
            force = " WITH (FORCE)" if connection.get_server_version() >= (13,) else ""
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
        finally:
            await connection.close()

    asyncio.run(drop())
