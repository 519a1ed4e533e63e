# Bus benchmark: XmppBridge.Bus (BEAM) and xmpp_bridge::bus (Rust) nodes
# through one private ejabberd, against the connection layer underneath and
# against Erlang distribution and NATS on the same machine, in one run.
#
#   make bench-bus              # builds bench/bus_rust, then this script
#   MIX_ENV=bench BENCH_BUS_RUST=path/to/bus_bench mix run bench/bus.exs
#
# The Rust side is bench/bus_rust (a Cargo project of its own): `bus_bench
# node` is a bus node driven by lines on stdin (flood, sink, RPC client; it
# serves `add`), `bus_bench nats` the NATS pair. Both run as OS processes
# (Ports) of this VM; a node exits at the end of its stdin, so none outlives
# the VM, and whatever is still alive at the end is killed by its OS pid.
#
# What it measures (plaintext c2s listener on loopback; BEAM nodes alice,
# bob; Rust nodes ralice, rbob; every node with its defaults):
#
#   1. One-way throughput of terms {:n, i, "payload"}, BENCH_N a round:
#      BEAM->BEAM (alice->bob), BEAM->Rust (alice->rbob), Rust->BEAM
#      (ralice->bob), Rust->Rust (ralice->rbob), `delivery: :server`. The
#      sender sends as fast as the queue takes them (on :queue_full: wait
#      1 ms, again); the receiver counts every term, checks order and
#      duplicates. terms/s = N / (first send -> the receiver has all N).
#      Beside it, "raw": XmppBridge.Connection BEAM->BEAM, plain chat
#      messages, as bench/conn.exs measures it (on :queue_full wait for an
#      {:acked, _} or 1 ms; the receiver grants credit 500 at a time).
#      One unrecorded warm-up round each, then BENCH_ROUNDS rounds, rows
#      interleaved; medians. Target: every bus pair >= 90% of raw.
#      A second raw row sends, through the same sessions, the XML a bus
#      term message has (what the server costs for it, without the bus).
#      CPU time of ejabberd, this VM and the Rust nodes is taken per round.
#   2. RPC `add(1, 2)`: BENCH_RTT calls one at a time after BENCH_WARMUP
#      unrecorded (p50/p90/p99), then BENCH_FEW_CALLS calls with 8 and
#      BENCH_CALLS with 64 in flight (calls/s), for the same four pairs;
#      then BEAM->BEAM and Rust->Rust again between nodes whose sessions
#      have batch_delay 0. Target p50 <= 1 ms.
#   3. `delivery: :confirmed` throughput: BENCH_CONFIRMED_N terms, rate
#      until every receipt is back at the sender (and all counted at the
#      receiver), the four pairs.
#   4. DOWN detection: a BEAM node (heartbeat 1000 ms, heartbeat_timeout
#      1000 ms) monitors a Rust node; the Rust node is killed (kill -9) or
#      stopped (SIGSTOP), BENCH_DOWN_TRIALS times each, each a new process
#      and account; time from the signal to {:DOWN, ...}.
#   5. References: Erlang distribution between this VM (made distributed
#      at runtime, 127.0.0.1 only, with epmd started here when none runs)
#      and a :peer node - `:erpc.call(peer, :erlang, :+, [1, 2])` round
#      trips and calls/s with 64 in flight, `send` throughput counted at the
#      receiver on the peer (BENCH_REF_N a round); NATS: Debian's
#      nats-server on a free loopback port, `bus_bench nats` (async-nats,
#      four connections in one process): pub/sub throughput counted at the
#      subscriber (BENCH_REF_N a round, zero loss), request/reply RTT and
#      calls/s with 64 in flight.
#
# Environment knobs (all optional):
#   BENCH_N=20000            terms per throughput round
#   BENCH_WARMUP_N=2000      terms of the unrecorded warm-up round
#   BENCH_ROUNDS=5           throughput rounds
#   BENCH_RTT=2000           RPC round trips one at a time
#   BENCH_WARMUP=200         unrecorded round trips before them
#   BENCH_CALLS=10000        calls with BENCH_CONCURRENCY in flight
#   BENCH_CONCURRENCY=64
#   BENCH_FEW_CALLS=2000     calls with BENCH_FEW_CONCURRENCY in flight
#   BENCH_FEW_CONCURRENCY=8
#   BENCH_CONFIRMED_N=10000  terms of the :confirmed round
#   BENCH_DOWN_TRIALS=3      kill -9 and SIGSTOP trials each (0 skips)
#   BENCH_REF_N=200000       messages per Erlang distribution / NATS round
#   BENCH_NATS=1             0 skips NATS
#   BENCH_DIST=1             0 skips Erlang distribution
#   BENCH_BUS_RUST=path      the bus_bench binary (default: built here with
#                            cargo into bench/bus_rust/target)
#   BENCH_OUT=bus.md         the report's file name under bench/results/
#
# Writes bench/results/bus.md. A benchmark report, not a test: exits 0 even
# when a target is missed (FAIL lines say which), non-zero only when the run
# itself broke (terms lost, a step failed).

# Runs on the peer node of the Erlang distribution reference, whose code
# path has no Elixir: only BIFs and receive. Its object code goes there by
# :code.load_binary/3.
{:module, _, dist_sink_beam, _} =
  defmodule XmppBridge.Bench.Bus.DistSink do
    @moduledoc false

    def start(parent, n), do: :erlang.spawn(__MODULE__, :loop, [parent, n, 0, 0, true])

    def loop(parent, n, n, _next, in_order),
      do: send(parent, {:dist_sink_done, self(), n, in_order})

    def loop(parent, n, got, next, in_order) do
      receive do
        {:n, i, "payload"} -> loop(parent, n, got + 1, i + 1, in_order and i == next)
      after
        30_000 -> send(parent, {:dist_sink_done, self(), got, in_order})
      end
    end
  end

