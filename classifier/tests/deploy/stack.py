"""The production stack on loopback: a fresh Postgres database, gunicorn with
the project's gunicorn.conf.py, and nginx with the project's nginx template
(the very file the nginx image renders), on ports picked at random.

    with Stack.start(workdir, model_dir=...) as stack:
        stack.https_url, stack.http_url, stack.media_root ...

Every process it starts is stopped again by its PID when the block ends, and
the database is dropped.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NGINX_DIR = REPO / "nginx"
TEMPLATE = NGINX_DIR / "templates" / "usbills.conf.template"
CERT_SCRIPT = NGINX_DIR / "entrypoint.d" / "15-usbills-self-signed-cert.sh"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
TEMPLATE_VAR = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}|\$(NGINX_[A-Z0-9_]+)\b")


class StackError(RuntimeError):
    """A part of the stack did not start."""


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, not always on a user's PATH)."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_template(text: str, values: dict[str, str]) -> str:
    """Fill ${NGINX_*} (and $NGINX_*) the way envsubst does in the nginx image.

    Unlike envsubst, a variable without a value is an error rather than an
    empty string: a test must not pass on a half-rendered configuration.
    """

    def fill(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"{TEMPLATE.name} uses ${{{name}}}, which has no value")
        return str(values[name])

    return TEMPLATE_VAR.sub(fill, text)


def wait_for(check, *, timeout: float, what: str, proc: subprocess.Popen | None = None):
    """Call check() until it returns true; fail early if proc exited."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what}: the process exited with status {proc.returncode}")
        try:
            if check():
                return
        except OSError as exc:
            last_error = exc
        time.sleep(0.2)
    raise StackError(f"{what}: not ready after {timeout:.0f} s ({last_error})")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20):
    """Stop one process we started, by its PID, and reap it."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# Postgres --------------------------------------------------------------------


def server_url(database_url: str | None) -> str:
    """A URL for the maintenance database of the Postgres server to use."""
    url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not url.startswith(("postgres://", "postgresql://")):
        url = DEFAULT_DATABASE_URL
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/postgres"))


def create_database(maintenance_url: str, name: str) -> str:
    """CREATE DATABASE name; returns its URL."""
    import psycopg2

    conn = psycopg2.connect(maintenance_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return maintenance_url.rsplit("/", 1)[0] + "/" + name


def drop_database(maintenance_url: str, name: str):
    import psycopg2

    conn = psycopg2.connect(maintenance_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def skip_reason(*, database: bool = True) -> str | None:
    """Why the real stack cannot run here (nginx, or the shared Postgres, missing), or None."""
    if find_nginx() is None:
        return "nginx is not installed and could not be (make nginx-test-deps)"
    return postgres_reachable() if database else None


def postgres_reachable(database_url: str | None = None) -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        psycopg2.connect(server_url(database_url), connect_timeout=3).close()
    except psycopg2.Error as exc:
        return f"Postgres at {server_url(database_url)} is not reachable: {exc}".strip()
    return None


# The stack -------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    http_port: int
    https_port: int
    app_port: int
    database_url: str
    media_root: Path
    static_root: Path
    cert_file: Path
    gunicorn: subprocess.Popen | None = None
    nginx: subprocess.Popen | None = None
    _cleanup: ExitStack = field(default_factory=ExitStack)

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.http_port}"

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._cleanup.close()

    def query(self, sql: str) -> list[tuple]:
        """Rows of one SQL statement, run on the stack's database."""
        import psycopg2

        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run manage.py with the stack's production environment."""
        return subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )

    def media_names(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.media_root)) for p in self.media_root.rglob("*") if p.is_file()
        )

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        model_dir: Path,
        database_url: str | None = None,
        workers: int | None = None,
        classifier_threads: int = 1,
        extra_env: dict[str, str] | None = None,
        log=print,
    ) -> Stack:
        """Database, collectstatic, migrate, gunicorn, nginx; stopped by close()."""
        nginx_bin = find_nginx()
        if nginx_bin is None:
            raise StackError("nginx is not installed (make nginx-test-deps)")
        workdir = Path(workdir)
        cleanup = ExitStack()
        try:
            maintenance = server_url(database_url)
            db_name = f"usbills_deploy_{secrets.token_hex(4)}"
            db_url = create_database(maintenance, db_name)
            cleanup.callback(drop_database, maintenance, db_name)

            media_root = workdir / "media"
            static_root = workdir / "static"
            cert_dir = workdir / "certs"
            for d in (media_root, static_root, cert_dir):
                d.mkdir(parents=True, exist_ok=True)
            http_port, https_port, app_port = free_port(), free_port(), free_port()
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "usbills_site.settings",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_DEBUG": "0",
                "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
                "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://localhost:{https_port}",
                "DJANGO_SECURE_SSL_REDIRECT": "1",
                "DJANGO_MEDIA_ACCEL_REDIRECT": "/protected-media/",
                "DJANGO_STATIC_ROOT": str(static_root),
                "DATABASE_URL": db_url,
                "MEDIA_ROOT": str(media_root),
                "CLASSIFIER_MODELS_DIR": str(model_dir),
                "CLASSIFIER_THREADS": str(classifier_threads),
                "GUNICORN_BIND": f"127.0.0.1:{app_port}",
                "PYTHONUNBUFFERED": "1",
            }
            # The stack's tests sign up more users from one address than a person would.
            env["CLASSIFIER_ACCOUNT_RATE"] = "off"
            env.update(extra_env or {})
            if workers:
                env["WEB_CONCURRENCY"] = str(workers)
            else:
                env.pop("WEB_CONCURRENCY", None)
            stack = cls(
                workdir=workdir,
                env=env,
                http_port=http_port,
                https_port=https_port,
                app_port=app_port,
                database_url=db_url,
                media_root=media_root,
                static_root=static_root,
                cert_file=cert_dir / "fullchain.pem",
                _cleanup=cleanup,
            )
            t0 = time.monotonic()
            stack.manage("collectstatic", "--noinput", "--verbosity", "0")
            stack.manage("migrate", "--noinput", "--verbosity", "0")
            # The cache's table, used when REDIS_URL is unset (as docker/entrypoint.sh does).
            stack.manage("createcachetable")
            took = time.monotonic() - t0
            log(f"stack: database {db_name} migrated, static collected ({took:.1f} s)")

            stack._start_gunicorn(workdir)
            stack._start_nginx(nginx_bin, workdir, cert_dir)
            log(f"stack: up in {time.monotonic() - t0:.1f} s: {stack.https_url}")
            return stack
        except BaseException:
            cleanup.close()
            raise

    def nginx_in_front_of(self, app_port: int, workdir: Path, *, s3_endpoint: str) -> Stack:
        """Another nginx with the same template, in front of a stand-in app on
        app_port (a test's own, to send answers the real app never would) and
        the given bucket endpoint; stopped with this stack."""
        other = Stack(
            workdir=workdir,
            env={**self.env, "DJANGO_S3_ENDPOINT_URL": s3_endpoint},
            http_port=free_port(),
            https_port=free_port(),
            app_port=app_port,
            database_url=self.database_url,
            media_root=self.media_root,
            static_root=self.static_root,
            cert_file=workdir / "certs" / "fullchain.pem",
        )
        self._cleanup.callback(other.close)
        (workdir / "certs").mkdir(parents=True, exist_ok=True)
        other._start_nginx(find_nginx(), workdir, workdir / "certs")
        return other

    def _start_gunicorn(self, workdir: Path):
        log_file = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115 (closed by cleanup)
        self._cleanup.callback(log_file.close)
        self.gunicorn = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "usbills_site.wsgi"],
            cwd=REPO,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        self._cleanup.callback(stop, self.gunicorn)
        wait_for(lambda: port_open(self.app_port), timeout=60, what="gunicorn", proc=self.gunicorn)

    def _start_nginx(self, nginx_bin: str, workdir: Path, cert_dir: Path):
        # The same script the nginx image runs at first start makes the pair.
        subprocess.run(  # noqa: S603
            ["sh", str(CERT_SCRIPT)],
            env={**os.environ, "NGINX_CERT_DIR": str(cert_dir), "NGINX_SERVER_NAME": "localhost"},
            check=True,
            capture_output=True,
        )
        values = {
            "NGINX_SERVER_NAME": "localhost",
            "NGINX_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "NGINX_HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "NGINX_PUBLIC_HTTPS_PORT": str(self.https_port),
            "NGINX_UPSTREAM": f"127.0.0.1:{self.app_port}",
            "NGINX_RESOLVER": "127.0.0.1",
            "NGINX_CERT_DIR": str(cert_dir),
            "NGINX_STATIC_ROOT": str(self.static_root),
            "NGINX_MEDIA_ROOT": str(self.media_root),
            "NGINX_ACME_ROOT": str(workdir / "acme"),
            "NGINX_ERROR_PAGES_ROOT": str(NGINX_DIR / "html"),
            "NGINX_MAX_BODY_SIZE": "11m",
            "NGINX_HSTS": "max-age=31536000; includeSubDomains",
            # The app's own bucket endpoint; none listens on port 9 without one.
            "NGINX_S3_ENDPOINT": self.env.get("DJANGO_S3_ENDPOINT_URL") or "http://127.0.0.1:9",
        }
        conf_dir = workdir / "nginx"
        (conf_dir / "conf.d").mkdir(parents=True, exist_ok=True)
        (conf_dir / "conf.d" / "usbills.conf").write_text(
            render_template(TEMPLATE.read_text(), values)
        )
        mime_types = Path(nginx_bin).resolve().parent.parent / "etc" / "nginx" / "mime.types"
        if not mime_types.is_file():
            mime_types = Path("/etc/nginx/mime.types")
        temp = conf_dir / "temp"
        # The main context the nginx image provides, with every path in the
        # work directory. As root, workers keep root's identity: the work
        # directory is private to it.
        user = "user root root;" if os.geteuid() == 0 else ""
        (conf_dir / "nginx.conf").write_text(
            f"""{user}
worker_processes 2;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    include {mime_types};
    default_type application/octet-stream;
    access_log {conf_dir}/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {conf_dir}/conf.d/*.conf;
}}
"""
        )
        temp.mkdir(exist_ok=True)
        conf = str(conf_dir / "nginx.conf")
        error_log = str(conf_dir / "error.log")
        test = subprocess.run(  # noqa: S603
            [nginx_bin, "-t", "-q", "-p", str(conf_dir), "-e", error_log, "-c", conf],
            capture_output=True,
            text=True,
        )
        if test.returncode != 0:
            raise StackError(f"nginx -t failed:\n{test.stderr}")
        self.nginx = subprocess.Popen(  # noqa: S603
            [nginx_bin, "-p", str(conf_dir), "-e", error_log, "-c", conf, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(conf_dir / "stderr.log", "wb"),  # noqa: SIM115
        )
        # SIGQUIT: nginx's graceful shutdown.
        self._cleanup.callback(stop, self.nginx, signal.SIGQUIT)
        wait_for(lambda: port_open(self.https_port), timeout=20, what="nginx", proc=self.nginx)
