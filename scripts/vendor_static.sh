#!/bin/sh
# Refresh the vendored front-end files under static/vendor/ from the npm registry.
#
# The pages load nothing from a CDN (strict Content-Security-Policy, installations
# without internet access), so Bootstrap and Bootstrap Icons are committed to the
# tree. Run this script only to change a version: edit the pins below, run it,
# review the diff, commit.
#
# Only the files the pages use are copied. Source maps are left out and their
# sourceMappingURL comments stripped: WhiteNoise's manifest storage rewrites every
# reference it finds during collectstatic and fails on a missing map.
set -eu

BOOTSTRAP_VERSION=5.3.8
BOOTSTRAP_ICONS_VERSION=1.13.1

root=$(cd "$(dirname "$0")/.." && pwd)
vendor="$root/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$work"
# npm pack checks each tarball against the integrity hash the registry publishes.
npm pack --silent "bootstrap@$BOOTSTRAP_VERSION" "bootstrap-icons@$BOOTSTRAP_ICONS_VERSION" >/dev/null
mkdir bootstrap bootstrap-icons
tar -xzf "bootstrap-$BOOTSTRAP_VERSION.tgz" -C bootstrap --strip-components=1
tar -xzf "bootstrap-icons-$BOOTSTRAP_ICONS_VERSION.tgz" -C bootstrap-icons --strip-components=1

# Copy $1 to $2 without its source-map comment line.
copy_without_map() {
    mkdir -p "$(dirname "$2")"
    grep -v 'sourceMappingURL=' "$1" >"$2"
}

rm -rf "$vendor/bootstrap" "$vendor/bootstrap-icons"

copy_without_map bootstrap/dist/css/bootstrap.min.css "$vendor/bootstrap/css/bootstrap.min.css"
copy_without_map bootstrap/dist/js/bootstrap.bundle.min.js "$vendor/bootstrap/js/bootstrap.bundle.min.js"
cp bootstrap/LICENSE "$vendor/bootstrap/LICENSE"

copy_without_map bootstrap-icons/font/bootstrap-icons.min.css "$vendor/bootstrap-icons/font/bootstrap-icons.min.css"
mkdir -p "$vendor/bootstrap-icons/font/fonts"
cp bootstrap-icons/font/fonts/bootstrap-icons.woff2 bootstrap-icons/font/fonts/bootstrap-icons.woff \
    "$vendor/bootstrap-icons/font/fonts/"
cp bootstrap-icons/LICENSE "$vendor/bootstrap-icons/LICENSE"

cat >"$vendor/VERSIONS.txt" <<EOF
# Written by scripts/vendor_static.sh from the npm registry; do not edit by hand.
bootstrap $BOOTSTRAP_VERSION (MIT, bootstrap/LICENSE)
bootstrap-icons $BOOTSTRAP_ICONS_VERSION (MIT, bootstrap-icons/LICENSE)
EOF

echo "Vendored bootstrap $BOOTSTRAP_VERSION and bootstrap-icons $BOOTSTRAP_ICONS_VERSION into $vendor"