defmodule XmppBridge.Bench.Bus do
  @moduledoc false

  alias XmppBridge.{Bus, Connection, Message}
  alias XmppTestServer, as: TestServer

  @throughput_ratio_target 0.90
  @rtt_p50_target_us 1000
  @heartbeat 1000
  @heartbeat_timeout 1000
  @rust_dir Path.expand("bus_rust", __DIR__)
  @pairs [:beam_beam, :beam_rust, :rust_beam, :rust_rust]
  @pair_names %{
    beam_beam: "BEAM -> BEAM",
    beam_rust: "BEAM -> Rust",
    rust_beam: "Rust -> BEAM",
    rust_rust: "Rust -> Rust"
  }

  def main(dist_sink_beam) do
    cfg = %{
      n: env_int("BENCH_N", 20_000),
      warmup_n: env_int("BENCH_WARMUP_N", 2_000),
      rounds: max(env_int("BENCH_ROUNDS", 5), 1),
      rtt: env_int("BENCH_RTT", 2_000),
      warmup: env_int("BENCH_WARMUP", 200),
      calls: env_int("BENCH_CALLS", 10_000),
      concurrency: max(env_int("BENCH_CONCURRENCY", 64), 1),
      few_calls: env_int("BENCH_FEW_CALLS", 2_000),
      few_concurrency: max(env_int("BENCH_FEW_CONCURRENCY", 8), 1),
      confirmed_n: env_int("BENCH_CONFIRMED_N", 10_000),
      down_trials: env_int("BENCH_DOWN_TRIALS", 3),
      ref_n: env_int("BENCH_REF_N", 200_000),
      nats: env_int("BENCH_NATS", 1) == 1,
      dist: env_int("BENCH_DIST", 1) == 1,
      dist_sink_beam: dist_sink_beam,
      only: System.get_env("BENCH_BUS_ONLY", ""),
      groups: env_int("BENCH_GROUPS", 1) == 1,
      group_sizes: env_ints("BENCH_GROUP_SIZES", [10, 50]),
      group_n: env_int("BENCH_GROUP_N", 2_000),
      group_warmup_n: env_int("BENCH_GROUP_WARMUP_N", 200),
      group_rounds: max(env_int("BENCH_GROUP_ROUNDS", 3), 1),
      group_senders: group_senders()
    }

    cfg =
      case cfg.only do
        o when o in ["", "all"] -> cfg
        "groups" -> %{cfg | groups: true}
        other -> raise "BENCH_BUS_ONLY=#{other}: expected groups (or all)"
      end

    only_groups = cfg.only == "groups"

    started = System.monotonic_time(:millisecond)
    bin = rust_binary!()
    Process.put(:os_pids, [])
    log("starting ejabberd")

    victims = for i <- 1..max(cfg.down_trials * 2, 1), do: "victim#{i}"

    core_accounts =
      if only_groups,
        do: [],
        else:
          ["alice", "bob", "ralice", "rbob", "alice0", "bob0", "ralice0", "rbob0", "raw1", "raw2"] ++
            ["watcher" | victims]

    accounts = Enum.map(core_accounts ++ group_accounts(cfg), &{&1, &1 <> "-secret"})
    muc_bin = if cfg.groups, do: muc_binary!()

    srv = TestServer.start!(:ejabberd, accounts: accounts, log_level: "warning")
    log("ejabberd up (c2s plain port #{srv.ports.c2s_plain})")

    status =
      try do
        if only_groups,
          do: run_groups_only(cfg, srv, bin, muc_bin, started),
          else: run(cfg, srv, bin, muc_bin, started)
      after
        kill_leftovers()
        TestServer.stop(srv)
      end

    left = Enum.filter(Process.get(:os_pids, []), &TestServer.os_pid_alive?/1)
    if left != [], do: log("WARNING: OS processes still alive: #{inspect(left)}")

    if status == :broken do
      IO.puts(:stderr, "the run itself broke (terms lost or a step failed): see above")
      System.halt(1)
    end
  end

  defp run(cfg, srv, bin, muc_bin, started) do
    load_before = loadavg()

    # the nodes
    alice = start_bus(srv, "alice", self())
    bob_sink = start_beam_sink()
    bob = start_bus(srv, "bob", bob_sink)
    :ok = Bus.serve(bob, "add", fn a, b -> a + b end)
    ralice = start_rust(bin, srv, "ralice")
    rbob = start_rust(bin, srv, "rbob")
    raw = raw_pair(srv)

    nodes = %{
      alice: alice,
      bob: bob,
      bob_jid: Bus.jid(bob),
      bob_sink: bob_sink,
      ralice: ralice,
      rbob: rbob,
      cpu_pids: %{server: srv.os_pid, rust: [ralice.os_pid, rbob.os_pid]}
    }

    log(
      "online: #{Bus.jid(alice)}, #{nodes.bob_jid}, #{ralice.jid}, #{rbob.jid}, raw #{raw.a.jid} -> #{raw.b.jid}"
    )

    # 1. throughput
    if cfg.warmup_n > 0 do
      for shape <- [:chat, :bus] do
        w = raw_throughput(raw, cfg.warmup_n, shape)
        if lossy?(w), do: raise("raw (#{shape}) warm-up lost messages: #{detail(w)}")
      end

      for pair <- @pairs do
        w = bus_throughput(nodes, pair, cfg.warmup_n, :server)
        if lossy?(w), do: raise("#{@pair_names[pair]} warm-up lost terms: #{detail(w)}")
      end
    end

    rounds =
      for r <- 1..cfg.rounds do
        raw_r = with_cpu(nodes, fn -> raw_throughput(raw, cfg.n) end)
        log("round #{r}: raw #{rate(raw_r.rate)} msg/s (#{detail(raw_r)})")
        raw_bus = with_cpu(nodes, fn -> raw_throughput(raw, cfg.n, :bus) end)
        log("round #{r}: raw, bus-shaped #{rate(raw_bus.rate)} msg/s (#{detail(raw_bus)})")

        Map.new(
          [{:raw, raw_r}, {:raw_bus, raw_bus}] ++
            for pair <- @pairs do
              t = with_cpu(nodes, fn -> bus_throughput(nodes, pair, cfg.n, :server) end)
              log("round #{r}: #{@pair_names[pair]} #{rate(t.rate)} terms/s (#{detail(t)})")
              {pair, t}
            end
        )
      end

    close_raw(raw)

    # 2. RPC, then again with batch_delay 0 on both sides (BEAM and Rust pairs)
    rpc = for pair <- @pairs, into: %{}, do: {pair, rpc_set(nodes, pair, cfg, "")}

    alice0 = start_bus(srv, "alice0", self(), batch_delay: 0)
    bob0 = start_bus(srv, "bob0", self(), batch_delay: 0)
    :ok = Bus.serve(bob0, "add", fn a, b -> a + b end)
    ralice0 = start_rust(bin, srv, "ralice0", ["--batch-delay-ms", "0"])
    rbob0 = start_rust(bin, srv, "rbob0", ["--batch-delay-ms", "0"])

    nodes0 = %{
      alice: alice0,
      bob_jid: Bus.jid(bob0),
      ralice: ralice0,
      rbob: rbob0,
      cpu_pids: %{server: srv.os_pid, rust: [ralice0.os_pid, rbob0.os_pid]}
    }

    rpc0 =
      for pair <- [:beam_beam, :rust_rust],
          into: %{},
          do: {pair, rpc_set(nodes0, pair, cfg, ", batch_delay 0")}

    for b <- [alice0, bob0], do: Bus.stop(b)
    stop_rust(ralice0)
    stop_rust(rbob0)

    # 3. confirmed
    confirmed =
      if cfg.confirmed_n > 0 do
        for pair <- @pairs, into: %{} do
          t = with_cpu(nodes, fn -> bus_throughput(nodes, pair, cfg.confirmed_n, :confirmed) end)
          log("confirmed #{@pair_names[pair]}: #{rate(t.rate)} terms/s (#{detail(t)})")
          {pair, t}
        end
      end

    # 4. DOWN detection
    down =
      if cfg.down_trials > 0 do
        watcher =
          start_bus(srv, "watcher", self(),
            heartbeat: @heartbeat,
            heartbeat_timeout: @heartbeat_timeout
          )

        trials =
          for {signal, k} <- [{"KILL", 0}, {"STOP", 1}], i <- 1..cfg.down_trials do
            victim = "victim#{k * cfg.down_trials + i}"
            t = down_trial(bin, srv, watcher, victim, signal)
            log("DOWN after kill -#{signal} (#{victim}): #{t.ms} ms, #{inspect(t.reason)}")
            Map.put(t, :signal, signal)
          end

        Bus.stop(watcher)
        trials
      end

    for b <- [alice, bob], do: Bus.stop(b)
    stop_rust(ralice)
    stop_rust(rbob)

    # 5. references
    dist = if cfg.dist, do: dist_reference(cfg)
    nats = if cfg.nats, do: nats_reference(cfg, bin)

    # 6. group fan-out
    groups = if cfg.groups, do: groups_bench(cfg, srv, bin, muc_bin)

    results = %{
      groups: groups,
      cfg: cfg,
      srv: srv,
      rounds: rounds,
      rpc: rpc,
      rpc0: rpc0,
      confirmed: confirmed,
      down: down,
      dist: dist,
      nats: nats,
      load: {load_before, loadavg()},
      secs: (System.monotonic_time(:millisecond) - started) / 1000
    }

    write_report(render(results), "bus.md")

    broken =
      Enum.any?(rounds, fn r -> Enum.any?(Map.values(r), &lossy?/1) end) or
        (confirmed != nil and Enum.any?(Map.values(confirmed), &lossy?/1)) or
        groups_lossy?(groups)

    if broken, do: :broken, else: :ok
  end

  # BENCH_BUS_ONLY=groups: the group fan-out alone
  defp run_groups_only(cfg, srv, bin, muc_bin, started) do
    load_before = loadavg()
    groups = groups_bench(cfg, srv, bin, muc_bin)
    secs = (System.monotonic_time(:millisecond) - started) / 1000

    report = """
    # Bus benchmark: group fan-out (BENCH_BUS_ONLY=groups)

    #{Date.utc_today()}, #{cpu_model()}, #{:erlang.system_info(:logical_processors_available)} logical CPUs shared by ejabberd, this VM, the Rust bus nodes and the plain clients; load average #{load_before} before, #{loadavg()} after. Run time #{round(secs)} s. ejabberd #{ejabberd_version()} (XmppTestServer, log level warning), plaintext c2s on loopback; Erlang/OTP #{:erlang.system_info(:otp_release)}, Elixir #{System.version()}, VM flags: #{vm_flags()}.
    #{groups_section(groups, cfg)}
    """

    write_report(report, "bus-groups.md")
    if groups_lossy?(groups), do: :broken, else: :ok
  end

  defp groups_lossy?(nil), do: false

  defp groups_lossy?(sizes),
    do:
      Enum.any?(sizes, fn s ->
        Enum.any?(s.rounds, &Enum.any?(Map.values(&1), fn t -> group_lossy?(t) end))
      end)

  defp write_report(report, default_name) do
    IO.puts("\n" <> report)
    path = Path.join([__DIR__, "results", System.get_env("BENCH_OUT", default_name)])
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, report)
    IO.puts("(written to #{Path.relative_to_cwd(path)})")
  end

  defp group_senders do
    System.get_env("BENCH_GROUP_SENDERS", "beam,rust")
    |> String.split(",", trim: true)
    |> Enum.map(fn
      "beam" -> :beam
      "rust" -> :rust
      other -> raise "BENCH_GROUP_SENDERS: unknown sender #{other} (beam, rust)"
    end)
  end

  # ---------------------------------------------------------------------------
  # BEAM bus nodes

  defp start_bus(srv, user, receiver, extra \\ []) do
    opts =
      [
        jid: TestServer.jid(srv, user),
        password: srv.accounts[user],
        host: srv.host,
        port: srv.ports.c2s_plain,
        tls: :plain,
        receiver: receiver
      ] ++ extra

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus, 30_000)
    bus
  end

  # bob's receiver: counts the terms of one round at a time, when armed
  defp start_beam_sink do
    spawn_link(fn ->
      Process.put(:bench_role, "bob's receiver")
      sink_idle()
    end)
  end

  defp sink_idle do
    receive do
      {:arm, n, from} ->
        send(from, {:armed, self()})
        seen = :atomics.new(max(n, 1), [])
        sink_count(from, n, seen, %{got: 0, next: 0, in_order: true, dups: 0, others: 0})

      {:xmpp_bridge_bus, :message, _, _} ->
        sink_idle()
    end
  end

  defp sink_count(from, n, _seen, %{got: n} = s) do
    send(from, {:sink_done, self(), Map.put(s, :done, now_us())})
    sink_idle()
  end

  defp sink_count(from, n, seen, s) do
    receive do
      {:xmpp_bridge_bus, :message, _from, {:n, i, "payload"}} when i >= 0 and i < n ->
        if :atomics.exchange(seen, i + 1, 1) == 1 do
          sink_count(from, n, seen, %{s | dups: s.dups + 1})
        else
          s = %{s | got: s.got + 1, next: i + 1, in_order: s.in_order and i == s.next}
          sink_count(from, n, seen, s)
        end

      {:xmpp_bridge_bus, :message, _from, _other} ->
        sink_count(from, n, seen, %{s | others: s.others + 1})
    after
      30_000 ->
        send(from, {:sink_done, self(), Map.put(s, :done, now_us())})
        sink_idle()
    end
  end

  # a process that floods `to` from the BEAM node `bus`
  defp beam_flood(bus, to, n, delivery) do
    parent = self()

    spawn_link(fn ->
      Process.put(:bench_role, "BEAM flood")
      t0 = now_us()

      {fulls, errors} =
        Enum.reduce(0..(n - 1)//1, {0, 0}, fn i, acc ->
          bus_send(bus, to, {:n, i, "payload"}, delivery, acc)
        end)

      sent_us = now_us() - t0
      outcomes = if delivery == :confirmed, do: await_outcomes(n - errors, 0, 0, nil), else: nil
      done = now_us()

      send(
        parent,
        {:flood_done, self(),
         %{
           sent: n - errors,
           queue_full: fulls,
           errors: errors,
           send_us: sent_us,
           outcomes: outcomes,
           done: done
         }}
      )
    end)
  end

  defp bus_send(bus, to, term, delivery, {fulls, errors}) do
    case Bus.send(bus, to, term, delivery: delivery) do
      {:ok, _ref} ->
        {fulls, errors}

      {:error, %XmppBridge.Error{reason: :queue_full}} ->
        Process.sleep(1)
        bus_send(bus, to, term, delivery, {fulls + 1, errors})

      {:error, error} ->
        if errors == 0, do: log("send failed: #{inspect(error)}")
        {fulls, errors + 1}
    end
  end

  defp await_outcomes(n, delivered, failed, first) when delivered + failed >= n,
    do: %{delivered: delivered, failed: failed, first_failure: first}

  defp await_outcomes(n, delivered, failed, first) do
    receive do
      {:xmpp_bridge_bus, :delivered, _ref, _jid} ->
        await_outcomes(n, delivered + 1, failed, first)

      {:xmpp_bridge_bus, :failed, _ref, reason} ->
        await_outcomes(n, delivered, failed + 1, first || reason)
    after
      60_000 -> %{delivered: delivered, failed: failed, first_failure: first || :timeout}
    end
  end

  # One round of `pair`: arm the receiver, start the clock, start the sender,
  # stop the clock when the receiver has all n.
  defp bus_throughput(nodes, pair, n, delivery) do
    :erlang.garbage_collect()
    {sender, receiver} = ends(pair)

    # arm
    case receiver do
      :bob ->
        send(nodes.bob_sink, {:arm, n, self()})
        sink = nodes.bob_sink
        receive(do: ({:armed, ^sink} -> :ok))

      :rbob ->
        rust_command(nodes.rbob, "sink #{n}")
        await_line(nodes.rbob, "ARMED", 10_000)
    end

    to = if receiver == :bob, do: nodes.bob_jid, else: nodes.rbob.jid
    t0 = now_us()

    flood =
      case sender do
        :alice -> {:beam, beam_flood(nodes.alice, to, n, delivery)}
        :ralice -> {:rust, rust_command(nodes.ralice, "flood #{to} #{n} #{delivery}")}
      end

    # the receiver's count (its done time stops the clock), then the sender's report
    sink =
      case receiver do
        :bob ->
          sink = nodes.bob_sink

          receive do
            {:sink_done, ^sink, s} -> s
          after
            120_000 -> raise "bob's receiver did not report"
          end

        :rbob ->
          line = await_line(nodes.rbob, "SINK", 120_000)
          done = now_us()
          kv = kv(line)

          %{
            got: int(kv, "received"),
            in_order: kv["in_order"] == "true",
            dups: int(kv, "dups"),
            others: int(kv, "others"),
            done: done
          }
      end

    sent =
      case flood do
        {:beam, pid} ->
          receive do
            {:flood_done, ^pid, f} -> f
          after
            120_000 -> raise "the BEAM flood did not report"
          end

        {:rust, _} ->
          kv = kv(await_line(nodes.ralice, "FLOOD", 120_000))
          done = now_us()

          outcomes =
            if delivery == :confirmed,
              do: %{
                delivered: int(kv, "delivered"),
                failed: int(kv, "failed"),
                first_failure: kv["first_error"]
              }

          %{
            sent: int(kv, "sent"),
            queue_full: int(kv, "queue_full"),
            errors: int(kv, "errors"),
            send_us: int(kv, "send_us"),
            outcomes: outcomes,
            done: done
          }
      end

    t1 = if delivery == :confirmed, do: max(sink.done, sent.done), else: sink.done
    secs = (t1 - t0) / 1.0e6

    %{
      n: n,
      received: sink.got,
      in_order: sink.in_order,
      dups: sink.dups,
      others: sink.others,
      secs: secs,
      rate: n / secs,
      queue_full: sent.queue_full,
      send_errors: sent.errors,
      send_secs: sent.send_us / 1.0e6,
      outcomes: sent.outcomes
    }
  end

  defp ends(:beam_beam), do: {:alice, :bob}
  defp ends(:beam_rust), do: {:alice, :rbob}
  defp ends(:rust_beam), do: {:ralice, :bob}
  defp ends(:rust_rust), do: {:ralice, :rbob}

  # ---------------------------------------------------------------------------
  # CPU time (utime + stime from /proc) of this VM, ejabberd and the Rust nodes

  # Runs fun and adds to its result (a map with :secs) the CPU time each
  # party used meanwhile, in ms.
  defp with_cpu(nodes, fun) do
    before = cpu_snapshot(nodes.cpu_pids)
    result = fun.()
    later = cpu_snapshot(nodes.cpu_pids)
    Map.put(result, :cpu, Map.new(later, fn {k, v} -> {k, ticks_ms(v - before[k])} end))
  end

  defp cpu_snapshot(%{server: server, rust: rust}) do
    %{
      vm: cpu_ticks(:self),
      server: cpu_ticks(server),
      rust: rust |> Enum.map(&cpu_ticks/1) |> Enum.sum()
    }
  end

  # % of one core a party used over the run's wall clock
  defp cpu_pct(%{cpu: cpu, secs: secs}, who) when secs > 0, do: pct(cpu[who] / 1000 / secs)
  defp cpu_pct(_, _), do: "-"

  defp cpu_ticks(pid) do
    path = if pid == :self, do: "/proc/self/stat", else: "/proc/#{pid}/stat"

    # the fields after the command name, which is in parentheses
    with {:ok, stat} <- File.read(path),
         [_, rest] <- Regex.run(~r/^.*\)\s(.*)$/s, stat),
         fields = String.split(rest),
         {utime, ""} <- Integer.parse(Enum.at(fields, 11, "")),
         {stime, ""} <- Integer.parse(Enum.at(fields, 12, "")) do
      utime + stime
    else
      _ -> 0
    end
  end

  defp ticks_ms(ticks), do: ticks * 1000 / clk_tck()

  defp clk_tck do
    case :persistent_term.get({__MODULE__, :clk_tck}, nil) do
      nil ->
        hz =
          case System.cmd("getconf", ["CLK_TCK"], stderr_to_stdout: true) do
            {out, 0} -> String.to_integer(String.trim(out))
            _ -> 100
          end

        :persistent_term.put({__MODULE__, :clk_tck}, hz)
        hz

      hz ->
        hz
    end
  end

  # ---------------------------------------------------------------------------
  # RPC

  # one at a time, few in flight, many in flight
  defp rpc_set(nodes, pair, cfg, label) do
    one = rpc_run(nodes, pair, cfg.rtt, 1, cfg.warmup)
    few = rpc_run(nodes, pair, cfg.few_calls, cfg.few_concurrency, 0)
    many = with_cpu(nodes, fn -> rpc_run(nodes, pair, cfg.calls, cfg.concurrency, 0) end)

    log(
      "RPC #{@pair_names[pair]}#{label}: p50 #{one.p50} us, p99 #{one.p99} us; " <>
        "#{rate(few.calls_per_s)} calls/s with #{cfg.few_concurrency} in flight, " <>
        "#{rate(many.calls_per_s)} with #{cfg.concurrency} (ejabberd at #{cpu_pct(many, :server)} of a core)" <>
        error_note([one, few, many])
    )

    %{one: one, few: few, many: many}
  end

  defp rpc_run(nodes, pair, count, concurrency, warmup) do
    {caller, server} = ends(pair)
    to = if server == :bob, do: nodes.bob_jid, else: nodes.rbob.jid

    case caller do
      :alice ->
        call = fn ->
          case Bus.call(nodes.alice, to, "add", [1, 2], 5_000) do
            {:ok, 3} -> :ok
            other -> {:error, other}
          end
        end

        for _ <- 1..warmup//1, do: call.()
        beam_calls(call, count, concurrency)

      :ralice ->
        rust_command(nodes.ralice, "rpc #{to} #{count} #{concurrency} #{warmup}")
        kv = kv(await_line(nodes.ralice, "RPC", 300_000))

        %{
          samples: int(kv, "samples"),
          p50: int(kv, "p50_us"),
          p90: int(kv, "p90_us"),
          p99: int(kv, "p99_us"),
          mean: float(kv, "mean_us"),
          max: int(kv, "max_us"),
          errors: int(kv, "errors"),
          first_error: if(kv["first_error"] in [nil, "-"], do: nil, else: kv["first_error"]),
          secs: float(kv, "secs"),
          calls_per_s: float(kv, "calls_per_s")
        }
    end
  end

  # count calls of `call` from `concurrency` processes, each one at a time
  defp beam_calls(call, count, concurrency) do
    parent = self()
    concurrency = max(min(concurrency, count), 1)
    t0 = now_us()

    pids =
      for k <- 0..(concurrency - 1) do
        mine = div(count, concurrency) + if(k < rem(count, concurrency), do: 1, else: 0)

        spawn_link(fn ->
          res =
            Enum.reduce(1..mine//1, {[], 0, nil}, fn _, {us, errors, first} ->
              t = System.monotonic_time(:microsecond)

              case call.() do
                :ok -> {[System.monotonic_time(:microsecond) - t | us], errors, first}
                {:error, e} -> {us, errors + 1, first || e}
              end
            end)

          send(parent, {:calls_done, self(), res})
        end)
      end

    {us, errors, first} =
      Enum.reduce(pids, {[], 0, nil}, fn pid, {us, errors, first} ->
        receive do
          {:calls_done, ^pid, {u, e, f}} -> {u ++ us, errors + e, first || f}
        after
          300_000 -> raise "calls did not finish"
        end
      end)

    secs = (now_us() - t0) / 1.0e6

    stats(us)
    |> Map.merge(%{
      errors: errors,
      first_error: first && inspect(first, limit: 5),
      secs: secs,
      calls_per_s: length(us) / secs
    })
  end

  # ---------------------------------------------------------------------------
  # raw connection layer: XmppBridge.Connection, chat messages, BEAM -> BEAM

  defp raw_pair(srv) do
    a = raw_peer(srv, "raw1")
    b = raw_peer(srv, "raw2")
    %{a: a, b: b}
  end

  defp raw_peer(srv, user) do
    parent = self()

    opts = [
      jid: TestServer.jid(srv, user),
      password: srv.accounts[user],
      host: srv.host,
      port: srv.ports.c2s_plain,
      tls: :plain,
      reconnect: false
    ]

    pid =
      spawn_link(fn ->
        Process.put(:bench_role, "raw #{user}")
        conn = Connection.open!(opts)
        id = conn.id

        receive do
          {:xmpp_bridge, ^id, {:online, %{jid: jid}}} -> send(parent, {:raw_online, self(), jid})
          {:xmpp_bridge, ^id, {:closed, reason}} -> exit({:not_online, user, reason})
        after
          30_000 -> exit({:not_online, user, :timeout})
        end

        raw_loop(conn)
      end)

    receive do
      {:raw_online, ^pid, jid} -> %{pid: pid, jid: jid}
    after
      35_000 -> raise "raw #{user} did not come online"
    end
  end

  defp raw_loop(conn) do
    receive do
      {:blast, n, to, shape, from} ->
        send(from, {:blasted, self(), raw_blast(conn, n, to, shape)})
        raw_loop(conn)

      {:count, n, from} ->
        send(from, {:counted, self(), raw_count(conn, n, 0, true, 0)})
        raw_loop(conn)

      {:close, from} ->
        Connection.close(conn)
        id = conn.id

        receive do
          {:xmpp_bridge, ^id, {:closed, _}} -> :ok
        after
          10_000 -> :ok
        end

        send(from, {:closed, self()})
    end
  end

  # :chat - what bench/conn.exs sends; :bus - the XML of a bus term message
  # (XmppBridge.Bus.Wire builds it as Bus.send/4 does: the term element,
  # the body, origin-id), sent by the connection layer itself
  defp raw_msg(to, i, :chat),
    do: %Message{type: :chat, to: to, id: "m#{i}", bodies: [{nil, Integer.to_string(i)}]}

  defp raw_msg(to, i, :bus) do
    term = {:n, i, "payload"}
    {:ok, el, body} = XmppBridge.Bus.Wire.value_and_body(term, :term)
    XmppBridge.Bus.Wire.term_message(to, "m#{i}", el, body, false)
  end

  defp raw_blast(conn, n, to, shape) do
    id = conn.id
    t0 = now_us()

    acc =
      Enum.reduce(0..(n - 1)//1, {0, 0, 0}, fn i, acc ->
        raw_send(conn, id, raw_msg(to, i, shape), acc)
      end)

    sent_us = now_us() - t0
    {acked, failed, fulls} = raw_await_acks(id, acc, n)
    %{sent_us: sent_us, acked: acked, failed: failed, queue_full: fulls}
  end

  defp raw_send(conn, id, m, {acked, failed, fulls} = acc) do
    case Connection.send(conn, m) do
      {:ok, _seq} ->
        acc

      {:error, %{reason: :queue_full}} ->
        receive do
          {:xmpp_bridge, ^id, {:acked, seqs}} ->
            raw_send(conn, id, m, {acked + length(seqs), failed, fulls + 1})

          {:xmpp_bridge, ^id, {:failed, seqs, _}} ->
            raw_send(conn, id, m, {acked, failed + length(seqs), fulls + 1})
        after
          1 -> raw_send(conn, id, m, {acked, failed, fulls + 1})
        end

      {:error, error} ->
        exit({:send_failed, error})
    end
  end

  defp raw_await_acks(_id, {acked, failed, _} = acc, n) when acked + failed >= n, do: acc

  defp raw_await_acks(id, {acked, failed, fulls} = acc, n) do
    receive do
      {:xmpp_bridge, ^id, {:acked, seqs}} ->
        raw_await_acks(id, {acked + length(seqs), failed, fulls}, n)

      {:xmpp_bridge, ^id, {:failed, seqs, _}} ->
        raw_await_acks(id, {acked, failed + length(seqs), fulls}, n)

      {:xmpp_bridge, ^id, {:closed, reason}} ->
        exit({:closed_during_blast, reason})
    after
      30_000 -> acc
    end
  end

  # counts n messages whose id is "m<next integer>"; grants credit 500 at a
  # time (the default :active is 1000), as bench/conn.exs does
  defp raw_count(_conn, n, n, in_order, dups),
    do: %{got: n, in_order: in_order, dups: dups, done: now_us()}

  defp raw_count(%{id: id} = conn, n, got, in_order, dups) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{id: "m" <> index}}} ->
        if rem(got + 1, 500) == 0, do: :ok = Connection.set_active(conn, 500)

        case Integer.parse(index) do
          {k, ""} when k < got -> raw_count(conn, n, got, in_order, dups + 1)
          {k, ""} -> raw_count(conn, n, got + 1, in_order and k == got, dups)
          _ -> raw_count(conn, n, got, in_order, dups)
        end

      {:xmpp_bridge, ^id, :passive} ->
        :ok = Connection.set_active(conn, 1000)
        raw_count(conn, n, got, in_order, dups)

      {:xmpp_bridge, ^id, {:closed, _}} ->
        %{got: got, in_order: in_order, dups: dups, done: now_us()}

      {:xmpp_bridge, ^id, _other} ->
        raw_count(conn, n, got, in_order, dups)
    after
      30_000 -> %{got: got, in_order: in_order, dups: dups, done: now_us()}
    end
  end

  defp raw_throughput(%{a: a, b: b}, n, shape \\ :chat) do
    :erlang.garbage_collect()
    %{pid: apid} = a
    %{pid: bpid} = b
    t0 = now_us()
    send(bpid, {:count, n, self()})
    send(apid, {:blast, n, b.jid, shape, self()})

    counted =
      receive do
        {:counted, ^bpid, res} -> res
      after
        120_000 -> raise "raw receiver did not report"
      end

    blasted =
      receive do
        {:blasted, ^apid, res} -> res
      after
        120_000 -> raise "raw sender did not report"
      end

    secs = (counted.done - t0) / 1.0e6

    %{
      n: n,
      received: counted.got,
      in_order: counted.in_order,
      dups: counted.dups,
      others: 0,
      secs: secs,
      rate: n / secs,
      queue_full: blasted.queue_full,
      send_errors: blasted.failed,
      send_secs: blasted.sent_us / 1.0e6,
      outcomes: nil,
      acked: blasted.acked
    }
  end

  defp close_raw(%{a: a, b: b}) do
    for p <- [a, b], do: send(p.pid, {:close, self()})
    for %{pid: pid} <- [a, b], do: receive(do: ({:closed, ^pid} -> :ok), after: (15_000 -> :ok))
  end

  # ---------------------------------------------------------------------------
  # Rust nodes (bus_bench node), as Ports

  defp start_rust(bin, srv, user, extra \\ []) do
    args =
      [
        "node",
        "--jid",
        TestServer.jid(srv, user),
        "--password",
        srv.accounts[user],
        "--host",
        srv.host,
        "--port",
        Integer.to_string(srv.ports.c2s_plain)
      ] ++ extra

    port =
      Port.open({:spawn_executable, bin}, [:binary, :exit_status, {:line, 65_536}, args: args])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    Process.put(:os_pids, [os_pid | Process.get(:os_pids, [])])
    node = %{port: port, os_pid: os_pid, user: user, jid: nil}
    kv = kv(await_line(node, "ONLINE", 30_000))
    %{node | jid: kv["jid"]}
  end

  defp rust_command(%{port: port}, line) do
    true = Port.command(port, line <> "\n")
    :ok
  end

  # The next line of `node` that starts with `tag`; other lines of it are
  # printed and skipped. Raises when the process exits first.
  defp await_line(%{port: port, user: user}, tag, timeout) do
    size = byte_size(tag)

    receive do
      {^port, {:data, {:eol, line}}}
      when byte_size(line) >= size and binary_part(line, 0, size) == tag ->
        line

      {^port, {:data, {:eol, line}}} ->
        log("#{user}: #{line}")
        await_line(%{port: port, user: user}, tag, timeout)

      {^port, {:exit_status, status}} ->
        raise "bus_bench (#{user}) exited with status #{status} while #{tag} was awaited"
    after
      timeout -> raise "no #{tag} line from bus_bench (#{user}) within #{timeout} ms"
    end
  end

  defp stop_rust(%{port: port} = node) do
    rust_command(node, "stop")

    receive do
      {^port, {:exit_status, _}} -> :ok
    after
      10_000 -> kill_os_pid(node.os_pid)
    end
  end

  defp kill_os_pid(os_pid) do
    if TestServer.os_pid_alive?(os_pid),
      do: System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)

    :ok
  end

  # every OS process this run started (Rust nodes, nats-server, epmd), by pid
  defp kill_leftovers do
    for os_pid <- Process.get(:os_pids, []), TestServer.os_pid_alive?(os_pid) do
      log("killing leftover OS process #{os_pid}")
      kill_os_pid(os_pid)
    end
  end

  # ---------------------------------------------------------------------------
  # DOWN detection

  defp down_trial(bin, srv, watcher, user, signal) do
    victim = start_rust(bin, srv, user)
    ref = Bus.monitor(watcher, victim.jid)
    # a few heartbeats: the watcher has seen it up, and the signal falls at
    # some point of the heartbeat period
    Process.sleep(1_500 + :rand.uniform(@heartbeat))
    {_, 0} = System.cmd("kill", ["-" <> signal, Integer.to_string(victim.os_pid)])
    t0 = now_us()

    {ms, reason} =
      receive do
        {:DOWN, ^ref, :bus_node, _jid, reason} -> {round((now_us() - t0) / 1000), reason}
      after
        30_000 -> {nil, :no_down_within_30_s}
      end

    # a stopped process is killed now; either way wait for its exit
    kill_os_pid(victim.os_pid)
    port = victim.port

    receive do
      {^port, {:exit_status, _}} -> :ok
    after
      5_000 -> :ok
    end

    %{ms: ms, reason: reason, user: user}
  end

  # ---------------------------------------------------------------------------
  # Erlang distribution

  defp dist_reference(cfg) do
    log("Erlang distribution reference")
    cookie_file = Path.expand("~/.erlang.cookie")
    cookie_existed = File.exists?(cookie_file)

    try do
      epmd = ensure_epmd()

      try do
        Application.put_env(:kernel, :inet_dist_use_interface, {127, 0, 0, 1})
        name = :"xbbench#{System.unique_integer([:positive])}@127.0.0.1"
        {:ok, _} = Node.start(name, :longnames)

        try do
          dist_measure(cfg)
        after
          Node.stop()
        end
      after
        stop_epmd(epmd)
      end
    rescue
      e ->
        log("Erlang distribution reference failed: #{Exception.message(e)}")
        %{error: Exception.message(e)}
    after
      # the VM made ~/.erlang.cookie when it became distributed: not ours to keep
      if not cookie_existed, do: File.rm(cookie_file)
    end
  end

  defp dist_measure(cfg) do
    peer_name = :"xbpeer#{System.unique_integer([:positive])}"

    args = [
      ~c"-setcookie",
      Atom.to_charlist(Node.get_cookie()),
      ~c"-kernel",
      ~c"inet_dist_use_interface",
      ~c"{127,0,0,1}"
    ]

    # not linked: the peer stops when its connection to this VM ends
    {:ok, peer, node} =
      :peer.start(%{
        name: peer_name,
        host: ~c"127.0.0.1",
        longnames: true,
        args: args,
        wait_boot: 30_000
      })

    try do
      {:module, _} =
        :erpc.call(node, :code, :load_binary, [
          XmppBridge.Bench.Bus.DistSink,
          ~c"bench/bus.exs",
          cfg.dist_sink_beam
        ])

      call = fn ->
        case :erpc.call(node, :erlang, :+, [1, 2], 5_000) do
          3 -> :ok
          other -> {:error, other}
        end
      end

      for _ <- 1..cfg.warmup//1, do: call.()
      one = beam_calls(call, cfg.rtt, 1)
      few = beam_calls(call, cfg.few_calls, cfg.few_concurrency)
      many = beam_calls(call, cfg.calls, cfg.concurrency)

      log(
        "erpc: p50 #{one.p50} us, p99 #{one.p99} us; #{rate(many.calls_per_s)} calls/s with #{cfg.concurrency} in flight"
      )

      _ = dist_send_round(node, cfg.warmup_n)

      rounds =
        for r <- 1..cfg.rounds do
          t = dist_send_round(node, cfg.ref_n)
          log("dist send round #{r}: #{rate(t.rate)} msg/s (#{t.received}/#{t.n})")
          t
        end

      %{one: one, few: few, many: many, rounds: rounds, node: node}
    after
      :peer.stop(peer)
    end
  end

  defp dist_send_round(node, n) do
    :erlang.garbage_collect()
    sink = :erpc.call(node, XmppBridge.Bench.Bus.DistSink, :start, [self(), n])
    t0 = now_us()
    send_loop(sink, 0, n)

    {got, in_order} =
      receive do
        {:dist_sink_done, ^sink, got, in_order} -> {got, in_order}
      after
        120_000 -> {0, false}
      end

    secs = (now_us() - t0) / 1.0e6

    %{
      n: n,
      received: got,
      in_order: in_order,
      dups: 0,
      others: 0,
      secs: secs,
      rate: n / secs,
      queue_full: nil,
      send_errors: 0,
      send_secs: nil,
      outcomes: nil
    }
  end

  defp send_loop(_pid, n, n), do: :ok

  defp send_loop(pid, i, n) do
    send(pid, {:n, i, "payload"})
    send_loop(pid, i + 1, n)
  end

  # epmd on 127.0.0.1 when none answers; started by a shell that kills it
  # when its stdin ends (this VM gone), and stopped by its pid at the end.
  defp ensure_epmd do
    case System.cmd("epmd", ["-names"], stderr_to_stdout: true) do
      {_, 0} ->
        log("epmd already running: used, left alone")
        nil

      _ ->
        epmd = System.find_executable("epmd") || raise "epmd not found"
        {port, pid} = start_guarded([epmd, "-address", "127.0.0.1"])

        wait_until(
          fn -> match?({_, 0}, System.cmd("epmd", ["-names"], stderr_to_stdout: true)) end,
          5_000
        )

        log("started epmd (OS pid #{pid}) on 127.0.0.1")
        {port, pid}
    end
  end

  defp stop_epmd(nil), do: :ok
  defp stop_epmd({port, pid}), do: stop_guarded(port, pid)

  # Runs `argv` under `sh`, which prints the child's pid and kills it when
  # its stdin (the Port) closes: the child cannot outlive this VM.
  defp start_guarded([exe | args]) do
    quoted = Enum.map_join([exe | args], " ", &("'" <> String.replace(&1, "'", "'\\''") <> "'"))

    script =
      "#{quoted} </dev/null >/dev/null 2>&1 & echo \"PID $!\"; read _ignored; kill -9 $! 2>/dev/null"

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args: ["-c", script]
      ])

    {:os_pid, sh_pid} = Port.info(port, :os_pid)
    Process.put(:os_pids, [sh_pid | Process.get(:os_pids, [])])

    pid =
      receive do
        {^port, {:data, {:eol, "PID " <> pid}}} -> String.to_integer(pid)
      after
        5_000 -> raise "#{exe} did not start"
      end

    Process.put(:os_pids, [pid | Process.get(:os_pids, [])])
    {port, pid}
  end

  defp stop_guarded(port, pid) do
    kill_os_pid(pid)
    wait_until(fn -> not TestServer.os_pid_alive?(pid) end, 5_000)
    Port.close(port)
    :ok
  catch
    _, _ -> :ok
  end

  defp wait_until(fun, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Stream.repeatedly(fn ->
      ok = fun.()
      if not ok, do: Process.sleep(20)
      ok
    end)
    |> Enum.find(fn ok -> ok or System.monotonic_time(:millisecond) > deadline end)
  end

  # ---------------------------------------------------------------------------
  # NATS

  defp nats_reference(cfg, bin) do
    case System.find_executable("nats-server") do
      nil ->
        log("nats-server not found (scripts/install-deps.sh installs it): NATS skipped")
        %{error: "nats-server not found (scripts/install-deps.sh installs it)"}

      exe ->
        port_no = free_port()
        {port, pid} = start_guarded([exe, "-a", "127.0.0.1", "-p", Integer.to_string(port_no)])

        try do
          ready = wait_until(fn -> tcp_open?(port_no) end, 10_000)
          if not ready, do: raise("nats-server did not listen on #{port_no}")
          log("nats-server (OS pid #{pid}) on 127.0.0.1:#{port_no}")
          nats_run(cfg, bin, port_no)
        after
          stop_guarded(port, pid)
        end
    end
  end

  defp nats_run(cfg, bin, port_no) do
    args = [
      "nats",
      "--url",
      "nats://127.0.0.1:#{port_no}",
      "--n",
      Integer.to_string(cfg.ref_n),
      "--rounds",
      Integer.to_string(cfg.rounds),
      "--warmup-n",
      Integer.to_string(cfg.warmup_n),
      "--rtt",
      Integer.to_string(cfg.rtt),
      "--warmup",
      Integer.to_string(cfg.warmup),
      "--calls",
      Integer.to_string(cfg.calls),
      "--concurrency",
      "#{cfg.few_concurrency},#{cfg.concurrency}"
    ]

    {out, status} = System.cmd(bin, args, stderr_to_stdout: true)

    if status != 0 do
      log("bus_bench nats failed (exit #{status}):\n#{out}")
      %{error: "bus_bench nats exited with status #{status}"}
    else
      lines = for line <- String.split(out, "\n"), line != "", do: line

      tagged = fn tag ->
        Enum.filter(lines, &String.starts_with?(&1, tag <> " ")) |> Enum.map(&kv/1)
      end

      rounds =
        for kv <- tagged.("NATS_PUBSUB") do
          %{
            n: int(kv, "n"),
            received: int(kv, "received"),
            in_order: kv["in_order"] == "true",
            dups: int(kv, "dups"),
            others: 0,
            secs: float(kv, "secs"),
            rate: float(kv, "rate"),
            queue_full: nil,
            send_errors: 0,
            send_secs: nil,
            outcomes: nil
          }
        end

      lat = fn kv ->
        %{
          samples: int(kv, "samples"),
          p50: int(kv, "p50_us"),
          p90: int(kv, "p90_us"),
          p99: int(kv, "p99_us"),
          mean: float(kv, "mean_us"),
          max: int(kv, "max_us"),
          errors: int(kv, "errors"),
          calls_per_s: if(kv["calls_per_s"], do: float(kv, "calls_per_s"))
        }
      end

      [one] = tagged.("NATS_RTT")
      [few, many] = tagged.("NATS_CALLS")
      for r <- rounds, do: log("NATS pub/sub: #{rate(r.rate)} msg/s (#{r.received}/#{r.n})")
      one = lat.(one)
      few = lat.(few)
      many = lat.(many)

      log(
        "NATS request/reply: p50 #{one.p50} us, p99 #{one.p99} us; #{rate(many.calls_per_s)} calls/s"
      )

      %{rounds: rounds, one: one, few: few, many: many}
    end
  end

  defp free_port do
    {:ok, s} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(s)
    :gen_tcp.close(s)
    port
  end

  defp tcp_open?(port) do
    case :gen_tcp.connect({127, 0, 0, 1}, port, [], 200) do
      {:ok, s} ->
        :gen_tcp.close(s)
        true

      _ ->
        false
    end
  end

  # ---------------------------------------------------------------------------
  # group fan-out: bus groups (MUC rooms) against plain tokio-xmpp MUC clients

  defp group_accounts(%{groups: false}), do: []

  defp group_accounts(cfg) do
    m = Enum.max(cfg.group_sizes)
    ["gsend", "grsend", "psend"] ++ for(i <- 1..m, do: "gm#{i}") ++ for(i <- 1..m, do: "pm#{i}")
  end

  defp groups_bench(cfg, srv, bin, muc_bin) do
    for size <- cfg.group_sizes, do: group_size_bench(cfg, srv, bin, muc_bin, size)
  end

  defp group_size_bench(cfg, srv, bin, muc_bin, size) do
    tag = System.unique_integer([:positive])
    senders = cfg.group_senders
    groups = Map.new(senders, &{&1, "fanout#{size}#{String.first(to_string(&1))}-#{tag}"})
    plain_room = "plainfanout#{size}-#{tag}@#{srv.muc_domain}"
    n_beam = div(size + 1, 2)
    beam_users = for i <- 1..n_beam, do: "gm#{i}"
    rust_users = for i <- (n_beam + 1)..size//1, do: "gm#{i}"

    log(
      "group fan-out, #{size} members (#{length(beam_users)} BEAM, #{length(rust_users)} Rust), " <>
        "senders #{inspect(senders)}: starting"
    )

    # the senders first: each creates (and configures) its room
    idle = spawn_link(&discard_loop/0)

    beam_sender =
      if :beam in senders do
        bus = start_bus(srv, "gsend", idle)
        :ok = join_from(bus, [groups.beam])
        bus
      end

    rust_sender =
      if :rust in senders do
        p = start_rust_members(bin, srv, ["grsend"], "grsend")
        rust_join!(p, groups.rust)
        p
      end

    # the members: BEAM nodes of this VM (a process each that joins every
    # group), Rust nodes in one bus_bench process (a session each)
    beam_nodes = start_many_bus(srv, beam_users, idle)
    rust_members = if rust_users != [], do: start_rust_members(bin, srv, rust_users, "rmembers")
    member_pids = Enum.map(beam_nodes, &start_group_member(&1, Map.values(groups)))
    if rust_members, do: for(g <- Map.values(groups), do: rust_join!(rust_members, g))
    for pid <- member_pids, do: await_member_joined(pid)

    # plain tokio-xmpp MUC clients, each its own account, one room
    pad = plain_pad(groups |> Map.values() |> hd(), srv, plain_room)
    plain = start_plain(muc_bin, srv, plain_room, size, pad)
    log("group fan-out, #{size} members: all joined (plain body padding #{pad} chars)")

    os = %{
      server: srv.os_pid,
      ours_rust: [rust_sender, rust_members] |> Enum.reject(&is_nil/1) |> Enum.map(& &1.os_pid),
      plain: [plain.os_pid]
    }

    ctx = %{
      size: size,
      groups: groups,
      beam_sender: beam_sender,
      rust_sender: rust_sender,
      members: member_pids,
      rust_members: rust_members,
      plain: plain,
      os: os
    }

    rows = [:plain | Enum.map(senders, &{:ours, &1})]

    try do
      if cfg.group_warmup_n > 0 do
        for row <- rows do
          w = group_row_round(ctx, row, cfg.group_warmup_n, 0)

          if w.lost > 0 or not w.in_order,
            do: raise("group fan-out #{size}, #{row_name(row)}: warm-up lost: #{group_detail(w)}")
        end
      end

      rounds =
        for r <- 1..cfg.group_rounds do
          Map.new(rows, fn row ->
            t = group_row_round(ctx, row, cfg.group_n, r)

            log(
              "group fan-out #{size}, round #{r}: #{row_name(row)} #{rate(t.rate)} deliveries/s " <>
                "(#{group_detail(t)})"
            )

            {row, t}
          end)
        end

      %{size: size, n_beam: length(beam_users), n_rust: length(rust_users), pad: pad, rows: rows}
      |> Map.put(:rounds, rounds)
    after
      stop_plain(plain)
      if rust_members, do: stop_rust(rust_members)
      if rust_sender, do: stop_rust(rust_sender)
      for b <- beam_nodes, do: Bus.stop(b)
      if beam_sender, do: Bus.stop(beam_sender)
      for pid <- [idle | member_pids], do: Process.unlink(pid) && Process.exit(pid, :kill)
    end
  end

  defp row_name(:plain), do: "plain tokio-xmpp MUC"
  defp row_name({:ours, :beam}), do: "bus group, BEAM sender"
  defp row_name({:ours, :rust}), do: "bus group, Rust sender"

  defp discard_loop do
    receive do
      _ -> discard_loop()
    end
  end

  # BEAM bus nodes, started at once, then awaited
  defp start_many_bus(srv, users, receiver) do
    buses =
      for user <- users do
        {:ok, bus} =
          Bus.start_link(
            jid: TestServer.jid(srv, user),
            password: srv.accounts[user],
            host: srv.host,
            port: srv.ports.c2s_plain,
            tls: :plain,
            receiver: receiver
          )

        bus
      end

    for bus <- buses, do: :ok = Bus.await_online(bus, 60_000)
    buses
  end

  # a process that joins the groups on `bus` and stays in them
  defp join_from(bus, groups) do
    pid = start_group_member(bus, groups)
    await_member_joined(pid)
  end

  defp start_group_member(bus, groups) do
    parent = self()

    spawn_link(fn ->
      Process.put(:bench_role, "group member")
      results = Enum.map(groups, &Bus.join(bus, &1, timeout: 30_000))
      send(parent, {:member_joined, self(), results})
      gmember_idle()
    end)
  end

  defp await_member_joined(pid) do
    receive do
      {:member_joined, ^pid, results} ->
        if Enum.any?(results, &(&1 != :ok)), do: raise("a join failed: #{inspect(results)}")
        :ok
    after
      60_000 -> raise "a BEAM member did not join within 60 s"
    end
  end

  defp gmember_idle do
    receive do
      {:arm, group, n, from} ->
        send(from, {:armed, self()})
        seen = :atomics.new(max(n, 1), [])

        gmember_count(from, group, n, seen, %{got: 0, next: 0, in_order: true, dups: 0, others: 0})

      _ ->
        gmember_idle()
    end
  end

  defp gmember_count(from, _group, n, _seen, %{got: n} = s) do
    send(from, {:gcount, self(), Map.put(s, :done, now_us())})
    gmember_idle()
  end

  defp gmember_count(from, group, n, seen, s) do
    receive do
      {:xmpp_bridge_bus, :group, ^group, _from, {:n, i, "payload"}} when i >= 0 and i < n ->
        if :atomics.exchange(seen, i + 1, 1) == 1 do
          gmember_count(from, group, n, seen, %{s | dups: s.dups + 1})
        else
          s = %{s | got: s.got + 1, next: i + 1, in_order: s.in_order and i == s.next}
          gmember_count(from, group, n, seen, s)
        end

      {:xmpp_bridge_bus, :group, ^group, _from, _other} ->
        gmember_count(from, group, n, seen, %{s | others: s.others + 1})
    after
      30_000 ->
        send(from, {:gcount, self(), Map.put(s, :done, now_us())})
        gmember_idle()
    end
  end

  # `bus_bench members`: one OS process, a bus node (session) per account
  defp start_rust_members(bin, srv, users, label) do
    accounts =
      Enum.flat_map(users, &["--account", "#{TestServer.jid(srv, &1)}:#{srv.accounts[&1]}"])

    args =
      ["members", "--host", srv.host, "--port", Integer.to_string(srv.ports.c2s_plain)] ++
        accounts

    port =
      Port.open({:spawn_executable, bin}, [:binary, :exit_status, {:line, 65_536}, args: args])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    Process.put(:os_pids, [os_pid | Process.get(:os_pids, [])])
    node = %{port: port, os_pid: os_pid, user: label, jid: nil}
    _ = await_line(node, "ONLINE", 60_000)
    node
  end

  defp rust_join!(node, group) do
    rust_command(node, "join #{group}")
    kv = kv(await_line(node, "JOINED", 60_000))

    if kv["errors"] != "0",
      do: raise("#{node.user}: #{kv["errors"]} joins of #{group} failed: #{kv["first_error"]}")

    :ok
  end

  # filler for the plain bodies: a plain groupchat message as big as a bus
  # broadcast (`Bus.broadcast/4`'s stanza, built by the same code) to a room
  # whose name is as long
  defp plain_pad(group, srv, plain_room) do
    term = {:n, 1000, "payload"}
    {:ok, el, body} = XmppBridge.Bus.Wire.value_and_body(term, :term)
    id = String.duplicate("f", 16) <> "rs"

    ours = %Message{
      to: "#{group}@#{srv.muc_domain}",
      type: :groupchat,
      id: id,
      bodies: [{nil, body}],
      payloads: [el, %XmppBridge.Payload.OriginId{id: id}]
    }

    plain = %Message{to: plain_room, type: :groupchat, id: "r1m1000", bodies: [{nil, "1000 "}]}
    size = fn m -> m |> XmppBridge.Stanza.encode!() |> IO.iodata_length() end
    max(size.(ours) - size.(plain), 0)
  end

  defp muc_binary! do
    case System.get_env("BENCH_MUC_BASELINE") do
      path when path not in [nil, ""] ->
        unless File.regular?(path), do: raise("BENCH_MUC_BASELINE=#{path}: no such file")
        path

      _ ->
        dir = Path.expand("baseline", __DIR__)
        target = Path.join(dir, "target")
        log("cargo build --release (bench/baseline)")

        cargo =
          System.get_env("CARGO") || System.find_executable("cargo") ||
            Path.expand("~/.cargo/bin/cargo")

        {out, status} =
          System.cmd(
            cargo,
            [
              "build",
              "--release",
              "--quiet",
              "--manifest-path",
              Path.join(dir, "Cargo.toml"),
              "--target-dir",
              target
            ],
            stderr_to_stdout: true
          )

        if status != 0, do: raise("building bench/baseline failed:\n#{out}")
        Path.join([target, "release", "muc_baseline"])
    end
  end

  defp start_plain(muc_bin, srv, room, size, pad) do
    members = Enum.flat_map(1..size, &["--member", "pm#{&1}:#{srv.accounts["pm#{&1}"]}"])

    args =
      [
        "--port",
        Integer.to_string(srv.ports.c2s_plain),
        "--host",
        srv.host,
        "--domain",
        srv.domain,
        "--room",
        room,
        "--sender",
        "psend:#{srv.accounts["psend"]}",
        "--pad",
        Integer.to_string(pad)
      ] ++ members

    port =
      Port.open({:spawn_executable, muc_bin}, [:binary, :exit_status, {:line, 65_536}, args: args])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    Process.put(:os_pids, [os_pid | Process.get(:os_pids, [])])
    node = %{port: port, os_pid: os_pid, user: "plain MUC", jid: nil}
    _ = await_line(node, "READY", 60_000)
    node
  end

  defp stop_plain(node), do: stop_rust(node)

  # One round of a row: arm every member, start the clock, start the
  # sender; the clock stops when the last member has all n.
  defp group_row_round(ctx, row, n, round) do
    :erlang.garbage_collect()
    before = group_cpu(ctx.os)
    t = group_round(ctx, row, n, round)
    later = group_cpu(ctx.os)
    Map.put(t, :cpu, Map.new(later, fn {k, v} -> {k, ticks_ms(v - before[k])} end))
  end

  defp group_cpu(os) do
    sum = fn pids -> pids |> Enum.map(&cpu_ticks/1) |> Enum.sum() end

    %{
      vm: cpu_ticks(:self),
      server: cpu_ticks(os.server),
      ours_rust: sum.(os.ours_rust),
      plain: sum.(os.plain)
    }
  end

  defp group_round(ctx, :plain, n, round) do
    plain = ctx.plain
    t0 = now_us()
    rust_command(plain, "round #{round} #{n}")

    got =
      collect_round(0, [{plain.port, "PROUND"}, {plain.port, "PSENT"}], %{beam: [], lines: %{}})

    {line, t1} = got.lines[{plain.port, "PROUND"}]
    {sent_line, _} = got.lines[{plain.port, "PSENT"}]
    kv = kv(line)
    received = int(kv, "received_total")
    secs = (t1 - t0) / 1.0e6

    %{
      n: n,
      members: ctx.size,
      received: received,
      complete: int(kv, "complete"),
      lost: n * ctx.size - received,
      dups: int(kv, "dups"),
      in_order: kv["in_order"] == "true",
      others: 0,
      secs: secs,
      rate: n * ctx.size / secs,
      send_secs: int(kv(sent_line), "send_us") / 1.0e6,
      queue_full: nil,
      send_errors: 0
    }
  end

  defp group_round(ctx, {:ours, sender}, n, _round) do
    group = ctx.groups[sender]
    for m <- ctx.members, do: send(m, {:arm, group, n, self()})

    for m <- ctx.members,
        do: receive(do: ({:armed, ^m} -> :ok), after: (10_000 -> raise "not armed"))

    waits =
      if ctx.rust_members do
        rust_command(ctx.rust_members, "count #{group} #{n}")
        _ = await_line(ctx.rust_members, "ARMED", 10_000)
        [{ctx.rust_members.port, "GSINK"}]
      else
        []
      end

    t0 = now_us()

    {waits, flood} =
      case sender do
        :beam ->
          {waits, beam_gflood(ctx.beam_sender, group, n)}

        :rust ->
          rust_command(ctx.rust_sender, "gflood 0 #{group} #{n}")
          {[{ctx.rust_sender.port, "GFLOOD"} | waits], nil}
      end

    got = collect_round(length(ctx.members), waits, %{beam: [], lines: %{}})

    sent =
      case flood do
        nil ->
          {line, _} = got.lines[{ctx.rust_sender.port, "GFLOOD"}]
          kv = kv(line)

          %{
            queue_full: int(kv, "queue_full"),
            errors: int(kv, "errors"),
            send_us: int(kv, "send_us")
          }

        pid ->
          receive do
            {:gflood_done, ^pid, f} -> f
          after
            120_000 -> raise "the BEAM group flood did not report"
          end
      end

    rust =
      case ctx.rust_members && got.lines[{ctx.rust_members.port, "GSINK"}] do
        nil ->
          []

        {line, t} ->
          kv = kv(line)

          [
            %{
              got: int(kv, "received_total"),
              complete: int(kv, "complete"),
              in_order: kv["in_order"] == "true",
              dups: int(kv, "dups"),
              others: int(kv, "others"),
              done: t
            }
          ]
      end

    beam = Enum.map(got.beam, &Map.put(&1, :complete, if(&1.got == n, do: 1, else: 0)))
    all = beam ++ rust
    received = all |> Enum.map(& &1.got) |> Enum.sum()
    t1 = all |> Enum.map(& &1.done) |> Enum.max()
    secs = (t1 - t0) / 1.0e6

    %{
      n: n,
      members: ctx.size,
      received: received,
      complete: all |> Enum.map(& &1.complete) |> Enum.sum(),
      lost: n * ctx.size - received,
      dups: all |> Enum.map(& &1.dups) |> Enum.sum(),
      in_order: Enum.all?(all, & &1.in_order),
      others: all |> Enum.map(& &1.others) |> Enum.sum(),
      secs: secs,
      rate: n * ctx.size / secs,
      send_secs: sent.send_us / 1.0e6,
      queue_full: sent.queue_full,
      send_errors: sent.errors
    }
  end

  # the BEAM sender: Bus.broadcast/4 from a process of its own
  defp beam_gflood(bus, group, n) do
    parent = self()

    spawn_link(fn ->
      t0 = now_us()

      {fulls, errors} =
        Enum.reduce(0..(n - 1)//1, {0, 0}, fn i, acc -> gbroadcast(bus, group, i, acc) end)

      send(
        parent,
        {:gflood_done, self(), %{queue_full: fulls, errors: errors, send_us: now_us() - t0}}
      )
    end)
  end

  defp gbroadcast(bus, group, i, {fulls, errors}) do
    case Bus.broadcast(bus, group, {:n, i, "payload"}) do
      :ok ->
        {fulls, errors}

      {:error, %{reason: :queue_full}} ->
        Process.sleep(1)
        gbroadcast(bus, group, i, {fulls + 1, errors})

      {:error, error} ->
        if errors == 0, do: log("broadcast failed: #{inspect(error)}")
        {fulls, errors + 1}
    end
  end

  # Waits for `beam_left` {:gcount, pid, count} messages and for a line with
  # each {port, tag} of `waits`, in whatever order they come; each line is
  # stamped when it arrives.
  defp collect_round(0, [], acc), do: acc

  defp collect_round(beam_left, waits, acc) do
    receive do
      {:gcount, _pid, s} ->
        collect_round(beam_left - 1, waits, %{acc | beam: [s | acc.beam]})

      {port, {:data, {:eol, line}}} when is_port(port) ->
        case Enum.find(waits, fn {p, tag} -> p == port and String.starts_with?(line, tag) end) do
          nil ->
            log("(#{inspect(port)}) #{line}")
            collect_round(beam_left, waits, acc)

          wait ->
            lines = Map.put(acc.lines, wait, {line, now_us()})
            collect_round(beam_left, List.delete(waits, wait), %{acc | lines: lines})
        end

      {port, {:exit_status, status}} when is_port(port) ->
        if Enum.any?(waits, fn {p, _} -> p == port end),
          do: raise("a bench process exited with status #{status} during a group round"),
          else: collect_round(beam_left, waits, acc)
    after
      120_000 ->
        raise "a group round did not finish within 120 s (#{beam_left} BEAM members, #{inspect(waits)} left)"
    end
  end

  defp group_detail(t) do
    "#{t.received}/#{t.n * t.members} deliveries, #{t.complete}/#{t.members} members complete, " <>
      if(t.in_order, do: "in order", else: "OUT OF ORDER") <>
      if(t.dups > 0, do: ", #{t.dups} DUPLICATES", else: "") <>
      if(t.others > 0, do: ", #{t.others} other terms", else: "") <>
      ", sent in #{Float.round(t.send_secs, 3)} s" <>
      if(t.queue_full, do: ", #{t.queue_full} queue_full", else: "") <>
      if(t.send_errors > 0, do: ", #{t.send_errors} SEND ERRORS", else: "")
  end

  defp group_loss(t), do: t.lost + t.dups + if(t.in_order, do: 0, else: 1)

  defp group_lossy?(t), do: group_loss(t) > 0 or t.send_errors > 0

  defp groups_section(nil, _cfg), do: ""

  defp groups_section(sizes, cfg) do
    rows =
      for s <- sizes, row <- s.rows do
        ts = Enum.map(s.rounds, & &1[row])
        plain_rate = s.rounds |> Enum.map(& &1[:plain].rate) |> median()
        r = ts |> Enum.map(& &1.rate) |> median()
        lost = ts |> Enum.map(&group_loss/1) |> Enum.sum()
        cpu = fn who -> ts |> Enum.map(&(&1.cpu[who] / 1000 / &1.secs)) |> median() |> pct() end

        [
          "#{s.size}",
          row_name(row),
          "#{cfg.group_n} x #{s.size}",
          rate(r),
          pct(r / plain_rate),
          if(lost == 0, do: "0", else: "#{lost} LOST/OUT OF ORDER/DUPLICATED"),
          :erlang.float_to_binary(ts |> Enum.map(& &1.send_secs) |> median() |> Kernel./(1),
            decimals: 3
          ),
          cpu.(:server),
          cpu.(:vm),
          if(row == :plain, do: "-", else: cpu.(:ours_rust)),
          if(row == :plain, do: cpu.(:plain), else: "-")
        ]
      end

    targets =
      for s <- sizes, {:ours, _} = row <- s.rows do
        plain_rate = s.rounds |> Enum.map(& &1[:plain].rate) |> median()
        r = s.rounds |> Enum.map(& &1[row].rate) |> median()

        ok =
          r / plain_rate >= @throughput_ratio_target and
            Enum.all?(s.rounds, &(not group_lossy?(&1[row])))

        "- #{if ok, do: "PASS", else: "FAIL"}: group fan-out, #{s.size} members, #{row_name(row)} >= " <>
          "#{pct(@throughput_ratio_target)} of plain MUC, zero loss: #{pct(r / plain_rate)} " <>
          "(#{rate(r)} vs #{rate(plain_rate)} deliveries/s)"
      end

    round_lines =
      for s <- sizes, {rd, i} <- Enum.with_index(s.rounds, 1) do
        "- #{s.size} members, round #{i}: " <>
          Enum.map_join(
            s.rows,
            "; ",
            &"#{row_name(&1)} #{rate(rd[&1].rate)} (#{group_detail(rd[&1])})"
          )
      end

    members_line =
      Enum.map_join(sizes, "; ", fn s ->
        "#{s.size} members: #{s.n_beam} BEAM + #{s.n_rust} Rust (plain body padding #{s.pad} chars)"
      end)

    """

    ## Group fan-out (#{cfg.group_rounds} rounds x #{cfg.group_n} broadcasts, medians)

    | members | sender | broadcasts x members | deliveries/s | vs plain MUC | loss (all rounds) | send loop (s) | ejabberd CPU | this VM's CPU | Rust bus nodes' CPU | plain clients' CPU |
    |---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|
    #{table(rows)}

    deliveries/s = broadcasts x receiving members / (the sender starts -> the last member has the
    last one). Zero loss: every member counted every broadcast, distinct and in order. #{members_line}.

    #{Enum.join(targets, "\n")}

    #{Enum.join(round_lines, "\n")}

    - Bus groups: each member a bus node of its own account and session (BEAM: `XmppBridge.Bus`
      in this VM, a process per node that joined with `Bus.join/3`; Rust: `xmpp_bridge::bus::Node`
      in one `bus_bench members` process, a task per node taking its events), defaults
      (heartbeat 5 s: every bus member pings every other one). The sender (its own node and
      account, the room's creator) broadcasts `{:n, i, "payload"}` with `Bus.broadcast/4` (BEAM,
      from a process of its own) or `Node::broadcast_term` (Rust) as fast as the outbound queue
      takes them (`:queue_full`: wait 1 ms, again). A room per sender kind; the members are in
      both, so every room has the sender and the members only.
    - Plain MUC: `muc_baseline` (bench/baseline, tokio-xmpp 6 `StanzaStream`, TCP_NODELAY), one
      process, a session per account: the sender creates the room (instant room), the members
      join with a plain MUC presence (no history); the sender sends `groupchat` messages with a
      body `i` + padding, as big as a bus broadcast, as fast as tokio-xmpp's queue takes them;
      each member counts its own. Same ejabberd, same MUC service, same number of occupants.
    - The rows of a size take turns, round after round (one unrecorded warm-up round of
      #{cfg.group_warmup_n} each); every client of both kinds stays online meanwhile.
    - MUC limits of the generated ejabberd config (ejabberd 23.01 defaults, none set by the
      harness): `max_users` 200 per room, `max_user_conferences` 100, `min_message_interval` 0,
      `room_shaper`/`user_message_shaper` none; no c2s shaper (no `shaper` on the listener, no
      `c2s_shaper` rule); `max_fsm_queue` 100,000.
    """
  end

  # ---------------------------------------------------------------------------
  # report

  defp render(r) do
    cfg = r.cfg
    med = fn key -> r.rounds |> Enum.map(&Map.fetch!(&1, key).rate) |> median() end
    raw_rate = med.(:raw)
    raw_bus_rate = med.(:raw_bus)
    bus_rates = Map.new(@pairs, &{&1, med.(&1)})
    lossless = fn key -> Enum.all?(r.rounds, &(not lossy?(Map.fetch!(&1, key)))) end
    dist_ok = is_map(r.dist) and not Map.has_key?(r.dist, :error)
    nats_ok = is_map(r.nats) and not Map.has_key?(r.nats, :error)
    dist_rate = if dist_ok, do: r.dist.rounds |> Enum.map(& &1.rate) |> median()
    nats_rate = if nats_ok, do: r.nats.rounds |> Enum.map(& &1.rate) |> median()

    loss_text = fn key ->
      lost = r.rounds |> Enum.map(&(Map.fetch!(&1, key) |> loss())) |> Enum.sum()
      if lossless.(key), do: "0", else: "#{lost} LOST/OUT OF ORDER/DUPLICATED"
    end

    ref_rate = fn rounds -> rounds |> Enum.map(& &1.rate) |> median() end

    # CPU of each party during a row's rounds: % of one core (medians)
    cpu = fn key, who ->
      r.rounds
      |> Enum.map(fn rd ->
        t = rd[key]
        t.cpu[who] / 1000 / t.secs
      end)
      |> median()
      |> pct()
    end

    # per message: the sender's send loop, and each party's CPU (medians, us)
    cost_row = fn key, name, rust? ->
      per = fn f -> r.rounds |> Enum.map(fn rd -> f.(rd[key]) end) |> median() end
      us = fn x -> :erlang.float_to_binary(x / 1, decimals: 1) end

      [
        name,
        us.(per.(&(&1.send_secs * 1.0e6 / &1.n))),
        us.(per.(&(&1.cpu.server * 1000 / &1.n))),
        us.(per.(&(&1.cpu.vm * 1000 / &1.n))),
        if(rust?, do: us.(per.(&(&1.cpu.rust * 1000 / &1.n))), else: "-")
      ]
    end

    cost_rows =
      [
        cost_row.(:raw, "raw, chat messages", false),
        cost_row.(:raw_bus, "raw, bus-shaped", false)
      ] ++ Enum.map(@pairs, &cost_row.(&1, "bus #{@pair_names[&1]}", &1 != :beam_beam))

    cpu_cols = fn key, rust? ->
      [cpu.(key, :server), cpu.(key, :vm), if(rust?, do: cpu.(key, :rust), else: "-")]
    end

    throughput_rows =
      [
        [
          "raw: XmppBridge.Connection, chat messages, BEAM -> BEAM",
          rate(raw_rate),
          loss_text.(:raw),
          "100%",
          ratio_or_dash(raw_rate, dist_rate),
          ratio_or_dash(raw_rate, nats_rate)
        ] ++ cpu_cols.(:raw, false),
        [
          "raw, bus-shaped: the same sessions sending the XML of a bus term message",
          rate(raw_bus_rate),
          loss_text.(:raw_bus),
          pct(raw_bus_rate / raw_rate),
          ratio_or_dash(raw_bus_rate, dist_rate),
          ratio_or_dash(raw_bus_rate, nats_rate)
        ] ++ cpu_cols.(:raw_bus, false)
      ] ++
        for pair <- @pairs do
          [
            "bus #{@pair_names[pair]}",
            rate(bus_rates[pair]),
            loss_text.(pair),
            pct(bus_rates[pair] / raw_rate),
            ratio_or_dash(bus_rates[pair], dist_rate),
            ratio_or_dash(bus_rates[pair], nats_rate)
          ] ++ cpu_cols.(pair, pair != :beam_beam)
        end ++
        [
          ref_throughput_row(
            "Erlang distribution `send`, this VM -> :peer node",
            r.dist,
            dist_ok,
            ref_rate
          ),
          ref_throughput_row(
            "NATS pub/sub (nats-server #{nats_version()}, async-nats)",
            r.nats,
            nats_ok,
            ref_rate
          )
        ]

    rpc_row = fn name, %{one: one, few: few, many: many} ->
      [
        name,
        "#{one.p50}",
        "#{one.p90}",
        "#{one.p99}",
        if(few, do: rate(few.calls_per_s), else: "-"),
        if(few, do: "#{few.p50}", else: "-"),
        rate(many.calls_per_s),
        "#{many.p50} / #{many.p99}",
        if(many[:cpu], do: cpu_pct(many, :server), else: "-"),
        "#{one.errors + ((few && few.errors) || 0) + many.errors}"
      ]
    end

    rpc_rows =
      Enum.map(@pairs, &rpc_row.("bus #{@pair_names[&1]}", r.rpc[&1])) ++
        Enum.map(
          [:beam_beam, :rust_rust],
          &rpc_row.("bus #{@pair_names[&1]}, `batch_delay` 0 both sides", r.rpc0[&1])
        ) ++
        [
          if(dist_ok,
            do: rpc_row.("Erlang distribution `:erpc.call`", r.dist),
            else: ref_missing_row("Erlang distribution `:erpc.call`", r.dist, 9)
          ),
          if(nats_ok,
            do: rpc_row.("NATS request/reply", r.nats),
            else: ref_missing_row("NATS request/reply", r.nats, 9)
          )
        ]

    confirmed_rows =
      case r.confirmed do
        nil ->
          []

        c ->
          for pair <- @pairs do
            t = c[pair]
            o = t.outcomes || %{delivered: 0, failed: 0, first_failure: nil}

            [
              "bus #{@pair_names[pair]}, `delivery: :confirmed`",
              rate(t.rate),
              "#{o.delivered} / #{o.failed}#{if o.failed > 0, do: " (#{inspect(o.first_failure)})", else: ""}",
              "#{t.received}/#{t.n}#{if lossy?(t), do: " LOSS", else: ""}",
              pct(t.rate / bus_rates[pair]) <> " of its `:server` rate"
            ]
          end
      end

    down_rows =
      case r.down do
        nil ->
          []

        trials ->
          for signal <- ["KILL", "STOP"] do
            ts = Enum.filter(trials, &(&1.signal == signal))
            mss = ts |> Enum.map(& &1.ms) |> Enum.reject(&is_nil/1)

            reasons =
              ts |> Enum.map(& &1.reason) |> Enum.uniq() |> Enum.map_join(", ", &inspect/1)

            [
              if(signal == "KILL",
                do: "kill -9 of the Rust node",
                else: "SIGSTOP of the Rust node"
              ),
              Enum.map_join(ts, ", ", &if(&1.ms, do: "#{&1.ms}", else: "none")),
              if(mss == [], do: "-", else: "#{median(mss)}"),
              if(mss == [], do: "-", else: "#{Enum.max(mss)}"),
              "#{@heartbeat} + #{@heartbeat_timeout} = #{@heartbeat + @heartbeat_timeout}",
              reasons
            ]
          end
      end

    bb = r.rpc.beam_beam.one
    rr = r.rpc.rust_rust.one

    ratio_lines =
      for pair <- @pairs do
        "- bus #{@pair_names[pair]} throughput is #{pct(bus_rates[pair] / raw_rate)} of raw " <>
          "(the connection layer), #{pct(bus_rates[pair] / raw_bus_rate)} of raw with bus-shaped stanzas" <>
          if(dist_rate,
            do: ", #{pct(bus_rates[pair] / dist_rate)} of Erlang distribution `send`",
            else: ""
          ) <>
          if(nats_rate, do: ", #{pct(bus_rates[pair] / nats_rate)} of NATS pub/sub", else: "") <>
          "."
      end ++
        for {pair, one} <- [beam_beam: bb, rust_rust: rr] do
          many = r.rpc[pair].many

          "- bus RPC #{@pair_names[pair]}: p50 is " <>
            Enum.join(
              [
                if(dist_ok, do: "#{times(one.p50, r.dist.one.p50)} Erlang distribution's"),
                if(nats_ok, do: "#{times(one.p50, r.nats.one.p50)} NATS's")
              ]
              |> Enum.reject(&is_nil/1),
              ", "
            ) <>
            "; calls/s with #{cfg.concurrency} in flight is " <>
            Enum.join(
              [
                if(dist_ok, do: "#{pct(many.calls_per_s / r.dist.many.calls_per_s)} of `:erpc`'s"),
                if(nats_ok, do: "#{pct(many.calls_per_s / r.nats.many.calls_per_s)} of NATS's")
              ]
              |> Enum.reject(&is_nil/1),
              ", "
            ) <> "."
        end

    targets =
      for pair <- @pairs do
        ratio = bus_rates[pair] / raw_rate

        {"bus #{@pair_names[pair]} throughput >= #{pct(@throughput_ratio_target)} of raw, zero loss",
         ratio >= @throughput_ratio_target and lossless.(pair),
         "#{pct(ratio)} (#{rate(bus_rates[pair])} vs #{rate(raw_rate)}), loss #{loss_text.(pair)}"}
      end ++
        for pair <- @pairs do
          one = r.rpc[pair].one

          {"bus RPC #{@pair_names[pair]} p50 <= #{@rtt_p50_target_us} us",
           one.p50 <= @rtt_p50_target_us, "#{one.p50} us"}
        end ++
        case r.down do
          nil ->
            []

          trials ->
            bound = @heartbeat + @heartbeat_timeout

            for signal <- ["KILL", "STOP"] do
              ts = Enum.filter(trials, &(&1.signal == signal))
              ok = Enum.all?(ts, &(&1.ms != nil and &1.ms <= bound + 250))

              {"DOWN after #{if signal == "KILL", do: "kill -9", else: "SIGSTOP"} within heartbeat + timeout (#{bound} ms, + 250 ms slack)",
               ok, Enum.map_join(ts, ", ", &"#{&1.ms || "none"} ms")}
            end
        end

    target_lines =
      for {what, ok, value} <- targets,
          do: "- #{if ok, do: "PASS", else: "FAIL"}: #{what}: #{value}"

    round_lines =
      for {rd, i} <- Enum.with_index(r.rounds, 1) do
        "- round #{i}: " <>
          Enum.map_join([:raw, :raw_bus | @pairs], "; ", fn key ->
            name = Map.get(%{raw: "raw", raw_bus: "raw bus-shaped"}, key, @pair_names[key])
            "#{name} #{rate(rd[key].rate)} (#{detail(rd[key])})"
          end)
      end

    {load0, load1} = r.load

    """
    # Bus benchmark

    #{Date.utc_today()}, #{cpu_model()}, #{:erlang.system_info(:logical_processors_available)} logical CPUs shared by ejabberd, this VM, the Rust nodes, the :peer node and nats-server; load average #{load0} before, #{load1} after. Run time #{round(r.secs)} s.

    ## One-way throughput (#{cfg.rounds} rounds x #{cfg.n} terms, medians; references #{cfg.rounds} x #{cfg.ref_n})

    | | msg/s | loss (all rounds) | vs raw | vs Erlang distribution | vs NATS | ejabberd CPU | this VM's CPU | Rust nodes' CPU |
    |---|---:|---|---:|---:|---:|---:|---:|---:|
    #{table(throughput_rows)}

    CPU columns: % of one core (utime + stime over the round's wall clock, medians); "this VM" is
    the whole BEAM (both BEAM nodes, or both raw sessions), "Rust nodes" both Rust processes.

    Per message (medians over the rounds, us): how long the sender's send loop took (a loop that
    takes the whole round is what limits it), and the CPU time each party spent.

    | | send loop (us / msg) | ejabberd CPU (us / msg) | this VM's CPU (us / msg) | Rust nodes' CPU (us / msg) |
    |---|---:|---:|---:|---:|
    #{table(cost_rows)}

    ## RPC `add(1, 2)` (#{cfg.rtt} one at a time after #{cfg.warmup} unrecorded; #{cfg.few_calls} with #{cfg.few_concurrency} in flight; #{cfg.calls} with #{cfg.concurrency} in flight)

    | | p50 (us) | p90 (us) | p99 (us) | calls/s, #{cfg.few_concurrency} in flight | p50 at #{cfg.few_concurrency} in flight (us) | calls/s, #{cfg.concurrency} in flight | p50 / p99 at #{cfg.concurrency} in flight (us) | ejabberd CPU at #{cfg.concurrency} in flight | errors |
    |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
    #{table(rpc_rows)}
    #{confirmed_section(confirmed_rows, cfg)}#{down_section(down_rows, cfg)}#{groups_section(r.groups, cfg)}
    ## Ratios

    #{Enum.join(ratio_lines, "\n")}

    ## Targets

    #{Enum.join(target_lines, "\n")}

    ## Throughput rounds

    #{Enum.join(round_lines, "\n")}

    ## How

    - One private ejabberd #{ejabberd_version()} (XmppTestServer, log level warning), the plaintext
      c2s listener on loopback, XEP-0198 on every session. BEAM bus nodes `XmppBridge.Bus` (alice
      sends, bob receives and serves `add`), Rust bus nodes `xmpp_bridge::bus::Node` in
      bench/bus_rust (`bus_bench node`: ralice sends, rbob receives and serves `add`), all with
      their default options (queue 10,000, window 100 BEAM / 256 Rust, max_calls 64).
    - Throughput: terms `{:n, i, "payload"}`, `delivery: :server`. The sender sends as fast as
      the outbound queue takes them (`:queue_full`: wait 1 ms, again; BEAM sends from a process
      of their own through `Bus.send/4`); the receiver (bob's `:receiver` process, or rbob's event
      loop) counts every term, checks order and duplicates. msg/s = N / (the sender starts ->
      the receiver has all N), measured by this VM (a Rust node is started by a line on its
      stdin and reports by a line on its stdout). Zero loss = all N received, in order, no
      duplicate. One unrecorded warm-up round of #{cfg.warmup_n} each, then the rows in turn,
      round after round.
    - raw: two `XmppBridge.Connection` sessions of this VM, `<message type='chat' id='mN'><body>N</body></message>`,
      as bench/conn.exs measures it: on `:queue_full` wait for an `{:acked, _}` (or 1 ms); the
      receiver grants credit 500 at a time; the same clock (first send -> all received).
    - raw, bus-shaped: the same two sessions, the same loop, sending what `Bus.send/4` puts on the
      wire (built by `XmppBridge.Bus.Wire`: `<body>` with the term in Elixir syntax, the
      `<term/>` element with the ETF in Base64, `<origin-id/>`): what the server costs for a bus
      stanza, without the bus nodes' own work.
    - RPC: `Bus.call/5` / `Node::call_term` of `add(1, 2)` (the serving node runs each call in a
      process / task of its own); one at a time, then #{cfg.few_concurrency} and #{cfg.concurrency} callers each one at a time. The
      `batch_delay` 0 rows: two more BEAM and two more Rust nodes whose sessions never wait to
      batch reads (the default, 5 ms, lets a busy stream's next read wait 1-5 ms).
    - `:confirmed`: msg/s = N / (the sender starts -> every receipt is back at the sender and
      the receiver has all N).
    - DOWN: a BEAM bus node with `heartbeat: #{@heartbeat}`, `heartbeat_timeout: #{@heartbeat_timeout}` monitors a fresh Rust
      node (own account), waits 1.5-2.5 s, then `kill -KILL` or `kill -STOP` of its OS process;
      time from the signal to `{:DOWN, ref, :bus_node, jid, reason}`. Bound: a heartbeat
      period until the next ping plus its timeout.
    - Erlang distribution: this VM made distributed at runtime (`Node.start/2`, long name on
      127.0.0.1, `inet_dist_use_interface` 127.0.0.1, epmd on 127.0.0.1 started for the run when
      none was running), a `:peer` node on the same host; `:erpc.call(peer, :erlang, :+, [1, 2])`;
      `send/2` of the same terms to a counting process on the peer (only BIFs there), msg/s =
      N / (first send -> the counter's done message is back).
    - NATS: nats-server #{nats_version()} (Debian) on a free loopback port, started and stopped
      by the bench; `bus_bench nats` (async-nats 0.51, one process, four connections:
      publisher, subscriber, responder, requester); the same terms ETF-encoded as payloads;
      subscriber buffer big enough for a round (NATS has no flow control: a full buffer drops).
      Request/reply `add` with ETF arguments and result.
    - Erlang/OTP #{:erlang.system_info(:otp_release)}, Elixir #{System.version()}, #{:erlang.system_info(:schedulers_online)} schedulers; VM flags: #{vm_flags()}.
    """
  end

  defp confirmed_section([], _cfg), do: ""

  defp confirmed_section(rows, cfg) do
    """

    ## `delivery: :confirmed` throughput (#{cfg.confirmed_n} terms, until every receipt is back)

    | | msg/s | delivered / failed | received | |
    |---|---:|---|---|---|
    #{table(rows)}
    """
  end

  defp down_section([], _cfg), do: ""

  defp down_section(rows, cfg) do
    """

    ## DOWN detection, Rust node watched from a BEAM node (#{cfg.down_trials} trials each)

    | | each trial (ms) | median (ms) | max (ms) | heartbeat + timeout (ms) | reason |
    |---|---|---:|---:|---:|---|
    #{table(rows)}
    """
  end

  defp ref_throughput_row(name, ref, true, ref_rate) do
    lost = ref.rounds |> Enum.map(&loss/1) |> Enum.sum()

    [
      name,
      rate(ref_rate.(ref.rounds)),
      if(lost == 0, do: "0", else: "#{lost} LOST"),
      "-",
      "-",
      "-",
      "-",
      "-",
      "-"
    ]
  end

  defp ref_throughput_row(name, ref, false, _), do: ref_missing_row(name, ref, 8)

  defp ref_missing_row(name, ref, dashes),
    do: [name, "not measured: #{not_measured(ref)}" | List.duplicate("-", dashes - 1)]

  defp not_measured(nil), do: "skipped"
  defp not_measured(%{error: e}), do: e

  defp table(rows),
    do: Enum.map_join(rows, "\n", fn cols -> "| " <> Enum.join(cols, " | ") <> " |" end)

  defp ratio_or_dash(_, nil), do: "-"
  defp ratio_or_dash(a, b), do: pct(a / b)

  defp times(a, b) when b > 0, do: "#{:erlang.float_to_binary(a / b, decimals: 1)}x"
  defp times(_, _), do: "-"

  defp detail(t) do
    base =
      "#{t.received}/#{t.n}, #{if t.in_order, do: "in order", else: "OUT OF ORDER"}" <>
        if(t.dups > 0, do: ", #{t.dups} DUPLICATES", else: "") <>
        if(t.others > 0, do: ", #{t.others} other terms", else: "")

    extra =
      [
        t.send_secs && "sent in #{Float.round(t.send_secs, 3)} s",
        t.queue_full && "#{t.queue_full} queue_full",
        t.send_errors > 0 && "#{t.send_errors} SEND ERRORS",
        t.outcomes && "#{t.outcomes.delivered} delivered, #{t.outcomes.failed} failed"
      ]
      |> Enum.filter(&is_binary/1)

    Enum.join([base | extra], ", ")
  end

  defp loss(t), do: t.n - t.received + t.dups + if(t.in_order, do: 0, else: 1)

  defp lossy?(t) do
    not (t.received == t.n and t.in_order and t.dups == 0 and t.send_errors == 0) or
      (t.outcomes != nil and t.outcomes.failed > 0) or
      (t.outcomes != nil and t.outcomes.delivered != t.n)
  end

  defp error_note(runs) do
    case runs |> Enum.map(& &1.errors) |> Enum.sum() do
      0 -> ""
      e -> " - #{e} ERRORS (first: #{Enum.find_value(runs, & &1[:first_error])})"
    end
  end

  # ---------------------------------------------------------------------------
  # helpers

  defp rust_binary! do
    case System.get_env("BENCH_BUS_RUST") do
      path when path not in [nil, ""] ->
        unless File.regular?(path), do: raise("BENCH_BUS_RUST=#{path}: no such file")
        path

      _ ->
        target = Path.join(@rust_dir, "target")
        log("cargo build --release (bench/bus_rust)")

        cargo =
          System.get_env("CARGO") || System.find_executable("cargo") ||
            Path.expand("~/.cargo/bin/cargo")

        {out, status} =
          System.cmd(
            cargo,
            [
              "build",
              "--release",
              "--quiet",
              "--manifest-path",
              Path.join(@rust_dir, "Cargo.toml"),
              "--target-dir",
              target
            ],
            stderr_to_stdout: true
          )

        if status != 0, do: raise("building bench/bus_rust failed:\n#{out}")
        Path.join([target, "release", "bus_bench"])
    end
  end

  defp kv(line) do
    line
    |> String.split(" ", trim: true)
    |> tl()
    |> Map.new(fn item ->
      case String.split(item, "=", parts: 2) do
        [k, v] -> {k, v}
        [k] -> {k, ""}
      end
    end)
  end

  defp int(kv, key), do: String.to_integer(Map.fetch!(kv, key))

  defp float(kv, key) do
    v = Map.fetch!(kv, key)

    case Float.parse(v) do
      {f, ""} -> f
      _ -> String.to_integer(v) / 1
    end
  end

  defp stats(samples) do
    s = Enum.sort(samples)
    n = length(s)

    %{
      samples: n,
      p50: nearest_rank(s, n, 50),
      p90: nearest_rank(s, n, 90),
      p99: nearest_rank(s, n, 99),
      mean: Enum.sum(s) / max(n, 1),
      max: List.last(s) || 0
    }
  end

  defp nearest_rank([], _n, _p), do: 0
  defp nearest_rank(sorted, n, p), do: Enum.at(sorted, min(max(ceil(p / 100 * n), 1), n) - 1)

  defp median(values) do
    s = Enum.sort(values)
    n = length(s)

    if rem(n, 2) == 1,
      do: Enum.at(s, div(n, 2)),
      else: (Enum.at(s, div(n, 2) - 1) + Enum.at(s, div(n, 2))) / 2
  end

  defp ejabberd_version, do: deb_version("ejabberd")
  defp nats_version, do: deb_version("nats-server")

  defp deb_version(pkg) do
    case System.cmd("dpkg-query", ["-W", "-f", "${Version}", pkg], stderr_to_stdout: true) do
      {v, 0} -> v
      _ -> "(version unknown)"
    end
  rescue
    _ -> "(version unknown)"
  end

  defp cpu_model do
    case File.read("/proc/cpuinfo") do
      {:ok, text} ->
        case Regex.run(~r/^model name\s*:\s*(.+)$/m, text) do
          [_, name] -> String.trim(name)
          _ -> "unknown CPU"
        end

      _ ->
        "unknown CPU"
    end
  end

  defp vm_flags do
    flags =
      for var <- ["ELIXIR_ERL_OPTIONS", "ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS"],
          value = System.get_env(var),
          value not in [nil, ""],
          do: "#{var}=`#{value}`"

    if flags == [], do: "defaults", else: Enum.join(flags, ", ")
  end

  defp loadavg do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> Enum.take(3) |> Enum.join(" ")
      _ -> "?"
    end
  end

  defp now_us, do: System.monotonic_time(:microsecond)
  defp rate(r), do: :erlang.float_to_binary(r / 1, decimals: 0)
  defp pct(x), do: "#{:erlang.float_to_binary(x * 100, decimals: 1)}%"

  defp log(text), do: IO.puts(:stderr, "[bus] " <> text)

  defp env_ints(name, default) do
    case System.get_env(name) do
      v when v in [nil, ""] -> default
      v -> v |> String.split(",", trim: true) |> Enum.map(&String.to_integer(String.trim(&1)))
    end
  end

  defp env_int(name, default) do
    case System.get_env(name) do
      v when v in [nil, ""] -> default
      v -> String.to_integer(v)
    end
  end
end

XmppBridge.Bench.Bus.main(dist_sink_beam)
