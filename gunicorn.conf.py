"""gunicorn settings for usbills: `gunicorn -c gunicorn.conf.py usbills_site.wsgi`.

Sync workers, each loading its own predictor when it imports the WSGI module
(no preload: LiteRT state made before fork breaks the children). The model is
CPU-bound, so about one worker per core; nginx in front buffers slow clients
and request bodies, so a sync worker is never held by a slow upload.

Environment (all optional):
    GUNICORN_BIND        address to listen on (default 0.0.0.0:8000)
    WEB_CONCURRENCY      worker count (default: one per CPU core)
    GUNICORN_TIMEOUT     seconds before a silent worker is killed (default 30)
    GUNICORN_MAX_REQUESTS  recycle a worker after this many requests (default 2000, 0 = never)
    GUNICORN_CONTROL_SOCKET  path of a control socket for gunicornc (default: none)
    FORWARDED_ALLOW_IPS  proxies trusted for X-Forwarded-* (read by gunicorn itself)

`kill -HUP <master pid>` reloads gracefully: new workers (new code and model)
start, old ones finish their requests and exit.
"""

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpu_count() -> int:
    # The CPUs this process may run on (a container's cpuset), not the host's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
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
# The client address comes from nginx's X-Forwarded-For; %(L)s is the request time in seconds.
access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(B)s %(L)ss "%(a)s"'
capture_output = True
proc_name = "usbills"


def post_worker_init(worker):
    worker.log.info("worker %s ready", worker.pid)
