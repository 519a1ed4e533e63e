# Rust name host benchmark: the figures of bench/names.exs (memory per name,
# routing and calls to names vs to a client node) for a Rust name host
# (xmpp_bridge::bus, docs/PROTOCOL.md §7), through one private ejabberd this
# script starts and stops. The work is `bus_bench names` (bench/bus_rust,
# src/names.rs): a name host with BENCH_NAMES names, each held by a tokio task
# of its own, a sender and a receiver client node, all in that one process.
#
#   make bench-names        # builds bench/bus_rust, runs names.exs, then this
#   MIX_ENV=bench BENCH_BUS_RUST=path/to/bus_bench mix run bench/names_rust.exs
#
# Environment knobs (all optional; the same names as bench/names.exs):
#   BENCH_NAMES=10000  BENCH_NAMES_N=50000  BENCH_NAMES_WARMUP_N=2000
#   BENCH_NAMES_ROUNDS=3  BENCH_NAMES_CALLS=5000  BENCH_NAMES_WARMUP_CALLS=200
#   BENCH_NAMES_CALLERS=8  BENCH_NAMES_BATCH_DELAY=ms
#   BENCH_BUS_RUST=path      the bus_bench binary (required: make builds it)
#   BENCH_OUT=names-rust.md  the report's file name under bench/results/
#
# Writes bench/results/names-rust.md (and prints it). Non-zero exit when the
# Rust side failed (terms lost, a call failed, a step failed).

