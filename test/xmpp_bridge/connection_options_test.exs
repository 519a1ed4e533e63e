defmodule XmppBridge.ConnectionOptionsTest do
  # Option validation happens before anything reaches the network: no server.
  use ExUnit.Case, async: true

  alias XmppBridge.{Connection, Error}

  doctest XmppBridge.Connection

  @base [jid: "alice@localhost", password: "pw", host: "127.0.0.1", tls: :plain]

  describe "bad options are refused with {:bad_option, {key, value}}" do
    @bad [
      batch_delay: -1,
      batch_delay: 1001,
      batch_delay: 1.5,
      batch_delay: nil,
      queue_limit: 0,
      keepalive: 0,
      keepalive_timeout: :never,
      connect_timeout: -5,
      max_stanza_bytes: 0,
      port: 70_000,
      tls: :none,
      mode: :server,
      stream_management: :yes,
      active: 0,
      active: -1,
      active: false,
      active: :twice,
      active: 4_294_967_296,
      owner: :me
    ]

    for {key, value} <- @bad do
      test "#{key}: #{inspect(value)}" do
        key = unquote(key)
        value = unquote(Macro.escape(value))

        assert {:error, %Error{reason: {:bad_option, {^key, ^value}}}} =
                 Connection.open(Keyword.put(@base, key, value))
      end
    end
  end

  test "active defaults to 1000 and takes a positive integer, :once or true" do
    assert {:ok, %{active: 1000}} = Connection.config(@base)

    for active <- [1, 50_000, :once, true] do
      assert {:ok, %{active: ^active}} = Connection.config(Keyword.put(@base, :active, active))
    end
  end

  describe "the NIF decodes the options strictly" do
    # Connection.config/1 validates first; the NIF must not turn a value it
    # does not know into a default either (a caller of the NIF that skipped
    # validation, or a key added on one side only).
    for {key, value} <- [tls: :none, mode: :server, active: 0, port: "5222", reconnect: :maybe] do
      test "#{key}: #{inspect(value)} is {:bad_option, {#{key}, _}}" do
        key = unquote(key)
        value = unquote(Macro.escape(value))
        {:ok, config} = Connection.config(@base)

        assert {:error, {:bad_option, {^key, ^value}}} =
                 XmppBridge.Native.conn_open(Map.put(config, key, value), self(), 1)
      end
    end

    test "a missing key is {:bad_option, {key, nil}}" do
      {:ok, config} = Connection.config(@base)

      assert {:error, {:bad_option, {:tls, nil}}} =
               XmppBridge.Native.conn_open(Map.delete(config, :tls), self(), 1)
    end
  end

  test "batch_delay defaults to 5 ms and accepts 0 (off) up to 1000" do
    assert {:ok, %{batch_delay: 5}} = Connection.config(@base)

    for ms <- [0, 5, 1000] do
      assert {:ok, %{batch_delay: ^ms}} = Connection.config(Keyword.put(@base, :batch_delay, ms))
    end
  end

  test "the sessions' I/O threads run at nice 10, the schedulers at the VM's own priority" do
    {:ok, conn} = Connection.open(Keyword.merge(@base, port: 1, reconnect: false))
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, _}}, 5_000

    threads =
      for tid <- File.ls!("/proc/self/task") do
        comm = String.trim(File.read!("/proc/self/task/#{tid}/comm"))
        # Field 19 of stat is the nice value (after the parenthesised name).
        [_, rest] = String.split(File.read!("/proc/self/task/#{tid}/stat"), ") ", parts: 2)
        {comm, rest |> String.split() |> Enum.at(16) |> String.to_integer()}
      end

    io = for {"xmpp_bridge", nice} <- threads, do: nice
    schedulers = for {comm, nice} <- threads, String.ends_with?(comm, "_scheduler"), do: nice

    assert length(io) >= 2, "no runtime threads in #{inspect(threads)}"
    assert Enum.all?(io, &(&1 == 10)), inspect(io)
    assert schedulers != [] and Enum.all?(schedulers, &(&1 == 0)), inspect(schedulers)
  end

  test "a session with batching off still opens, and reports a refused connection" do
    # Port 1 on loopback: nothing listens there.
    opts = Keyword.merge(@base, port: 1, batch_delay: 0, reconnect: false)
    {:ok, conn} = Connection.open(opts)
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:connect_failed, detail}}}, 5_000
    assert detail =~ "127.0.0.1:1"
  end

  test "bad :servers are refused with a clear error" do
    base = [jid: "x@localhost", password: "p", tls: :plain]

    for bad <- [[], [{"127.0.0.1", 0}], ["nohost"], [:a], "127.0.0.1:5222"] do
      assert {:error, %Error{reason: {:bad_option, {:servers, _}}}} =
               Connection.open(base ++ [servers: bad])
    end

    assert {:error, %Error{reason: {:bad_option, {:servers, {:host_given_too, _}}}}} =
             Connection.open(base ++ [servers: [{"127.0.0.1", 5222}], host: "127.0.0.1"])

    # Plaintext to a server that is not on loopback: the core refuses the
    # session before it connects anywhere.
    {:ok, conn} = Connection.open(base ++ [servers: [{"127.0.0.1", 1}, "192.0.2.1:5222"]])
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:bad_config, text}}}, 5_000
    assert text =~ "loopback"
  end

  test "with :servers, every one refusing is one connect error naming the last" do
    opts = [
      jid: "alice@localhost",
      password: "pw",
      tls: :plain,
      servers: [{"127.0.0.1", 1}, "127.0.0.1:2"],
      reconnect: false
    ]

    {:ok, conn} = Connection.open(opts)
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:connect_failed, detail}}}, 5_000
    assert detail =~ "127.0.0.1:2"
  end
end

defmodule XmppBridge.ConnectionOptionsAppEnvTest do
  # Changes the application environment, which every session opened
  # meanwhile would read: not async.
  use ExUnit.Case, async: false

  alias XmppBridge.{Connection, Error}

  @base [jid: "alice@localhost", password: "pw", host: "127.0.0.1", tls: :plain]

  test "an io_thread_nice outside 0..19 is refused" do
    Application.put_env(:xmpp_bridge, :io_thread_nice, 42)

    try do
      assert {:error, %Error{reason: {:bad_option, {:io_thread_nice, 42}}}} =
               Connection.open(@base)
    after
      Application.delete_env(:xmpp_bridge, :io_thread_nice)
    end
  end

  test "a component has no STARTTLS: :starttls is refused, the default is loopback plaintext" do
    comp = [mode: :component, jid: "bridge.localhost", password: "s", port: 1, reconnect: false]

    {:ok, conn} = Connection.open(comp ++ [host: "127.0.0.1", tls: :starttls])
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:bad_config, text}}}, 5_000
    assert text =~ "no STARTTLS"

    # Default: plaintext, so only to loopback (here: nothing listens).
    {:ok, conn} = Connection.open(comp ++ [host: "127.0.0.1"])
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:connect_failed, _}}}, 5_000

    {:ok, conn} = Connection.open(comp ++ [host: "192.0.2.1"])
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:bad_config, text}}}, 5_000
    assert text =~ "loopback"
  end
end
