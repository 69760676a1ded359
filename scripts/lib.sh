# SPDX-License-Identifier: MIT
#
# Shared set-up for scripts/demo and scripts/test; source it, don't run it.
# It moves to the top of the source tree and provides:
#
#   cgrpc_install_deps      install the Debian packages that are missing
#   cgrpc_build DIR [ARGS]  configure DIR (RelWithDebInfo, -Werror, plus the
#                           extra cmake ARGS) and build it with every core
#   cgrpc_port_is_free N    true when TCP port N can be bound
#   cgrpc_free_port         print a port the system picks as free
#
# Environment: CGRPC_SKIP_DEPS=1 skips the package check (for systems that
# are not Debian, or that provide the tools another way).

CGRPC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$CGRPC_ROOT" || exit 1

# Build tools, libraries, test tools and the Python interop peer.
CGRPC_DEBIAN_PACKAGES=(
  cmake gcc g++ make pkg-config
  protobuf-compiler libprotoc-dev libprotobuf-dev
  protobuf-c-compiler libprotobuf-c-dev
  libnghttp2-dev libc-ares-dev libssl-dev zlib1g-dev libjansson-dev
  libcmocka-dev
  python3 python3-grpcio python3-protobuf protobuf-compiler-grpc libgrpc++-dev
  nghttp2-client valgrind python3-prometheus-client nginx-light haproxy
)

cgrpc_log() { printf '==> %s\n' "$*" >&2; }
cgrpc_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

cgrpc_install_deps() {
  local pkg status missing=() sudo=()
  if [[ ${CGRPC_SKIP_DEPS:-0} == 1 ]]; then
    return 0
  fi
  if ! command -v dpkg >/dev/null 2>&1; then
    cgrpc_log "not a Debian system; make sure these (or their equivalents)" \
      "are installed: ${CGRPC_DEBIAN_PACKAGES[*]}"
    return 0
  fi
  for pkg in "${CGRPC_DEBIAN_PACKAGES[@]}"; do
    status=$(dpkg -s "$pkg" 2>/dev/null) || status=""
    if ! grep -qx 'Status: install ok installed' <<<"$status"; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
      cgrpc_die "missing packages (${missing[*]}); run as root or install sudo"
    sudo=(sudo)
  fi
  cgrpc_log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

cgrpc_build() {
  local dir=$1
  shift
  cgrpc_log "configuring $dir"
  cmake -S "$CGRPC_ROOT" -B "$dir" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCGRPC_WERROR=ON "$@"
  cgrpc_log "building $dir"
  cmake --build "$dir" -j"$(nproc)"
}

cgrpc_port_is_free() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        continue  # no IPv6 here
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

cgrpc_free_port() {
  /usr/bin/python3 -c '
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])'
}
