defmodule Mix.Tasks.XmppTestServer do
  @shortdoc "Starts a private XMPP server (ejabberd or Prosody) and prints its ports and accounts"

  @moduledoc """
  Starts a private XMPP server with `XmppTestServer` - the one the
  integration tests use - prints where it listens and which accounts it has,
  and keeps it running until you press Enter (or Ctrl-C).

      mix xmpp_test_server                      # ejabberd, accounts alice and bob
      mix xmpp_test_server prosody
      mix xmpp_test_server --account carol:pw --account dave:pw
      mix xmpp_test_server --no-input           # run until killed (no stdin needed)

  ## Options

    * `--account user[:password]` - an account to register (repeatable;
      default `alice` and `bob`; without `:password` it is `<user>-secret`)
    * `--domain name` - the virtual host (default `localhost`)
    * `--component-secret secret` - XEP-0114 secret (default: random)
    * `--log-level level` - the server's log level (default `info`)
    * `--keep-dir` - keep the temp dir (config, data, logs) after stopping
    * `--no-input` - do not read stdin; stop with Ctrl-C or a signal
    * `--no-compile` - do not compile the project first (like `mix run`)

  Enter stops the server gracefully and removes its dir. Ctrl-C (or killing
  the VM in any way) ends the VM at once: the harness's watchdog then
  SIGKILLs the server by its OS pid and removes the dir.
  """

  use Mix.Task

  @switches [
    account: :keep,
    domain: :string,
    component_secret: :string,
    log_level: :string,
    keep_dir: :boolean,
    input: :boolean,
    compile: :boolean
  ]

  @impl Mix.Task
  def run(args) do
    {opts, rest, invalid} = OptionParser.parse(args, strict: @switches)

    if invalid != [] do
      Mix.raise("mix xmpp_test_server: invalid option(s) #{inspect(invalid)}")
    end

    kind =
      case rest do
        [] ->
          :ejabberd

        ["ejabberd"] ->
          :ejabberd

        ["prosody"] ->
          :prosody

        other ->
          Mix.raise("mix xmpp_test_server: expected ejabberd or prosody, got #{inspect(other)}")
      end

    if Keyword.get(opts, :compile, true), do: Mix.Task.run("compile")
    {:ok, _} = Application.ensure_all_started(:crypto)

    start_opts =
      [accounts: accounts(opts), owner: self(), keep_dir: Keyword.get(opts, :keep_dir, false)] ++
        Keyword.take(opts, [:domain, :component_secret, :log_level])

    Mix.shell().info("Starting #{kind}...")

    server =
      case XmppTestServer.start(kind, start_opts) do
        {:ok, server} -> server
        {:error, reason} -> Mix.raise(XmppTestServer.format(reason))
      end

    Mix.shell().info(describe(server))

    if Keyword.get(opts, :input, true) do
      Mix.shell().info("Press Enter to stop (Ctrl-C also stops it).")
      IO.gets("")
      Mix.shell().info("Stopping #{kind}...")
      :ok = XmppTestServer.stop(server)
      Mix.shell().info("Stopped.")
    else
      Mix.shell().info("Running until this VM is stopped (Ctrl-C).")
      Process.sleep(:infinity)
    end
  end

  defp accounts(opts) do
    case Keyword.get_values(opts, :account) do
      [] ->
        ["alice", "bob"]

      specs ->
        Enum.map(specs, fn spec ->
          case String.split(spec, ":", parts: 2) do
            [user, password] -> {user, password}
            [user] -> user
          end
        end)
    end
  end

  @doc false
  def describe(%XmppTestServer{} = s) do
    node = if s.node, do: " (node #{s.node})", else: ""

    accounts =
      s.accounts
      |> Enum.sort()
      |> Enum.map_join("\n" <> String.duplicate(" ", 20), fn {user, pw} ->
        "#{XmppTestServer.jid(s, user)}  password #{pw}"
      end)

    """

    #{s.kind} is running (ready in #{s.started_in_ms} ms)
      domain            #{s.domain}   (connect to #{s.host}; send the domain as stream 'to' and TLS SNI)
      c2s STARTTLS      #{s.host}:#{s.ports.c2s_starttls}   (TLS required)
      c2s plaintext     #{s.host}:#{s.ports.c2s_plain}   (plaintext auth allowed, loopback only)
      component         #{s.host}:#{s.ports.component}   #{s.component_domain}, secret #{s.component_secret}
      MUC service       #{s.muc_domain}
      CA (PEM)          #{s.ca_file}
      accounts          #{accounts}
      dir               #{s.dir}
      config            #{s.config_file}
      logs              #{Enum.join(s.log_files, ", ")}
      OS pid            #{s.os_pid}#{node}
    """
  end
end
