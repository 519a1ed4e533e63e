# Name host benchmark: BEAM processes with a JID each (docs/PROTOCOL.md §7),
# an XmppBridge.Bus started with `mode: :component` on a private ejabberd's
# external component listener, against a plain client node doing the same
# work through the same server, in one run.
#
#   make bench-names
#   MIX_ENV=bench mix run bench/names.exs
#
# Parties (all in this VM, one private ejabberd, plaintext listeners on
# loopback, every bus node with its defaults):
#   host      the name host (component `bridge.localhost`), BENCH_NAMES
#             holder processes each registering one name `worker-K`
#   sender    a client node: sends the terms and makes the calls
#   receiver  a second client node: the "client session" baseline (one
#             receiver process counts the terms; serves `echo`)
#
# What it measures:
#
#   1. Memory per name. :erlang.memory/0 readings, every process of the
#      VM garbage collected before each, the bench process's own memory
#      left out: (a) before the holders exist, (b) after BENCH_NAMES idle
#      holder processes are spawned, not registered (b - a: what the
#      processes themselves cost, left out of the figure), (c) after each
#      of them has called `Bus.register(host, name)`, all at once. Memory
#      per name = (c - b) / BENCH_NAMES: the total with the idle holders'
#      memory subtracted, measured on the same processes (a separate set of
#      control processes, spawned and stopped before, made the figure
#      swing by +-500 bytes per name from run to run: memory of dead
#      processes is freed late, heaps are sized in steps). Broken down: the
#      bus process (Process.info(host, :memory) after GC), its names ETS
#      table (:ets.info(tab, :memory) words), the holders' own growth (the
#      host's monitor), the rest. Registrations/s = BENCH_NAMES / (the
#      first :register order -> the last holder has its :ok). At the end,
#      every holder exits (:normal) and the time until the host has
#      released all names (its table empty) gives releases/s.
#   2. Routing: the sender node sends BENCH_NAMES_N terms `{:n, i,
#      "payload"}` from one process, round robin over the names (term i to
#      name i rem BENCH_NAMES), `delivery: :server` (BENCH_NAMES_DELIVERY);
#      every holder counts its share, checks that each term is its own,
#      new (one :atomics slot per term) and in order, and tells the
#      collector when it has them all. deliveries/s = N / (first send ->
#      the last holder has its share). Beside it the same N terms from the
#      sender node to the receiver node (one receiver process). On
#      :queue_full the sender waits 1 ms and sends again. One unrecorded
#      warm-up round each (BENCH_NAMES_WARMUP_N), then BENCH_NAMES_ROUNDS
#      rounds, the two rows interleaved; medians. Anything lost, duplicated,
#      misrouted, or a send that failed: the run raises.
#   3. Calls: BENCH_NAMES_CALLS calls `echo({:c, i})` from
#      BENCH_NAMES_CALLERS concurrent caller processes on the sender node
#      (each one call at a time), round robin over the names (the holder
#      answers with `Bus.reply(call, x)`), against the same calls to the
#      receiver node serving `Bus.serve(node, "echo", fn x -> x end)`.
#      calls/s, latency p50/p99; warm-up, rounds and medians as in 2. A
#      call that fails or returns the wrong value: the run raises.
#   CPU time of ejabberd and of this VM (utime + stime from /proc) is taken
#   for every round of 2 and 3.
#
# Environment knobs (all optional):
#   BENCH_NAMES=10000          names (holder processes)
#   BENCH_NAMES_N=50000        terms per routing round
#   BENCH_NAMES_WARMUP_N=2000  terms of the unrecorded warm-up round
#   BENCH_NAMES_ROUNDS=3       rounds of routing and of calls
#   BENCH_NAMES_CALLS=5000     calls per round
#   BENCH_NAMES_WARMUP_CALLS=200
#   BENCH_NAMES_CALLERS=8      concurrent callers
#   BENCH_NAMES_DELIVERY=server  `delivery:` of the terms (server, none)
#   BENCH_NAMES_BATCH_DELAY=ms  `batch_delay` of all three sessions (default:
#                              the connection's, 5 ms; 0 turns batching off)
#   BENCH_OUT=names.md         the report's file name under bench/results/
#
# Writes bench/results/names.md (and prints it). Raises - non-zero exit -
# when the run itself broke (terms lost, a call failed, a step failed).

