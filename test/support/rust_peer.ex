defmodule XmppBridge.Test.RustPeer do
  @moduledoc false
  # A Rust bus node as a real OS process: the `bus_peer` example of the
  # pure crate (native/xmpp_bridge/examples/bus_peer.rs), driven with JSON
  # lines on its stdin and read from its stdout (the contract is at the top
  # of that file). The test process that starts a peer owns its port and
  # gets its events as `{:rust_peer, peer_id, event_map}`.

  alias XmppBridge.Payload.Json

  defstruct [:port, :os_pid, :id, :jid, :incarnation, :user]

  @root Path.expand("../..", __DIR__)

  @doc "Builds the examples (once per test run) and returns the directory of their binaries."
  def build! do
    case :persistent_term.get({__MODULE__, :dir}, nil) do
      nil ->
        {out, status} =
          System.cmd(
            "cargo",
            [
              "build",
              "--release",
              "-p",
              "xmpp_bridge",
              "--example",
              "bus_peer",
              "--example",
              "bus_blocking",
              "--example",
              "bus_readme",
              "--example",
              "group_readme",
              "--example",
              "name_readme"
            ],
            cd: @root,
            stderr_to_stdout: true
          )

        if status != 0, do: raise("cargo build of the bus examples failed:\n" <> out)
        dir = Path.join([target_dir(), "release", "examples"])
        :persistent_term.put({__MODULE__, :dir}, dir)
        dir

      dir ->
        dir
    end
  end

  defp target_dir do
    case System.get_env("CARGO_TARGET_DIR") do
      dir when dir in [nil, ""] -> Path.join(@root, "target")
      dir -> dir
    end
  end

  @doc "Path of an example binary."
  def binary(name), do: Path.join(build!(), name)

  @doc """
  Starts a peer for `user` of `server` and waits until it prints `online`.
  Options: `:heartbeat`, `:heartbeat_timeout` (ms), `:max_calls`, `:echo`,
  `:port` (to connect through a proxy).
  """
  def start(server, user, opts \\ []) do
    password = Map.get(server.accounts, user, "#{user}-secret")

    args =
      [
        "--jid",
        XmppTestServer.jid(server, user),
        "--password",
        password,
        "--host",
        server.host,
        "--port",
        Integer.to_string(Keyword.get(opts, :port, server.ports.c2s_plain)),
        "--tls",
        "plain",
        "--heartbeat-ms",
        Integer.to_string(Keyword.get(opts, :heartbeat, 500)),
        "--heartbeat-timeout-ms",
        Integer.to_string(Keyword.get(opts, :heartbeat_timeout, 1000)),
        "--max-calls",
        Integer.to_string(Keyword.get(opts, :max_calls, 64))
      ] ++ if(Keyword.get(opts, :echo, false), do: ["--echo"], else: [])

    port =
      Port.open({:spawn_executable, binary("bus_peer")}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    peer = %__MODULE__{port: port, os_pid: os_pid, id: port, user: user}

    case next(peer, &(&1["event"] == "online"), 15_000) do
      %{"jid" => jid, "incarnation" => inc} -> %{peer | jid: jid, incarnation: inc}
    end
  end

  @doc "Sends a command (a map) to the peer."
  def command(%__MODULE__{port: port}, cmd) do
    {:ok, %Json{json: json}} = Json.from_term(cmd)
    true = Port.command(port, json <> "\n")
    :ok
  end

  @doc "The next event (a map) for which `match?` is true; others are kept in order."
  def next(%__MODULE__{port: port}, match?, timeout \\ 10_000) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        event = decode(line)
        if match?.(event), do: event, else: next_after(port, match?, timeout, event)

      {^port, {:exit_status, status}} ->
        raise "bus_peer exited with status #{status} while an event was awaited"
    after
      timeout -> raise "no matching event from bus_peer within #{timeout} ms"
    end
  end

  defp next_after(port, match?, timeout, _skipped) do
    # Skipped events are simply dropped: tests ask for what they need.
    next(%__MODULE__{port: port}, match?, timeout)
  end

  @doc "Every event until `stop?` is true for one (included), in order."
  def collect(%__MODULE__{port: port} = peer, stop?, timeout \\ 30_000, acc \\ []) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        event = decode(line)
        acc = [event | acc]
        if stop?.(event), do: Enum.reverse(acc), else: collect(peer, stop?, timeout, acc)

      {^port, {:exit_status, status}} ->
        raise "bus_peer exited with status #{status}"
    after
      timeout -> raise "bus_peer: nothing for #{timeout} ms (collected #{length(acc)})"
    end
  end

  defp decode(line) do
    {:ok, event} = Json.to_term(%Json{json: line})
    event
  end

  @doc "Stops the peer cleanly (its `stop` command) and waits for its exit."
  def stop(%__MODULE__{port: port} = peer) do
    command(peer, %{"cmd" => "stop"})
    await_exit(port, 10_000)
  end

  @doc "Sends a signal to the peer's OS process (`\"KILL\"`, `\"STOP\"`, `\"CONT\"`)."
  def signal(%__MODULE__{os_pid: os_pid}, sig) do
    {_, 0} = System.cmd("kill", ["-" <> sig, Integer.to_string(os_pid)])
    :ok
  end

  @doc "kill -9, then waits for the port to report the exit."
  def kill(%__MODULE__{port: port} = peer) do
    signal(peer, "KILL")
    await_exit(port, 5_000)
  end

  defp await_exit(port, timeout) do
    receive do
      {^port, {:exit_status, status}} -> status
    after
      timeout -> :timeout
    end
  end

  @doc "ETF of `term` as base64, as the peer's commands take it."
  def etf64(term), do: Base.encode64(:erlang.term_to_binary(term))

  @doc "The term in a peer's base64 ETF field, read safely."
  def term64(b64) do
    {:ok, term} = XmppBridge.Bus.Term.decode(Base.decode64!(b64))
    term
  end

  # ---- groups (test/xmpp_bridge/bus_group_rust_test.exs)

  @doc """
  Like `start/3`, with more bus_peer flags after the usual ones (e.g.
  `["--discovery", "bus"]`, `["--no-sm"]`); waits until it prints `online`.
  """
  def start_with_flags(server, user, opts, flags) do
    password = Map.get(server.accounts, user, "#{user}-secret")

    args =
      [
        "--jid",
        XmppTestServer.jid(server, user),
        "--password",
        password,
        "--host",
        server.host,
        "--port",
        Integer.to_string(Keyword.get(opts, :port, server.ports.c2s_plain)),
        "--tls",
        "plain",
        "--heartbeat-ms",
        Integer.to_string(Keyword.get(opts, :heartbeat, 500)),
        "--heartbeat-timeout-ms",
        Integer.to_string(Keyword.get(opts, :heartbeat_timeout, 1000)),
        "--max-calls",
        Integer.to_string(Keyword.get(opts, :max_calls, 64))
      ] ++ flags

    port =
      Port.open({:spawn_executable, binary("bus_peer")}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    peer = %__MODULE__{port: port, os_pid: os_pid, id: port, user: user}

    case next(peer, &(&1["event"] == "online"), Keyword.get(opts, :online_timeout, 15_000)) do
      %{"jid" => jid, "incarnation" => inc} -> %{peer | jid: jid, incarnation: inc}
    end
  end

  @doc """
  Takes the peer's events until `done?.(acc)` is true for the list of the
  ones `keep?` selects (in order; the others are dropped); raises after
  `timeout` ms without one.
  """
  def take(%__MODULE__{port: port} = peer, keep?, done?, timeout \\ 30_000, acc \\ []) do
    if done?.(acc) do
      acc
    else
      receive do
        {^port, {:data, {:eol, line}}} ->
          event = decode(line)
          acc = if keep?.(event), do: acc ++ [event], else: acc
          take(peer, keep?, done?, timeout, acc)

        {^port, {:exit_status, status}} ->
          raise "bus_peer exited with status #{status} (kept #{length(acc)} events)"
      after
        timeout -> raise "bus_peer: no event for #{timeout} ms (kept #{length(acc)})"
      end
    end
  end

  @doc "The events the peer prints until it is quiet for `idle` ms, in order."
  def drain(%__MODULE__{port: port} = peer, idle, acc \\ []) do
    receive do
      {^port, {:data, {:eol, line}}} -> drain(peer, idle, [decode(line) | acc])
    after
      idle -> Enum.reverse(acc)
    end
  end

  # ---- names (test/xmpp_bridge/bus_names_rust_test.exs)

  @doc """
  Starts a bus_peer as a name host (docs/PROTOCOL.md §7): the external
  component `server.component_domain` on `server.ports.component` (or
  `:port`, e.g. a proxy's); waits until it prints `online`. Options:
  `:port`, `:heartbeat`, `:heartbeat_timeout` (ms).
  """
  def start_name_host(server, opts \\ []) do
    args = [
      "--component",
      "--jid",
      server.component_domain,
      "--password",
      server.component_secret,
      "--host",
      server.host,
      "--port",
      Integer.to_string(Keyword.get(opts, :port, server.ports.component)),
      "--tls",
      "plain",
      "--heartbeat-ms",
      Integer.to_string(Keyword.get(opts, :heartbeat, 500)),
      "--heartbeat-timeout-ms",
      Integer.to_string(Keyword.get(opts, :heartbeat_timeout, 1000))
    ]

    port =
      Port.open({:spawn_executable, binary("bus_peer")}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    peer = %__MODULE__{port: port, os_pid: os_pid, id: port, user: server.component_domain}

    case next(peer, &(&1["event"] == "online"), 15_000) do
      %{"jid" => jid, "incarnation" => inc} -> %{peer | jid: jid, incarnation: inc}
    end
  end

  @doc "Registers `name` on a name host peer; returns the name's JID."
  def register!(peer, name) do
    id = System.unique_integer([:positive])
    command(peer, %{"cmd" => "register", "id" => id, "name" => name})

    case next(peer, &(&1["id"] == id and &1["event"] in ["registered", "error"])) do
      %{"event" => "registered", "jid" => jid} -> jid
      other -> raise "register #{name}: #{inspect(other)}"
    end
  end

  @doc """
  Starts the `bus_name_blocking` example (the blocking API holding name
  `name` on the harness's component, released with `exit` when it is
  called `stop`); waits until it prints `registered`. Returns a peer
  whose `jid` is the name's.
  """
  def start_name_blocking(server, name, exit \\ nil) do
    {out, status} =
      System.cmd(
        "cargo",
        ["build", "--release", "-p", "xmpp_bridge", "--example", "bus_name_blocking"],
        cd: @root,
        stderr_to_stdout: true
      )

    if status != 0, do: raise("cargo build of bus_name_blocking failed:\n" <> out)

    args =
      [
        "--domain",
        server.component_domain,
        "--secret",
        server.component_secret,
        "--host",
        server.host,
        "--port",
        Integer.to_string(server.ports.component),
        "--name",
        name
      ] ++ if(exit, do: ["--exit", exit], else: [])

    port =
      Port.open({:spawn_executable, binary("bus_name_blocking")}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    peer = %__MODULE__{port: port, os_pid: os_pid, id: port, user: name}

    case next(peer, &(&1["event"] == "registered"), 15_000) do
      %{"jid" => jid} -> %{peer | jid: jid}
    end
  end

  @doc "Waits (up to `timeout` ms) for a peer's OS process to exit; its status."
  def await_exit_status(%__MODULE__{port: port}, timeout \\ 10_000), do: await_exit(port, timeout)
end
