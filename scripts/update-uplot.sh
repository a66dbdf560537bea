#!/usr/bin/env bash
# Refreshes the bundled uPlot (the dashboard's charting library, MIT) from the
# npm registry. The files are committed so the binary works offline and the
# build needs no Node.js; run this only to change the version.
set -euo pipefail
version=${1:-1.6.32}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" internal/httpapi/static/
cp "$tmp/package/LICENSE" internal/httpapi/static/uPlot.LICENSE
echo "uPlot $version" > internal/httpapi/static/VERSION
echo "updated uPlot to $version"
