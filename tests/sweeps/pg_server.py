"""A PostgreSQL server of a test's own: a temporary folder, a free local port, Debian's `postgresql`
binaries (.ci/run installs them). As root it runs as the `postgres` user (it refuses root). With a
password, clients must give it (scram-sha-256), as on a lab's shared server; without, any local
client is trusted."""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _server_bin() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(data: Path) -> list[str]:
    """The prefix that runs the server's programs as the postgres user when this is root."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no postgres user to run the server as")
    if not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start the server as the postgres user")
    os.chown(data, pw.pw_uid, pw.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def postgres_server(password: str | None = None) -> Iterator[str]:
    """A running server with a database `sweeps` of the user `cnnlab`; yields its URL (without the password)."""
    bindir = _server_bin()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    data = Path(tempfile.mkdtemp(prefix="cnnlab-pg-"))
    as_user = _as_postgres(data)
    port, pg = _free_port(), data / "db"
    run = dict(check=True, capture_output=True, text=True)
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = data / "pw"
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, *(["postgres", "postgres"] if as_user else [os.getuid(), os.getgid()]))
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(pg), "-U", "cnnlab", *auth], **run)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(pg)]
    subprocess.run([*ctl, "-o", options, "-l", str(data / "log"), "-w", "start"], **run)
    try:
        env = {**os.environ, "PGPASSWORD": password or ""}
        createdb = [*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "cnnlab", "sweeps"]
        subprocess.run(createdb, env=env, **run)
        yield f"postgresql+psycopg://cnnlab@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
