defmodule XmppTestServer do
  @moduledoc """
  A private XMPP server for tests, benchmarks and demos: ejabberd or Prosody
  from Debian's packages, started in a temp dir with a generated config, on
  loopback, on free ports, with a CA and server certificate generated for the
  run.

      {:ok, server} = XmppTestServer.start(:ejabberd, accounts: [{"alice", "pw"}, "bob"])
      server.ports.c2s_starttls   #=> 40211 (STARTTLS required, cert signed by server.ca_file)
      server.ports.c2s_plain      #=> 40212 (plaintext auth allowed, loopback only)
      server.ports.component      #=> 40213 (XEP-0114, as server.component_domain)
      server.accounts             #=> %{"alice" => "pw", "bob" => "bob-secret"}
      :ok = XmppTestServer.stop(server)

  `mix xmpp_test_server` starts one by hand and prints all of this.

  This is xmpp_bridge's own test harness, a Mix project of its own
  (`support/xmpp_test_server` in the xmpp_bridge repository) that the root
  project uses as a path dependency only in its `:dev`, `:test` and `:bench`
  environments: it is not part of the xmpp_bridge library, and it does not
  depend on it.

  ## What runs

  Both servers get the same shape, so one client test suite can run against
  either:

    * one virtual host, `domain` (default `"localhost"`, which resolves to
      loopback; connect to `host` - always `"127.0.0.1"` - and use `domain` as
      the stream `to` and TLS SNI / host name to verify)
    * `c2s_starttls` - client listener where STARTTLS is required; the server
      certificate is signed by the run's CA (`ca_file`, PEM) and carries
      subjectAltNames for `domain`, `muc_domain`, `component_domain` and
      IP 127.0.0.1
    * `c2s_plain` - a second client listener where authentication (SASL
      PLAIN included) is allowed without TLS, bound to loopback only
    * `component` - an external component listener (XEP-0114) for
      `component_domain` (`"bridge.<domain>"`) with `component_secret`
    * MUC at `muc_domain` (`"conference.<domain>"`), offline storage, stream
      management (XEP-0198), ping, disco, roster, carbons; in-band
      registration off (accounts are made with `register/3`)
    * limits that would cut message bursts raised (stream management queue
      100,000 stanzas; ejabberd's per-session queue 100,000; offline store
      100,000 per user); no traffic shaping

  All listeners (and ejabberd's distribution port) are bound to 127.0.0.1.

  ## Lifetime

  `start/2` returns once the server answers: every port accepts, a stream
  opened on `c2s_plain` gets features with SASL mechanisms, and for ejabberd
  `ejabberdctl status` says started; then the accounts are registered (for
  ejabberd, also flushed to disk, so they survive `kill/1`). With two
  accounts it takes about 2-3 s for ejabberd (the beam boots in ~0.7 s; each
  `ejabberdctl` call boots a small Erlang node of its own, ~0.3-0.5 s) and
  0.2-0.4 s for Prosody; `restart/1` about 1.4 s and 0.1 s; `stop/1` about
  2.3 s (ejabberdctl stop) and 30 ms.

  The server is owned by a process of its own (`server.pid`), which
  monitors the *owner* (by default the caller of `start/2`): when the owner
  exits, the server is stopped and its dir removed. Should the whole VM die
  (even `kill -9`), a watchdog shell started with the server SIGKILLs the
  server's OS process and removes the dir. Nothing is ever stopped by name:
  only the OS pid the harness recorded (ejabberd's from its pid file,
  Prosody's from the Port running it), or ejabberd's unique node name via
  `ejabberdctl stop`.

  ## Privileges

  The harness is meant to run as root (CI containers): ejabberdctl runs the
  node as the `ejabberd` user and Prosody is run as the `prosody` user, so the
  server's dir is chowned to that user. Prosody also works as an ordinary
  user; ejabberdctl only as root or as the `ejabberd` user.

  ## Errors

  Functions return `{:error, reason}` with a tuple reason, e.g.
  `{:start_failed, :ejabberd, detail, diagnostics}` where `diagnostics` holds
  the end of the server's logs, `{:missing_executable, "ejabberdctl"}`
  (install the packages with the repository's `scripts/install-deps.sh`),
  `{:register_failed, user, detail}`, `{:bad_option, detail}`.
  """

  use GenServer

  alias XmppTestServer.{Ejabberd, OS, Prosody, TLS}

  @typedoc "Which server to run."
  @type kind :: :ejabberd | :prosody

  @typedoc "The loopback TCP ports of a server."
  @type ports :: %{
          c2s_starttls: :inet.port_number(),
          c2s_plain: :inet.port_number(),
          component: :inet.port_number()
        }

  @typedoc """
  A running server.

    * `kind` - `:ejabberd` or `:prosody`
    * `pid` - the process that owns the server (see "Lifetime")
    * `domain` - the virtual host (accounts are `user@domain`)
    * `host` - where to connect: `"127.0.0.1"`
    * `ports` - see `t:ports/0`
    * `muc_domain`, `component_domain`, `component_secret` - the MUC service
      and the external component (XEP-0114) address and secret
    * `ca_file` - PEM of the CA that signed the server certificate
    * `dir` - the temp dir holding config, data, logs and certificates
    * `accounts` - `%{user => password}` registered by `start/2`
    * `os_pid` - OS pid of the server (beam.smp for ejabberd, lua for Prosody)
      when the struct was returned; `info/1` has the current one
    * `node` - ejabberd's Erlang node name (`nil` for Prosody)
    * `config_file`, `log_files` - the generated config and the server's logs
    * `started_in_ms` - time `start/2` (or `restart/1`) took until ready
  """
  @type t :: %__MODULE__{
          kind: kind(),
          pid: pid(),
          domain: String.t(),
          host: String.t(),
          ports: ports(),
          muc_domain: String.t(),
          component_domain: String.t(),
          component_secret: String.t(),
          ca_file: Path.t(),
          dir: Path.t(),
          accounts: %{String.t() => String.t()},
          os_pid: non_neg_integer() | nil,
          node: String.t() | nil,
          config_file: Path.t(),
          log_files: [Path.t()],
          started_in_ms: non_neg_integer() | nil,
          tls: map(),
          private: map()
        }

  defstruct kind: nil,
            pid: nil,
            domain: nil,
            host: "127.0.0.1",
            ports: nil,
            muc_domain: nil,
            component_domain: nil,
            component_secret: nil,
            ca_file: nil,
            dir: nil,
            accounts: %{},
            os_pid: nil,
            node: nil,
            config_file: nil,
            log_files: [],
            started_in_ms: nil,
            tls: %{},
            private: %{}

  @typedoc """
  An account to register: `{user, password}`, or a bare `user` (its password
  is then `"<user>-secret"`).
  """
  @type account :: {String.t(), String.t()} | String.t()

  @type option ::
          {:domain, String.t()}
          | {:accounts, [account()]}
          | {:owner, pid() | nil}
          | {:component_secret, String.t()}
          | {:timeout, pos_integer()}
          | {:keep_dir, boolean()}
          | {:dir_root, Path.t()}
          | {:log_level, String.t()}
          | {:extra_config, String.t()}
          | {:max_ack_queue, pos_integer()}
          | {:offline_limit, pos_integer()}
          | {:tls, map()}
          | {:cluster_node, map()}

  @options [
    :domain,
    :accounts,
    :owner,
    :component_secret,
    :timeout,
    :keep_dir,
    :dir_root,
    :log_level,
    :extra_config,
    :max_ack_queue,
    :offline_limit,
    :tls,
    :cluster_node
  ]
  @loopback {127, 0, 0, 1}
  @log_lines 200

  ## API

  @doc """
  Starts a server and returns once it answers and the accounts exist.

  Options:

    * `:domain` - virtual host (default `"localhost"`); use a name that
      resolves to loopback or connect to `host` and send it as stream `to`
    * `:accounts` - accounts to register, see `t:account/0` (default none)
    * `:owner` - the server is stopped when this process exits (default: the
      caller); `nil` for a server that lives until `stop/1` or the VM ends
    * `:component_secret` - XEP-0114 secret (default: random)
    * `:timeout` - ms to wait for the server to answer (default 30,000)
    * `:keep_dir` - keep the temp dir after stop, for post-mortems (default
      `false`)
    * `:dir_root` - where the temp dir is made (default `System.tmp_dir!/0`);
      it must be reachable by the `ejabberd`/`prosody` user
    * `:log_level` - the server's log level, default `"info"` (ejabberd:
      `"none"`, `"error"`, `"warning"`, `"notice"`, `"info"`, `"debug"`;
      Prosody: `"error"`, `"warn"`, `"info"`, `"debug"`)
    * `:extra_config` - text appended to the generated config (top-level
      YAML for ejabberd, global-section Lua for Prosody) - new keys only
    * `:max_ack_queue` - ejabberd only: unacknowledged XEP-0198 stanzas the
      server keeps for a session before it closes it (default 100,000;
      ejabberd's own default is 5,000)
    * `:offline_limit` - ejabberd only: messages the server stores for an
      offline account before it bounces more (default 100,000)
  """
  @spec start(kind(), [option()]) :: {:ok, t()} | {:error, term()}
  def start(kind, opts \\ []) when kind in [:ejabberd, :prosody] do
    with :ok <- validate(opts) do
      owner = Keyword.get(opts, :owner, self())

      case GenServer.start(__MODULE__, {kind, opts, owner}, timeout: :infinity) do
        {:ok, pid} -> {:ok, GenServer.call(pid, :info)}
        {:error, reason} -> {:error, reason}
      end
    end
  end

  @doc "Like `start/2`, but raises on failure."
  @spec start!(kind(), [option()]) :: t()
  def start!(kind, opts \\ []) do
    case start(kind, opts) do
      {:ok, server} -> server
      {:error, reason} -> raise "XmppTestServer.start(#{inspect(kind)}): #{format(reason)}"
    end
  end

  @doc """
  Stops the server gracefully (`ejabberdctl stop` for its node, SIGTERM for
  Prosody), SIGKILLs its OS pid if it has not exited after 15 s, waits until
  the OS process is gone and removes the dir (unless `:keep_dir`). Idempotent:
  `:ok` for a server already stopped.
  """
  @spec stop(t()) :: :ok
  def stop(%__MODULE__{pid: pid}) do
    GenServer.call(pid, :stop, 60_000)
  catch
    :exit, {reason, _} when reason in [:noproc, :normal] -> :ok
  end

  @doc """
  Kills the server's OS process with SIGKILL (a crash, for tests of
  reconnection and lost stanzas) and waits until it is gone. The dir, ports
  and data stay: `restart/1` brings the server back.
  """
  @spec kill(t()) :: :ok
  def kill(%__MODULE__{pid: pid}), do: GenServer.call(pid, :kill, 30_000)

  @doc """
  Starts the server again on the same ports, dir and data (accounts survive),
  stopping it gracefully first if it runs. Returns the updated struct (new
  `os_pid`).
  """
  @spec restart(t()) :: {:ok, t()} | {:error, term()}
  def restart(%__MODULE__{pid: pid}), do: GenServer.call(pid, :restart, :infinity)

  @doc """
  Creates an account `user@domain` with `password`, or sets the password of
  an existing one (`ejabberdctl register` / `prosodyctl register`). Runs in
  the caller, so several can run concurrently. The struct's `accounts` is not
  updated (it lists those made by `start/2`).
  """
  @spec register(t(), String.t(), String.t()) :: :ok | {:error, term()}
  def register(%__MODULE__{} = server, user, password)
      when is_binary(user) and is_binary(password) do
    backend(server.kind).register(server, user, password)
  end

  @doc "The current state of the server (its `os_pid` after a restart)."
  @spec info(t()) :: t()
  def info(%__MODULE__{pid: pid}), do: GenServer.call(pid, :info)

  @doc """
  Whether the server's OS process is running. `false` after `stop/1` or
  `kill/1`, and for a server whose owner process is gone.
  """
  @spec alive?(t()) :: boolean()
  def alive?(%__MODULE__{pid: pid} = server) do
    case Process.alive?(pid) && info(server) do
      %__MODULE__{os_pid: os_pid} -> OS.alive?(os_pid)
      _ -> false
    end
  catch
    :exit, _ -> false
  end

  @doc "Whether an OS pid is alive (a zombie counts as gone)."
  @spec os_pid_alive?(non_neg_integer() | nil) :: boolean()
  def os_pid_alive?(os_pid), do: OS.alive?(os_pid)

  @doc ~S'The bare JID of an account: `jid(server, "alice")` is `"alice@localhost"`.'
  @spec jid(t(), String.t()) :: String.t()
  def jid(%__MODULE__{domain: domain}, user), do: "#{user}@#{domain}"

  @doc """
  The last lines of the server's logs (and of what it printed), for
  diagnostics.
  """
  @spec log_tail(t(), pos_integer()) :: String.t()
  def log_tail(%__MODULE__{pid: pid} = server, lines \\ 50) do
    console =
      try do
        GenServer.call(pid, :console)
      catch
        :exit, _ -> []
      end

    diagnostics(server, console, lines)
  end

  @doc "A readable sentence for an error reason of this module."
  @spec format(term()) :: String.t()
  def format({:start_failed, kind, detail, diagnostics}) do
    "#{kind} did not start: #{inspect(detail)}" <>
      if(diagnostics != "", do: "\n--- server log ---\n#{diagnostics}", else: "")
  end

  def format({:missing_executable, name}) do
    "#{name} not found on PATH (install the servers with scripts/install-deps.sh)"
  end

  def format({:register_failed, user, detail}),
    do: "registering #{inspect(user)} failed: #{inspect(detail)}"

  def format({:bad_option, detail}), do: "bad option: #{detail}"
  def format(other), do: inspect(other)

  ## Options

  defp validate(opts) do
    cond do
      not Keyword.keyword?(opts) ->
        {:error, {:bad_option, "options must be a keyword list"}}

      (unknown = Keyword.keys(opts) -- @options) != [] ->
        {:error, {:bad_option, "unknown option(s) #{inspect(unknown)}"}}

      not valid_domain?(Keyword.get(opts, :domain, "localhost")) ->
        {:error, {:bad_option, ":domain must be a DNS name such as \"localhost\""}}

      not match?({:ok, _}, normalize_accounts(Keyword.get(opts, :accounts, []))) ->
        {:error, {:bad_option, ":accounts must be a list of {user, password} or user strings"}}

      not (Keyword.get(opts, :owner, self()) |> then(&(is_pid(&1) or is_nil(&1)))) ->
        {:error, {:bad_option, ":owner must be a pid or nil"}}

      not (Keyword.get(opts, :max_ack_queue, 1) |> then(&(is_integer(&1) and &1 > 0))) ->
        {:error, {:bad_option, ":max_ack_queue must be a positive integer"}}

      not (Keyword.get(opts, :offline_limit, 1) |> then(&(is_integer(&1) and &1 > 0))) ->
        {:error, {:bad_option, ":offline_limit must be a positive integer"}}

      true ->
        :ok
    end
  end

  defp valid_domain?(domain) when is_binary(domain),
    do: domain =~ ~r/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/

  defp valid_domain?(_), do: false

  defp normalize_accounts(accounts) when is_list(accounts) do
    Enum.reduce_while(accounts, {:ok, []}, fn
      {user, password}, {:ok, acc} when is_binary(user) and is_binary(password) ->
        {:cont, {:ok, [{user, password} | acc]}}

      user, {:ok, acc} when is_binary(user) ->
        {:cont, {:ok, [{user, "#{user}-secret"} | acc]}}

      _, _ ->
        {:halt, :error}
    end)
    |> case do
      {:ok, list} -> {:ok, Enum.reverse(list)}
      :error -> :error
    end
  end

  defp normalize_accounts(_), do: :error

  defp backend(:ejabberd), do: Ejabberd
  defp backend(:prosody), do: Prosody

  ## GenServer

  @impl GenServer
  def init({kind, opts, owner}) do
    Process.flag(:trap_exit, true)
    t0 = System.monotonic_time(:millisecond)
    backend = backend(kind)
    {:ok, accounts} = normalize_accounts(Keyword.get(opts, :accounts, []))

    case prepare(kind, backend, opts) do
      {:ok, server} ->
        keep? = Keyword.get(opts, :keep_dir, false)

        state = %{
          server: %{server | pid: self()},
          backend: backend,
          port: nil,
          running: false,
          console: [],
          keep_dir: keep?,
          watchdog: OS.watchdog(backend.marker(server), if(keep?, do: nil, else: server.dir)),
          owner_ref: owner && Process.monitor(owner),
          timeout: Keyword.get(opts, :timeout, 30_000)
        }

        with {:ok, state} <- boot(state),
             {:ok, state} <- register_all(state, accounts) do
          elapsed = System.monotonic_time(:millisecond) - t0
          server = %{state.server | accounts: Map.new(accounts), started_in_ms: elapsed}
          {:ok, %{state | server: server}}
        else
          {:error, reason, state} ->
            cleanup(state)
            {:stop, reason}
        end

      {:error, reason} ->
        {:stop, reason}
    end
  end

  @impl GenServer
  def handle_call(:info, _from, state), do: {:reply, state.server, state}
  def handle_call(:console, _from, state), do: {:reply, Enum.reverse(state.console), state}

  def handle_call(:stop, _from, state) do
    state = cleanup(state)
    {:stop, :normal, :ok, state}
  end

  def handle_call(:kill, _from, state) do
    state = drain(state)

    if state.running do
      pid = state.server.os_pid
      OS.kill(pid, :kill)
      OS.wait_gone(pid, 10_000)
    end

    state = close_port(state)
    {:reply, :ok, %{state | running: false}}
  end

  def handle_call(:restart, _from, state) do
    t0 = System.monotonic_time(:millisecond)
    state = shutdown(state)

    case boot(state) do
      {:ok, state} ->
        server = %{state.server | started_in_ms: System.monotonic_time(:millisecond) - t0}
        state = %{state | server: server}
        {:reply, {:ok, server}, state}

      {:error, reason, state} ->
        {:reply, {:error, reason}, shutdown(state)}
    end
  end

  @impl GenServer
  def handle_info({:DOWN, ref, :process, _, _}, %{owner_ref: ref} = state) do
    {:stop, :normal, cleanup(state)}
  end

  def handle_info({port, {:data, data}}, %{port: port} = state) do
    {:noreply, add_console(state, data)}
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    state = add_console(state, {:eol, "[harness] server exited with status #{status}"})
    {:noreply, %{state | running: false, port: nil}}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl GenServer
  def terminate(_reason, state) do
    if Map.has_key?(state, :backend), do: cleanup(state)
    :ok
  end

  ## Boot and shutdown

  defp prepare(kind, backend, opts) do
    domain = Keyword.get(opts, :domain, "localhost")
    root = Keyword.get(opts, :dir_root, System.tmp_dir!())
    dir = Path.join(root, "xmpp_test_server-#{kind}-#{random_id()}")

    try do
      File.mkdir_p!(dir)
      File.chmod!(dir, 0o755)
      [starttls, plain, component | extra] = OS.free_ports(3 + backend.extra_ports())

      server = %__MODULE__{
        kind: kind,
        domain: domain,
        ports: %{c2s_starttls: starttls, c2s_plain: plain, component: component},
        muc_domain: "conference.#{domain}",
        component_domain: "bridge.#{domain}",
        component_secret: Keyword.get_lazy(opts, :component_secret, &random_id/0),
        dir: dir
      }

      names = [domain, server.muc_domain, server.component_domain]

      # A cluster's nodes share one CA and certificate (XmppTestServer.Cluster).
      generated =
        case Keyword.fetch(opts, :tls) do
          {:ok, tls} -> {:ok, tls}
          :error -> TLS.generate(Path.join(dir, "tls"), names, "#{kind} #{domain}")
        end

      with {:ok, tls} <- generated,
           server = %{server | tls: tls, ca_file: tls.ca_file},
           {:ok, server} <- backend.prepare(server, extra, opts),
           :ok <- chown(dir, backend.user()) do
        {:ok, server}
      else
        {:error, reason} ->
          File.rm_rf(dir)
          {:error, reason}
      end
    rescue
      e ->
        File.rm_rf(dir)
        {:error, {:prepare_failed, Exception.message(e)}}
    end
  end

  defp chown(dir, user) do
    if OS.root?(), do: OS.chown_r(dir, user), else: :ok
  end

  defp boot(state) do
    %{server: server, backend: backend} = state
    deadline = System.monotonic_time(:millisecond) + state.timeout

    case backend.launch(server, deadline) do
      {:ok, os_pid, port} ->
        OS.watch(state.watchdog, os_pid)
        state = %{state | server: %{server | os_pid: os_pid}, port: port, running: true}

        with {:ok, state} <- await_ports(state, deadline),
             {:ok, state} <- await_features(state, deadline),
             :ok <- backend.ready(state.server, deadline) do
          {:ok, state}
        else
          {:error, reason, state} -> {:error, failure(state, reason), state}
          {:error, reason} -> {:error, failure(state, reason), state}
        end

      {:error, {:missing_executable, _} = reason} ->
        {:error, reason, state}

      {:error, reason} ->
        {:error, failure(state, reason), state}
    end
  end

  defp failure(state, reason) do
    state = drain(state)

    {:start_failed, state.server.kind, reason,
     diagnostics(state.server, Enum.reverse(state.console), 40)}
  end

  # Polls until all listeners accept, while checking the server is still alive.
  defp await_ports(state, deadline) do
    state = drain(state)
    ports = Map.values(state.server.ports)

    cond do
      not state.running or not OS.alive?(state.server.os_pid) ->
        {:error, :exited_during_start, state}

      Enum.all?(ports, &OS.accepts?/1) ->
        {:ok, state}

      System.monotonic_time(:millisecond) > deadline ->
        {:error, {:timeout, :listeners}, state}

      true ->
        Process.sleep(50)
        await_ports(state, deadline)
    end
  end

  # The virtual host answers: a stream on the plaintext listener gets
  # features that offer SASL mechanisms.
  defp await_features(state, deadline) do
    server = state.server

    case probe_features(server) do
      :ok ->
        {:ok, state}

      {:error, reason} ->
        if System.monotonic_time(:millisecond) > deadline do
          {:error, {:no_stream_features, reason}, state}
        else
          Process.sleep(100)
          await_features(drain(state), deadline)
        end
    end
  end

  defp probe_features(server) do
    header =
      "<?xml version='1.0'?><stream:stream to='#{server.domain}' version='1.0' " <>
        "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

    case :gen_tcp.connect(@loopback, server.ports.c2s_plain, [:binary, active: false], 1000) do
      {:ok, socket} ->
        :gen_tcp.send(socket, header)
        result = recv_features(socket, "", System.monotonic_time(:millisecond) + 2000)
        :gen_tcp.send(socket, "</stream:stream>")
        :gen_tcp.close(socket)
        result

      {:error, reason} ->
        {:error, reason}
    end
  end

  defp recv_features(socket, buffer, deadline) do
    cond do
      buffer =~ ~r/<\/(stream:)?features>/ ->
        if buffer =~ "<mechanisms", do: :ok, else: {:error, {:features, buffer}}

      buffer =~ "stream:error" ->
        {:error, {:stream_error, buffer}}

      true ->
        left = max(deadline - System.monotonic_time(:millisecond), 0)

        case :gen_tcp.recv(socket, 0, left) do
          {:ok, data} -> recv_features(socket, buffer <> data, deadline)
          {:error, reason} -> {:error, {reason, buffer}}
        end
    end
  end

  defp register_all(state, []), do: {:ok, state}

  defp register_all(state, accounts) do
    case state.backend.register_many(state.server, accounts) do
      :ok -> {:ok, state}
      {:error, reason} -> {:error, reason, state}
    end
  end

  # Graceful stop of the OS process; SIGKILL after 15 s. Idempotent.
  defp shutdown(%{running: false} = state), do: close_port(state)

  defp shutdown(state) do
    %{server: server, backend: backend} = state
    pid = server.os_pid

    if OS.alive?(pid) do
      backend.request_stop(server, state.port)

      unless OS.wait_gone(pid, 15_000) do
        OS.kill(pid, :kill)
        OS.wait_gone(pid, 5_000)
      end
    end

    %{close_port(state) | running: false}
  end

  # Stop the server, remove its dir, let the watchdog go.
  defp cleanup(state) do
    state = shutdown(state)
    unless state.keep_dir, do: File.rm_rf(state.server.dir)

    if state.watchdog do
      OS.safe_close(state.watchdog)
    end

    %{state | watchdog: nil}
  end

  defp close_port(%{port: nil} = state), do: state

  defp close_port(state) do
    OS.safe_close(state.port)
    %{state | port: nil}
  end

  # Collect what the server printed so far (Prosody's warnings and errors).
  defp drain(%{port: nil} = state), do: state

  defp drain(%{port: port} = state) do
    receive do
      {^port, {:data, data}} ->
        drain(add_console(state, data))

      {^port, {:exit_status, status}} ->
        state = add_console(state, {:eol, "[harness] server exited with status #{status}"})
        %{state | running: false, port: nil}
    after
      0 -> state
    end
  end

  defp add_console(state, {_eol, line}) do
    %{state | console: Enum.take([line | state.console], @log_lines)}
  end

  defp diagnostics(server, console, lines) do
    files =
      for file <- server.log_files,
          text = OS.tail(file, lines),
          String.trim(text) != "",
          do: "== #{file}\n#{text}"

    console = if console == [], do: [], else: ["== output\n" <> Enum.join(console, "\n")]
    Enum.join(files ++ console, "\n")
  end

  defp random_id, do: Base.encode16(:crypto.strong_rand_bytes(6), case: :lower)
end
