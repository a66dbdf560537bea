#!/usr/bin/env bash
# Runs every fuzz target in the module for a short time (default 5s each).
# go test accepts one -fuzz target per run, so they are listed and run in turn.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
      cat /tmp/fuzz-$$.log
      status=1
    fi
  done
done
rm -f /tmp/fuzz-$$.log
if [ $status -eq 0 ]; then echo "fuzz: all targets passed"; fi
exit $status
