#!/usr/bin/env bash
# Vendors uPlot (the dashboard's charts) from the npm registry into sentinel/web/static/, so
# the dashboard works with no internet: no CDN, nothing fetched by the browser.
#
#   scripts/vendor-uplot.sh              fetch the pinned version, check its sha256, copy
#   UPLOT_VERSION=1.6.33 UPLOT_SHA256=<sha256 of the .tgz> scripts/vendor-uplot.sh
#                                        update: check the new tarball's sha256 yourself
#                                        (e.g. against `npm view uplot@1.6.33 dist`), then pin
#                                        both here
#
# No npm binary is needed: the registry serves the package tarball over plain HTTPS.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${UPLOT_VERSION:-1.6.32}
SHA256=${UPLOT_SHA256:-4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d}
REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
DEST=sentinel/web/static

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tarball="$tmp/uplot-$VERSION.tgz"
curl -sSfL --retry 3 -o "$tarball" "$REGISTRY/uplot/-/uplot-$VERSION.tgz"
# a tarball that is not the one pinned is never unpacked, let alone copied into the package
actual=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
    echo "vendor-uplot: uplot-$VERSION.tgz has sha256 $actual, expected $SHA256; nothing copied" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$tmp"

got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$tmp/package/package.json")
if [ "$got" != "$VERSION" ]; then
    echo "vendor-uplot: tarball says version $got, expected $VERSION" >&2
    exit 1
fi

mkdir -p "$DEST"
install -m 0644 "$tmp/package/dist/uPlot.iife.min.js" "$DEST/uPlot.iife.min.js"
install -m 0644 "$tmp/package/dist/uPlot.min.css" "$DEST/uPlot.min.css"
install -m 0644 "$tmp/package/LICENSE" "$DEST/LICENSE-uPlot"
echo "uPlot $VERSION vendored into $DEST (sha256 $SHA256)"
