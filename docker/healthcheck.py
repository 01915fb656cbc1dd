"""Container health check: GET /healthz from gunicorn inside the container.

It asks the way nginx does (a host from DJANGO_ALLOWED_HOSTS, and
X-Forwarded-Proto: https) so that host validation and the HTTPS redirect do
not turn a healthy app into a 400 or a 301. Exit status 0 means healthy.
"""

import http.client
import os
import sys


def main() -> int:
    port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rsplit(":", 1)[-1]
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
    host = next((h for h in hosts if h and h != "*"), "localhost").lstrip(".")
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=4)
    try:
        conn.request("GET", "/healthz", headers={"Host": host, "X-Forwarded-Proto": "https"})
        status = conn.getresponse().status
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status != 200:
        print(f"unhealthy: /healthz answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
