# Deployment targets (included by the Makefile). See docs/deploy.md.
#
#   make nginx-test-deps  install Debian's nginx for the nginx integration test
#   make docker-test      build the images and run the Compose stack for real
#   make bench-http       upload throughput and latency through nginx

DEPLOY_PYTHON ?= $(if $(PYTHON),$(PYTHON),$(if $(wildcard .venv/bin/python),.venv/bin/python,python3))

.PHONY: nginx-test-deps docker-test bench-http

# The integration test (classifier/tests/test_deploy_nginx.py) runs Debian's
# nginx; it skips, saying why, only when nginx cannot be installed here.
nginx-test-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nginx-light from Debian's packages"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light; } >/dev/null \
			|| echo "warning: could not install nginx: the nginx integration test will be skipped"; \
	else \
		echo "warning: nginx is missing and cannot be installed (needs root and apt-get):" \
			"the nginx integration test will be skipped"; \
	fi

docker-test:
	PYTHON=$(DEPLOY_PYTHON) bash docker/docker-test.sh

bench-http: nginx-test-deps
	$(DEPLOY_PYTHON) -m classifier.tests.deploy.bench
