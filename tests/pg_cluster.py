"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a free
port on 127.0.0.1, trust authentication, stopped and deleted afterwards.

`MLBOT_TEST_POSTGRES=postgresql://...` uses an existing server instead. When neither
works, `start()` says why, and the PostgreSQL half of the suite is skipped with that reason.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """No PostgreSQL server could be started; the message says why."""


@dataclass
class Cluster:
    url: str  # superuser URL of the maintenance database
    directory: Path | None = None
    run_as: list[str] | None = None
    bindir: Path | None = None

    def stop(self) -> None:
        if self.directory is None:
            return
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise Unavailable("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> Cluster:
    if os.environ.get("MLBOT_TEST_POSTGRES"):
        return Cluster(os.environ["MLBOT_TEST_POSTGRES"])
    bindir = _bindir()
    run_as: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="mlbot-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise Unavailable("running as root and runuser is missing")
        run_as = [runuser, "-u", "postgres", "--"]
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    data = directory / "data"
    port = _free_port()
    steps = [
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(directory / "server.log"), "-o",
         f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start"],
    ]
    for step in steps:
        run = subprocess.run(step, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            log = (directory / "server.log").read_text() if (directory / "server.log").exists() else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise Unavailable(f"{Path(step[len(run_as)]).name} failed: {(run.stderr or run.stdout or log).strip()[-400:]}")
    return Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", directory, run_as, bindir)
