# The job farm demo (`make demo`): an Elixir coordinator and workers in
# Elixir and in Rust, each an OS process of its own, talking over XMPP
# alone, through a private ejabberd on loopback.
#
#   - the workers (demos/job_farm/worker.exs, native/xmpp_bridge/examples/job_worker.rs)
#     join the group "jobs" with their language, slots and load in their
#     presence; the coordinator (this script, also in the group, with
#     `discovery: "jobs"`) finds them there, monitors them and asks them
#     what they serve;
#   - jobs are announced to the group in batches (broadcast) and dispatched
#     by RPC (`Bus.call/5` with a deadline per job); results come back as
#     terms and are checked against the coordinator's own answer;
#   - before the run, a welcome and some jobs are sent to a worker that is
#     not online (rs3): the server stores them, and rs3, started half-way,
#     gets them when it logs in and sends the results back as messages;
#   - at 30% the demo kills a Rust worker with `kill -9`: the coordinator
#     learns it from the DOWN of its `Bus.monitor/2` and dispatches that
#     worker's unfinished jobs again.
#
# A live view (ANSI redraw on a terminal, plain lines otherwise, or with
# JOB_FARM_PLAIN=1) and a summary; exits 1 when a job is lost, done twice
# or answered wrongly. JOB_FARM_JOBS sets the number of jobs (default 400).
#
# What the coordinator posts to the group is text (a readable <body/> for
# any XMPP client in the room): the batches, progress every 10%, the
# crash, the end. It also serves `submit` (JSON `[{"n": 5000, "ms": 100}]`
# from any client): a job queued like the others, answered with its
# result. JOB_FARM_GUEST=user:password adds an account for such a client:
# the farm prints how to reach it, waits (up to 60 s) for that client to
# join the group before the workers start, and does not end before a job
# it submitted is answered (README "The job farm demo").
#
# `--cluster` (`make demo-cluster`) runs the farm on a 2-node ejabberd
# cluster (XmppTestServer.Cluster): the coordinator and the Elixir workers
# on server node A, the Rust workers on B, every session given both
# servers. After the worker crash, the demo kills server node A with
# kill -9: its sessions fail over to B, the group's room (which lived on
# A) is made again on B and rejoined, and no monitor may fire for a node
# that did not die. Then A is restarted (it rejoins the cluster) and one
# more Elixir worker, ex3, logs in, on A again.

alias XmppBridge.Bus

