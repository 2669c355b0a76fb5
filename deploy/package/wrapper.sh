#!/bin/sh
# @NAME@: runs the vmgate @NAME@ CLI with the Node.js runtime shipped next to it
# in ../lib/vmgate (/usr/lib/vmgate from the Debian package, lib/vmgate in the
# release tarball), so the system's own node, whatever its version, is never used.
set -eu
self=$(readlink -f -- "$0")
lib=$(dirname -- "$self")/../lib/vmgate
exec "$lib/node" "$lib/@SCRIPT@" "$@"
