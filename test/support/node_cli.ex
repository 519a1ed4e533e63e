defmodule XmppBridge.Test.NodeCli do
  @moduledoc false
  # The `xmpp-bridge-node` program of the pure crate
  # (native/xmpp_bridge/src/bin/xmpp-bridge-node, its contract is its
  # --help) as a real OS process: `serve` runs under a Port owned by the
  # test process (its JSON lines arrive as port data), the one-shot
  # subcommands (`send`, `call`, `monitor`) run to their exit with stdout
  # and stderr captured apart.
  #
  # The password travels in XMPP_BRIDGE_PASSWORD (as the --help
  # recommends), the rest as flags.

  alias XmppBridge.Payload.Json

  defstruct [:port, :os_pid, :jid, :incarnation, :user, joined: %{}]

  @root Path.expand("../..", __DIR__)

  @doc "Builds the program (once per test run) and returns its path."
  def build! do
    case :persistent_term.get({__MODULE__, :bin}, nil) do
      nil ->
        {out, status} =
          System.cmd(
            "cargo",
            ["build", "--release", "-p", "xmpp_bridge", "--bin", "xmpp-bridge-node"],
            cd: @root,
            stderr_to_stdout: true
          )

        if status != 0, do: raise("cargo build of xmpp-bridge-node failed:\n" <> out)
        bin = Path.join([target_dir(), "release", "xmpp-bridge-node"])
        :persistent_term.put({__MODULE__, :bin}, bin)
        bin

      bin ->
        bin
    end
  end

  defp target_dir do
    case System.get_env("CARGO_TARGET_DIR") do
      dir when dir in [nil, ""] -> Path.join(@root, "target")
      dir -> dir
    end
  end

  @doc "The connection flags for `user` of `server` (plaintext loopback listener)."
  def conn_args(server, user) do
    [
      "--jid",
      XmppTestServer.jid(server, user),
      "--host",
      server.host,
      "--port",
      Integer.to_string(server.ports.c2s_plain),
      "--tls",
      "plain",
      "--heartbeat-ms",
      "500",
      "--heartbeat-timeout-ms",
      "1000"
    ]
  end

  @doc "The environment for `user` of `server`: its password."
  def conn_env(server, user),
    do: [{"XMPP_BRIDGE_PASSWORD", Map.get(server.accounts, user, "#{user}-secret")}]

  @doc """
  Starts `serve` for `user` and waits for its `online` line, and for a
  `joined` line per `--join GROUP` and `--discovery GROUP` in `extra` (more
  flags: `--echo`, `--max-calls N`, `--monitor JID`, `--commands`, ...);
  the members each `joined` line lists are in `joined`. `env` adds
  variables.
  """
  def serve(server, user, extra \\ [], env \\ []) do
    args = ["serve", "--exit-on-eof" | without_host(conn_args(server, user), extra)] ++ extra

    port_env =
      for {k, v} <- conn_env(server, user) ++ env,
          do: {String.to_charlist(k), String.to_charlist(v)}

    port =
      Port.open({:spawn_executable, build!()}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args,
        env: port_env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    node = %__MODULE__{port: port, os_pid: os_pid, user: user}
    %{"jid" => jid, "incarnation" => inc} = next(node, &(&1["event"] == "online"), 15_000)
    groups = flag_values(extra, "--join") ++ flag_values(extra, "--discovery")
    groups = groups ++ for({"XMPP_BRIDGE_JOIN", v} <- env, g <- String.split(v, ","), do: g)

    joined =
      Map.new(Enum.uniq(groups), fn _ ->
        %{"group" => g, "members" => ms} = next(node, &(&1["event"] == "joined"), 15_000)
        {g, ms}
      end)

    %{node | jid: jid, incarnation: inc, joined: joined}
  end

  # A flag of conn_args/2 also in `extra` is extra's; `--servers` (the
  # nodes of a cluster) replaces --host/--port.
  defp without_host(args, extra) do
    args =
      if "--servers" in extra, do: args |> drop_flag("--host") |> drop_flag("--port"), else: args

    Enum.reduce(["--heartbeat-ms", "--heartbeat-timeout-ms"], args, fn flag, acc ->
      if flag in extra, do: drop_flag(acc, flag), else: acc
    end)
  end

  defp drop_flag([flag, _ | rest], flag), do: rest
  defp drop_flag([x | rest], flag), do: [x | drop_flag(rest, flag)]
  defp drop_flag([], _flag), do: []

  @doc "`--servers` for a cluster's plaintext listeners, in the order given."
  def servers_arg(servers),
    do: ["--servers", Enum.map_join(servers, ",", fn {h, p} -> "#{h}:#{p}" end)]

  defp flag_values([flag, v | rest], flag), do: [v | flag_values(rest, flag)]
  defp flag_values([_ | rest], flag), do: flag_values(rest, flag)
  defp flag_values([], _flag), do: []

  @doc "Writes a command (a map, as JSON) on a `serve --commands` node's stdin."
  def command(%__MODULE__{port: port}, cmd) do
    {:ok, %Json{json: json}} = Json.from_term(cmd)
    true = Port.command(port, json <> "\n")
    :ok
  end

  @doc "The next line of a `serve` node for which `match?` is true (others are dropped)."
  def next(%__MODULE__{port: port} = node, match?, timeout \\ 10_000) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        event = decode(line)
        if match?.(event), do: event, else: next(node, match?, timeout)

      {^port, {:exit_status, status}} ->
        raise "xmpp-bridge-node serve exited with status #{status} while a line was awaited"
    after
      timeout -> raise "no matching line from xmpp-bridge-node serve within #{timeout} ms"
    end
  end

  @doc "Every line of a `serve` node until none came for `quiet` ms."
  def drain(%__MODULE__{port: port} = node, quiet, acc \\ []) do
    receive do
      {^port, {:data, {:eol, line}}} -> drain(node, quiet, [decode(line) | acc])
      {^port, {:exit_status, status}} -> raise "xmpp-bridge-node serve exited with #{status}"
    after
      quiet -> Enum.reverse(acc)
    end
  end

  @doc "Every line of a `serve` node until it exits: `{events, exit_status}`."
  def until_exit(%__MODULE__{port: port} = node, timeout \\ 10_000, acc \\ []) do
    receive do
      {^port, {:data, {:eol, line}}} -> until_exit(node, timeout, [decode(line) | acc])
      {^port, {:exit_status, status}} -> {Enum.reverse(acc), status}
    after
      timeout -> raise "xmpp-bridge-node serve did not exit within #{timeout} ms"
    end
  end

  @doc "Sends a signal (`\"TERM\"`, `\"INT\"`, `\"KILL\"`) to a `serve` node, by its OS pid."
  def signal(%__MODULE__{os_pid: os_pid}, sig) do
    {_, 0} = System.cmd("kill", ["-" <> sig, Integer.to_string(os_pid)])
    :ok
  end

  @doc "Stops a `serve` node with SIGTERM; returns `{events, exit_status}`."
  def stop(%__MODULE__{} = node) do
    signal(node, "TERM")
    until_exit(node)
  end

  @doc "Kills a `serve` node if it is still running (for `on_exit`)."
  def kill_quietly(%__MODULE__{os_pid: os_pid}) do
    System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
    :ok
  end

  @doc """
  Runs the program to its exit with `args` and `env` (a list of
  `{name, value}`); returns `%{status: n, stdout: text, stderr: text}`.
  """
  def run(args, env \\ []) do
    err = Path.join(System.tmp_dir!(), "xb-node-cli-#{System.unique_integer([:positive])}.err")

    try do
      # sh only sends stderr to a file of its own: System.cmd can merge
      # it into stdout but not capture it apart.
      {stdout, status} =
        System.cmd("/bin/sh", ["-c", ~s(exec "$0" "$@" 2>"$XB_CLI_STDERR"), build!() | args],
          env: [{"XB_CLI_STDERR", err} | env]
        )

      %{status: status, stdout: stdout, stderr: File.read!(err)}
    after
      File.rm(err)
    end
  end

  @doc "Runs a one-shot subcommand as `user` of `server`."
  def run_as(server, user, args), do: run(args ++ conn_args(server, user), conn_env(server, user))

  @doc "The JSON lines of a run's stdout, decoded."
  def lines!(%{stdout: stdout}),
    do: stdout |> String.split("\n", trim: true) |> Enum.map(&decode/1)

  @doc "The one JSON value on a run's stdout."
  def json!(%{stdout: stdout}), do: decode(String.trim(stdout))

  defp decode(line) do
    case Json.to_term(%Json{json: line}) do
      {:ok, v} ->
        v

      {:error, e} ->
        raise "not a JSON line from xmpp-bridge-node: #{inspect(line)} (#{inspect(e)})"
    end
  end

  @doc "The term in a line's base64 ETF field, read safely."
  def term64(b64) do
    {:ok, term} = XmppBridge.Bus.Term.decode(Base.decode64!(b64))
    term
  end
end
