# xmpp_bridge — developer and CI entry points.
#
#   make test         everything CI runs (see the recipe; .ci/run calls it)
#   make build        build the NIF (cargo, via mix compile) and the Elixir/Erlang code
#   make fmt          format Rust and Elixir sources
#   make bench-codec  codec benchmark (bench/codec.exs), MIX_ENV=bench
#   make bench-conn   connection benchmark (bench/conn.exs): bridge vs tokio-xmpp, MIX_ENV=bench
#   make bench-bus    bus benchmark (bench/bus.exs): BEAM/Rust bus nodes vs the raw connection,
#                     Erlang distribution and NATS, group fan-out vs plain tokio-xmpp MUC
#                     clients, MIX_ENV=bench (BENCH_BUS_ONLY=groups: the group fan-out alone)
#   make bench-names  name host benchmark (bench/names.exs): memory per name, routing and calls
#                     to names vs to a client node, MIX_ENV=bench (BENCH_NAMES=10000 etc.)
#   make bench-cluster  cluster scale benchmark (bench/cluster_scale.exs): the job farm with
#                     100 BEAM + 100 Rust worker sessions over a 2-node ejabberd cluster:
#                     time to all online, jobs/s, memory per worker, CPU split, MIX_ENV=bench
#   make demo         codec demo, then the job farm: an Elixir coordinator, Elixir and Rust
#                     workers (OS processes) over a private ejabberd (demos/job_farm.exs)
#   make demo-cluster the job farm on a 2-node ejabberd cluster, with kill -9 of a server node
#   make demo-game    a game of Go (9x9) between an Elixir player and a Rust player (OS
#                     processes) over a private ejabberd, watched from a MUC room (demos/go_game.exs)
#   make demo-echo    a BEAM process and a Rust program echoing over a private ejabberd
#   make clean        remove build output (also `cargo clean` of CARGO_TARGET_DIR)
#
# Environment: CARGO_TARGET_DIR (default ./target), XMPP_BRIDGE_BUILD=debug for a
# debug NIF, XMPP_BRIDGE_FORCE_BUILD=1 to run cargo even when the NIF is fresh.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

# UTF-8 everywhere, or the VM runs with latin1 file name encoding and Elixir warns.
export LC_ALL := C.UTF-8
export LANG := C.UTF-8
export ELIXIR_ERL_OPTIONS := +fnu
# No Hex: the only Mix dependency is the path dependency support/xmpp_test_server
# (:dev/:test/:bench), which needs no `mix deps.get`; make sure nothing tries to reach Hex.
export HEX_OFFLINE := 1

# rustup installs into ~/.cargo/bin, which non-login shells often lack.
ifneq ($(wildcard $(HOME)/.cargo/bin/cargo),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

MIX ?= mix
CARGO ?= cargo

# The steps of `make test` run in the order given, also under `make -j`.
.NOTPARALLEL:

.PHONY: test deps rust-check elixir-check build fmt bench bench-codec bench-conn bench-bus bench-names bench-cluster demo demo-cluster demo-game demo-echo clean

# Every step must pass; the first failure fails make.
#  - `mix compile --force` recompiles all Elixir/Erlang sources so their warnings
#    are errors again; it does not force cargo (the native compiler ignores
#    --force, see mix.exs), the NIF is rebuilt only when native/ changed.
#  - compile and test both use MIX_ENV=test, so lib/ and test/support/ are
#    checked and compiled once.
#  - the test-server harness (support/xmpp_test_server, a path dependency) is
#    also compiled on its own with --warnings-as-errors: built as a dependency
#    of the root, its warnings are printed but fail nothing.
#  - the xmpp_bridge_nif crate has `test = false`: it references the enif_*
#    symbols that only a running BEAM provides, so a test binary of it cannot
#    link; it is tested through ExUnit instead. clippy --all-targets checks it.
#  - tags :integration (private XMPP server) and :consumer (throwaway app using
#    xmpp_bridge as a path dependency) are excluded by a plain `mix test`.
test: deps rust-check elixir-check

deps:
	scripts/install-deps.sh

rust-check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

elixir-check:
	$(MIX) format --check-formatted
	cd support/xmpp_test_server && $(MIX) compile --warnings-as-errors --force
	MIX_ENV=test $(MIX) compile --warnings-as-errors --force
	MIX_ENV=test $(MIX) test --warnings-as-errors --include integration --include consumer

build: deps
	$(MIX) compile

fmt:
	$(CARGO) fmt --all
	$(MIX) format

bench: bench-codec bench-conn bench-bus

bench-codec: deps
	MIX_ENV=bench $(MIX) run bench/codec.exs

# Connection benchmark: bench/baseline is a Cargo project of its own (not in the
# root workspace), built into bench/baseline/target whatever CARGO_TARGET_DIR says.
# Two runs, each comparing the bridge with the baseline side by side through its
# own ejabberd: the VM as it starts by default (bench/results/conn.md), then the
# VM with scheduler busy-waiting off (conn-no-busy-wait.md; throughput, RTT and
# the long_schedule control only), the setting README recommends for a machine
# whose cores the BEAM shares with the XMPP server. On 2 cores shared with
# ejabberd the spinning schedulers take CPU the server needs.
BASELINE_BIN = $(CURDIR)/bench/baseline/target/release/conn_baseline
NO_BUSY_WAIT = +fnu +sbwt none +sbwtdcpu none +sbwtdio none

bench-conn: deps
	$(CARGO) build --release --manifest-path bench/baseline/Cargo.toml --target-dir bench/baseline/target
	MIX_ENV=bench BENCH_BASELINE=$(BASELINE_BIN) $(MIX) run bench/conn.exs
	MIX_ENV=bench BENCH_BASELINE=$(BASELINE_BIN) BENCH_OUT=conn-no-busy-wait.md \
	  BENCH_SESSIONS=0 BENCH_TLS=0 ELIXIR_ERL_OPTIONS="$(NO_BUSY_WAIT)" $(MIX) run bench/conn.exs

# Bus benchmark: bench/bus_rust (the Rust bus nodes and the NATS pair) is a
# Cargo project of its own (not in the root workspace, like bench/baseline),
# built into $(CARGO_TARGET_DIR)/bench-bus when CARGO_TARGET_DIR is set, else
# into bench/bus_rust/target. nats-server comes from scripts/install-deps.sh;
# the script starts (and stops, by pid) its own ejabberd, nats-server, :peer
# node and, when none runs, epmd.
# The group fan-out part also needs bench/baseline's muc_baseline (plain
# tokio-xmpp MUC clients), built into $(CARGO_TARGET_DIR)/bench-baseline when
# CARGO_TARGET_DIR is set, else into bench/baseline/target.
# BENCH_BUS_ONLY=groups runs the group fan-out alone (bench/results/bus-groups.md).
BUS_RUST_TARGET = $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR)/bench-bus,$(CURDIR)/bench/bus_rust/target)
BUS_RUST_BIN = $(BUS_RUST_TARGET)/release/bus_bench
BUS_BASELINE_TARGET = $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR)/bench-baseline,$(CURDIR)/bench/baseline/target)
MUC_BASELINE_BIN = $(BUS_BASELINE_TARGET)/release/muc_baseline