defmodule JobFarm do
  @group "jobs"
  @root Path.expand("..", __DIR__)
  @queued_for_late 10
  @workers [
    %{name: "ex1", lang: "elixir", slots: 2, late: false},
    %{name: "ex2", lang: "elixir", slots: 2, late: false},
    %{name: "rs1", lang: "rust", slots: 3, late: false},
    %{name: "rs2", lang: "rust", slots: 3, late: false},
    %{name: "rs3", lang: "rust", slots: 3, late: true}
  ]
  @victim "rs2"
  @late "rs3"
  @kill_at 0.30
  @late_at 0.50
  @batch 50
  @farm_timeout_ms 55_000
  # --cluster: the extra worker started once server node A is back, and
  # when A is killed (after the worker crash was seen).
  @after_restart %{name: "ex3", lang: "elixir", slots: 2, late: true}
  @server_kill_at 0.40

  ## Setup

  def main do
    t0 = now_ms()
    cluster? = "--cluster" in System.argv()
    default_jobs = if cluster?, do: "800", else: "400"
    total = String.to_integer(System.get_env("JOB_FARM_JOBS", default_jobs))
    tty = System.get_env("JOB_FARM_PLAIN") in [nil, ""] and tty?()
    view = %{tty: tty, t0: t0, drawn: 0, next_pct: 10, last: t0}

    IO.puts(
      if cluster?,
        do: "== The job farm on a 2-node ejabberd cluster: BEAM nodes on A, Rust nodes on B",
        else:
          "== The job farm: an Elixir coordinator, workers in Elixir and Rust, one XMPP server"
    )

    rust_bin = build_rust_worker!()
    guest = guest_account()
    workers = workers(cluster?)
    accounts = [{"coord", "coord-pw"} | for(w <- workers, do: {w.name, w.name <> "-pw"})]
    accounts = accounts ++ List.wrap(guest)

    {srv, cluster, stop} =
      if cluster? do
        {:ok, cluster} = XmppTestServer.Cluster.start(accounts: accounts)
        {hd(cluster.nodes), cluster, fn -> XmppTestServer.Cluster.stop(cluster) end}
      else
        {:ok, srv} = XmppTestServer.start(:ejabberd, accounts: accounts)
        {srv, nil, fn -> XmppTestServer.stop(srv) end}
      end

    try do
      run(%{
        srv: srv,
        cluster: cluster,
        workers: workers,
        total: total,
        view: view,
        rust_bin: rust_bin,
        guest: guest,
        t0: t0,
        server_ms: now_ms() - t0
      })
    after
      stop.()
    end
  end

  defp workers(false), do: @workers
  defp workers(true), do: @workers ++ [@after_restart]

  # Where a node connects: the server, or (--cluster) both servers, the
  # BEAM nodes' first choice A and the Rust nodes' B.
  defp conn_opts(%{cluster: nil, srv: srv}, _lang),
    do: [host: srv.host, port: srv.ports.c2s_plain]

  defp conn_opts(%{cluster: cluster}, lang) do
    [a, b] = XmppTestServer.Cluster.servers(cluster)
    [servers: if(lang == "rust", do: [b, a], else: [a, b])]
  end

  defp conn_args(ctx, lang) do
    case conn_opts(ctx, lang) do
      [host: h, port: p] ->
        ["--host", h, "--port", Integer.to_string(p)]

      [servers: servers] ->
        ["--servers", Enum.map_join(servers, ",", fn {h, p} -> "#{h}:#{p}" end)]
    end
  end

  # The coordinator's heartbeat timeout: on a cluster a failover (about a
  # second here) must not look like a death.
  defp heartbeat_timeout(%{cluster: nil}), do: 1000
  defp heartbeat_timeout(_ctx), do: 3000

  # Is the VM's stdout a terminal? (:io.columns/0 says no under -noshell
  # on OTP < 26, so Linux's /proc is asked first.)
  defp tty? do
    case File.read_link("/proc/self/fd/1") do
      {:ok, "/dev/pts/" <> _} -> true
      {:ok, "/dev/tty" <> _} -> true
      {:ok, _} -> false
      {:error, _} -> match?({:ok, _}, :io.columns())
    end
  end

  defp build_rust_worker! do
    args = ~w(build --release -q -p xmpp_bridge --example job_worker)
    {out, status} = System.cmd("cargo", args, cd: @root, stderr_to_stdout: true)
    if status != 0, do: raise("cargo build of the job_worker example failed:\n" <> out)

    target =
      case System.get_env("CARGO_TARGET_DIR") do
        dir when dir in [nil, ""] -> Path.join(@root, "target")
        dir -> dir
      end

    Path.join([target, "release", "examples", "job_worker"])
  end

  defp run(ctx) do
    %{srv: srv, total: total} = ctx

    {:ok, bus} =
      Bus.start_link(
        [
          jid: XmppTestServer.jid(srv, "coord"),
          password: "coord-pw",
          tls: :plain,
          receiver: self(),
          heartbeat: 500,
          heartbeat_timeout: heartbeat_timeout(ctx),
          reconnect: [initial: 200, max: 2000],
          discovery: @group
        ] ++ conn_opts(ctx, "elixir")
      )

    :ok = Bus.await_online(bus)
    :ok = Bus.join(bus, @group, events: true)
    :ok = Bus.serve(bus, "submit", submit_handler(self()))

    jobs = make_jobs(total)
    expected = expected_primes(jobs)
    late_ids = Enum.to_list(1..min(@queued_for_late, total))
    rpc_ids = Enum.to_list((length(late_ids) + 1)..total//1)

    s = %{
      bus: bus,
      srv: srv,
      ctx: ctx,
      total: total,
      jobs: jobs,
      expected: expected,
      view: ctx.view,
      # job ids not yet announced, and announced ones waiting for a worker
      unannounced: rpc_ids,
      pending: :queue.new(),
      batches: 0,
      attempts: %{},
      next_attempt: 1,
      results: %{},
      wrong: [],
      latencies: [],
      redispatched: [],
      workers: Map.new(ctx.workers, &{&1.name, new_worker(&1)}),
      order: Enum.map(ctx.workers, & &1.name),
      downs: [],
      # --cluster: what happened to the servers
      server_killed_at: nil,
      moved_ms: nil,
      restart: nil,
      restarted_ms: nil,
      placement: %{},
      late_ids: MapSet.new(late_ids),
      late_refs: %{},
      late_delivered: 0,
      late_started_at: nil,
      killed_at: nil,
      down_after: nil,
      farm_t0: nil,
      farm_t1: nil,
      events: [],
      # jobs submitted by RPC (`submit`): id => what the caller waits for
      submitted: %{},
      next_post_pct: 10,
      guest_jid: nil,
      guest_wait_ms: 0,
      closing: false
    }

    s =
      event(
        s,
        "#{servers_up(ctx)} in #{ctx.server_ms} ms; coordinator online as #{Bus.jid(bus)}, in group #{@group}"
      )

    s = queue_for_late(s, late_ids)
    s = await_guest(s)

    s =
      Enum.reduce(ctx.workers, s, fn w, s -> if w.late, do: s, else: start_worker(s, w.name) end)

    s = loop(s)
    finish(s)
  end

  defp new_worker(w) do
    Map.merge(w, %{
      jid: nil,
      port: nil,
      os_pid: nil,
      state: if(w.late, do: :offline, else: :starting),
      text: nil,
      load: 0,
      inflight: MapSet.new(),
      done: 0,
      reported: 0,
      mon: nil,
      log: [],
      exit: nil
    })
  end

  # n in 5,000..40,000 (primes to count), ms in 60..260 (the rest of the work).
  defp make_jobs(total) do
    :rand.seed(:exsss, {7, 11, 13})
    Map.new(1..total, fn id -> {id, {5_000 + :rand.uniform(35_000), 59 + :rand.uniform(201)}} end)
  end

  # The coordinator's own answers: one sieve up to the largest n.
  defp expected_primes(jobs) do
    ns = jobs |> Map.values() |> Enum.map(&elem(&1, 0)) |> Enum.uniq() |> Enum.sort()
    max = List.last(ns)
    sieve = :atomics.new(max, [])

    for i <- 2..max,
        i * i <= max,
        :atomics.get(sieve, i) == 0,
        j <- (i * i)..max//i,
        do: :atomics.put(sieve, j, 1)

    {counts, _, _} =
      Enum.reduce(ns, {%{}, 1, 0}, fn n, {acc, from, count} ->
        count = count + Enum.count((from + 1)..n//1, &(&1 >= 2 and :atomics.get(sieve, &1) == 0))
        {Map.put(acc, n, count), n, count}
      end)

    counts
  end

  # Terms for rs3, which is not online: ejabberd keeps them in its offline
  # storage; receipts come when rs3 has them.
  defp queue_for_late(s, ids) do
    to = XmppTestServer.jid(s.srv, @late)
    welcome = {:welcome, %{group: @group, coordinator: Bus.jid(s.bus), jobs_queued: length(ids)}}
    opts = [delivery: :confirmed, deadline: 55_000]
    {:ok, ref} = Bus.send(s.bus, to, welcome, opts)

    refs =
      for id <- ids, into: %{ref => :welcome} do
        {n, ms} = s.jobs[id]
        {:ok, ref} = Bus.send(s.bus, to, {:job, id, n, ms}, opts)
        {ref, id}
      end

    :ok = Bus.sync(s.bus)
    s = put_in(s.workers[@late].inflight, MapSet.new(ids))

    event(
      %{s | late_refs: refs},
      "#{@late} is offline: sent it a welcome and jobs #{range(ids)} anyway; the server stores them"
    )
  end

  defp start_worker(s, name) do
    w = s.workers[name]
    pw = w.name <> "-pw"

    common =
      ["--jid", XmppTestServer.jid(s.srv, name)] ++
        conn_args(s.ctx, w.lang) ++
        [
          "--group",
          @group,
          "--slots",
          Integer.to_string(w.slots)
        ]

    {exe, args} =
      case w.lang do
        "rust" ->
          {s.ctx.rust_bin, common}

        "elixir" ->
          # The build's applications (xmpp_bridge and what its .app lists), no Mix.
          lib = Path.dirname(:code.lib_dir(:xmpp_bridge))

          paths =
            for ebin <- Path.wildcard(Path.join(lib, "*/ebin")), arg <- ["-pa", ebin], do: arg

          erl = "+fnu +S 2 +sbwt none +sbwtdcpu none +sbwtdio none"
          script = Path.join(@root, "demos/job_farm/worker.exs")
          {System.find_executable("elixir"), ["--erl", erl] ++ paths ++ [script | common]}
      end

    port =
      Port.open({:spawn_executable, exe}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 16_384},
        args: args,
        env: [{~c"JOB_WORKER_PASSWORD", String.to_charlist(pw)}]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    s = put_in(s.workers[name], %{w | port: port, os_pid: os_pid, state: :starting})
    event(s, "started #{name} (#{w.lang}, OS pid #{os_pid})")
  end

  ## The loop

  defp loop(s) do
    s = s |> announce() |> dispatch() |> triggers() |> post_progress() |> tick()

    cond do
      map_size(s.results) == s.total and guest_served?(s) ->
        %{s | farm_t1: now_ms()}

      now_ms() - s.ctx.t0 - s.ctx.server_ms - s.guest_wait_ms > @farm_timeout_ms ->
        event(
          %{s | farm_t1: now_ms()},
          if(map_size(s.results) == s.total,
            do: "giving up waiting for a job from the guest: #{@farm_timeout_ms} ms",
            else:
              "giving up: #{@farm_timeout_ms} ms after the server was up and not every job done"
          )
        )

      true ->
        receive do
          msg -> s |> handle(msg) |> loop()
        after
          100 -> loop(s)
        end
    end
  end

  # The view is drawn again 10 times a second.
  defp tick(s) do
    if now_ms() - s.view.last >= 100, do: put_in(redraw(s).view.last, now_ms()), else: s
  end

  # A batch is announced to the group when fewer jobs wait than there are slots.
  defp announce(%{unannounced: []} = s), do: s

  defp announce(s) do
    slots =
      s.workers |> Map.values() |> Enum.filter(&(&1.state == :online)) |> Enum.map(& &1.slots)

    if slots != [] and :queue.len(s.pending) < Enum.sum(slots) do
      {batch, rest} = Enum.split(s.unannounced, @batch)
      n = s.batches + 1

      post(
        s,
        "batch #{n}: jobs #{range(batch)} queued, #{workers_online(length(slots))} (#{Enum.sum(slots)} slots)"
      )

      # The discovery group's members: the nodes online.
      {:ok, members} = Bus.nodes(s.bus)
      pending = Enum.reduce(batch, s.pending, &:queue.in/2)
      s = %{s | unannounced: rest, pending: pending, batches: n, farm_t0: s.farm_t0 || now_ms()}

      event(
        s,
        "batch #{n}: jobs #{range(batch)} announced to #{@group} (#{others(length(members) - 1)})"
      )
    else
      s
    end
  end

  # Free slots of online workers, the least busy first, take waiting jobs.
  defp dispatch(s) do
    free =
      for {name, w} <- s.workers,
          w.state == :online,
          MapSet.size(w.inflight) < w.slots,
          do: {MapSet.size(w.inflight) / w.slots, name}

    case {Enum.min(free, fn -> nil end), :queue.out(s.pending)} do
      {nil, _} ->
        s

      {_, {:empty, _}} ->
        s

      {{_, name}, {{:value, id}, rest}} ->
        %{s | pending: rest} |> call_job(name, id) |> dispatch()
    end
  end

  defp call_job(s, name, id) do
    w = s.workers[name]
    {n, ms} = s.jobs[id]
    aid = s.next_attempt
    coord = self()
    bus = s.bus
    jid = w.jid

    spawn(fn ->
      t = System.monotonic_time(:microsecond)
      result = Bus.call(bus, jid, "job", [id, n, ms], ms + 2_000)
      send(coord, {:rpc, aid, result, System.monotonic_time(:microsecond) - t})
    end)

    attempt = %{id: id, worker: name, cancelled: false}
    s = put_in(s.workers[name].inflight, MapSet.put(w.inflight, id))
    %{s | attempts: Map.put(s.attempts, aid, attempt), next_attempt: aid + 1}
  end

  defp done_count(s), do: map_size(s.results)

  defp triggers(s) do
    victim = s.workers[@victim]
    late = s.workers[@late]

    cond do
      s.killed_at == nil and done_count(s) >= @kill_at * s.total and victim.state == :online and
          MapSet.size(victim.inflight) > 0 ->
        {_, 0} = System.cmd("kill", ["-9", Integer.to_string(victim.os_pid)])
        s = %{s | killed_at: now_ms()}

        post(
          s,
          "crash on purpose: kill -9 #{@victim} with jobs #{range(victim.inflight)} in flight"
        )

        event(
          s,
          "kill -9 #{@victim} (OS pid #{victim.os_pid}) with jobs #{range(victim.inflight)} in flight"
        )

      late.state == :offline and done_count(s) >= @late_at * s.total ->
        s = %{s | late_started_at: now_ms()}
        start_worker(s, @late)

      s.ctx.cluster != nil ->
        cluster_triggers(s)

      true ->
        s
    end
  end

  ## --cluster: server node A dies, and comes back

  defp servers_up(%{cluster: nil, srv: srv}),
    do: "ejabberd up on 127.0.0.1:#{srv.ports.c2s_plain}"

  defp servers_up(%{cluster: cluster}) do
    [{_, a}, {_, b}] = XmppTestServer.Cluster.servers(cluster)
    "ejabberd cluster up (A on 127.0.0.1:#{a}, B on 127.0.0.1:#{b}, joined)"
  end

  # After the worker crash was seen: kill -9 of server node A. Once every
  # session that was on A is on B: restart A. Once A is back: ex3.
  defp cluster_triggers(s) do
    cond do
      s.server_killed_at == nil and s.down_after != nil and
          done_count(s) >= @server_kill_at * s.total ->
        :ok = XmppTestServer.Cluster.kill(s.ctx.cluster, 0)
        s = %{s | server_killed_at: now_ms()}
        on_a = for {jid, 0} <- s.placement, do: jid
        post(s, "crash on purpose: kill -9 of server node A (#{length(on_a)} sessions on it)")

        s =
          event(
            s,
            "kill -9 of server node A: #{Enum.map_join(on_a, ", ", &name_of/1)} were on it"
          )

        watch_sessions(s, :moved, fn placement -> Enum.all?(on_a, &(placement[&1] == 1)) end)

      s.moved_ms != nil and s.restart == nil ->
        farm = self()
        cluster = s.ctx.cluster
        t = now_ms()

        spawn(fn ->
          send(
            farm,
            {:cluster, :restarted, XmppTestServer.Cluster.restart(cluster, 0), now_ms() - t}
          )
        end)

        event(%{s | restart: :running}, "restarting server node A")

      true ->
        s
    end
  end

  # Asks the cluster where every session is until `done?` holds for the
  # placement (or 20 s pass), in a process of its own (each look is an
  # ejabberdctl call, ~0.35 s); the farm gets {:cluster, tag, placement}.
  defp watch_sessions(s, tag, done?) do
    farm = self()
    cluster = s.ctx.cluster
    until = now_ms() + 20_000

    spawn(fn ->
      Stream.repeatedly(fn ->
        case XmppTestServer.Cluster.sessions(cluster, 1) do
          {:ok, placement} -> placement
          {:error, _} -> %{}
        end
      end)
      |> Enum.find(fn placement ->
        if done?.(placement) or now_ms() > until do
          true
        else
          Process.sleep(100)
          false
        end
      end)
      |> then(&send(farm, {:cluster, tag, &1}))
    end)

    s
  end

  defp server_of(s, name) do
    case s.workers[name] && s.placement[s.workers[name].jid] do
      0 -> "A"
      1 -> "B"
      _ -> "-"
    end
  end

  defp cluster_handle(s, {:cluster, :placed, placement}), do: %{s | placement: placement}

  defp cluster_handle(s, {:cluster, :moved, placement}) do
    s = %{s | placement: placement}
    on_a = for {jid, 0} <- placement, do: name_of(jid)

    if on_a == [] do
      ms = now_ms() - s.server_killed_at
      s = %{s | moved_ms: ms}
      event(s, "every session that was on A is on B #{ms} ms after the kill")
    else
      event(s, "sessions still on A 20 s after the kill: #{Enum.join(on_a, ", ")}")
    end
  end

  defp cluster_handle(s, {:cluster, :restarted, {:ok, cluster}, ms}) do
    s = %{s | ctx: %{s.ctx | cluster: cluster}, restart: :done, restarted_ms: ms}
    post(s, "server node A is back (rejoined the cluster); #{@after_restart.name} logs in")
    s = event(s, "server node A restarted in #{ms} ms and rejoined the cluster")
    start_worker(s, @after_restart.name)
  end

  defp cluster_handle(s, {:cluster, :restarted, {:error, reason}, _ms}) do
    event(
      %{s | restart: {:failed, reason}},
      "server node A did not come back: #{inspect(reason)}"
    )
  end

  ## Messages

  defp handle(s, {:rpc, aid, result, us}) do
    {attempt, attempts} = Map.pop(s.attempts, aid)
    s = %{s | attempts: attempts}
    name = attempt.worker
    s = update_in(s.workers[name].inflight, &MapSet.delete(&1, attempt.id))
    {_, ms} = s.jobs[attempt.id]

    case result do
      {:ok, {:done, id, primes, _by}} when id == attempt.id ->
        s = %{s | latencies: [{us, ms} | s.latencies]}
        s = if attempt.cancelled, do: event(s, "late answer for job #{id} from #{name}"), else: s
        record(s, id, primes, name)

      {:error, _} when attempt.cancelled ->
        # Dispatched again already, at the DOWN.
        s

      {:error, error} ->
        s = redispatch(s, [attempt.id], name, "call failed: #{inspect(error.reason)}")
        event(s, "job #{attempt.id} on #{name}: #{inspect(error.reason)}; dispatched again")

      other ->
        record_wrong(s, attempt.id, name, other)
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :message, from, {:result, id, primes, _by}}) do
    name = name_of(from)
    s = update_in(s.workers[name].inflight, &MapSet.delete(&1, id))
    s = record(s, id, primes, name)

    if MapSet.member?(s.late_ids, id) do
      s = %{s | late_ids: MapSet.delete(s.late_ids, id)}

      if MapSet.size(s.late_ids) == 0,
        do:
          event(
            s,
            "#{name} sent back the results of the #{@queued_for_late} jobs it found queued"
          ),
        else: s
    else
      s
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :delivered, ref, jid}) do
    case Map.pop(s.late_refs, ref) do
      {nil, _} ->
        s

      {_, refs} ->
        s = %{s | late_refs: refs, late_delivered: s.late_delivered + 1}

        if map_size(refs) == 0 do
          after_ms = now_ms() - s.late_started_at

          event(
            s,
            "#{name_of(jid)} took the #{s.late_delivered} terms stored for it from the server (receipts in, #{after_ms} ms after its start)"
          )
        else
          s
        end
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :failed, ref, reason}) do
    case Map.pop(s.late_refs, ref) do
      {nil, _} ->
        s

      {what, refs} ->
        s = %{s | late_refs: refs}
        s = event(s, "a term queued for #{@late} failed: #{inspect(reason)}")

        if is_integer(what) and MapSet.member?(s.late_ids, what) do
          s = %{s | late_ids: MapSet.delete(s.late_ids, what)}
          redispatch(s, [what], @late, "its queued term failed")
        else
          s
        end
    end
  end

  defp handle(s, {:cluster, _, _} = msg), do: cluster_handle(s, msg)
  defp handle(s, {:cluster, _, _, _} = msg), do: cluster_handle(s, msg)

  defp handle(s, {:xmpp_bridge_bus, :joined, @group, jid}) do
    name = name_of(jid)

    case s.workers[name] do
      nil ->
        s

      %{mon: mon, state: state} when mon != nil and state in [:online, :no_job] ->
        # Back in the room after it was made again (its server died):
        # the same node, still monitored.
        event(s, "#{name} is in #{@group} again")

      w ->
        status =
          case Bus.status(s.bus, jid) do
            {:ok, st} -> st
            :error -> %{text: nil, term: nil}
          end

        {lang, slots} =
          case status.term do
            %{lang: lang, slots: slots} -> {lang, slots}
            _ -> {w.lang, w.slots}
          end

        # Only a node that says it serves `job` gets jobs.
        {methods, state} =
          case Bus.methods(s.bus, jid) do
            {:ok, ms} -> {Enum.join(ms, ", "), if("job" in ms, do: :online, else: :no_job)}
            {:error, e} -> {inspect(e.reason), :no_job}
          end

        mon = Bus.monitor(s.bus, jid)

        w = %{
          w
          | jid: jid,
            state: state,
            lang: lang,
            slots: slots,
            mon: mon,
            text: status.text
        }

        s = put_in(s.workers[name], w)

        s =
          event(
            s,
            "#{name} joined #{@group}: #{lang}, #{slots} slots, serves [#{methods}]; monitored"
          )

        if s.ctx.cluster, do: watch_sessions(s, :placed, &Map.has_key?(&1, jid)), else: s
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :status, @group, jid, status}) do
    name = name_of(jid)

    case {s.workers[name], status.term} do
      {nil, _} ->
        s

      {_, %{load: load, done: done}} ->
        update_in(s.workers[name], &%{&1 | load: load, reported: done, text: status.text})

      _ ->
        update_in(s.workers[name], &%{&1 | text: status.text})
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :left, @group, jid, reason}) do
    name = name_of(jid)

    if s.workers[name] do
      event(s, "#{name} left #{@group} (#{inspect(reason)})")
    else
      s
    end
  end

  defp handle(s, {:DOWN, _ref, :bus_node, jid, reason}) do
    name = name_of(jid)
    w = s.workers[name]
    s = %{s | downs: s.downs ++ [{name, reason}]}
    ids = w.inflight |> Enum.sort()

    attempts =
      Map.new(s.attempts, fn
        {aid, %{worker: ^name} = a} -> {aid, %{a | cancelled: true}}
        other -> other
      end)

    s = %{s | attempts: attempts}
    post(s, "#{name} is down (#{reason}): its jobs #{range(ids)} go to the others")

    s =
      put_in(s.workers[name], %{w | state: :down, inflight: MapSet.new(), load: 0, text: "DOWN"})

    down_after = if s.killed_at && name == @victim, do: now_ms() - s.killed_at
    s = if down_after, do: %{s | down_after: down_after}, else: s
    since = if down_after, do: ", #{down_after} ms after the kill", else: ""

    s =
      event(
        s,
        "DOWN #{name}: #{inspect(reason)}#{since}; dispatching its jobs #{range(ids)} again"
      )

    redispatch(s, ids, name, "DOWN #{inspect(reason)}")
  end

  defp handle(s, {port, {:data, {:eol, line}}}) when is_port(port) do
    case Enum.find(Map.values(s.workers), &(&1.port == port)) do
      nil -> s
      w -> put_in(s.workers[w.name].log, Enum.take([line | w.log], 30))
    end
  end

  defp handle(s, {port, {:data, {:noeol, _}}}) when is_port(port), do: s

  defp handle(s, {port, {:exit_status, status}}) when is_port(port) do
    case Enum.find(Map.values(s.workers), &(&1.port == port)) do
      nil ->
        s

      w ->
        # Only a worker that never joined is taken off here: the others
        # are the monitors' business.
        state = if w.state == :starting, do: :exited, else: w.state
        s = put_in(s.workers[w.name], %{w | exit: status, state: state})
        event(s, "[os] #{w.name}'s process exited with status #{status}")
    end
  end

  defp handle(%{closing: true} = s, {:submit, pid, ref, _n, _ms, _expected}) do
    send(pid, {:submitted, ref, %{"error" => "the farm is done; no more jobs"}})
    s
  end

  defp handle(s, {:submit, pid, ref, n, ms, expected}),
    do: queue_submitted(s, pid, ref, n, ms, expected)

  defp handle(s, _other), do: s

  defp redispatch(s, [], _from, _why), do: s

  defp redispatch(s, ids, from, why) do
    # In front of the queue: they have waited longest.
    pending = Enum.reduce(Enum.reverse(ids), s.pending, &:queue.in_r/2)
    %{s | pending: pending, redispatched: s.redispatched ++ Enum.map(ids, &{&1, from, why})}
  end

  defp record(s, id, primes, name) do
    {n, _} = s.jobs[id]
    count = Map.get(s.results, id, 0) + 1
    s = %{s | results: Map.put(s.results, id, count)}
    s = update_in(s.workers[name].done, &(&1 + 1))
    s = if count > 1, do: event(s, "job #{id} done twice (again by #{name})"), else: s
    s = if count == 1, do: answer_submitter(s, id, primes, name), else: s

    if primes == s.expected[n] do
      s
    else
      record_wrong(s, id, name, primes)
    end
  end

  defp record_wrong(s, id, name, got) do
    s = %{s | wrong: [{id, name, got} | s.wrong]}
    event(s, "job #{id}: wrong answer from #{name}: #{inspect(got)}")
  end

  ## The end

  defp finish(s) do
    s = close_submissions(s)
    # Late duplicates would show now.
    s = drain(s, now_ms() + 500)
    for {_, %{mon: mon}} <- s.workers, mon != nil, do: Bus.demonitor(s.bus, mon, [:flush])
    twice = Enum.count(s.results, fn {_, c} -> c > 1 end)

    post(
      s,
      "the farm is done: #{map_size(s.results)} of #{s.total} jobs answered, #{twice} done twice, #{length(s.wrong)} wrong; the workers stop now"
    )

    :ok =
      Bus.broadcast(s.bus, @group, {:farm_done, s.total},
        body: "workers: stop now (farm_done, #{s.total} jobs)"
      )

    s = event(s, "all #{map_size(s.results)} jobs answered; told the group the farm is done")
    s = await_exits(s, now_ms() + 5_000)
    s = redraw(s)
    if s.view.tty, do: IO.puts("")
    Bus.stop(s.bus)
    summary(s)
  end

  defp drain(s, until) do
    receive do
      msg -> s |> handle(msg) |> drain(until)
    after
      max(until - now_ms(), 0) -> s
    end
  end

  defp await_exits(s, until) do
    running = for {_, w} <- s.workers, w.port != nil and w.exit == nil, do: w

    cond do
      running == [] ->
        s

      now_ms() > until ->
        for w <- running, do: System.cmd("kill", ["-9", Integer.to_string(w.os_pid)])
        event(s, "killed #{Enum.map_join(running, ", ", & &1.name)}: not gone 5 s after the end")

      true ->
        receive do
          {port, _} = msg when is_port(port) -> s |> handle(msg) |> await_exits(until)
          _ -> await_exits(s, until)
        after
          100 -> await_exits(s, until)
        end
    end
  end

  defp summary(s) do
    lost = for id <- 1..s.total, not Map.has_key?(s.results, id), do: id
    twice = for {id, c} <- s.results, c > 1, do: id
    farm_s = (s.farm_t1 - (s.farm_t0 || s.farm_t1)) / 1000
    all_s = (now_ms() - s.ctx.t0) / 1000
    rtts = s.latencies |> Enum.map(&elem(&1, 0)) |> Enum.sort()
    overheads = s.latencies |> Enum.map(fn {us, ms} -> us - ms * 1000 end) |> Enum.sort()
    ms = fn us -> :erlang.float_to_binary(us / 1000, decimals: 1) end
    workers = Enum.map(s.order, &s.workers[&1])

    by_lang =
      workers
      |> Enum.group_by(& &1.lang, & &1.done)
      |> Enum.map(fn {l, d} -> {l, Enum.sum(d)} end)

    redisp = s.redispatched |> Enum.group_by(fn {_, from, why} -> {from, why} end, &elem(&1, 0))

    IO.puts("""
    == Summary
    jobs:           #{s.total} (#{map_size(s.results)} answered), #{length(lost)} lost, #{length(twice)} done twice, #{length(s.wrong)} wrong
    time:           #{fmt(farm_s)} s from the first announcement to the last result (#{fmt(all_s)} s in all, ejabberd start included)
    throughput:     #{fmt(s.total / max(farm_s, 0.001))} jobs/s
    RPC:            #{length(rtts)} calls answered, round trip p50 #{ms.(pct(rtts, 0.5))} ms, p99 #{ms.(pct(rtts, 0.99))} ms (the jobs take 60-260 ms)
    RPC overhead:   p50 #{ms.(pct(overheads, 0.5))} ms, p99 #{ms.(pct(overheads, 0.99))} ms (round trip minus the job's own sleep)
    per node:       #{Enum.map_join(workers, ", ", &"#{&1.name} (#{&1.lang}) #{&1.done}")}
    presence says:  #{Enum.map_join(workers, ", ", &"#{&1.name} #{&1.reported}")} done (each worker's own count, in its last status)
    per language:   #{Enum.map_join(Enum.sort(by_lang), ", ", fn {l, d} -> "#{l} #{d}" end)}
    re-dispatched:  #{length(s.redispatched)}#{Enum.map_join(redisp, "", fn {{from, why}, ids} -> "; jobs #{range(ids)} from #{from} (#{why})" end)}
    kill -9:        #{@victim} seen DOWN #{s.down_after || "-"} ms after the kill (heartbeat 500 ms, timeout #{heartbeat_timeout(s.ctx)} ms)
    DOWN:           #{if s.downs == [], do: "none", else: Enum.map_join(s.downs, ", ", fn {n, r} -> "#{n} (#{inspect(r)})" end)}
    offline:        #{@late} got #{s.late_delivered} stored terms (a welcome and #{@queued_for_late} jobs) when it came online#{submitted_summary(s)}#{cluster_summary(s)}
    """)

    problems =
      [
        lost != [] && "lost: #{range(lost)}",
        twice != [] && "done twice: #{range(twice)}",
        s.wrong != [] && "wrong answers: #{length(s.wrong)}"
        | cluster_problems(s) ++
            for(
              {name, reason} <- s.downs,
              name != @victim,
              do: "DOWN for #{name} (#{inspect(reason)}), which did not die"
            ) ++
            for(
              w <- workers,
              w.exit not in [nil, 0] and w.name != @victim,
              do: "#{w.name} exited with status #{w.exit}"
            )
      ]
      |> Enum.filter(& &1)

    if problems == [] do
      IO.puts("result:         OK, every job done exactly once")
      :ok
    else
      IO.puts("result:         FAILED (#{Enum.join(problems, "; ")})")

      for {_, w} <- s.workers, w.log != [] do
        IO.puts("-- last lines of #{w.name}:\n" <> Enum.join(Enum.reverse(w.log), "\n"))
      end

      :error
    end
  end

  defp cluster_summary(%{ctx: %{cluster: nil}}), do: ""

  defp cluster_summary(s) do
    placed = fn names -> Enum.map_join(names, ", ", &"#{&1} on #{server_of(s, &1)}") end
    beam = for n <- s.order, s.workers[n].lang == "elixir", do: n
    rust = for n <- s.order, s.workers[n].lang == "rust", n != @victim, do: n

    """

    cluster:        2 ejabberd nodes; kill -9 of A at #{trunc(@server_kill_at * 100)}%: the sessions on it were on B #{s.moved_ms || "-"} ms later (no resumption across nodes: fresh sessions, the group's room made again on B)
    restart of A:   #{if s.restarted_ms, do: "#{s.restarted_ms} ms, rejoined the cluster", else: "-"}
    now:            coord on #{coord_server(s)}; #{placed.(beam)}; #{placed.(rust)}
    """
    |> String.trim_trailing()
  end

  defp coord_server(s) do
    case s.placement[XmppTestServer.jid(s.srv, "coord") <> "/bus"] do
      0 -> "A"
      1 -> "B"
      _ -> "-"
    end
  end

  defp cluster_problems(%{ctx: %{cluster: nil}}), do: []

  defp cluster_problems(s) do
    ex3 = @after_restart.name

    [
      s.server_killed_at == nil && "server node A was never killed",
      s.server_killed_at != nil && s.moved_ms == nil &&
        "the sessions on A did not all come back on B",
      s.server_killed_at != nil && s.restarted_ms == nil && "server node A did not come back",
      s.restarted_ms != nil && server_of(s, ex3) != "A" &&
        "#{ex3}, started once A was back, is not on A (#{server_of(s, ex3)})",
      s.restarted_ms != nil && s.workers[ex3].done == 0 && "#{ex3} did no job"
    ]
    |> Enum.filter(& &1)
  end

  defp pct([], _), do: 0
  defp pct(sorted, p), do: Enum.at(sorted, max(ceil(p * length(sorted)) - 1, 0))

  ## The group's text, and jobs from any client

  # JOB_FARM_GUEST=user:password: one more account, for an ordinary XMPP
  # client that joins the group and submits jobs.
  defp guest_account do
    case System.get_env("JOB_FARM_GUEST", "") do
      "" ->
        nil

      spec ->
        case String.split(spec, ":", parts: 2) do
          [user, pw] when user != "" and pw != "" -> {user, pw}
          _ -> raise "JOB_FARM_GUEST is user:password, got #{inspect(spec)}"
        end
    end
  end

  # With a guest account: say how to reach the farm, then wait for the
  # guest in the group (so that it sees the whole run) before any worker starts.
  defp await_guest(%{ctx: %{guest: nil}} = s), do: s

  defp await_guest(%{ctx: %{guest: {user, pw}}} = s) do
    srv = s.srv

    s =
      event(
        s,
        "guest: log in as #{XmppTestServer.jid(srv, user)} (password #{pw}) on #{srv.host}:#{srv.ports.c2s_plain} (plaintext), " <>
          "join the room #{@group}@#{srv.muc_domain}, call submit on #{Bus.jid(s.bus)}; waiting for the guest"
      )

    t = now_ms()

    receive do
      {:xmpp_bridge_bus, :joined, @group, jid}
      when binary_part(jid, 0, byte_size(user) + 1) == user <> "@" ->
        event(%{s | guest_jid: jid, guest_wait_ms: now_ms() - t}, "guest #{jid} joined #{@group}")
    after
      60_000 ->
        event(%{s | guest_wait_ms: now_ms() - t}, "no guest in #{@group} after 60 s; going on")
    end
  end

  # With a guest account the farm ends once the guest's first job is answered too.
  defp guest_served?(%{ctx: %{guest: nil}}), do: true
  defp guest_served?(s), do: Enum.any?(s.submitted, fn {_, j} -> j.answered_ms != nil end)

  # Text to the group: the term is the string, and the <body/> (what an
  # ordinary client in the room shows) is the bare text.
  defp post(s, text) do
    :ok = Bus.broadcast(s.bus, @group, text, body: text)
    s
  end

  # Progress, every 10% of the jobs.
  defp post_progress(s) do
    done = done_count(s)
    pct = div(done * 100, max(s.total, 1))

    if pct >= s.next_post_pct do
      online = Enum.count(s.workers, fn {_, w} -> w.state == :online end)
      elapsed = if s.farm_t0, do: (now_ms() - s.farm_t0) / 1000, else: 0.0

      post(
        s,
        "progress: #{done}/#{s.total} jobs done (#{pct}%), #{workers_online(online)}, #{fmt(elapsed)} s"
      )

      %{s | next_post_pct: div(pct, 10) * 10 + 10}
    else
      s
    end
  end

  defp workers_online(1), do: "1 worker online"
  defp workers_online(n), do: "#{n} workers online"

  # `submit` runs in a process of its own (the bus's, under the caller's
  # deadline): it checks the arguments and counts the primes itself, then
  # waits for the coordinator to have the job done. One argument, an
  # object (JSON) or map: {"n": 2..1000000, "ms": 0..5000 (default 0)}.
  defp submit_handler(coord) do
    fn args ->
      case submit_args(args) do
        {:ok, n, ms} ->
          expected = expected_primes(%{0 => {n, ms}})[n]
          ref = make_ref()
          send(coord, {:submit, self(), ref, n, ms, expected})

          receive do
            {:submitted, ^ref, answer} -> answer
          end

        {:error, why} ->
          %{"error" => why}
      end
    end
  end

  defp submit_args(%{} = args) do
    n = Map.get(args, "n", Map.get(args, :n))
    ms = Map.get(args, "ms", Map.get(args, :ms, 0))

    cond do
      not is_integer(n) or n < 2 or n > 1_000_000 ->
        {:error, "n must be an integer from 2 to 1000000, got #{inspect(n)}"}

      not is_integer(ms) or ms < 0 or ms > 5_000 ->
        {:error, "ms must be an integer from 0 to 5000, got #{inspect(ms)}"}

      true ->
        {:ok, n, ms}
    end
  end

  defp submit_args(other),
    do:
      {:error,
       ~s(submit takes one object {"n": 2..1000000, "ms": 0..5000}, got #{inspect(other)})}

  # A submitted job is the next id, queued behind the waiting ones.
  defp queue_submitted(s, pid, ref, n, ms, expected) do
    id = s.total + 1
    job = %{pid: pid, ref: ref, n: n, ms: ms, t: now_ms(), answered_ms: nil, worker: nil}

    s = %{
      s
      | total: id,
        jobs: Map.put(s.jobs, id, {n, ms}),
        expected: Map.put(s.expected, n, expected),
        pending: :queue.in(id, s.pending),
        submitted: Map.put(s.submitted, id, job)
    }

    post(s, "job #{id} submitted by RPC: count the primes up to #{n}, then #{ms} ms; queued")
    event(s, "job #{id} submitted by RPC (n #{n}, ms #{ms}); queued")
  end

  # The first answer to a submitted job goes back to its caller, checked.
  defp answer_submitter(s, id, primes, name) do
    case s.submitted[id] do
      nil ->
        s

      job ->
        {n, _} = s.jobs[id]
        worker = s.workers[name].jid || name

        answer =
          if primes == s.expected[n],
            do: %{"id" => id, "n" => n, "ms" => job.ms, "primes" => primes, "worker" => worker},
            else: %{
              "id" => id,
              "error" => "#{worker} answered #{inspect(primes)}, expected #{s.expected[n]}"
            }

        send(job.pid, {:submitted, job.ref, answer})
        after_ms = now_ms() - job.t
        post(s, "job #{id} (submitted) done by #{worker}: #{inspect(primes)} primes up to #{n}")
        s = put_in(s.submitted[id], %{job | answered_ms: after_ms, worker: worker})
        event(s, "job #{id} (submitted) done by #{name} in #{after_ms} ms; answered its caller")
    end
  end

  # The end: no more submissions; a call that comes now is told so.
  defp close_submissions(s) do
    :ok = Bus.unserve(s.bus, "submit")
    %{s | closing: true}
  end

  defp submitted_summary(%{submitted: jobs}) when jobs == %{}, do: ""

  defp submitted_summary(s) do
    jobs =
      for {id, j} <- Enum.sort(s.submitted) do
        if j.answered_ms,
          do: "job #{id} (n #{j.n}) by #{name_of(j.worker)}, answered in #{j.answered_ms} ms",
          else: "job #{id} (n #{j.n}) not answered"
      end

    "\nsubmitted:      #{map_size(s.submitted)} by RPC: " <> Enum.join(jobs, "; ")
  end

  ## The view

  defp event(s, text) do
    t = now_ms() - s.view.t0
    line = "[#{String.pad_leading(fmt(t / 1000), 5)} s] #{text}"
    s = clear(s)
    IO.puts(line)
    %{s | events: [{t, text} | s.events]} |> draw()
  end

  defp redraw(s), do: s |> clear() |> draw()

  defp clear(%{view: %{tty: true, drawn: n}} = s) when n > 0 do
    IO.write("\e[#{n}A\r\e[J")
    put_in(s.view.drawn, 0)
  end

  defp clear(s), do: s

  defp draw(%{view: %{tty: true}} = s) do
    {progress, table} = block(s)
    lines = progress ++ [""] ++ table
    IO.write(Enum.join(lines, "\n") <> "\n")
    put_in(s.view.drawn, length(lines))
  end

  # Plain output: the events, a progress line every 10%, the table at 50% and 100%.
  defp draw(s) do
    pct = div(done_count(s) * 100, max(s.total, 1))

    if pct >= s.view.next_pct do
      {progress, table} = block(s)
      IO.puts(Enum.join(progress, "  "))
      if s.view.next_pct in [50, 100], do: Enum.each(table, &IO.puts/1)
      put_in(s.view.next_pct, div(pct, 10) * 10 + 10)
    else
      s
    end
  end

  defp block(s) do
    done = done_count(s)
    width = 32
    filled = div(done * width, max(s.total, 1))
    bar = String.duplicate("#", filled) <> String.duplicate(".", width - filled)
    elapsed = if s.farm_t0, do: (now_ms() - s.farm_t0) / 1000, else: 0.0
    rate = if elapsed > 0, do: done / elapsed, else: 0.0
    inflight = map_size(s.attempts)

    # Lines of the live block stay under 80 columns (a wrapped line would
    # break the redraw).
    progress = [
      "jobs [#{bar}] #{done}/#{s.total} #{div(done * 100, max(s.total, 1))}%  #{fmt(rate)} jobs/s",
      "in flight #{inflight}  waiting #{:queue.len(s.pending)}  " <>
        "re-dispatched #{length(s.redispatched)}  #{fmt(elapsed)} s"
    ]

    cluster? = s.ctx.cluster != nil

    header =
      row(
        ["node", "lang", "state", "status", "load", "slots", "in flight", "done", "OS pid"] ++
          if(cluster?, do: ["server"], else: [])
      )

    rows =
      for name <- s.order do
        w = s.workers[name]

        row([
          name,
          w.lang,
          Atom.to_string(w.state),
          w.text || "-",
          Integer.to_string(w.load),
          Integer.to_string(w.slots),
          Integer.to_string(MapSet.size(w.inflight)),
          Integer.to_string(w.done),
          cond do
            w.exit != nil -> "exit #{w.exit}"
            w.os_pid != nil -> Integer.to_string(w.os_pid)
            true -> "-"
          end
          | if(cluster?, do: [server_of(s, name)], else: [])
        ])
      end

    {progress, [header | rows]}
  end

  defp row(cells) do
    widths = [6, 8, 10, 8, 6, 6, 10, 6, 8, 6]

    Enum.zip(cells, widths)
    |> Enum.map_join(&String.pad_trailing(elem(&1, 0), elem(&1, 1)))
    |> then(&("  " <> &1))
  end

  ## Helpers

  defp others(1), do: "1 other member"
  defp others(n), do: "#{n} other members"

  defp name_of(jid), do: jid |> String.split("@") |> hd()

  defp range(ids) do
    case Enum.sort(Enum.to_list(ids)) do
      [] ->
        "(none)"

      [one] ->
        "#{one}"

      sorted ->
        if contiguous?(sorted),
          do: "#{hd(sorted)}..#{List.last(sorted)}",
          else: Enum.join(sorted, ", ")
    end
  end

  defp contiguous?(sorted), do: List.last(sorted) - hd(sorted) == length(sorted) - 1

  defp fmt(x), do: :erlang.float_to_binary(x / 1, decimals: 1)

  defp now_ms, do: System.monotonic_time(:millisecond)
end

case JobFarm.main() do
  :ok -> :ok
  :error -> System.halt(1)
end
