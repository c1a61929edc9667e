# rollgate: `make demo` and `make test` work on a fresh Debian machine with the Swift
# toolchain; each installs what is missing first (and skips what is there).

SWIFT      ?= swift
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BUILD_DEPS := libmicrohttpd-dev libsqlite3-dev libyaml-dev pkg-config libcurl4-openssl-dev libpq-dev
TEST_DEPS  := chromium postgresql
BENCH_DEPS := wrk gcc
PIP_DEPS   := moto[server] boto3 awscli openapi-spec-validator prometheus-client schemathesis

.PHONY: all build release install demo test bench deps-build deps-test deps-bench clean

PREFIX ?= /usr/local

all: build

# Installs the Debian packages named in $(1) that are not installed yet.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps-build:
	$(call apt_install,$(BUILD_DEPS))

deps-test: deps-build
	$(call apt_install,$(TEST_DEPS))
	@python3 -c "import moto.server, boto3, awscli, openapi_spec_validator, prometheus_client, schemathesis" 2>/dev/null || python3 -m pip install -q $(foreach p,$(PIP_DEPS),'$(p)')

deps-bench: deps-build
	$(call apt_install,$(BENCH_DEPS))

build: deps-build
	$(SWIFT) build

# One self-contained binary (the Swift runtime linked in): nothing but libmicrohttpd, libsqlite3
# and libyaml needed on the host (and libcurl4, loaded only when rollgate first sends a request:
# AWS, notifications, the CLI; libpq5, loaded only to open a PostgreSQL database), and ~7 MB less
# resident memory than the shared runtime.
release: deps-build
	$(SWIFT) build -c release --static-swift-stdlib

# The release binary in $(PREFIX)/bin, migrations/ and public/ in $(PREFIX)/share/rollgate
# (where rollgate looks for them beside its binary), the systemd unit in contrib/.
install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/rollgate/migrations/postgres $(DESTDIR)$(PREFIX)/share/rollgate/public
	install -m 0755 .build/release/rollgate $(DESTDIR)$(PREFIX)/bin/rollgate
	install -m 0644 migrations/*.sql $(DESTDIR)$(PREFIX)/share/rollgate/migrations/
	install -m 0644 migrations/postgres/*.sql $(DESTDIR)$(PREFIX)/share/rollgate/migrations/postgres/
	install -m 0644 public/* $(DESTDIR)$(PREFIX)/share/rollgate/public/
	install -m 0644 README.md docs/reference.md contrib/rollgate.service $(DESTDIR)$(PREFIX)/share/rollgate/

# The demo: a simulated load balancer with 3 targets, on 127.0.0.1:8080, no token needed.
demo: build
	.build/debug/rollgate serve --database ./rollgate-demo.db

# Every test: unit, store, HTTP, end to end (the built binary, headless Chromium).
test: deps-test
	$(SWIFT) build
	$(SWIFT) test

bench: deps-bench deps-test release
	bash bench/http.sh
	bash bench/waiter-lag.sh
	bash bench/streams.sh
	bash bench/roll-time.sh
	bash bench/abuse.sh
	bash bench/logs.sh
	bash bench/roll-overhead.sh
	bash bench/many-rolls.sh
	bash bench/aws-calls.sh
	RUNS=$${RUNS:-100000} bash bench/history.sh

clean:
	rm -rf .build rollgate-demo.db rollgate-demo.db-wal rollgate-demo.db-shm bench/out
