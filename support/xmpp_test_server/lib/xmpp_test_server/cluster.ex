defmodule XmppTestServer.Cluster do
  @moduledoc """
  A 2-node ejabberd cluster on loopback, for failover tests and demos.

      {:ok, cluster} = XmppTestServer.Cluster.start(accounts: ["alice", "bob"])
      [a, b] = cluster.nodes                     # two %XmppTestServer{}
      XmppTestServer.Cluster.servers(cluster)    #=> [{"127.0.0.1", 40212}, {"127.0.0.1", 40312}]
      :ok = XmppTestServer.Cluster.kill(cluster, 0)       # kill -9 of node A's beam
      {:ok, cluster} = XmppTestServer.Cluster.restart(cluster, 0)   # A rejoins
      :ok = XmppTestServer.Cluster.stop(cluster)

  Each node is an ordinary `XmppTestServer` (its own dir, listeners,
  watchdog and owner monitor) with the same virtual host, MUC service,
  component domain and secret, and one CA and certificate for both, so a
  client configured for one node can log in on the other. The accounts
  are registered once, after the join, and exist on both nodes (Mnesia
  replicates them); so do rooms' configurations, offline messages and
  component routes.

  How it is put together (what `../shared/CLUSTER.md` measured, and why):

    * Distribution stays without epmd. Each node keeps the harness's
      `ERL_DIST_PORT` (its own listen port) and loads a small epmd module
      (`-epmd_module`) that knows the cluster's name -> port table, so that
      node A dials B at B's port and not at its own.
    * Both nodes start together; then B runs `join_cluster` to A, which
      restarts B's ejabberd with A's tables (B's listeners are down for a
      moment: the join waits until B says started again).
    * After `kill/2` of a node, the other keeps serving: sessions of the
      dead node are gone (no resumption there), temporary rooms it hosted
      are gone, persistent rooms restart on the survivor, and contacts of
      its users get no `unavailable` (ghost presence). `restart/2` starts
      the node again from its spool: it rejoins the cluster on its own,
      and `restart/2` returns once both nodes run Mnesia together.
  """

  alias XmppTestServer.{Ejabberd, OS, TLS}

  @typedoc """
  A running cluster: `nodes` (A first), and what both nodes share.
  """
  @type t :: %__MODULE__{
          nodes: [XmppTestServer.t()],
          domain: String.t(),
          host: String.t(),
          muc_domain: String.t(),
          component_domain: String.t(),
          component_secret: String.t(),
          ca_file: Path.t(),
          dir: Path.t(),
          accounts: %{String.t() => String.t()},
          started_in_ms: non_neg_integer()
        }

  defstruct nodes: [],
            domain: "localhost",
            host: "127.0.0.1",
            muc_domain: nil,
            component_domain: nil,
            component_secret: nil,
            ca_file: nil,
            dir: nil,
            accounts: %{},
            started_in_ms: 0

  @epmd_module :xb_cluster_epmd
  @passed [:log_level, :extra_config, :max_ack_queue, :offline_limit, :keep_dir]

  @doc """
  Starts two ejabberd nodes, joins B to A and registers the accounts.

  Options: `:accounts`, `:owner`, `:component_secret`, `:timeout`, and
  `:log_level`, `:extra_config`, `:max_ack_queue`, `:offline_limit`,
  `:keep_dir` as for `XmppTestServer.start/2` (applied to both nodes).
  The domain is always `"localhost"`.
  """
  @spec start(keyword()) :: {:ok, t()} | {:error, term()}
  def start(opts \\ []) do
    t0 = System.monotonic_time(:millisecond)
    owner = Keyword.get(opts, :owner, self())
    timeout = Keyword.get(opts, :timeout, 60_000)
    secret = Keyword.get_lazy(opts, :component_secret, &random_id/0)
    id = random_id()
    dir = Path.join(System.tmp_dir!(), "xmpp_test_server-cluster-#{id}")

    with {:ok, accounts} <- accounts(opts),
         :ok <- File.mkdir_p(dir),
         :ok <- File.chmod(dir, 0o755),
         {:ok, ebin} <- compile_epmd_module(dir),
         {:ok, tls} <- tls(dir),
         :ok <- chown(dir) do
      [port_a, port_b] = OS.free_ports(2)
      names = ["xbc#{id}a", "xbc#{id}b"]
      spec = Enum.map_join(Enum.zip(names, [port_a, port_b]), ",", fn {n, p} -> "#{n}:#{p}" end)

      node_opts = fn name, port ->
        Keyword.take(opts, @passed) ++
          [
            owner: owner,
            component_secret: secret,
            timeout: timeout,
            dir_root: dir,
            tls: tls,
            cluster_node: %{
              name: name,
              dist_port: port,
              ports_spec: spec,
              ebin: ebin,
              epmd_module: @epmd_module
            }
          ]
      end

      # Both nodes boot at once (each beam takes a second or two).
      started =
        [{Enum.at(names, 0), port_a}, {Enum.at(names, 1), port_b}]
        |> Enum.map(fn {name, port} ->
          Task.async(fn -> XmppTestServer.start(:ejabberd, node_opts.(name, port)) end)
        end)
        |> Task.await_many(timeout + 10_000)

      deadline = System.monotonic_time(:millisecond) + timeout

      with [{:ok, a}, {:ok, b}] <- started,
           :ok <- Ejabberd.join_cluster(b, a.node, deadline),
           :ok <- await_joined(a, 2, deadline),
           :ok <- register_all(a, b, accounts) do
        {:ok,
         %__MODULE__{
           nodes: [a, b],
           muc_domain: a.muc_domain,
           component_domain: a.component_domain,
           component_secret: secret,
           ca_file: a.ca_file,
           dir: dir,
           accounts: Map.new(accounts),
           started_in_ms: System.monotonic_time(:millisecond) - t0
         }}
      else
        failure ->
          for {:ok, server} <- List.wrap(started), do: XmppTestServer.stop(server)
          File.rm_rf(dir)
          {:error, cluster_error(failure)}
      end
    else
      {:error, reason} ->
        File.rm_rf(dir)
        {:error, reason}
    end
  end

  @doc "Like `start/1`, but raises on failure."
  @spec start!(keyword()) :: t()
  def start!(opts \\ []) do
    case start(opts) do
      {:ok, cluster} -> cluster
      {:error, reason} -> raise "XmppTestServer.Cluster.start: #{XmppTestServer.format(reason)}"
    end
  end

  @doc "Stops both nodes and removes the cluster's dir. Idempotent."
  @spec stop(t()) :: :ok
  def stop(%__MODULE__{nodes: nodes, dir: dir}) do
    nodes
    |> Enum.map(&Task.async(fn -> XmppTestServer.stop(&1) end))
    |> Task.await_many(90_000)

    File.rm_rf(dir)
    :ok
  end

  @doc "SIGKILLs node `i`'s beam (0 is A, 1 is B) and waits until it is gone."
  @spec kill(t(), non_neg_integer()) :: :ok
  def kill(%__MODULE__{nodes: nodes}, i), do: XmppTestServer.kill(Enum.at(nodes, i))

  @doc """
  Starts node `i` again (after `kill/2`); returns the cluster with the
  node's new state once it runs Mnesia with the other node again.
  """
  @spec restart(t(), non_neg_integer(), timeout()) :: {:ok, t()} | {:error, term()}
  def restart(%__MODULE__{nodes: nodes} = cluster, i, timeout \\ 60_000) do
    deadline = System.monotonic_time(:millisecond) + timeout

    with {:ok, server} <- XmppTestServer.restart(Enum.at(nodes, i)),
         :ok <- await_joined(server, length(nodes), deadline) do
      {:ok, %{cluster | nodes: List.replace_at(nodes, i, server)}}
    end
  end

  @doc """
  The c2s endpoints of the nodes, A first, as `{host, port}`: `listener`
  is `:c2s_plain` (default), `:c2s_starttls` or `:component`.
  """
  @spec servers(t(), :c2s_plain | :c2s_starttls | :component) :: [
          {String.t(), :inet.port_number()}
        ]
  def servers(%__MODULE__{nodes: nodes, host: host}, listener \\ :c2s_plain) do
    Enum.map(nodes, &{host, Map.fetch!(&1.ports, listener)})
  end

  @doc "Registers (or resets) an account; it exists on both nodes when this returns."
  @spec register(t(), String.t(), String.t()) :: :ok | {:error, term()}
  def register(%__MODULE__{nodes: [a | _] = nodes}, user, password) do
    with :ok <- XmppTestServer.register(a, user, password) do
      sync_all(nodes)
    end
  end

  @doc """
  Where every session of the cluster is, as seen from node `i`: a map of
  full JID -> index of the server node it is on (0 for A, 1 for B).
  """
  @spec sessions(t(), non_neg_integer()) ::
          {:ok, %{String.t() => non_neg_integer()}} | {:error, term()}
  def sessions(%__MODULE__{nodes: nodes}, i \\ 0) do
    index = nodes |> Enum.with_index() |> Map.new(fn {n, k} -> {n.node, k} end)

    with {:ok, list} <- Ejabberd.sessions(Enum.at(nodes, i)) do
      {:ok, Map.new(list, fn {jid, node} -> {jid, Map.get(index, node)} end)}
    end
  end

  @doc "The Mnesia nodes node `i` runs with (both, in a healthy cluster)."
  @spec running_db_nodes(t(), non_neg_integer()) :: {:ok, [String.t()]} | {:error, term()}
  def running_db_nodes(%__MODULE__{nodes: nodes}, i),
    do: Ejabberd.running_db_nodes(Enum.at(nodes, i))

  ## Internals

  defp accounts(opts) do
    accounts =
      for a <- Keyword.get(opts, :accounts, []) do
        case a do
          {user, pw} -> {user, pw}
          user when is_binary(user) -> {user, "#{user}-secret"}
        end
      end

    {:ok, accounts}
  end

  defp register_all(_a, _b, []), do: :ok

  defp register_all(a, b, accounts) do
    with :ok <- Ejabberd.register_many(a, accounts) do
      sync_all([a, b])
    end
  end

  defp sync_all(nodes) do
    Enum.reduce_while(nodes, :ok, fn node, :ok ->
      case Ejabberd.sync(node) do
        :ok -> {:cont, :ok}
        error -> {:halt, error}
      end
    end)
  end

  defp await_joined(server, n, deadline) do
    case Ejabberd.running_db_nodes(server) do
      {:ok, nodes} when length(nodes) >= n ->
        :ok

      other ->
        if System.monotonic_time(:millisecond) > deadline do
          {:error, {:cluster_not_joined, server.node, other}}
        else
          Process.sleep(200)
          await_joined(server, n, deadline)
        end
    end
  end

  defp cluster_error({:error, reason}), do: reason

  defp cluster_error(started) when is_list(started) do
    case Enum.find(started, &match?({:error, _}, &1)) do
      {:error, reason} -> reason
      nil -> {:cluster_start_failed, started}
    end
  end

  defp cluster_error(other), do: {:cluster_start_failed, other}

  defp tls(dir) do
    TLS.generate(
      Path.join(dir, "tls"),
      ["localhost", "conference.localhost", "bridge.localhost"],
      "cluster"
    )
  end

  defp chown(dir) do
    if OS.root?(), do: OS.chown_r(dir, Ejabberd.user()), else: :ok
  end

  # The epmd module the nodes load: a fixed dist port per node name, taken
  # from the command line (-xb_cluster_epmd_ports name:port,...); any other
  # name is asked of the standard erl_epmd. Compiled here, with the
  # harness's own compiler (the same OTP as the server's).
  defp compile_epmd_module(dir) do
    ebin = Path.join(dir, "ebin")
    src = Path.join(ebin, "#{@epmd_module}.erl")
    File.mkdir_p!(ebin)
    File.write!(src, epmd_source())

    case :compile.file(String.to_charlist(src), [
           :report_errors,
           outdir: String.to_charlist(ebin)
         ]) do
      {:ok, _} -> {:ok, ebin}
      other -> {:error, {:epmd_module_compile_failed, other}}
    end
  end

  defp epmd_source do
    """
    %% Generated by XmppTestServer.Cluster.
    -module(#{@epmd_module}).
    -export([start_link/0, register_node/2, register_node/3, port_please/2,
             port_please/3, listen_port_please/2, address_please/3,
             names/0, names/1]).

    start_link() -> erl_epmd:start_link().
    register_node(Name, Port) -> erl_epmd:register_node(Name, Port).
    register_node(Name, Port, Family) -> erl_epmd:register_node(Name, Port, Family).
    names() -> erl_epmd:names().
    names(Host) -> erl_epmd:names(Host).
    address_please(Name, Host, Family) -> erl_epmd:address_please(Name, Host, Family).

    listen_port_please(Name, Host) ->
        case fixed_port(Name) of
            {ok, Port} -> {ok, Port};
            none -> erl_epmd:listen_port_please(Name, Host)
        end.

    port_please(Name, Host) -> port_please(Name, Host, infinity).

    port_please(Name, Host, Timeout) ->
        case fixed_port(Name) of
            {ok, Port} -> {port, Port, 5};
            none -> erl_epmd:port_please(Name, Host, Timeout)
        end.

    fixed_port(Name) when is_atom(Name) -> fixed_port(atom_to_list(Name));
    fixed_port(Name) ->
        Table = case init:get_argument(#{@epmd_module}_ports) of
                    {ok, [[Spec] | _]} -> [string:split(E, ":") || E <- string:lexemes(Spec, ",")];
                    _ -> []
                end,
        case [P || [N, P] <- Table, N =:= Name] of
            [P | _] -> {ok, list_to_integer(P)};
            [] -> none
        end.
    """
  end

  defp random_id, do: Base.encode16(:crypto.strong_rand_bytes(4), case: :lower)
end
