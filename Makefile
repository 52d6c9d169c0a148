# Sonata: every routine action is a target. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "} \
		{name[NR]=$$1; what[NR]=$$2; if (length($$1) > w) w=length($$1)} \
		END{f = "  make %-" w "s  %s\n"; for (i=1; i<=NR; i++) printf f, name[i], what[i]}'

.PHONY: uv
uv:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || \
		{ echo "installing uv"; python3 -m pip install --user --quiet uv; }

.PHONY: install
install: uv ## install uv (if missing), the whole workspace (SecantusDB included) and nginx
	$(UV) sync --frozen --inexact  # --inexact: keeps the benchmark group `make bench` added
	@bash deploy/local/ensure-nginx.sh

.PHONY: run
run: install ## the whole fleet on this machine: SecantusDB, six services, nginx gateway on :8080
	PYTHONPATH=deploy/local $(RUN) python -m sonata_local

.PHONY: up
up: ## the whole fleet in docker compose (needs a .env: cp .env.example .env)
	docker compose up --build --wait

.PHONY: down
down: ## stop the docker compose fleet (volumes kept)
	docker compose down

.PHONY: test
test: install ## unit, integration and fleet tests against real SecantusDB and RabbitMQ
	$(RUN) pytest libs services tests bench

.PHONY: lint
lint: install ## ruff and the import rules that keep services apart and domain code free of I/O
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports

.PHONY: promtool-test
promtool-test: ## check the Prometheus configs and run the alert rules' unit tests (installs promtool as root when missing)
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ echo "installing promtool (Debian package prometheus) with apt-get"; apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }; } || \
		{ echo "promtool is missing: sudo apt-get install -y prometheus"; exit 1; }
	promtool check config prometheus/prometheus.yml prometheus/prometheus.local.yml
	promtool test rules prometheus/tests/*.yml

.PHONY: dlq-replay
dlq-replay: ## move a service's dead letters back onto its queue: make dlq-replay s=<service> [n=N]
	@test -n "$(s)" || { echo "usage: make dlq-replay s=<service> [n=<limit>]"; exit 2; }
	$(RUN) python -m sonata_messaging.dlq_replay $(s) $(if $(n),--limit $(n))

.PHONY: auth-admin
auth-admin: ## make an existing account admin (the API cannot make the first one): make auth-admin email=<address>
	@test -n "$(email)" || { echo "usage: make auth-admin email=<address>"; exit 2; }
	$(RUN) python -m sonata_auth.cli set-roles $(email) admin

.PHONY: auth-rotate-key
auth-rotate-key: ## sign access tokens with a new key; the old one stays published until its tokens expire
	$(RUN) python -m sonata_auth.cli rotate-key

.PHONY: bench
bench: install ## engine benchmarks: Vienna 4x22 with the peers, simulated learners, speed; writes bench/results/engine-<date>.json
	$(UV) sync --frozen --group bench
	$(RUN) --group bench python -m bench.suite $(BENCH_ARGS)

.PHONY: bench-ws
bench-ws: install ## live sessions over the WebSocket: N learners at real speed, rising N until p99 > 5 ms; writes bench/results/ws-load-<date>.json
	$(RUN) python -m bench.ws_load $(BENCH_ARGS)

.PHONY: bench-db
bench-db: install ## db read endpoints under load (500 requests/s, p95 target 20 ms); writes bench/results/db-load-<date>-<rate>rps.json
	$(RUN) python -m bench.db_load $(BENCH_ARGS)

.PHONY: bench-notifications
bench-notifications: install ## 5,000 events with a broker restart mid-burst, each sent once; writes bench/results/notifications-burst-<date>.json
	SONATA_NOTIFICATIONS_BURST=5000 \
	SONATA_NOTIFICATIONS_BURST_JSON=bench/results/notifications-burst-$$(date -u +%F).json \
	$(RUN) pytest tests/fleet/test_notifications_burst.py -q -s -o timeout=900 $(BENCH_ARGS)

.PHONY: fmt
fmt: install ## format and fix what ruff can
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: typecheck
typecheck: install ## mypy (strict)
	$(RUN) mypy libs/*/src services/*/src deploy/local bench/*.py
