# Cluster scale benchmark: the job farm with 200 worker sessions, half
# BEAM, half Rust, over a 2-node ejabberd cluster (XmppTestServer.Cluster).
#
#   make bench-cluster
#   MIX_ENV=bench BENCH_BUS_RUST=path/to/bus_bench mix run bench/cluster_scale.exs
#
# Parties:
#   cluster      two ejabberd nodes on loopback (A and B), mod_muc allowed
#                more than its default 200 occupants per room (see muc_config/0)
#   coordinator  a bus node in this VM (servers [A, B]), in the group with
#                `events: true`; it dispatches the jobs by RPC
#   BEAM workers BENCH_CLUSTER_BEAM bus nodes in this VM, each its own
#                session (bwNNN@localhost), serving `job(id, n)`, with a
#                status (`idle`, %{lang: :elixir, index: k}), joined to the
#                group; even ones on servers [A, B], odd ones [B, A]
#   Rust workers BENCH_CLUSTER_RUST bus::Node instances in one OS process
#                (`bus_bench workers`, one tokio runtime), the same, spread
#                the same way (rwNNN@localhost)
#
# What it measures:
#   1. Time to all online: from the moment the workers are told to start
#      (all at once) until the coordinator has seen every one of them join
#      the group (its `:joined` events: discovery by presence); beside it,
#      when the last BEAM worker and the Rust process said they were joined.
#   2. Memory per worker: BEAM, :erlang.memory(:total) after a GC of every
#      process, and this VM's VmRSS (which also holds the NIF's Rust side),
#      before and after the workers; Rust, the process's VmRSS before any
#      node exists and once all are joined. Deltas / workers.
#   3. Idle cost: CPU over BENCH_CLUSTER_IDLE s with everyone joined and no
#      jobs (heartbeats and room self-pings only).
#   4. Jobs: BENCH_CLUSTER_JOBS jobs `job(id, n)` (n = 100 + id rem 50: a
#      few us of work) dispatched by Bus.call from the coordinator,
#      BENCH_CLUSTER_CALLERS in flight, job id to worker id rem workers. Every
#      answer is checked (id and prime count); every worker counts what it
#      ran per id. lost = jobs without a right answer; duplicated = jobs
#      run more than once. Both must be 0, or the run raises.
#   CPU (utime + stime from /proc/PID/stat) of both ejabberd beams, this VM
#   and the Rust process is taken for each phase.
#
# Environment knobs (all optional):
#   BENCH_CLUSTER_BEAM=100        BEAM workers
#   BENCH_CLUSTER_RUST=100        Rust workers
#   BENCH_CLUSTER_JOBS=4000       jobs
#   BENCH_CLUSTER_CALLERS=200     calls in flight
#   BENCH_CLUSTER_HEARTBEAT=5000  heartbeat and heartbeat_timeout (ms) of every node
#   BENCH_CLUSTER_MEMBER_HEARTBEAT=1  0: the workers join with member_heartbeat false
#                                 (they do not watch each other; the coordinator
#                                 still watches every worker)
#   BENCH_CLUSTER_IDLE=10         seconds of the idle window
#   BENCH_OUT=cluster_scale.md    the report's file name under bench/results/
#
# Writes bench/results/cluster_scale.md (and prints it). Raises - non-zero
# exit - when a job was lost or run twice, or a step failed.

