#!/usr/bin/env bash
# Installs what `make test` needs, idempotently: a no-op (a few dpkg queries)
# when everything is already there.
#
#   * Debian packages: Erlang/OTP (with the NIF headers), Elixir, EUnit, PropEr,
#     the tools app, and ProcessOne's fast_xml/xmpp (used by benchmarks and
#     cross-checks). `apt-get update` runs once, only if something is missing;
#     sudo is used only when not root.
#   * The private XMPP servers of the test harness (XmppTestServer, in
#     support/xmpp_test_server): ejabberd and Prosody, and openssl for the
#     per-run CA. They are installed
#     WITHOUT starting their system services: a temporary
#     /usr/sbin/policy-rc.d that exits 101 is in place during `apt-get install`
#     (an existing one, e.g. Docker's, is left as it is). The packages still
#     enable their systemd units for the next boot (no effect in containers).
#     The harness runs its own instances with generated configs on free
#     loopback ports, so a system instance left running by an earlier install
#     does not get in its way (and is left alone).
#   * nats-server, the NATS reference of the bus benchmark (bench/bus.exs,
#     `make bench-bus`), also installed without starting its service; the
#     benchmark runs its own on a free loopback port.
#   * slixmpp, an ordinary third-party XMPP client for the interop tests
#     (test/support/slixmpp_peer.py, test/xmpp_bridge/slixmpp_test.exs): a
#     Python venv at $XMPP_BRIDGE_VENV (default /var/tmp/xmpp_bridge-venv,
#     outside the repository) made with Debian's python3 (python3-venv) and
#     slixmpp $SLIXMPP_VERSION from PyPI. Recreated only when it is missing
#     or has another slixmpp version.
#   * Rust: cargo must be on PATH (rustup's ~/.cargo/bin is added if present);
#     the rustfmt and clippy components are added with rustup when missing.
#
# Add packages by appending to APT_PACKAGES below, or for a one-off run with
# XMPP_BRIDGE_EXTRA_APT="pkg1 pkg2".
set -euo pipefail

APT_PACKAGES=(
  erlang-base
  erlang-dev
  elixir
  erlang-eunit
  erlang-tools
  erlang-proper
  erlang-p1-xml
  erlang-p1-xmpp
  # test harness servers (XmppTestServer); lua-sec/lua-socket etc. come
  # as prosody's dependencies. lua-unbound is only a Recommends of prosody
  # (skipped by --no-install-recommends) but without it every prosody and
  # prosodyctl run prints a lua-unbound warning banner.
  openssl
  ejabberd
  prosody
  lua-unbound
  # the bus benchmark's NATS reference (bench/bus.exs starts its own server)
  nats-server
  # slixmpp's venv (the interop tests' third-party client)
  python3
  python3-venv
)
# shellcheck disable=SC2206
APT_PACKAGES+=(${XMPP_BRIDGE_EXTRA_APT:-})

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' (not root, and sudo is not installed)"
  fi
}

deb_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

install_debian_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    deb_installed "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  log "installing missing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # Keep the packages' maintainer scripts from starting system services
  # (ejabberd, prosody, nats-server): invoke-rc.d asks /usr/sbin/policy-rc.d,
  # and exit status 101 means "action forbidden". Only a policy-rc.d we
  # created is removed again.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\\n# temporary, from xmpp_bridge scripts/install-deps.sh\\nexit 101\\n' > $policy && chmod 755 $policy"
    created_policy=1
    # shellcheck disable=SC2064
    trap "as_root rm -f $policy" EXIT
  fi
  local status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  if [ "$created_policy" -eq 1 ]; then
    as_root rm -f "$policy"
    trap - EXIT
  fi
  [ "$status" -eq 0 ] || die "apt-get install failed (status $status)"
  report_system_xmpp_services
}

# The harness never uses the system services; if one runs anyway (e.g. from an
# install made before this script), say so and leave it alone: the harness
# picks free ports and its own node names, so they do not collide.
report_system_xmpp_services() {
  local found
  # the packages' own instances: node ejabberd@<host>, prosody with the
  # default config (the harness's instances use xb_* nodes and --config <tmp>)
  found="$(ps -eo pid=,user=,args= | grep -E 'beam.* -s?name ejabberd@|/usr/bin/prosody *(-[FD])? *$|/usr/bin/prosody .*/etc/prosody/' | grep -v grep || true)"
  if [ -n "$found" ]; then
    log "note: a system ejabberd/prosody is running (left alone; the test harness uses its own ports):"
    printf '%s\n' "$found" >&2
  fi
}

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  install_debian_packages
else
  log "not a Debian-like system: install Erlang/OTP >= 25 (with erl_nif.h), Elixir >= 1.14,"
  log "and for benchmarks fast_xml and xmpp (ProcessOne) yourself"
fi

for cmd in erl elixir mix; do
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found after installing packages"
done

erts_include="$(erl -noshell -eval 'io:format("~s", [filename:join([code:root_dir(), "usr", "include"])]), halt().')"
[ -f "$erts_include/erl_nif.h" ] || die "erl_nif.h not found in $erts_include (install erlang-dev)"

# --- slixmpp (interop tests) ----------------------------------------------
XMPP_BRIDGE_VENV="${XMPP_BRIDGE_VENV:-/var/tmp/xmpp_bridge-venv}"
SLIXMPP_VERSION=1.17.0

install_slixmpp() {
  local py=/usr/bin/python3
  # Debian's python3 (with python3-venv); another python3 on PATH (a pyenv
  # shim, say) only where Debian's is missing.
  if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    py="$(command -v python3 || true)"
    [ -n "$py" ] && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
      die "no python3 with venv support (install python3-venv)"
  fi
  if [ -x "$XMPP_BRIDGE_VENV/bin/python" ] &&
    [ "$("$XMPP_BRIDGE_VENV/bin/python" -c 'import slixmpp; print(slixmpp.__version__)' 2>/dev/null || true)" = "$SLIXMPP_VERSION" ]; then
    return 0
  fi
  log "making the slixmpp venv at $XMPP_BRIDGE_VENV (slixmpp $SLIXMPP_VERSION)"
  rm -rf "$XMPP_BRIDGE_VENV"
  "$py" -m venv "$XMPP_BRIDGE_VENV"
  "$XMPP_BRIDGE_VENV/bin/pip" install -q --disable-pip-version-check "slixmpp==$SLIXMPP_VERSION" ||
    die "pip install slixmpp==$SLIXMPP_VERSION failed"
}
install_slixmpp

# --- Rust ---------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  die "cargo not found: install Rust with rustup (https://rustup.rs) and run 'source \$HOME/.cargo/env',
  or set PATH to include the directory holding cargo"
fi

missing_components=()
cargo fmt --version >/dev/null 2>&1 || missing_components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_components+=(clippy)
if [ "${#missing_components[@]}" -gt 0 ]; then
  if command -v rustup >/dev/null 2>&1; then
    log "adding Rust components: ${missing_components[*]}"
    rustup component add "${missing_components[@]}"
  else
    die "cargo ${missing_components[*]} not available and rustup not found to add them"
  fi
fi

log "ok: $(erl -noshell -eval 'io:format("OTP ~s", [erlang:system_info(otp_release)]), halt().'), $(elixir --short-version 2>/dev/null || echo elixir), $(cargo --version)"
