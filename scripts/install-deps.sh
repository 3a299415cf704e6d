#!/usr/bin/env bash
# Installs every Debian package Ganglion needs to build, test and run.
# Idempotent: when everything is present it prints nothing and returns fast.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache mold pkg-config clang-format
  # libraries
  librocksdb-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libssl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # the fault-injection harness: clock skew on one member, network namespaces and rules
  faketime libfaketime iproute2 iptables
  nlohmann-json3-dev libboost-dev libcli11-dev
  # etcd: the reference peer, its client, and its canonical .proto files
  etcd-server etcd-client golang-etcd-server-dev
  golang-github-gogo-protobuf-dev golang-github-grpc-ecosystem-grpc-gateway-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# etcd-server's package starts a system etcd on 2379/2380; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd >/dev/null 2>&1 || true
  systemctl disable etcd >/dev/null 2>&1 || true
fi