defmodule XmppBridge.Bench.ClusterScale do
  @moduledoc false

  alias XmppBridge.Bus
  alias XmppTestServer.Cluster

  @group "farm"

  def run do
    cfg = %{
      beam: env_int("BENCH_CLUSTER_BEAM", 100),
      rust: env_int("BENCH_CLUSTER_RUST", 100),
      jobs: env_int("BENCH_CLUSTER_JOBS", 4000),
      callers: env_int("BENCH_CLUSTER_CALLERS", 200),
      heartbeat: env_int("BENCH_CLUSTER_HEARTBEAT", 5000),
      member_heartbeat: env_int("BENCH_CLUSTER_MEMBER_HEARTBEAT", 1) != 0,
      idle_s: env_int("BENCH_CLUSTER_IDLE", 10),
      rust_bin: System.get_env("BENCH_BUS_RUST") || raise("BENCH_BUS_RUST: the bus_bench binary"),
      out: System.get_env("BENCH_OUT", "cluster_scale.md")
    }

    beam_users = for k <- 1..cfg.beam//1, do: name("bw", k)
    rust_users = for k <- 1..cfg.rust//1, do: name("rw", k)
    log("starting the cluster with #{2 + length(beam_users) + length(rust_users)} accounts")
    load0 = loadavg()

    cluster =
      Cluster.start!(
        accounts: ["coord" | beam_users ++ rust_users],
        extra_config: muc_config(),
        keep_dir: System.get_env("BENCH_CLUSTER_KEEP_DIR") == "1",
        timeout: 120_000
      )

    try do
      measure(cfg, cluster, beam_users, rust_users, load0)
    after
      Cluster.stop(cluster)
    end
  end

  defp measure(cfg, cluster, beam_users, rust_users, load0) do
    [a, b] = Cluster.servers(cluster)
    [pid_a, pid_b] = Enum.map(cluster.nodes, & &1.os_pid)

    log(
      "cluster up in #{cluster.started_in_ms} ms: A #{inspect(a)} (pid #{pid_a}), B #{inspect(b)} (pid #{pid_b})"
    )

    coord = start_bus("coord", [a, b], cfg.heartbeat)
    :ok = Bus.join(coord, @group, events: true)

    rust = open_rust(cfg, rust_users, a, b)
    pids = %{a: pid_a, b: pid_b, vm: String.to_integer(System.pid()), rust: rust.os_pid}

    mem0 = beam_memory()
    rust_rss0 = rss(rust.os_pid)
    runs = :counters.new(cfg.jobs + 1, [:write_concurrency])

    # 1. Everyone starts at once.
    cpu0 = cpu(pids)
    t0 = now()
    Port.command(rust.port, "start\n")
    parent = self()

    workers =
      beam_users
      |> Enum.with_index()
      |> Enum.map(fn {user, k} ->
        servers = if rem(k, 2) == 0, do: [a, b], else: [b, a]
        spawn_link(fn -> beam_worker(parent, user, k, servers, cfg, runs) end)
      end)

    expected = MapSet.new(beam_users ++ rust_users, &"#{&1}@localhost/bus")
    seen = await_all(expected, cfg, rust, t0)
    t_all = now()
    cpu1 = cpu(pids)
    load1 = loadavg()
    log("all #{MapSet.size(expected)} workers seen in the group after #{t_all - t0} ms")

    {:ok, members} = Bus.members(coord, @group)
    with_status = Enum.count(members, &match?(%{status: %{term: %{lang: _}}}, &1))
    {:ok, sessions} = Cluster.sessions(cluster, 0)
    spread = spread(sessions)

    mem1 = beam_memory()
    rust_rss1 = rss(rust.os_pid)

    # 3. Idle: heartbeats only.
    log("idle for #{cfg.idle_s} s (heartbeats only)")
    Process.sleep(cfg.idle_s * 1000)
    cpu2 = cpu(pids)

    # 4. Jobs.
    log("#{cfg.jobs} jobs, #{cfg.callers} in flight")
    targets = (beam_users ++ rust_users) |> Enum.map(&"#{&1}@localhost/bus") |> List.to_tuple()
    t2 = now()
    results = run_jobs(coord, targets, cfg)
    t3 = now()
    cpu3 = cpu(pids)
    load3 = loadavg()

    beam_exec = for id <- 1..cfg.jobs, do: :counters.get(runs, id)
    Port.command(rust.port, "report\n")
    rust_report = await_line(rust.port, "REPORT", 10_000)
    rust_rss2 = rss(rust.os_pid)

    answered = results |> Enum.flat_map(& &1.ok) |> MapSet.new()
    errors = Enum.flat_map(results, & &1.errors)
    latencies = results |> Enum.flat_map(& &1.us) |> Enum.sort()
    rust_exec = String.to_integer(rust_report["exec"])
    exec_total = Enum.sum(beam_exec) + rust_exec
    dup = Enum.count(beam_exec, &(&1 > 1)) + String.to_integer(rust_report["dup"])
    lost = cfg.jobs - MapSet.size(answered)

    report = %{
      cfg: cfg,
      cluster_ms: cluster.started_in_ms,
      online_ms: t_all - t0,
      beam_up_ms: seen.beam_up_ms,
      stuck: seen.stuck,
      rust_online: seen.rust_online,
      members: length(members),
      with_status: with_status,
      spread: spread,
      mem: %{beam0: mem0, beam1: mem1, rust0: rust_rss0, rust1: rust_rss1, rust2: rust_rss2},
      cpu: %{
        start: {diff(cpu0, cpu1), t_all - t0},
        idle: {diff(cpu1, cpu2), cfg.idle_s * 1000},
        jobs: {diff(cpu2, cpu3), t3 - t2}
      },
      jobs_ms: t3 - t2,
      answered: MapSet.size(answered),
      lost: lost,
      dup: dup,
      exec_total: exec_total,
      rust_idsum: String.to_integer(rust_report["idsum"]),
      errors: errors,
      latencies: latencies,
      load: [load0, load1, load3]
    }

    text = render(report)
    IO.puts("\n" <> text)
    path = Path.join([File.cwd!(), "bench", "results", cfg.out])
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, text)
    log("wrote #{Path.relative_to_cwd(path)}")

    # Stop everything we started.
    Port.command(rust.port, "stop\n")
    _ = await_line(rust.port, "STOPPED", 15_000)
    Enum.each(workers, &send(&1, :stop))
    Bus.stop(coord)

    if lost != 0 or dup != 0 or exec_total != cfg.jobs or errors != [] do
      raise "jobs: #{lost} lost, #{dup} run twice, #{exec_total} runs for #{cfg.jobs} jobs, " <>
              "#{length(errors)} errors (first: #{inspect(Enum.take(errors, 3))})"
    end
  end

  ## Workers and the coordinator

  defp start_bus(user, servers, heartbeat) do
    {:ok, bus} =
      Bus.start_link(
        jid: "#{user}@localhost",
        password: "#{user}-secret",
        tls: :plain,
        servers: servers,
        heartbeat: heartbeat,
        heartbeat_timeout: heartbeat
      )

    case Bus.await_online(bus, 90_000) do
      :ok -> bus
      {:error, e} -> raise "#{user}: not online after 90 s: #{inspect(e.reason)}"
    end
  end

  defp beam_worker(parent, user, k, servers, cfg, runs) do
    t0 = now()
    bus = start_bus(user, servers, cfg.heartbeat)

    :ok =
      Bus.serve(bus, "job", fn id, n ->
        :counters.add(runs, id, 1)
        {:done, id, primes_up_to(n)}
      end)

    :ok = Bus.set_status(bus, text: "idle", term: %{lang: :elixir, index: k})

    case Bus.join(bus, @group, timeout: 30_000, member_heartbeat: cfg.member_heartbeat) do
      :ok -> send(parent, {:worker_up, user, now() - t0})
      {:error, e} -> send(parent, {:worker_failed, user, {:join, e.reason, now() - t0}})
    end

    receive do
      :stop -> Bus.stop(bus)
    end
  end

  # Waits until the coordinator has seen every expected worker join, and
  # every BEAM worker and the Rust process said they were up.
  defp await_all(expected, cfg, rust, t0) do
    deadline = t0 + 120_000
    Process.send_after(self(), :progress, 5000)
    state = %{seen: MapSet.new(), beam_up: 0, beam_up_ms: nil, rust_online: nil, stuck: []}
    await_loop(state, expected, cfg, rust, t0, deadline)
  end

  defp await_loop(state, expected, cfg, rust, t0, deadline) do
    done? =
      MapSet.subset?(expected, state.seen) and state.beam_up == cfg.beam and
        state.rust_online != nil

    if done? do
      state
    else
      timeout = max(deadline - now(), 0)
      port = rust.port

      receive do
        {:xmpp_bridge_bus, :joined, @group, jid} ->
          state = %{state | seen: MapSet.put(state.seen, jid)}
          await_loop(state, expected, cfg, rust, t0, deadline)

        # A join that does not return (seen under this load: the room has
        # the worker, the coordinator saw it join, its own Bus.join timed
        # out) is counted and reported; the worker's session still serves.
        {:worker_failed, user, why} ->
          log("BEAM worker #{user}: #{inspect(why)}")
          stuck = [user | state.stuck]

          await_loop(
            %{state | beam_up: state.beam_up + 1, stuck: stuck},
            expected,
            cfg,
            rust,
            t0,
            deadline
          )

        :progress ->
          Process.send_after(self(), :progress, 5000)

          log(
            "#{now() - t0} ms: #{MapSet.size(state.seen)} seen, #{state.beam_up} BEAM up, " <>
              "Rust #{if state.rust_online, do: "online", else: "not yet"}"
          )

          await_loop(state, expected, cfg, rust, t0, deadline)

        {:worker_up, _user, _ms} ->
          up = state.beam_up + 1
          ms = if up == cfg.beam, do: now() - t0, else: state.beam_up_ms
          await_loop(%{state | beam_up: up, beam_up_ms: ms}, expected, cfg, rust, t0, deadline)

        {^port, {:data, {:eol, "ONLINE " <> rest}}} ->
          fields = fields(rest)

          if fields["errors"] != "0",
            do: raise("Rust workers: #{fields["errors"]} failed: #{fields["first_error"]}")

          fields = Map.put(fields, "at_ms", now() - t0)
          await_loop(%{state | rust_online: fields}, expected, cfg, rust, t0, deadline)

        {^port, {:exit_status, status}} ->
          raise "the Rust workers exited with status #{status}"
      after
        timeout ->
          missing = MapSet.difference(expected, state.seen)

          raise "after 120 s: #{MapSet.size(missing)} workers not seen " <>
                  "(#{Enum.take(missing, 5) |> Enum.join(", ")}), #{state.beam_up} BEAM workers up, " <>
                  "Rust #{inspect(state.rust_online)}"
      end
    end
  end

  defp open_rust(cfg, users, {ha, pa}, {hb, pb}) do
    args =
      ["workers", "--server-a", "#{ha}:#{pa}", "--server-b", "#{hb}:#{pb}", "--group", @group] ++
        ["--heartbeat-ms", Integer.to_string(cfg.heartbeat)] ++
        ["--member-heartbeat", if(cfg.member_heartbeat, do: "1", else: "0")] ++
        Enum.flat_map(users, &["--account", "#{&1}@localhost:#{&1}-secret"])

    port =
      Port.open({:spawn_executable, cfg.rust_bin}, [
        :binary,
        :exit_status,
        {:line, 65_536},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    _ = await_line(port, "READY", 10_000)
    %{port: port, os_pid: os_pid}
  end

  defp await_line(port, tag, timeout) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        case String.split(line, " ", parts: 2) do
          [^tag, rest] -> fields(rest)
          [^tag] -> %{}
          _ -> await_line(port, tag, timeout)
        end

      {^port, {:exit_status, status}} ->
        raise "the Rust workers exited with status #{status} (waiting for #{tag})"
    after
      timeout -> raise "no #{tag} from the Rust workers in #{timeout} ms"
    end
  end

  defp fields(text) do
    text
    |> String.split(" ", trim: true)
    |> Map.new(fn kv ->
      case String.split(kv, "=", parts: 2) do
        [k, v] -> {k, v}
        [k] -> {k, ""}
      end
    end)
  end

  ## Jobs

  defp run_jobs(coord, targets, cfg) do
    next = :atomics.new(1, [])
    workers = tuple_size(targets)

    1..cfg.callers//1
    |> Enum.map(fn _ ->
      Task.async(fn ->
        caller(coord, targets, workers, next, cfg.jobs, %{ok: [], errors: [], us: []})
      end)
    end)
    |> Task.await_many(:infinity)
  end

  defp caller(coord, targets, workers, next, jobs, acc) do
    id = :atomics.add_get(next, 1, 1)

    if id > jobs do
      acc
    else
      n = 100 + rem(id, 50)
      t = System.monotonic_time(:microsecond)
      result = Bus.call(coord, elem(targets, rem(id, workers)), "job", [id, n], 30_000)
      us = System.monotonic_time(:microsecond) - t

      acc =
        case result do
          {:ok, {:done, ^id, primes}} ->
            if primes == primes_up_to(n),
              do: %{acc | ok: [id | acc.ok], us: [us | acc.us]},
              else: %{acc | errors: [{id, :wrong, primes} | acc.errors]}

          other ->
            %{acc | errors: [{id, other} | acc.errors]}
        end

      caller(coord, targets, workers, next, jobs, acc)
    end
  end

  defp primes_up_to(n) do
    Enum.count(2..n//1, fn k -> Enum.all?(2..trunc(:math.sqrt(k))//1, &(rem(k, &1) != 0)) end)
  end

  ## Measurements

  # mod_muc's max_users (service and room default) is 200 in ejabberd: the
  # 201st occupant is refused. extra_config is appended at the top level,
  # where a second `modules:` would be a duplicate key, and a host_config
  # `modules:` replaces the host's module list rather than merging with it:
  # so the whole list of the harness's config is given again, with mod_muc
  # raised.
  defp muc_config do
    """
    host_config:
      "localhost":
        modules:
          mod_disco: {}
          mod_roster: {}
          mod_offline:
            access_max_user_messages: max_user_offline_messages
          mod_stream_mgmt:
            max_ack_queue: 100000
            resume_timeout: 300
          mod_ping: {}
          mod_carboncopy: {}
          mod_admin_extra: {}
          mod_muc:
            host: "conference.localhost"
            access_create: all
            history_size: 20
            max_users: 2000
            max_users_presence: 2000
            default_room_options:
              max_users: 2000
    """
  end

  defp beam_memory do
    for p <- Process.list(), do: :erlang.garbage_collect(p)
    %{total: :erlang.memory(:total), rss: rss(String.to_integer(System.pid()))}
  end

  defp rss(os_pid) do
    with {:ok, status} <- File.read("/proc/#{os_pid}/status"),
         [_, kb] <- Regex.run(~r/VmRSS:\s+(\d+) kB/, status) do
      String.to_integer(kb) * 1024
    else
      _ -> 0
    end
  end

  defp cpu(pids), do: Map.new(pids, fn {k, pid} -> {k, cpu_ticks(pid)} end)

  defp diff(a, b), do: Map.new(b, fn {k, v} -> {k, (v - a[k]) / clk_tck()} end)

  defp cpu_ticks(pid) do
    with {:ok, stat} <- File.read("/proc/#{pid}/stat"),
         [_, rest] <- String.split(stat, ") ", parts: 2) do
      fields = String.split(rest)
      String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
    else
      _ -> 0
    end
  end

  defp clk_tck do
    case System.cmd("getconf", ["CLK_TCK"]) do
      {n, 0} -> n |> String.trim() |> String.to_integer()
      _ -> 100
    end
  end

  defp spread(sessions) do
    sessions
    |> Enum.group_by(fn {jid, _} -> String.slice(jid, 0, 2) end, fn {_, node} -> node end)
    |> Map.new(fn {kind, nodes} -> {kind, Enum.frequencies(nodes)} end)
  end

  defp loadavg do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> Enum.take(3) |> Enum.join(" ")
      _ -> "?"
    end
  end

  ## Report

  defp render(r) do
    cfg = r.cfg
    workers = cfg.beam + cfg.rust
    beam_mem = (r.mem.beam1.total - r.mem.beam0.total) / max(cfg.beam, 1)
    beam_rss = (r.mem.beam1.rss - r.mem.beam0.rss) / max(cfg.beam, 1)
    rust_rss = (r.mem.rust1 - r.mem.rust0) / max(cfg.rust, 1)
    jobs_s = cfg.jobs * 1000 / max(r.jobs_ms, 1)

    """
    # Cluster scale: the job farm over a 2-node ejabberd cluster

    #{cfg.beam} BEAM workers (one VM, each its own bus session) and #{cfg.rust} Rust workers
    (one OS process, one tokio runtime), all joined to one group, over two ejabberd 23.01
    nodes on loopback; even workers on servers [A, B], odd ones [B, A]; heartbeat
    #{cfg.heartbeat} ms; #{if cfg.member_heartbeat, do: "every member watches every other (member heartbeats on)", else: "workers join with member_heartbeat: false (only the coordinator watches them)"}.
    #{System.schedulers_online()} schedulers, #{cpu_model()}.
    Load average (1/5/15 min): #{Enum.join(r.load, " -> ")} (before the cluster, after the
    start, after the jobs).

    | | |
    |---|---:|
    | cluster start (2 nodes, join, #{workers + 1} accounts) | #{r.cluster_ms} ms |
    | **time to all #{workers} workers online and seen in the group** | **#{r.online_ms} ms** |
    | ... last BEAM worker joined (its own view) | #{r.beam_up_ms} ms#{stuck_text(r.stuck)} |
    | ... Rust process: all #{cfg.rust} joined | #{r.rust_online["ms"]} ms after its `start` (#{r.rust_online["at_ms"]} ms)#{rust_stuck(r.rust_online)} |
    | group members seen by the coordinator / with a status term | #{r.members} / #{r.with_status} |
    | sessions per server node (A=0, B=1) | #{spread_text(r.spread)} |
    | **jobs/s** (#{cfg.jobs} jobs, #{cfg.callers} calls in flight) | **#{round(jobs_s)}** (#{r.jobs_ms} ms) |
    | RPC round trip p50 / p90 / p99 | #{pct(r.latencies, 50)} / #{pct(r.latencies, 90)} / #{pct(r.latencies, 99)} ms |
    | lost / run twice / errors | #{r.lost} / #{r.dup} / #{length(r.errors)} (#{r.exec_total} runs, #{r.answered} right answers) |
    | **memory per BEAM worker**: :erlang.memory / VM RSS | **#{kb(beam_mem)}** / #{kb(beam_rss)} |
    | **memory per Rust worker**: RSS | **#{kb(rust_rss)}** (after the jobs: #{kb((r.mem.rust2 - r.mem.rust0) / max(cfg.rust, 1))}) |

    CPU by phase (CPU-seconds, and % of one core over the phase's wall time; the machine has
    #{System.schedulers_online()} cores):

    | phase | wall | ejabberd A | ejabberd B | this VM (coordinator + BEAM workers) | Rust workers | total | ejabberd share |
    |---|---:|---:|---:|---:|---:|---:|---:|
    #{cpu_row("start: until all seen", r.cpu.start)}
    #{cpu_row("idle #{cfg.idle_s} s (heartbeats)", r.cpu.idle)}
    #{cpu_row("jobs", r.cpu.jobs)}

    Per job (jobs phase CPU / #{cfg.jobs}): #{per_job(r.cpu.jobs, cfg.jobs)}.
    Idle, per worker and second: #{per_idle(r.cpu.idle, workers)}.
    """
  end

  defp cpu_row(label, {d, wall_ms}) do
    total = d.a + d.b + d.vm + d.rust
    cell = fn s -> "#{f2(s)} s (#{round(s * 100_000 / max(wall_ms, 1))}%)" end

    "| #{label} | #{wall_ms} ms | #{cell.(d.a)} | #{cell.(d.b)} | #{cell.(d.vm)} | #{cell.(d.rust)} | " <>
      "#{cell.(total)} | #{round((d.a + d.b) * 100 / max(total, 0.001))}% |"
  end

  defp per_job({d, _}, jobs) do
    us = fn s -> "#{Float.round(s * 1_000_000 / jobs, 1)} us" end
    "ejabberd #{us.(d.a + d.b)}, this VM #{us.(d.vm)}, Rust #{us.(d.rust)}"
  end

  defp per_idle({d, wall_ms}, workers) do
    us = fn s -> "#{Float.round(s * 1_000_000 / workers / (wall_ms / 1000), 1)} us" end
    "ejabberd #{us.(d.a + d.b)}, ours #{us.(d.vm + d.rust)} of CPU"
  end

  defp rust_stuck(%{"stuck" => "0"}), do: ""

  defp rust_stuck(f),
    do:
      " (#{f["stuck"]} joins did not return in 30 s though the room had them: #{f["stuck_jids"]})"

  defp stuck_text([]), do: ""

  defp stuck_text(stuck),
    do:
      " (#{length(stuck)} Bus.join calls timed out after 30 s though the room had them: #{Enum.join(Enum.sort(stuck), ", ")})"

  defp spread_text(spread) do
    spread
    |> Enum.sort()
    |> Enum.map_join("; ", fn {kind, freq} ->
      "#{kind}: " <> Enum.map_join(Enum.sort(freq), ", ", fn {node, n} -> "#{n} on #{node}" end)
    end)
  end

  defp pct([], _), do: "-"

  defp pct(sorted, p) do
    n = length(sorted)
    us = Enum.at(sorted, min(n - 1, max(ceil(p / 100 * n) - 1, 0)))
    :erlang.float_to_binary(us / 1000, decimals: 1)
  end

  defp kb(bytes), do: "#{round(bytes / 1024)} KiB"
  defp f2(x), do: :erlang.float_to_binary(x / 1, decimals: 2)

  defp cpu_model do
    with {:ok, text} <- File.read("/proc/cpuinfo"),
         [_, model] <- Regex.run(~r/model name\s*:\s*(.+)/, text) do
      String.trim(model)
    else
      _ -> "unknown CPU"
    end
  end

  ## Helpers

  defp name(prefix, k), do: prefix <> String.pad_leading(Integer.to_string(k), 3, "0")
  defp now, do: System.monotonic_time(:millisecond)
  defp log(text), do: IO.puts(:stderr, "[cluster-scale] #{text}")

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      v -> String.to_integer(v)
    end
  end
end

XmppBridge.Bench.ClusterScale.run()
