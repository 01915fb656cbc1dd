"""Settings for usbills: one module, driven by environment variables.

Defaults are safe for production (DEBUG off, secure cookies, HTTPS redirect)
except where a value cannot be guessed (the secret key, the host names);
`make run` turns DEBUG on for local development. The README has a table of
every variable read here. Nothing else in the project reads the environment.
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from usbills_site import storage

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    # A typo ("ture") must not quietly turn a setting off.
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r}: use one of {', '.join(TRUE_WORDS + FALSE_WORDS)}"
    )


def env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def secret_file(variable: str) -> str | None:
    """The secret in the file the environment variable names; None when it is unset."""
    path = os.environ.get(variable, "").strip()
    if not path:
        return None
    try:
        value = Path(path).read_text()
    except OSError as exc:
        raise ImproperlyConfigured(f"{variable}={path!r}: {exc.strerror}") from None
    # `echo secret > file` adds a newline that is not part of the secret.
    value = value.rstrip("\r\n")
    if not value:
        raise ImproperlyConfigured(f"{variable}={path!r} is empty")
    return value


def env_secret(name: str, default: str = "") -> str:
    """NAME, or the contents of the file NAME_FILE names (a Docker or Kubernetes secret).

    Secrets in files stay out of the environment, which `docker inspect`,
    /proc and crash reports show to more people than the secret is meant for.
    """
    from_file = secret_file(f"{name}_FILE")
    if from_file is None:
        return os.environ.get(name, "") or default
    if os.environ.get(name, ""):
        # Two sources could disagree; neither may silently win.
        raise ImproperlyConfigured(f"set {name} or {name}_FILE, not both")
    return from_file


def with_password(url: str, password: str) -> str:
    """The database URL with this password in it, quoted for the URL.

    DATABASE_URL carries the user, host and database, which are not secret;
    the password comes from DATABASE_PASSWORD_FILE, so that the URL can stay
    an ordinary environment variable.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        raise ImproperlyConfigured(
            "DATABASE_URL has a password and DATABASE_PASSWORD_FILE is set: use one of them"
        )
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def env_database_url(default: str) -> str:
    """DATABASE_URL, with the password from DATABASE_PASSWORD_FILE when that is set."""
    url = os.environ.get("DATABASE_URL", "") or default
    password = secret_file("DATABASE_PASSWORD_FILE")
    return url if password is None else with_password(url, password)


DEBUG = env_bool("DJANGO_DEBUG", False)

# A fixed development key keeps `make run` and the tests working without any
# set-up; the `classifier.E010` deploy check refuses it in production.
DEV_SECRET_KEY = "django-insecure-usbills-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "classifier.apps.ClassifierConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
]

