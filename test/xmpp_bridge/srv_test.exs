defmodule XmppBridge.SrvTest do
  # Without :host, a client session finds its server through the domain's
  # DNS SRV records (RFC 6120 §3.2.1), asked of a name server we run here.
  use ExUnit.Case, async: false

  @moduletag :integration

  alias XmppBridge.Connection
  alias XmppTestServer, as: TestServer

  setup_all do
    {:ok, srv} = TestServer.start(:ejabberd, accounts: [{"una", "pw"}])
    on_exit(fn -> TestServer.stop(srv) end)
    %{srv: srv}
  end

  test "the SRV record of the domain says where to connect", %{srv: srv} do
    {:ok, sock} = :gen_udp.open(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    {:ok, dns_port} = :inet.port(sock)
    parent = self()
    responder = spawn_link(fn -> answer(sock, srv.ports.c2s_plain, parent) end)
    :ok = :gen_udp.controlling_process(sock, responder)

    # Nothing listens on the default port 5222: only the SRV record leads to
    # the server.
    {:ok, conn} =
      Connection.open(
        jid: "una@localhost/srv",
        password: "pw",
        tls: :plain,
        dns_server: "127.0.0.1:#{dns_port}",
        reconnect: false
      )

    assert_receive {:dns_query, "_xmpp-client._tcp.localhost"}, 5_000

    assert_receive {:xmpp_bridge, id, {:online, %{jid: "una@localhost/srv"}}} when id == conn.id,
                   10_000

    Connection.close(conn)
  end

  # Answers one SRV query: the target is localhost on `port`.
  defp answer(sock, port, parent) do
    {:ok, {ip, from_port, query}} = :gen_udp.recv(sock, 0, 10_000)
    <<id::16, _flags::16, 1::16, _::binary-size(6), rest::binary>> = query
    {name, question_len} = read_name(rest, [], 0)
    send(parent, {:dns_query, name})
    question = binary_part(rest, 0, question_len + 4)
    target = <<9, "localhost", 0>>
    rdata = <<0::16, 0::16, port::16, target::binary>>
    record = <<0xC0, 12, 33::16, 1::16, 60::32, byte_size(rdata)::16, rdata::binary>>
    reply = <<id::16, 0x8180::16, 1::16, 1::16, 0::16, 0::16, question::binary, record::binary>>
    :ok = :gen_udp.send(sock, ip, from_port, reply)
  end

  defp read_name(<<0, _::binary>>, labels, used),
    do: {labels |> Enum.reverse() |> Enum.join("."), used + 1}

  defp read_name(<<len, label::binary-size(len), rest::binary>>, labels, used),
    do: read_name(rest, [label | labels], used + 1 + len)
end