bench-bus: deps
	$(CARGO) build --release --manifest-path bench/bus_rust/Cargo.toml --target-dir $(BUS_RUST_TARGET)
	$(CARGO) build --release --manifest-path bench/baseline/Cargo.toml --target-dir $(BUS_BASELINE_TARGET) --bin muc_baseline
	MIX_ENV=bench BENCH_BUS_RUST=$(BUS_RUST_BIN) BENCH_MUC_BASELINE=$(MUC_BASELINE_BIN) $(MIX) run bench/bus.exs

# Name host benchmark: BEAM processes with a JID each (docs/PROTOCOL.md §7), a
# name host (XmppBridge.Bus, mode: :component) against a client node, through
# one private ejabberd the script starts and stops. Pure Elixir, nothing to
# build beyond the NIF. Writes bench/results/names.md. Then the same figures for
# a Rust name host (bench/names_rust.exs driving `bus_bench names`, bench/bus_rust
# built as for bench-bus, its own private ejabberd): bench/results/names-rust.md.
bench-names: deps
	MIX_ENV=bench $(MIX) run bench/names.exs
	$(CARGO) build --release --manifest-path bench/bus_rust/Cargo.toml --target-dir $(BUS_RUST_TARGET)
	MIX_ENV=bench BENCH_BUS_RUST=$(BUS_RUST_BIN) $(MIX) run bench/names_rust.exs

# Cluster scale benchmark (docs/SCALING.md): XmppTestServer.Cluster (two
# ejabberd nodes on loopback), a coordinator and 100 BEAM workers in this VM,
# 100 Rust workers in one `bus_bench workers` process (bench/bus_rust, built as
# for bench-bus); jobs by RPC, CPU of every party from /proc. Writes
# bench/results/cluster_scale.md. BENCH_CLUSTER_BEAM, _RUST, _JOBS, _CALLERS,
# _HEARTBEAT, _IDLE change the run (see the script's header).
bench-cluster: deps
	$(CARGO) build --release --manifest-path bench/bus_rust/Cargo.toml --target-dir $(BUS_RUST_TARGET)
	MIX_ENV=bench BENCH_BUS_RUST=$(BUS_RUST_BIN) $(MIX) run bench/cluster_scale.exs

# The job farm (demos/job_farm.exs, README "The job farm demo"): a coordinator
# and workers in Elixir and Rust as OS processes over a private ejabberd. The
# VM runs without scheduler busy-waiting: five programs and the server share
# the cores. `make demo-echo` is the older BEAM-to-Rust echo demo.
demo: deps
	$(MIX) run demos/codec_demo.exs
	ELIXIR_ERL_OPTIONS="$(NO_BUSY_WAIT)" $(MIX) run demos/job_farm.exs

# The job farm on a 2-node ejabberd cluster (XmppTestServer.Cluster): BEAM
# nodes on server node A, Rust nodes on B; server node A is killed with
# kill -9 half-way and restarted (README "The job farm on a cluster").
demo-cluster: deps
	ELIXIR_ERL_OPTIONS="$(NO_BUSY_WAIT)" $(MIX) run demos/job_farm.exs --cluster

# The game demo (demos/go_game.exs, README "The game demo"): Go on a 9x9
# board, black an Elixir player (the script), white a Rust player (the
# go_player example, an OS process), moves by RPC, states in presence, the
# board posted to the room go-game after every move; the Rust player is
# killed mid-game and rebuilds the game from the moves the server stored
# for it. Without scheduler busy-waiting, as for `make demo`.
# GO_GAME_SPECTATORS=1 waits for a plain client to join the room first.
demo-game: deps
	ELIXIR_ERL_OPTIONS="$(NO_BUSY_WAIT)" $(MIX) run demos/go_game.exs

demo-echo: deps
	$(MIX) run demos/beam_rust_demo.exs

clean:
	$(MIX) clean
	rm -rf _build support/xmpp_test_server/_build
	rm -f priv/native/*.so priv/native/*.dylib priv/native/*.dll priv/native/*.manifest
	$(CARGO) clean
