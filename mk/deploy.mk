# Deployment targets (included by the Makefile). See docs/deploy.md.
#
#   make nginx-test-deps  install Debian's nginx for the nginx integration test
#   make docker-test      build the images and run the Compose stack for real
#   make swarm-test       the Swarm stack (docker/stack.yml) under load while it changes
#   make swarm-bench      uploads/s with 1, 2 and 3 web replicas in the Swarm stack
#   make bench-http       upload throughput and latency through nginx
#   make bench-photos     photos in a bucket: presigned via nginx vs streamed by Django

# The project's virtualenv (the Makefile's $(PY)); the smoke flow and the
# benchmark need its Pillow and psycopg2.
DEPLOY_PYTHON ?= $(if $(PY),$(PY),$(if $(wildcard .venv/bin/python),.venv/bin/python,python3))
DEPLOY_DEPS := $(if $(PY),install-dev)

.PHONY: nginx-test-deps docker-test swarm-test swarm-bench bench-http bench-photos

# The integration test (classifier/tests/test_deploy_nginx.py) runs Debian's
# nginx; it skips, saying why, only when nginx cannot be installed here.
nginx-test-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
		echo "installing nginx-light from Debian's packages"; \
		{ $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$sudo apt-get install -y -qq --no-install-recommends nginx-light; } >/dev/null \
			|| echo "warning: could not install nginx: the nginx integration test will be skipped"; \
	else \
		echo "warning: nginx is missing and there is no apt-get to install it:" \
			"the nginx integration test will be skipped"; \
	fi

# node-deps: the web image copies the live page's runtime from node_modules.
docker-test: $(DEPLOY_DEPS) node-deps
	PYTHON=$(DEPLOY_PYTHON) bash docker/docker-test.sh

# The images are docker-test's, rebuilt from cache (quick right after it).
swarm-test: $(DEPLOY_DEPS) node-deps
	PYTHON=$(DEPLOY_PYTHON) bash docker/swarm-test.sh

swarm-bench: $(DEPLOY_DEPS) node-deps
	PYTHON=$(DEPLOY_PYTHON) bash docker/swarm-test.sh --bench

bench-http: $(DEPLOY_DEPS) nginx-test-deps
	$(DEPLOY_PYTHON) -m classifier.tests.deploy.bench

bench-photos: $(DEPLOY_DEPS) nginx-test-deps
	$(DEPLOY_PYTHON) -m classifier.tests.deploy.bench_photos
