"""gunicorn settings for usbills: `gunicorn -c gunicorn.conf.py usbills_site.wsgi`.

Sync workers, each loading its own predictor when it imports the WSGI module
(no preload: LiteRT state made before fork breaks the children). The model is
CPU-bound, so about one worker per core; nginx in front buffers slow clients
and request bodies, so a sync worker is never held by a slow upload.

Environment (all optional):
    GUNICORN_BIND        address to listen on (default 127.0.0.1:8000: only nginx
                         on the same machine; the image sets 0.0.0.0:8000 on
                         its private network)
    WEB_CONCURRENCY      worker count (default: one per CPU core)
    GUNICORN_TIMEOUT     seconds before a silent worker is killed (default 30)
    GUNICORN_MAX_REQUESTS  recycle a worker after this many requests (default 2000, 0 = never)
    GUNICORN_CONTROL_SOCKET  path of a control socket for gunicornc (default: none)
    FORWARDED_ALLOW_IPS  proxies trusted for X-Forwarded-* and X-Real-IP (read by
                         gunicorn itself, by the access log below and by Django)

`kill -HUP <master pid>` reloads gracefully: new workers (new code and model)
start, old ones finish their requests and exit.
"""

import ipaddress
import os

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpu_count() -> int:
    # The CPUs this process may run on (a container's cpuset), not the host's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Loopback unless told otherwise: gunicorn is not meant to face the internet
# (docs/deploy.md); nginx in front caps bodies and buffers slow clients.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = max(1, _int("WEB_CONCURRENCY", _cpu_count()))
worker_class = "sync"
preload_app = False

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
# Behind nginx the connection is closed after each response anyway.
keepalive = 2

# Recycling bounds slow memory growth; the jitter keeps workers from
# restarting (and reloading the model) all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10

# The heartbeat file on tmpfs: a worker blocked on a slow disk is not a dead one.
SHM = "/dev/shm"  # noqa: S108 (gunicorn's own advice for containers)
if os.path.isdir(SHM):
    worker_tmp_dir = SHM

# gunicorn's control socket (for gunicornc) would go to $HOME/.gunicorn,
# shared by every instance of the user and read-only in the image: only where
# asked for. Signals (HUP, TTIN/TTOU, TERM) do the same jobs.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# %(client)s is the address nginx saw (X-Real-IP) when a trusted proxy sent the
# request, else the peer's own; %(L)s is the request time in seconds.
access_log_format = '%(client)s "%(r)s" %(s)s %(B)s %(L)ss "%(a)s"'


def _trusted(address: str, allowed) -> bool:
    if "*" in allowed:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(a, strict=False) for a in allowed)


class AccessLogger(Logger):
    """gunicorn's logger; the client address is not whatever a client wrote in a header."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        peer = environ.get("REMOTE_ADDR") or "-"
        forwarded = environ.get("HTTP_X_REAL_IP")
        trusted = forwarded and _trusted(peer, self.cfg.forwarded_allow_ips)
        atoms["client"] = forwarded if trusted else peer
        return atoms


logger_class = AccessLogger
capture_output = True
proc_name = "usbills"


def post_worker_init(worker):
    worker.log.info("worker %s ready", worker.pid)
