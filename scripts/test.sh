#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test. Non-zero exit on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
cd build
ctest --output-on-failure --timeout 900 -j 2 "$@"
