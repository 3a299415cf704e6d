#!/usr/bin/env bash
# Configures and builds Ganglion with Ninja.
#   scripts/build.sh          -> build/       (RelWithDebInfo)
#   scripts/build.sh asan     -> build-asan/  (AddressSanitizer + UBSan)
#   scripts/build.sh tsan     -> build-tsan/  (ThreadSanitizer)
# Binaries land in <build dir>/bin/. Extra arguments go to ninja (targets).
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${1:-release}
case "$variant" in
  release) dir=build; sanitizer="" ;;
  asan) dir=build-asan; sanitizer=address ;;
  tsan) dir=build-tsan; sanitizer=thread ;;
  *) echo "usage: scripts/build.sh [release|asan|tsan] [ninja targets...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGANGLION_SANITIZER="$sanitizer" >/dev/null
fi
cmake --build "$dir" -- "$@"
