#!/usr/bin/env bash
# Makes a Debian 12 machine ready to build and test sluice: installs
# MariaDB (server and client), sysbench, haproxy and chromium (the headless
# browser the dashboard test drives) when any is missing, and checks that
# Go >= 1.26 is present. Idempotent; quiet when all is there.
#
# It does not start or enable the distribution's MariaDB service: tests,
# `sluice demo` and the benchmarks start their own servers (internal/testbed).
# If the package installation happens to start one, it is left alone.
set -euo pipefail

GO_MIN_MAJOR=1
GO_MIN_MINOR=26

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Debian installs the server programs in /usr/sbin, which is not on every
# user's PATH.
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
for prog in mariadbd mariadb mariadb-install-db sysbench haproxy; do
	have "$prog" || missing+=("$prog")
done
# The dashboard test (e2e/dashboard_test.go) runs exactly /usr/bin/chromium.
[[ -x /usr/bin/chromium ]] || missing+=(/usr/bin/chromium)

if ((${#missing[@]} > 0)); then
	say "missing: ${missing[*]}; installing packages"
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		have sudo || die "not root and sudo is not installed; as root run: apt-get update && apt-get install -y mariadb-server mariadb-client sysbench haproxy chromium"
		sudo=(sudo)
	fi
	have apt-get || die "apt-get not found: this script supports Debian 12; install MariaDB 10.11 (mariadbd, mariadb, mariadb-install-db), sysbench, haproxy and chromium (/usr/bin/chromium) by hand"
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	if ! "${sudo[@]}" apt-get update -q >"$log" 2>&1 ||
		! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			mariadb-server mariadb-client sysbench haproxy chromium >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "package installation failed (full log above)"
	fi
	for prog in "${missing[@]}"; do
		have "$prog" || [[ -x $prog ]] || die "$prog still missing after installing the packages"
	done
fi

# Go
if ! have go; then
	[[ -x /usr/local/go/bin/go ]] && die "Go is installed in /usr/local/go but not on PATH: export PATH=\$PATH:/usr/local/go/bin"
	die "Go is not installed (or not on PATH). Install Go ${GO_MIN_MAJOR}.${GO_MIN_MINOR} or newer from https://go.dev/dl/ (Debian 12's golang package is too old), e.g. into /usr/local/go, and add /usr/local/go/bin to PATH."
fi
go_version=$(go env GOVERSION 2>/dev/null || true) # e.g. go1.26.8
if [[ ! $go_version =~ ^go([0-9]+)\.([0-9]+) ]]; then
	die "cannot tell the Go version from '$(go version 2>&1)'; need go${GO_MIN_MAJOR}.${GO_MIN_MINOR} or newer"
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
if ((major < GO_MIN_MAJOR || (major == GO_MIN_MAJOR && minor < GO_MIN_MINOR))); then
	die "$go_version is too old: sluice needs go${GO_MIN_MAJOR}.${GO_MIN_MINOR} or newer (go.mod says 'go 1.26'); install it from https://go.dev/dl/ and put it first on PATH"
fi

mariadb_version=$(mariadbd --version | sed -n 's/.*Ver \([0-9][0-9.]*\).*/\1/p')
sysbench_version=$(sysbench --version | awk '{print $2}')
haproxy_version=$(haproxy -v 2>/dev/null | sed -n '1s/.*version \([0-9][0-9.]*\).*/\1/p')
chromium_version=$({ /usr/bin/chromium --version 2>/dev/null || true; } | sed -n 's/^Chromium \([0-9][0-9.]*\).*/\1/p')
say "mariadbd ${mariadb_version:-?}, sysbench ${sysbench_version:-?}, haproxy ${haproxy_version:-?}, chromium ${chromium_version:-?}, ${go_version} ready"