defmodule XmppBridge.Bench.NamesRust do
  @moduledoc false

  alias XmppTestServer, as: TestServer

  @knobs [
    {"BENCH_NAMES", "--names"},
    {"BENCH_NAMES_N", "--terms"},
    {"BENCH_NAMES_WARMUP_N", "--warmup"},
    {"BENCH_NAMES_ROUNDS", "--rounds"},
    {"BENCH_NAMES_CALLS", "--calls"},
    {"BENCH_NAMES_WARMUP_CALLS", "--warmup-calls"},
    {"BENCH_NAMES_CALLERS", "--callers"},
    {"BENCH_NAMES_BATCH_DELAY", "--batch-delay-ms"}
  ]

  def main do
    bin = rust_binary!()
    started = System.monotonic_time(:millisecond)
    load0 = loadavg()
    log("starting ejabberd")

    srv =
      TestServer.start!(:ejabberd,
        accounts: [{"sender", "sender-secret"}, {"receiver", "receiver-secret"}],
        log_level: "warning"
      )

    log(
      "ejabberd up (c2s plain port #{srv.ports.c2s_plain}, component port #{srv.ports.component})"
    )

    {status, lines, server_cpu} =
      try do
        run(bin, srv)
      after
        TestServer.stop(srv)
      end

    secs = (System.monotonic_time(:millisecond) - started) / 1000
    report = render(lines, status, server_cpu, {load0, loadavg()}, secs, srv)
    IO.puts("\n" <> report)
    path = Path.join([__DIR__, "results", System.get_env("BENCH_OUT", "names-rust.md")])
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, report)
    IO.puts("(written to #{Path.relative_to_cwd(path)})")

    if status != 0 do
      IO.puts(:stderr, "[names-rust] bus_bench names exited with status #{status}")
      System.halt(1)
    end
  end

  defp run(bin, srv) do
    args =
      [
        "names",
        "--host",
        srv.host,
        "--c2s-port",
        Integer.to_string(srv.ports.c2s_plain),
        "--component-port",
        Integer.to_string(srv.ports.component),
        "--domain",
        srv.component_domain,
        "--secret",
        srv.component_secret,
        "--client-jid",
        TestServer.jid(srv, "sender"),
        "--client-password",
        srv.accounts["sender"],
        "--receiver-jid",
        TestServer.jid(srv, "receiver"),
        "--receiver-password",
        srv.accounts["receiver"],
        "--exit-on-stdin-eof",
        "1"
      ] ++
        for {var, flag} <- @knobs,
            value = System.get_env(var),
            value not in [nil, ""],
            do: [flag, value]

    args = List.flatten(args)
    log("running #{bin} names")
    cpu0 = cpu_ticks(srv.os_pid)

    # A Port: the binary's stderr (its progress) goes to ours; it exits at
    # the end of its stdin, so it never outlives this VM.
    port =
      Port.open({:spawn_executable, bin}, [
        :binary,
        :exit_status,
        {:line, 1_000_000},
        args: args
      ])

    {status, lines} = collect(port, [], [])
    {status, lines, (cpu_ticks(srv.os_pid) - cpu0) / clk_tck()}
  end

  defp collect(port, partial, lines) do
    receive do
      {^port, {:data, {:noeol, chunk}}} ->
        collect(port, [partial, chunk], lines)

      {^port, {:data, {:eol, chunk}}} ->
        line = IO.iodata_to_binary([partial, chunk])
        IO.puts(line)
        collect(port, [], [line | lines])

      {^port, {:exit_status, status}} ->
        {status, Enum.reverse(lines)}
    after
      600_000 ->
        {:os_pid, os_pid} = Port.info(port, :os_pid)
        System.cmd("kill", [Integer.to_string(os_pid)])
        {:timeout, Enum.reverse(lines)}
    end
  end

  defp render(lines, status, server_cpu, {load0, load1}, secs, srv) do
    body = Enum.reject(lines, &String.starts_with?(&1, "NAMES_JSON "))

    json =
      case Enum.find(lines, &String.starts_with?(&1, "NAMES_JSON ")) do
        nil -> "(none: the run broke)"
        line -> String.replace_prefix(line, "NAMES_JSON ", "")
      end

    """
    # Rust name host benchmark

    #{Date.utc_today()}, #{cpu_model()}, #{:erlang.system_info(:logical_processors_available)} logical CPUs shared by ejabberd, this VM (idle) and `bus_bench names`; load average #{load0} before, #{load1} after. Run time #{round(secs)} s; `bus_bench names` exit status #{status}; ejabberd CPU over the whole run #{:erlang.float_to_binary(server_cpu, decimals: 1)} s.

    #{Enum.join(body, "\n")}

    ## How

    - One private ejabberd #{ejabberd_version()} (XmppTestServer, log level warning); the
      name host is a Rust `xmpp_bridge::bus::Node` connected with
      `bus::Config::component("#{srv.component_domain}", secret)` on its external component
      listener (XEP-0114, plaintext, loopback); the client nodes `sender` and `receiver` are
      Rust bus nodes on the plaintext c2s listener. All three in one process (`bus_bench
      names`, bench/bus_rust/src/names.rs, a multi-threaded tokio runtime), defaults
      otherwise. The BEAM figures for the same work are bench/results/names.md.
    - Memory: VmRSS of that process (/proc/self/status), so allocator slack and freed but
      unreturned memory count; the names are registered from one task, then each `Name`
      moves into a task of its own looping on `Name::recv()`.
    - Routing: `send_term(jid, {n, I, "payload"}, delivery: Server)` from one task, round
      robin over the names; the receiver row is the same terms to the receiver node, whose
      one loop takes its `Events`. deliveries/s = N / (first send -> last term counted).
    - Calls: `call_term(jid, "echo", [{c, I}])`, 5 s timeout, the callers one call at a
      time each; the name's task answers with `Request::reply_term`, the receiver node
      serves `echo` with `Node::serve`.

    Figures as one JSON object:

        #{json}
    """
  end

  # ---------------------------------------------------------------------------
  # helpers

  defp rust_binary! do
    case System.get_env("BENCH_BUS_RUST") do
      path when path not in [nil, ""] ->
        unless File.regular?(path), do: raise("BENCH_BUS_RUST=#{path}: no such file")
        path

      _ ->
        raise "BENCH_BUS_RUST is not set: build bench/bus_rust (make bench-names does) " <>
                "and point it at the bus_bench binary"
    end
  end

  defp cpu_ticks(pid) do
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
    case System.cmd("getconf", ["CLK_TCK"], stderr_to_stdout: true) do
      {out, 0} -> String.to_integer(String.trim(out))
      _ -> 100
    end
  rescue
    _ -> 100
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

  defp loadavg do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> Enum.take(3) |> Enum.join(" ")
      _ -> "?"
    end
  end

  defp log(text), do: IO.puts(:stderr, "[names-rust] " <> text)
end

XmppBridge.Bench.NamesRust.main()
