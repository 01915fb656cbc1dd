"""Helpers that run and check the production stack (nginx + gunicorn + Postgres).

Used by test_deploy_nginx.py, by `make docker-test` (against Docker Compose)
and by `make bench-http`. Nothing here is collected as a test by itself.
"""
