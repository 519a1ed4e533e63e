defmodule XmppBridge.ResumptionTest do
  # XEP-0198 resumption after a dropped TCP connection, the server staying up:
  # nothing sent is lost, nothing is delivered twice.
  use ExUnit.Case, async: false

  @moduletag :integration
  @moduletag timeout: 120_000

  alias XmppBridge.{Connection, Message}
  alias XmppTestServer, as: TestServer
  alias XmppBridge.Test.TcpProxy

  setup_all do
    {:ok, srv} = TestServer.start(:ejabberd, accounts: [{"rita", "pw"}, {"sam", "pw"}])
    on_exit(fn -> TestServer.stop(srv) end)
    %{srv: srv}
  end

  defp online(conn) do
    receive do
      {:xmpp_bridge, id, {:online, info}} when id == conn.id -> info
    after
      15_000 -> flunk("no {:online, _}")
    end
  end

  test "a session whose TCP connection drops resumes it and loses nothing", %{srv: srv} do
    proxy = TcpProxy.start(srv.ports.c2s_plain)
    on_exit(fn -> TcpProxy.stop(proxy) end)
    plain = [host: "127.0.0.1", tls: :plain, reconnect: [initial: 50, max: 200]]

    {:ok, rita} =
      Connection.open([jid: "rita@localhost/r", password: "pw", port: proxy.port] ++ plain)

    {:ok, sam} =
      Connection.open(
        [jid: "sam@localhost/s", password: "pw", port: srv.ports.c2s_plain] ++ plain
      )

    assert %{resumed: false} = online(rita)
    assert %{resumed: false} = online(sam)

    n = 2_000

    sent =
      for i <- 1..n,
          into: %{},
          do: {elem(Connection.send(rita, Message.chat("sam@localhost/s", "#{i}")), 1), i}

    # Cut rita's TCP connection while the burst is on its way.
    TcpProxy.cut(proxy)

    {acked, failed, resumed} = rita_events(rita, MapSet.new(), MapSet.new(), nil, map_size(sent))
    bodies = sam_bodies(sam, [], n)

    IO.puts(
      "[ejabberd] resumption: #{n} sent, connection cut; resumed=#{inspect(resumed)}; " <>
        "#{MapSet.size(acked)} acked, #{MapSet.size(failed)} failed; sam got #{length(bodies)} " <>
        "(#{length(Enum.uniq(bodies))} distinct)"
    )

    assert resumed == true
    assert MapSet.size(failed) == 0
    assert MapSet.size(acked) == n
    assert Enum.sort(Enum.map(bodies, &String.to_integer/1)) == Enum.to_list(1..n)
  end

  defp rita_events(conn, acked, failed, resumed, n) do
    if MapSet.size(acked) + MapSet.size(failed) == n and resumed != nil do
      {acked, failed, resumed}
    else
      receive do
        {:xmpp_bridge, id, {:acked, seqs}} when id == conn.id ->
          rita_events(conn, MapSet.union(acked, MapSet.new(seqs)), failed, resumed, n)

        {:xmpp_bridge, id, {:failed, seqs, _}} when id == conn.id ->
          rita_events(conn, acked, MapSet.union(failed, MapSet.new(seqs)), resumed, n)

        {:xmpp_bridge, id, {:online, %{resumed: r}}} when id == conn.id ->
          rita_events(conn, acked, failed, r, n)

        {:xmpp_bridge, id, _} when id == conn.id ->
          rita_events(conn, acked, failed, resumed, n)
      after
        20_000 -> {acked, failed, resumed}
      end
    end
  end

  defp sam_bodies(conn, got, n) do
    if length(got) >= n do
      # Anything more would be a duplicate.
      receive do
        {:xmpp_bridge, id, {:stanza, %Message{} = m}} when id == conn.id ->
          [Message.body(m) | got]
      after
        500 -> got
      end
    else
      receive do
        {:xmpp_bridge, id, {:stanza, %Message{} = m}} when id == conn.id ->
          sam_bodies(conn, [Message.body(m) | got], n)

        {:xmpp_bridge, id, :passive} when id == conn.id ->
          :ok = Connection.set_active(conn, 1000)
          sam_bodies(conn, got, n)

        {:xmpp_bridge, id, _} when id == conn.id ->
          sam_bodies(conn, got, n)
      after
        20_000 -> got
      end
    end
  end
end