MIDDLEWARE = [
    # First: before any header is believed or any body is read.
    "classifier.middleware.ProxyHeadersMiddleware",
    "classifier.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a signed-in user unless its view says otherwise
    # (login, sign-up, password reset, /healthz).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "usbills_site.urls"
WSGI_APPLICATION = "usbills_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite when DATABASE_URL is unset (quick start); Postgres in CI and compose.
# The password may come from a file (DATABASE_PASSWORD_FILE, a Docker secret).
DATABASES = {
    "default": dj_database_url.parse(
        env_database_url(f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "classifier.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out sign-in before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "classifier:upload"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files: nginx serves STATIC_ROOT in production, with hashed names so
# they can be cached for ever; runserver serves static/ itself when DEBUG.
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# The live page's in-browser runtime (LiteRT.js, pinned in package.json; `npm
# ci` installs it, the Dockerfile copies it in), never from a CDN: its code
# as static files, its WebAssembly builds from LITERTJS_DIR through a view
# (classifier/live/views.py says why).
LITERTJS_DIR = BASE_DIR / "node_modules" / "@litertjs"
STATICFILES_DIRS += [
    (f"litertjs/{part}", LITERTJS_DIR / part)
    for part in ("core/dist", "wasm-utils/dist")
    if (LITERTJS_DIR / part).is_dir()
]

# Uploaded photos are private: no MEDIA_URL, nothing under static/. They are
# served only by the photo views, which check the owner.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "media")
# When set (e.g. "/protected-media/"), the photo views answer with an
# X-Accel-Redirect to this nginx `internal` location instead of streaming the
# file from Python.
MEDIA_ACCEL_REDIRECT = env_str("DJANGO_MEDIA_ACCEL_REDIRECT")
# Photos and thumbnails on local disk, or in an S3 bucket when DJANGO_S3_BUCKET
# is set (usbills_site/storage.py has the variables).
# The bucket's secret may come from a file (DJANGO_S3_SECRET_ACCESS_KEY_FILE).
_s3_environ = {
    **os.environ,
    "DJANGO_S3_SECRET_ACCESS_KEY": env_secret("DJANGO_S3_SECRET_ACCESS_KEY"),
}
_default_storage = storage.default_storage(_s3_environ)
if _default_storage["BACKEND"] != storage.FILESYSTEM["BACKEND"]:
    # nginx cannot read objects from disk: the photo views stream them from
    # the bucket, or hand nginx a presigned URL (below), after the same owner check.
    MEDIA_ACCEL_REDIRECT = ""
# With a bucket, when set (e.g. "/protected-s3/"): the photo views answer with
# an X-Accel-Redirect to this nginx `internal` location, carrying the object's
# presigned path and query (valid 60 s); nginx fetches it from the bucket
# endpoint pinned in its own configuration (NGINX_S3_ENDPOINT). Unset, or
# without a bucket, it does nothing. docs/deploy.md measures both routes.
S3_ACCEL_REDIRECT = env_str("DJANGO_S3_ACCEL_REDIRECT")
if _default_storage["BACKEND"] == storage.FILESYSTEM["BACKEND"]:
    S3_ACCEL_REDIRECT = ""

STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
        )
    },
}
# Model versions are published to the same bucket (under models/) when there
# is one, and fetched from it by the web processes that lack them.
_model_storage = storage.model_storage(_s3_environ)
if _model_storage is not None:
    STORAGES["models"] = _model_storage

# The classifier.
# Where versions are registered from and candidates are trained into. Which
# one serves is the database's active ModelVersion (manage.py activate_model);
# the directory's CURRENT file names only the first one (classifier/serving.py).
if "CLASSIFIER_MODEL" in os.environ:
    # The old name of the seed: ignoring it would serve another model unnoticed.
    raise ImproperlyConfigured(
        "CLASSIFIER_MODEL is no longer read: set CLASSIFIER_MODELS_DIR to the models directory"
    )
CLASSIFIER_MODELS_DIR = Path(env_str("CLASSIFIER_MODELS_DIR") or BASE_DIR / "models")
# Versions fetched from the object store, one verified copy per machine (any
# writable directory of the app's own; deleting it only costs a new fetch).
CLASSIFIER_MODEL_CACHE = Path(
    env_str("CLASSIFIER_MODEL_CACHE") or Path(tempfile.gettempdir()) / "usbills-models"
)
# The base training images (an ImageFolder tree): train_model's default, and
# the real photos some tests use. Beside the repository unless set.
CLASSIFIER_TRAINING_DATA = Path(
    env_str("CLASSIFIER_TRAINING_DATA")
    or BASE_DIR.parent / "shared" / "datasets" / "usd-bills" / "train"
)
CLASSIFIER_THREADS = env_int("CLASSIFIER_THREADS", None)  # None: the predictor decides
CLASSIFIER_MAX_UPLOAD_BYTES = env_int("CLASSIFIER_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
# Same as the ML library's default: a 48-megapixel phone photo with room to spare.
CLASSIFIER_MAX_PIXELS = env_int("CLASSIFIER_MAX_PIXELS", 60_000_000)

# Photos up to the cap stay in memory (they are read whole to be checked and
# classified anyway). A body bigger than the cap plus room for the form around
# the photo is refused before it is read (classifier.middleware), and no
# uploaded file is kept beyond the cap plus one byte, which tells the form it
# was too large.
FILE_UPLOAD_MAX_MEMORY_SIZE = CLASSIFIER_MAX_UPLOAD_BYTES
CLASSIFIER_MAX_REQUEST_BYTES = CLASSIFIER_MAX_UPLOAD_BYTES + 256 * 1024
FILE_UPLOAD_HANDLERS = [
    "classifier.middleware.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Form fields other than files: sign-in, feedback and admin forms are small.
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
FILE_UPLOAD_PERMISSIONS = 0o640

# Behind nginx: it terminates TLS and says so in X-Forwarded-Proto. The
# forwarding headers (X-Real-IP, X-Forwarded-*) are believed only from these
# proxies (addresses or networks, "*" for any): the same variable gunicorn
# reads for the same purpose, with gunicorn's default.
TRUSTED_PROXIES = env_list("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# nginx passes the Host the client used; X-Forwarded-Host adds nothing but a
# second header to forge.
USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", False)
# The site's origin, e.g. "https://bills.example.com": links in mails (password
# reset) use it rather than whatever Host the request carried.
SITE_URL = env_str("DJANGO_SITE_URL").rstrip("/")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: forms carry the token in a hidden field.
CSRF_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Asking browsers to preload HSTS is a commitment for the whole domain that
# each deployment makes for itself (DJANGO_SECURE_HSTS_PRELOAD=1).
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# The cache holds the sign-in failures and the upload counts, which every
# worker must share: Redis when REDIS_URL is set (compose sets it). Without
# it, a table in the database (`manage.py createcachetable`, which `make run`
# does): slower, but still shared by every process.
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {
            # Redis down: a warning and no throttling, not a failed request.
            "BACKEND": "classifier.cache.TolerantRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if REDIS_URL
        else {
            "BACKEND": "classifier.cache.CountingDatabaseCache",
            "LOCATION": "usbills_cache",
            # Django culls a third of the table past 300 entries, counters
            # included, which would restart someone's count mid-window.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    )
}

# Sign-in throttling (django-axes, counted in the cache): after
# AXES_FAILURE_LIMIT failures for one username from one address, that pair is
# refused with a 429 for AXES_COOLOFF_TIME. Username *and* address, so that a
# stranger cannot lock a user out from everywhere.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env_int("DJANGO_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("DJANGO_LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "429.html"
AXES_CLIENT_IP_CALLABLE = "classifier.middleware.client_ip"
AXES_VERBOSE = False

# Uploads per user (classifier/ratelimit.py), e.g. "30/m", "500/h"; "off" for none.
CLASSIFIER_UPLOAD_RATE = env_str("CLASSIFIER_UPLOAD_RATE", "30/m")
# Sign-ups and password-reset requests per client address, and reset mails per
# email address: each account is an upload budget, each mail lands in
# someone's inbox.
CLASSIFIER_ACCOUNT_RATE = env_str("CLASSIFIER_ACCOUNT_RATE", "10/h")
CLASSIFIER_RESET_MAIL_RATE = env_str("CLASSIFIER_RESET_MAIL_RATE", "3/h")

# How often an open live page asks which model version is active: an
# activation reaches it within this many seconds.
CLASSIFIER_LIVE_POLL_SECONDS = env_int("CLASSIFIER_LIVE_POLL_SECONDS", 30)

# Mail (password reset): sent by SMTP when a host is set; otherwise printed to
# the console in development only. In production a reset link must never
# reach the log, so without a host mails are dropped with a warning.
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "classifier.mail.UnsentMailBackend"
)
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "usbills <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Everything to stdout: gunicorn, Docker and systemd collect it from there.
LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
    },
}
