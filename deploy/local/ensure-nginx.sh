#!/usr/bin/env bash
# The gateway is the machine's nginx. `make install` adds it when it can (root with apt-get);
# otherwise it says how, and `make run` serves the services on their own ports only.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing nginx (the gateway) with apt-get"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
else
	echo "nginx is missing and this is not root with apt-get: install it (sudo apt-get install nginx)."
	echo "Without it, make run serves each service on its own port and the gateway test fails."
fi
