#!/bin/sh
# Base images for deploy/Dockerfile on a machine that cannot pull from Docker Hub:
# a minimal Debian bookworm with python3 (+ venv), and the same with the host's Node.js on top.
#
#   sudo deploy/build-base-images.sh
#   docker build -f deploy/Dockerfile \
#     --build-arg PYTHON_IMAGE=cocanvas-base:bookworm \
#     --build-arg NODE_IMAGE=cocanvas-node-base:bookworm -t cocanvas:local .
#
# Needs root, debootstrap, a Debian mirror (MIRROR) and, for the node image, a Node.js >= 20.19
# installed on the host as a Debian package (NODE_PACKAGE, default nodejs; bookworm's own
# nodejs 18 is too old for the client's Vite). EXTRA_CA=/path/ca.crt adds a CA that the build
# steps (pip, npm) must trust, e.g. a TLS-intercepting egress proxy's; it is appended to the
# image's bundle and named in PIP_CERT / NODE_EXTRA_CA_CERTS.
set -eu

MIRROR=${MIRROR:-http://deb.debian.org/debian}
NODE_PACKAGE=${NODE_PACKAGE:-nodejs}
WORK=${WORK:-$(mktemp -d)}
ROOT=$WORK/rootfs

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    # libcairo2 and fonts-dejavu-core: the PNG and PDF exports (cairosvg).
    debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates,libcairo2,fonts-dejavu-core \
        bookworm "$ROOT" "$MIRROR"
fi
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

set -- --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'
if [ -n "${EXTRA_CA:-}" ]; then
    bundle=/etc/ssl/certs/ca-certificates.crt
    if [ ! -f "$ROOT/usr/local/share/ca-certificates/extra-ca.crt" ]; then
        cp "$EXTRA_CA" "$ROOT/usr/local/share/ca-certificates/extra-ca.crt"
        cat "$EXTRA_CA" >> "$ROOT$bundle"
    fi
    set -- "$@" --change "ENV PIP_CERT=$bundle" --change "ENV NODE_EXTRA_CA_CERTS=$bundle" \
        --change "ENV SSL_CERT_FILE=$bundle"
fi
tar -C "$ROOT" -c . | docker import "$@" - cocanvas-base:bookworm

if dpkg -s "$NODE_PACKAGE" >/dev/null 2>&1; then
    # One layer on the python base: the host's package files (node, corepack) and its npm as
    # installed now (npm may have been upgraded in place, so its tree is copied whole).
    mkdir -p "$WORK/node-ctx"
    { dpkg -L "$NODE_PACKAGE"; find /usr/lib/node_modules/npm /usr/bin/npm /usr/bin/npx; } \
        | while read -r f; do [ -f "$f" ] || [ -L "$f" ] && echo "$f"; done | sort -u \
        | tar --no-recursion -c -T - -f "$WORK/node-ctx/node.tar" 2>/dev/null
    printf 'FROM cocanvas-base:bookworm\nADD node.tar /\nCMD ["node"]\n' > "$WORK/node-ctx/Dockerfile"
    docker build -q -t cocanvas-node-base:bookworm "$WORK/node-ctx"
else
    echo "no $NODE_PACKAGE package on the host: build the client stage from node:20-slim" >&2
fi
docker images 'cocanvas-*base'