defmodule XmppBridge.Bench.Names do
  @moduledoc false

  alias XmppBridge.Bus
  alias XmppTestServer, as: TestServer

  @stall_ms 20_000

  def main do
    cfg = %{
      names: max(env_int("BENCH_NAMES", 10_000), 1),
      n: max(env_int("BENCH_NAMES_N", 50_000), 1),
      warmup_n: env_int("BENCH_NAMES_WARMUP_N", 2_000),
      rounds: max(env_int("BENCH_NAMES_ROUNDS", 3), 1),
      calls: max(env_int("BENCH_NAMES_CALLS", 5_000), 1),
      warmup_calls: env_int("BENCH_NAMES_WARMUP_CALLS", 200),
      callers: max(env_int("BENCH_NAMES_CALLERS", 8), 1),
      delivery: delivery(),
      batch_delay:
        case System.get_env("BENCH_NAMES_BATCH_DELAY") do
          v when v in [nil, ""] -> nil
          v -> String.to_integer(v)
        end
    }

    started = System.monotonic_time(:millisecond)
    log("starting ejabberd")

    srv =
      TestServer.start!(:ejabberd,
        accounts: [{"sender", "sender-secret"}, {"receiver", "receiver-secret"}],
        log_level: "warning"
      )

    log(
      "ejabberd up (c2s plain port #{srv.ports.c2s_plain}, component port #{srv.ports.component})"
    )

    report =
      try do
        run(cfg, srv, started)
      after
        TestServer.stop(srv)
      end

    write_report(report, "names.md")
  end

  defp run(cfg, srv, started) do
    load0 = loadavg()

    extra = if cfg.batch_delay, do: [batch_delay: cfg.batch_delay], else: []
    host = start_host(srv, extra)
    discard = spawn_link(&discard_loop/0)
    sender = start_client(srv, "sender", discard, extra)
    sink = spawn_link(fn -> idle(%{k: 0, name: nil}) end)
    receiver = start_client(srv, "receiver", sink, extra)
    :ok = Bus.serve(receiver, "echo", fn x -> x end)

    log(
      "name host #{Bus.jid(host)} and client nodes #{Bus.jid(sender)}, #{Bus.jid(receiver)} online"
    )

    # 1. memory and registration
    {mem, holders} = memory_bench(cfg, host)

    names = %{
      label: "names",
      jids: holders |> Enum.map(&Bus.jid(host, &1.name)) |> List.to_tuple(),
      sinks: holders |> Enum.map(& &1.pid) |> List.to_tuple()
    }

    client = %{
      label: "client",
      jids: {Bus.jid(receiver)},
      sinks: {sink}
    }

    cpu = %{server: srv.os_pid}

    # 2. routing
    log("routing: warm-up")
    for t <- [names, client], do: route_round(cfg, cpu, sender, t, cfg.warmup_n)

    routing =
      for r <- 1..cfg.rounds, t <- [names, client] do
        res = route_round(cfg, cpu, sender, t, cfg.n)
        log("routing round #{r}, #{t.label}: #{rate(res.rate)} deliveries/s")
        {t.label, res}
      end

    # 3. calls
    log("calls: warm-up")
    for t <- [names, client], do: calls_round(cfg, cpu, sender, t, cfg.warmup_calls)

    calls =
      for r <- 1..cfg.rounds, t <- [names, client] do
        res = calls_round(cfg, cpu, sender, t, cfg.calls)
        log("calls round #{r}, #{t.label}: #{rate(res.rate)} calls/s")
        {t.label, res}
      end

    # 1b. releases: the holders exit
    release = release_bench(cfg, host, holders)

    for b <- [host, sender, receiver], do: Bus.stop(b)

    render(%{
      cfg: cfg,
      domain: srv.component_domain,
      mem: mem,
      release: release,
      routing: routing,
      calls: calls,
      load: {load0, loadavg()},
      secs: (System.monotonic_time(:millisecond) - started) / 1000
    })
  end

  # ---------------------------------------------------------------------------
  # nodes

  defp start_host(srv, extra) do
    {:ok, host} =
      Bus.start_link(
        [
          mode: :component,
          jid: srv.component_domain,
          password: srv.component_secret,
          host: srv.host,
          port: srv.ports.component,
          tls: :plain
        ] ++ extra
      )

    :ok = Bus.await_online(host, 30_000)
    host
  end

  defp start_client(srv, user, receiver, extra) do
    {:ok, bus} =
      Bus.start_link(
        [
          jid: TestServer.jid(srv, user),
          password: srv.accounts[user],
          host: srv.host,
          port: srv.ports.c2s_plain,
          tls: :plain,
          receiver: receiver
        ] ++ extra
      )

    :ok = Bus.await_online(bus, 30_000)
    bus
  end

  defp discard_loop do
    receive do
      _ -> discard_loop()
    end
  end

  # ---------------------------------------------------------------------------
  # holders (and the client baseline's receiver, which runs the same code)

  # Idle: registers when told, answers calls, counts a round when armed.
  def idle(st) do
    receive do
      {:register, host, from} ->
        send(from, {:registered, self(), Bus.register(host, st.name)})
        idle(st)

      {:arm, ref, stride, expected, from, tally} ->
        send(from, {:armed, ref})

        count(st, %{
          ref: ref,
          stride: stride,
          left: expected,
          next: st.k,
          from: from,
          tally: tally
        })

      {:xmpp_bridge_bus, :call, call, _from, "echo", [x]} ->
        :ok = Bus.reply(call, x)
        idle(st)

      {:xmpp_bridge_bus, :call, call, _from, _method, _args} ->
        :ok = Bus.reply_error(call, :no_method)
        idle(st)

      {:xmpp_bridge_bus, :message, _from, _term} ->
        # a term outside a round: counted as stray by whoever armed last
        :counters.add(:persistent_term.get({__MODULE__, :strays}), 1, 1)
        idle(st)

      :stop ->
        :ok
    end
  end

  defp count(st, %{left: 0} = r) do
    send(r.from, {:done, r.ref})
    idle(st)
  end

  defp count(st, r) do
    receive do
      {:xmpp_bridge_bus, :message, _from, {:n, i, "payload"}} when is_integer(i) ->
        # tally: {seen atomics (one slot per term), counters [unique, dups,
        # misrouted, out of order, others]}
        {seen, c} = r.tally

        cond do
          i < 0 or i >= :atomics.info(seen).size or rem(i, r.stride) != st.k ->
            :counters.add(c, 3, 1)

          :atomics.exchange(seen, i + 1, 1) == 1 ->
            :counters.add(c, 2, 1)

          true ->
            :counters.add(c, 1, 1)
            if i != r.next, do: :counters.add(c, 4, 1)
        end

        count(st, %{r | left: r.left - 1, next: i + r.stride})

      {:xmpp_bridge_bus, :message, _from, _other} ->
        {_, c} = r.tally
        :counters.add(c, 5, 1)
        count(st, r)
    end
  end

  defp spawn_idle(names) do
    for {name, k} <- Enum.with_index(names) do
      %{name: name, pid: spawn_link(fn -> idle(%{k: k, name: name}) end)}
    end
  end

  # ---------------------------------------------------------------------------
  # 1. memory per name, registrations/s

  defp memory_bench(cfg, host) do
    k = cfg.names
    names = for i <- 0..(k - 1), do: "worker-#{i}"
    :persistent_term.put({__MODULE__, :strays}, :counters.new(1, []))
    word = :erlang.system_info(:wordsize)
    tab = names_table!(host)

    # the holders, idle, not registered yet
    log("memory: #{k} idle holders")
    a = gc_memory()
    holders = spawn_idle(names)
    b = gc_memory()
    host0 = proc_memory(host)
    live0 = state_size(host)
    ets0 = :ets.info(tab, :memory) * word
    idle_procs = procs_memory(holders)

    # each registers its name, all at once
    log("memory: #{k} holders registering")
    me = self()
    t0 = now_us()
    for h <- holders, do: send(h.pid, {:register, host, me})

    bad =
      Enum.reduce(holders, [], fn _, bad ->
        receive do
          {:registered, _pid, :ok} -> bad
          {:registered, pid, other} -> [{pid, other} | bad]
        after
          60_000 -> raise "registrations did not finish"
        end
      end)

    t1 = now_us()
    if bad != [], do: raise("#{length(bad)} registrations failed, first: #{inspect(hd(bad))}")
    c = gc_memory()
    host1 = proc_memory(host)
    live1 = state_size(host)
    ets1 = :ets.info(tab, :memory) * word
    holder_procs = procs_memory(holders)

    # what the host says it has
    registered = Bus.registered(host)

    unless length(registered) == k and Enum.sort(names) == registered,
      do: raise("Bus.registered/1: #{length(registered)} names, expected #{k}")

    for h <- Enum.take_random(holders, 100) do
      unless Bus.whereis(host, h.name) == h.pid,
        do: raise("Bus.whereis(#{h.name}) is not its holder")
    end

    growth = c.total - b.total

    mem = %{
      names: k,
      idle_total: b.total - a.total,
      idle_procs: idle_procs,
      growth: growth,
      host: host1 - host0,
      live: live1 - live0,
      ets: ets1 - ets0,
      holders: holder_procs - idle_procs,
      by_kind:
        for kind <- [:processes, :ets, :binary, :atom, :code, :other] do
          {kind, kind_of(c, kind) - kind_of(b, kind)}
        end,
      reg_secs: (t1 - t0) / 1.0e6,
      reg_rate: k / ((t1 - t0) / 1.0e6),
      ets_rows: :ets.info(tab, :size)
    }

    log(
      "memory: #{per(growth, k)} bytes per name; #{rate(mem.reg_rate)} registrations/s " <>
        "(#{k} in #{ms(t1 - t0)} ms)"
    )

    {mem, holders}
  end

  defp release_bench(cfg, host, holders) do
    tab = names_table!(host)
    t0 = now_us()
    for h <- holders, do: send(h.pid, :stop)
    :ok = wait_until(fn -> :ets.info(tab, :size) == 0 end, 60_000)
    t1 = now_us()
    left = Bus.registered(host)
    if left != [], do: raise("#{length(left)} names still registered after their holders exited")
    %{secs: (t1 - t0) / 1.0e6, rate: cfg.names / ((t1 - t0) / 1.0e6)}
  end

  # The host's names table: the ETS table it owns (docs: `whereis/2` reads it).
  defp names_table!(host) do
    case Enum.filter(:ets.all(), &(:ets.info(&1, :owner) == host)) do
      [tab] -> tab
      tabs -> raise "expected one ETS table owned by the name host, got #{inspect(tabs)}"
    end
  end

  # :erlang.memory/0 after a GC of every process, without the bench
  # process's own memory (its heap is sized in steps, and holds the lists)
  defp gc_memory do
    Process.sleep(100)
    for p <- Process.list(), p != self(), do: :erlang.garbage_collect(p)
    :erlang.garbage_collect()
    {:memory, me} = Process.info(self(), :memory)
    m = Map.new(:erlang.memory())
    %{m | total: m.total - me, processes: m.processes - me}
  end

  # :system is everything but :processes; :other is what :system has beyond
  # the kinds listed beside it
  defp kind_of(m, :other), do: m.system - m.ets - m.binary - m.atom - m.code
  defp kind_of(m, kind), do: Map.fetch!(m, kind)

  # Bytes of the bus process's state as it lies in its heap (shared
  # subterms once), measured inside the process: the live data, whatever
  # size steps its heap has after a GC.
  defp state_size(bus) do
    me = self()
    word = :erlang.system_info(:wordsize)

    :sys.replace_state(bus, fn st ->
      send(me, {:state_size, :erts_debug.size(st) * word})
      st
    end)

    receive(do: ({:state_size, bytes} -> bytes))
  end

  defp proc_memory(pid) do
    case Process.info(pid, :memory) do
      {:memory, m} -> m
      nil -> 0
    end
  end

  defp procs_memory(procs), do: procs |> Enum.map(&proc_memory(&1.pid)) |> Enum.sum()

  # ---------------------------------------------------------------------------
  # 2. routing

  # One round: arm the receiving processes, start the clock and the sender,
  # stop the clock when every receiving process has its share.
  defp route_round(cfg, cpu, node, target, n) do
    :erlang.garbage_collect()
    size = tuple_size(target.jids)
    strays0 = :counters.get(:persistent_term.get({__MODULE__, :strays}), 1)
    tally = {:atomics.new(max(n, 1), []), :counters.new(5, [:write_concurrency])}
    ref = make_ref()

    shares = for k <- 0..(size - 1), do: {k, div(n, size) + if(k < rem(n, size), do: 1, else: 0)}

    armed =
      for {k, share} <- shares, share > 0 do
        send(elem(target.sinks, k), {:arm, ref, size, share, self(), tally})
        k
      end

    for _ <- armed, do: receive(do: ({:armed, ^ref} -> :ok))

    cpu0 = cpu_snapshot(cpu)
    t0 = now_us()
    flood = flood(node, target.jids, n, cfg.delivery)
    {done, t1} = await_done(ref, length(armed), tally, flood)
    cpu1 = cpu_snapshot(cpu)
    sent = flood_report(flood)

    {_, c} = tally
    [unique, dups, misrouted, out_of_order, others] = for i <- 1..5, do: :counters.get(c, i)
    strays = :counters.get(:persistent_term.get({__MODULE__, :strays}), 1) - strays0

    res = %{
      n: n,
      unique: unique,
      dups: dups,
      misrouted: misrouted,
      out_of_order: out_of_order,
      others: others,
      strays: strays,
      sent: sent,
      secs: (t1 - t0) / 1.0e6,
      rate: n / ((t1 - t0) / 1.0e6),
      cpu: cpu_diff(cpu0, cpu1)
    }

    problems =
      [
        done != length(armed) && "#{length(armed) - done} receivers never got their share",
        unique != n && "#{n - unique} of #{n} terms LOST",
        dups > 0 && "#{dups} duplicates",
        misrouted > 0 && "#{misrouted} terms at the wrong process",
        others > 0 && "#{others} unexpected terms",
        strays > 0 && "#{strays} terms outside a round",
        sent.errors > 0 && "#{sent.errors} sends refused (first: #{inspect(sent.first_error)})",
        sent.failed > 0 && "#{sent.failed} sends failed (first: #{inspect(sent.first_failure)})"
      ]
      |> Enum.filter(&is_binary/1)

    if problems != [] do
      raise "routing to #{target.label} (#{n} terms) broke: " <> Enum.join(problems, "; ")
    end

    res
  end

  # Waits for every armed receiver's {:done, ref}; gives up when no term
  # arrived for @stall_ms. {dones, time of the last}.
  defp await_done(ref, want, tally, flood) do
    {_, c} = tally
    await_done(ref, want, 0, c, :counters.get(c, 1), now_ms(), flood, now_us())
  end

  defp await_done(_ref, want, want, _c, _last, _since, _flood, t), do: {want, t}

  defp await_done(ref, want, done, c, last, since, flood, t) do
    receive do
      {:done, ^ref} -> await_done(ref, want, done + 1, c, last, since, flood, now_us())
    after
      1000 ->
        got = :counters.get(c, 1)

        cond do
          got != last ->
            await_done(ref, want, done, c, got, now_ms(), flood, t)

          now_ms() - since > @stall_ms ->
            log("no term for #{div(@stall_ms, 1000)} s: #{got} arrived, #{done}/#{want} done")
            {done, t}

          true ->
            await_done(ref, want, done, c, last, since, flood, t)
        end
    end
  end

  # One process sends n terms, term i to jids[i rem size]; it stays to
  # collect `:failed` reports until asked for them.
  defp flood(node, jids, n, delivery) do
    size = tuple_size(jids)

    spawn_link(fn ->
      t0 = now_us()

      {fulls, errors, first} =
        Enum.reduce(0..(n - 1)//1, {0, 0, nil}, fn i, acc ->
          bus_send(node, elem(jids, rem(i, size)), {:n, i, "payload"}, delivery, acc)
        end)

      flood_tail(%{
        send_secs: (now_us() - t0) / 1.0e6,
        queue_full: fulls,
        errors: errors,
        first_error: first,
        failed: 0,
        first_failure: nil
      })
    end)
  end

  defp bus_send(node, to, term, delivery, {fulls, errors, first}) do
    case Bus.send(node, to, term, delivery: delivery) do
      {:ok, _ref} ->
        {fulls, errors, first}

      {:error, %XmppBridge.Error{reason: :queue_full}} ->
        Process.sleep(1)
        bus_send(node, to, term, delivery, {fulls + 1, errors, first})

      {:error, error} ->
        {fulls, errors + 1, first || error}
    end
  end

  defp flood_tail(s) do
    receive do
      {:xmpp_bridge_bus, :failed, _ref, reason} ->
        flood_tail(%{s | failed: s.failed + 1, first_failure: s.first_failure || reason})

      {:report, from} ->
        send(from, {:flood_report, self(), s})
    end
  end

  defp flood_report(pid) do
    # failures the server reports come back within a round trip
    Process.sleep(200)
    send(pid, {:report, self()})

    receive do
      {:flood_report, ^pid, s} -> s
    after
      300_000 -> raise "the sender did not finish"
    end
  end

  # ---------------------------------------------------------------------------
  # 3. calls

  defp calls_round(cfg, cpu, node, target, count) do
    :erlang.garbage_collect()
    size = tuple_size(target.jids)
    callers = max(min(cfg.callers, count), 1)
    parent = self()
    cpu0 = cpu_snapshot(cpu)
    t0 = now_us()

    pids =
      for c <- 0..(callers - 1) do
        spawn_link(fn ->
          res =
            Enum.reduce(c..(count - 1)//callers, {[], 0, nil}, fn i, {us, errors, first} ->
              t = now_us()

              case Bus.call(node, elem(target.jids, rem(i, size)), "echo", [{:c, i}], 10_000) do
                {:ok, {:c, ^i}} -> {[now_us() - t | us], errors, first}
                other -> {us, errors + 1, first || other}
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
          300_000 -> raise "calls to #{target.label} did not finish"
        end
      end)

    t1 = now_us()
    cpu1 = cpu_snapshot(cpu)

    if errors > 0,
      do:
        raise("calls to #{target.label}: #{errors} of #{count} failed, first: #{inspect(first)}")

    s = Enum.sort(us)

    %{
      count: count,
      secs: (t1 - t0) / 1.0e6,
      rate: count / ((t1 - t0) / 1.0e6),
      p50: nearest_rank(s, 50),
      p99: nearest_rank(s, 99),
      cpu: cpu_diff(cpu0, cpu1)
    }
  end

  defp nearest_rank([], _p), do: 0

  defp nearest_rank(sorted, p) do
    n = length(sorted)
    Enum.at(sorted, min(max(ceil(p / 100 * n), 1), n) - 1)
  end

  # ---------------------------------------------------------------------------
  # report

  defp render(r) do
    %{cfg: cfg, mem: mem} = r
    k = mem.names
    {load0, load1} = r.load

    mem_rows = [
      [
        "**growth of `:erlang.memory(:total)`, idle holders subtracted**",
        bytes(mem.growth),
        "**#{per(mem.growth, k)}**"
      ],
      [
        "- the bus process (`Process.info(host, :memory)`, after GC)",
        bytes(mem.host),
        per(mem.host, k)
      ],
      [
        "&nbsp;&nbsp;(of which the live data of its state, `:erts_debug.size/1`)",
        bytes(mem.live),
        per(mem.live, k)
      ],
      ["- its names ETS table (#{mem.ets_rows} rows)", bytes(mem.ets), per(mem.ets, k)],
      [
        "- the holders' own growth (the host's monitor, ...)",
        bytes(mem.holders),
        per(mem.holders, k)
      ],
      [
        "- elsewhere",
        bytes(mem.growth - mem.host - mem.ets - mem.holders),
        per(mem.growth - mem.host - mem.ets - mem.holders, k)
      ],
      [
        "(not counted) #{k} idle holder processes, `:erlang.memory(:total)`",
        bytes(mem.idle_total),
        "#{per(mem.idle_total, k)} per process"
      ],
      [
        "(not counted) the same, sum of their `Process.info(pid, :memory)`",
        bytes(mem.idle_procs),
        "#{per(mem.idle_procs, k)} per process"
      ]
    ]

    by_kind =
      mem.by_kind
      |> Enum.reject(fn {_, v} -> v == 0 end)
      |> Enum.map_join(", ", fn {kind, v} -> "#{kind} #{per(v, k)}" end)

    route = medians(r.routing)
    call = medians(r.calls)

    route_rows =
      for {label, name} <- [
            {"names", "sender node -> #{k} names on the host (round robin)"},
            {"client", "sender node -> receiver node (one receiver process)"}
          ] do
        m = route[label]

        [
          name,
          "**#{rate(m.rate)}**",
          Enum.map_join(m.all, ", ", &rate(&1.rate)),
          "0 (#{cfg.rounds} x #{cfg.n})",
          if(m.out_of_order == 0, do: "yes", else: "#{m.out_of_order} out of order"),
          Float.to_string(Float.round(m.send_secs, 2)),
          to_string(m.queue_full),
          cpu_pct(m, :server),
          cpu_pct(m, :vm),
          cpu_per(m, :server, cfg.n),
          cpu_per(m, :vm, cfg.n)
        ]
      end

    call_rows =
      for {label, name} <- [
            {"names", "sender node -> #{k} names (the holder replies)"},
            {"client", "sender node -> receiver node (`Bus.serve`)"}
          ] do
        m = call[label]

        [
          name,
          "**#{rate(m.rate)}**",
          Enum.map_join(m.all, ", ", &rate(&1.rate)),
          to_string(m.p50),
          to_string(m.p99),
          "0",
          cpu_pct(m, :server),
          cpu_pct(m, :vm),
          cpu_per(m, :server, cfg.calls),
          cpu_per(m, :vm, cfg.calls)
        ]
      end

    route_ratio = route["names"].rate / route["client"].rate
    call_ratio = call["names"].rate / call["client"].rate

    """
    # Name host benchmark

    #{Date.utc_today()}, #{cpu_model()}, #{:erlang.system_info(:logical_processors_available)} logical CPUs shared by ejabberd and this VM; load average #{load0} before, #{load1} after. Run time #{round(r.secs)} s.

    ## Memory per name (#{k} names, #{k} processes each holding one)

    | | bytes | bytes / name |
    |---|---:|---:|
    #{table(mem_rows)}

    By `:erlang.memory/0` kind (bytes / name, idle holders subtracted): #{by_kind}.

    - Registering: #{k} names in #{ms_f(mem.reg_secs)} ms, **#{rate(mem.reg_rate)} registrations/s**
      (every holder calls `Bus.register/2` at the same time).
    - Releasing: the #{k} holders exit (`:normal`); the host has released every name after
      #{ms_f(r.release.secs)} ms, **#{rate(r.release.rate)} releases/s**.

    ## Routing: #{cfg.n} terms from one process of a client node (#{cfg.rounds} rounds, medians)

    | | deliveries/s | each round | loss | in order | send loop (s) | queue_full | ejabberd CPU | this VM's CPU | ejabberd CPU (us / term) | this VM's CPU (us / term) |
    |---|---:|---|---|---|---:|---:|---:|---:|---:|---:|
    #{table(route_rows)}

    **names / client: #{pct(route_ratio)}.**

    ## Calls: #{cfg.calls} calls of `echo` from #{cfg.callers} concurrent callers (#{cfg.rounds} rounds, medians)

    | | calls/s | each round | p50 (us) | p99 (us) | errors | ejabberd CPU | this VM's CPU | ejabberd CPU (us / call) | this VM's CPU (us / call) |
    |---|---:|---|---:|---:|---:|---:|---:|---:|---:|
    #{table(call_rows)}

    **names / client: #{pct(call_ratio)}.**

    ## How

    - One private ejabberd #{ejabberd_version()} (XmppTestServer, log level warning): the name
      host is `XmppBridge.Bus` with `mode: :component` on its external component listener
      (XEP-0114, `#{r.domain}`, plaintext, loopback); the
      client nodes `sender` and `receiver` are `XmppBridge.Bus` client sessions on the plaintext
      c2s listener (XEP-0198). Every node with its defaults (window 100, max_mailbox 10,000)#{batch_note(cfg)}.
    - Memory: every process of the VM garbage collected before each `:erlang.memory/0` reading,
      the bench process's own memory taken out of it. Readings before the holders exist, after
      the #{k} holders are spawned (idle, not registered: the "not counted" rows) and after each
      has registered its name; the figure is the last minus the second, i.e. the total with the
      idle holders subtracted, measured on the same processes. The rows under it are parts of
      that figure, before/after registering: the bus process's own memory (its maps of names and
      holders; a heap after GC is sized in steps, so this row moves between runs, the live
      data of its state, measured inside the process with `:erts_debug.size/1`, does not), its
      ETS table (a `{pid, jid}` and a `{name, pid}` row per name; a binary stored off-heap,
      over 64 bytes or built by appending, counts as `binary` instead), the holders' summed
      `Process.info(pid, :memory)`.
    - Routing: `Bus.send(sender, jid, {:n, i, "payload"}, delivery: :#{cfg.delivery})` from one
      process, term i to name `worker-(i rem #{k})` (`Bus.jid/2`) or to the receiver node's JID;
      on `:queue_full` wait 1 ms and again. Every receiving process counts its share and checks
      it is its own, new (one `:atomics` slot per term) and in order; the clock stops when the
      last has its share. Zero loss checked in every round (the run raises otherwise): all N
      unique terms at the right process, no duplicate, no refused or failed send. One
      unrecorded warm-up round of #{cfg.warmup_n} each, then the two rows in turn.
    - Calls: `Bus.call(sender, jid, "echo", [{:c, i}], 10_000)`, #{cfg.callers} caller processes
      each one call at a time, round robin over the names; each answer checked. A name answers
      from its holder (`Bus.reply/2`), the receiver node from a process per call of its own
      (`Bus.serve/3`). One unrecorded warm-up round of #{cfg.warmup_calls} calls each.
    - CPU columns: utime + stime from /proc over the round's wall clock, % of one core; "this
      VM" holds the host, both client nodes and every holder.
    - Erlang/OTP #{:erlang.system_info(:otp_release)}, Elixir #{System.version()}, #{:erlang.system_info(:schedulers_online)} schedulers; VM flags: #{vm_flags()}.
    """
  end

  defp batch_note(%{batch_delay: nil}),
    do:
      ", sessions with the default `batch_delay` (5 ms: a busy stream's next read may wait up to that)"

  defp batch_note(%{batch_delay: d}), do: ", but `batch_delay: #{d}` on all three sessions"

  # label => median of the rounds (the round with the median rate), all rounds
  defp medians(rounds) do
    rounds
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
    |> Map.new(fn {label, rs} ->
      sorted = Enum.sort_by(rs, & &1.rate)
      mid = Enum.at(sorted, div(length(sorted), 2))

      m =
        if rem(length(sorted), 2) == 0,
          do: %{mid | rate: (mid.rate + Enum.at(sorted, div(length(sorted), 2) - 1).rate) / 2},
          else: mid

      m = Map.put(m, :all, rs)

      m =
        if Map.has_key?(m, :sent),
          do:
            Map.merge(m, %{
              send_secs: median(Enum.map(rs, & &1.sent.send_secs)),
              queue_full: rs |> Enum.map(& &1.sent.queue_full) |> Enum.sum(),
              out_of_order: rs |> Enum.map(& &1.out_of_order) |> Enum.sum()
            }),
          else: m

      {label, Map.put(m, :cpu_rounds, Enum.map(rs, &{&1.cpu, &1.secs}))}
    end)
  end

  # median over the rounds of a party's CPU: % of one core, or us per item
  defp cpu_pct(m, who),
    do: pct(median(for {cpu, secs} <- m.cpu_rounds, do: cpu[who] / 1000 / secs))

  defp cpu_per(m, who, n),
    do:
      :erlang.float_to_binary(median(for({cpu, _} <- m.cpu_rounds, do: cpu[who])) * 1000 / n,
        decimals: 1
      )

  defp median(values) do
    s = Enum.sort(values)
    n = length(s)

    if rem(n, 2) == 1,
      do: Enum.at(s, div(n, 2)),
      else: (Enum.at(s, div(n, 2) - 1) + Enum.at(s, div(n, 2))) / 2
  end

  defp table(rows),
    do: Enum.map_join(rows, "\n", fn cols -> "| " <> Enum.join(cols, " | ") <> " |" end)

  defp write_report(report, default_name) do
    IO.puts("\n" <> report)
    path = Path.join([__DIR__, "results", System.get_env("BENCH_OUT", default_name)])
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, report)
    IO.puts("(written to #{Path.relative_to_cwd(path)})")
  end

  # ---------------------------------------------------------------------------
  # CPU time (utime + stime from /proc) of this VM and ejabberd, in ms

  defp cpu_snapshot(%{server: server}), do: %{vm: cpu_ticks("self"), server: cpu_ticks(server)}

  defp cpu_diff(a, b), do: Map.new(b, fn {k, v} -> {k, (v - a[k]) * 1000 / clk_tck()} end)

  defp cpu_ticks(nil), do: 0

  defp cpu_ticks(pid) do
    # the fields after the command name (in parentheses): utime, stime are 14 and 15
    with {:ok, stat} <- File.read("/proc/#{pid}/stat"),
         [_, rest] <- Regex.run(~r/^.*\)\s(.*)$/s, stat),
         fields = String.split(rest),
         {utime, ""} <- Integer.parse(Enum.at(fields, 11, "")),
         {stime, ""} <- Integer.parse(Enum.at(fields, 12, "")) do
      utime + stime
    else
      _ -> 0
    end
  end

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
  # helpers

  defp wait_until(fun, timeout) do
    deadline = now_ms() + timeout

    Stream.repeatedly(fn ->
      cond do
        fun.() -> :ok
        now_ms() > deadline -> :timeout
        true -> Process.sleep(2) && nil
      end
    end)
    |> Enum.find(& &1)
  end

  defp delivery do
    case System.get_env("BENCH_NAMES_DELIVERY", "server") do
      "server" -> :server
      "none" -> :none
      other -> raise "BENCH_NAMES_DELIVERY=#{other}: expected server or none"
    end
  end

  defp ejabberd_version do
    case System.cmd("dpkg-query", ["-W", "-f", "${Version}", "ejabberd"], stderr_to_stdout: true) do
      {v, 0} -> v
      _ -> "(version unknown)"
    end
  rescue
    _ -> "(version unknown)"
  end

  defp cpu_model do
    with {:ok, text} <- File.read("/proc/cpuinfo"),
         [_, name] <- Regex.run(~r/^model name\s*:\s*(.+)$/m, text) do
      String.trim(name)
    else
      _ -> "unknown CPU"
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
  defp now_ms, do: System.monotonic_time(:millisecond)
  defp ms(us), do: div(us, 1000)
  defp ms_f(secs), do: :erlang.float_to_binary(secs * 1000, decimals: 0)
  defp rate(r), do: :erlang.float_to_binary(r / 1, decimals: 0)
  defp pct(x), do: "#{:erlang.float_to_binary(x * 100, decimals: 1)}%"
  defp per(bytes, n), do: :erlang.float_to_binary(bytes / n, decimals: 0)

  defp bytes(b) when abs(b) >= 1_048_576,
    do: "#{b} (#{:erlang.float_to_binary(b / 1_048_576, decimals: 1)} MiB)"

  defp bytes(b), do: to_string(b)

  defp log(text), do: IO.puts(:stderr, "[names] " <> text)

  defp env_int(name, default) do
    case System.get_env(name) do
      v when v in [nil, ""] -> default
      v -> String.to_integer(v)
    end
  end
end

XmppBridge.Bench.Names.main()
