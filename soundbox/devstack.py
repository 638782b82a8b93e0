"""The local stack for a newcomer: Redis and PostgreSQL from Debian's packages, started when
they are not running (installed first when missing), and the service's database created."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from urllib.parse import urlparse

import psycopg
from sqlalchemy.engine import make_url


def _say(msg: str) -> None:
    print(f"[soundbox] {msg}", flush=True)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(host, port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start listening on {host}:{port}")
        time.sleep(0.3)


def _apt_install(*packages: str) -> None:
    if shutil.which("apt-get") is None:
        raise SystemExit(f"{', '.join(packages)} missing and apt-get is not available: install them by hand")
    _say(f"installing {' '.join(packages)} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def ensure_redis(url: str) -> None:
    u = urlparse(url)
    host, port = u.hostname or "127.0.0.1", u.port or 6379
    if _port_open(host, port):
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"Redis at {host}:{port} is not reachable (it is not local, so not started here)")
    if shutil.which("redis-server") is None:
        _apt_install("redis-server")
    _say(f"starting Redis on {host}:{port}")
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    _wait_port(host, port, "Redis")


def _clusters() -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))


def ensure_postgres(database_url: str) -> None:
    url = make_url(database_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    if not _port_open(host, port):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"PostgreSQL at {host}:{port} is not reachable (not local, so not started here)")
        fresh = not _clusters()
        if fresh:
            _apt_install("postgresql")
        versions = _clusters()
        if not versions:
            raise SystemExit("PostgreSQL is installed but no cluster exists under /etc/postgresql")
        _say(f"starting PostgreSQL {versions[-1]}")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=True)
        _wait_port(host, port, "PostgreSQL")
        if fresh:  # a cluster we just made: let local TCP clients in like the socket's owner
            _trust_loopback(versions[-1])
    ensure_database(database_url)


def _trust_loopback(version: str) -> None:
    hba = f"/etc/postgresql/{version}/main/pg_hba.conf"
    with open(hba) as f:
        lines = f.read()
    with open(hba, "w") as f:
        f.write("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n" + lines)
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload"], check=True)
    _say("PostgreSQL: trusting loopback connections (local development cluster)")


def ensure_database(database_url: str) -> None:
    """Create the database named in the URL when it does not exist."""
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone()
        if not exists:
            _say(f"creating database {url.database}")
            conn.execute(f'CREATE DATABASE "{url.database}"')
