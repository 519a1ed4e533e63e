defmodule XmppBridge.ConnectionOptionsTest do
  # Option validation happens before anything reaches the network: no server.
  use ExUnit.Case, async: true

  alias XmppBridge.{Connection, Error}

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

  test "batch_delay defaults to 5 ms and accepts 0 (off) up to 1000" do
    assert {:ok, %{batch_delay: 5}} = Connection.config(@base)

    for ms <- [0, 5, 1000] do
      assert {:ok, %{batch_delay: ^ms}} = Connection.config(Keyword.put(@base, :batch_delay, ms))
    end
  end

  test "a session with batching off still opens, and reports a refused connection" do
    # Port 1 on loopback: nothing listens there.
    opts = Keyword.merge(@base, port: 1, batch_delay: 0, reconnect: false)
    {:ok, conn} = Connection.open(opts)
    id = conn.id
    assert_receive {:xmpp_bridge, ^id, {:closed, {:connect_failed, detail}}}, 5_000
    assert detail =~ "127.0.0.1:1"
  end
end
