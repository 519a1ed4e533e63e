defmodule XmppBridge.HostileServerTest do
  # Sessions against a server that floods, stalls or lies: a fake server of
  # the test's own on loopback (test/support/hostile_server.ex) plays one
  # scenario per connection. Not async: the flood stories measure the VM's
  # memory, which other tests running at the same time would move.
  use ExUnit.Case, async: false

  import XmppBridge.Connection, only: [is_connection_message: 2]

  alias XmppBridge.{Connection, Message, Native}
  alias XmppBridge.Test.HostileServer

  @moduletag timeout: 120_000

  # What a flood may add to the VM's memory (erlang:memory(:total)) while
  # it lasts: the owner's mailbox holds at most :active (1000) small
  # messages, well under a megabyte; the rest is slack for the runtime's
  # own allocations. Without flow control the same flood adds gigabytes
  # within seconds.
  @memory_bound 48 * 1024 * 1024

  # What close/1 may take, whatever the server does (the session gives the
  # goodbye 2 s, see Connection.close/1).
  @close_bound_ms 3_000

  setup do
    on_exit(fn -> flush_mailbox() end)
    :ok
  end

  defp open(server, opts \\ []) do
    conn = Connection.open!(HostileServer.client_opts(server, opts))
    on_exit(fn -> HostileServer.stop(server) end)
    conn
  end

  defp await_online(%Connection{id: id}) do
    assert_receive {:xmpp_bridge, ^id, {:online, %{jid: jid}}}, 5_000
    jid
  end

  defp flush_mailbox do
    receive do
      _ -> flush_mailbox()
    after
      0 -> :ok
    end
  end

  # Samples erlang:memory(:total) every 20 ms until told to stop; answers
  # the highest value seen.
  defp start_memory_sampler do
    parent = self()
    spawn_link(fn -> sample_memory(parent, 0) end)
  end

  defp sample_memory(parent, max) do
    receive do
      :stop -> send(parent, {:memory_max, max})
    after
      20 -> sample_memory(parent, max(max, :erlang.memory(:total)))
    end
  end

  defp stop_sampler(sampler) do
    send(sampler, :stop)

    receive do
      {:memory_max, max} -> max
    end
  end

  defp baseline_memory do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)
    :erlang.memory(:total)
  end

  describe "a server that floods the session with stanzas" do
    test "a slow owner's memory stays bounded, and what is read arrives complete and in order" do
      sent = :counters.new(1, [])

      server =
        HostileServer.start(fn sock ->
          HostileServer.login(sock)
          HostileServer.flood(sock, sent)
        end)

      baseline = baseline_memory()
      sampler = start_memory_sampler()
      conn = open(server)
      await_online(conn)

      # A slow owner: a millisecond's pause every 10 stanzas (about 10,000
      # a second), re-arming when the session says it is passive, for 4 s.
      deadline = System.monotonic_time(:millisecond) + 4_000
      {received, passives} = consume_slowly(conn, deadline, 0, 0)
      peak = stop_sampler(sampler) - baseline
      written = :counters.get(sent, 1)

      Connection.close(conn)
      HostileServer.stop(server)

      IO.puts(
        "\n  flood: server wrote #{written} stanzas, the owner took " <>
          "#{received} in order (#{passives} times passive); VM memory peak " <>
          "+#{Float.round(peak / 1_048_576, 1)} MB (bound #{div(@memory_bound, 1_048_576)} MB)"
      )

      assert received > 1_000, "the owner got only #{received} stanzas: credit was not renewed"
      assert passives > 0
      assert peak < @memory_bound
      # TCP pushed back: what the server could write ahead of the owner is
      # what the kernel's socket buffers hold (a few MB), not what a fast
      # server can send in 4 s (millions of these stanzas).
      assert written < received + 100_000
    end

    test "an XmppBridge.Client with a slow callback: its mailbox never holds more than :active stanzas" do
      sent = :counters.new(1, [])

      server =
        HostileServer.start(fn sock ->
          HostileServer.login(sock)
          HostileServer.flood(sock, sent)
        end)

      on_exit(fn -> HostileServer.stop(server) end)

      {:ok, client} =
        XmppBridge.Client.start_link(
          __MODULE__.SlowClient,
          {self(), HostileServer.client_opts(server, active: 500)}
        )

      assert_receive {:slow_client, :online}, 5_000
      queue_max = watch_queue(client, System.monotonic_time(:millisecond) + 3_000, 0)
      written = :counters.get(sent, 1)
      send(client, {:report, self()})
      assert_receive {:slow_client, handled, order_ok}, 5_000
      :ok = XmppBridge.Client.close(client)

      IO.puts(
        "\n  flood vs Client: handled #{handled}, mailbox at most #{queue_max} messages " <>
          "(active 500), server wrote #{written} meanwhile"
      )

      assert order_ok
      assert handled > 1_000
      # The window, plus a few non-stanza messages (the :passive notices).
      assert queue_max <= 510
    end
  end

  defp consume_slowly(conn, deadline, received, passives) do
    if System.monotonic_time(:millisecond) >= deadline do
      {received, passives}
    else
      id = conn.id

      receive do
        {:xmpp_bridge, ^id, {:stanza, %Message{id: mid}}} ->
          expected = Integer.to_string(received + 1)

          assert mid == expected,
                 "stanza #{inspect(mid)} arrived where #{expected} was due"

          if rem(received, 10) == 0, do: Process.sleep(1)
          consume_slowly(conn, deadline, received + 1, passives)

        {:xmpp_bridge, ^id, :passive} ->
          :ok = Connection.set_active(conn, 1000)
          consume_slowly(conn, deadline, received, passives + 1)

        message when is_connection_message(conn, message) ->
          flunk("unexpected event during the flood: #{inspect(message)}")
      after
        1_000 -> flunk("no stanza for a second: the session stalled")
      end
    end
  end

  defp watch_queue(pid, deadline, max) do
    if System.monotonic_time(:millisecond) >= deadline do
      max
    else
      {:message_queue_len, n} = Process.info(pid, :message_queue_len)
      Process.sleep(5)
      watch_queue(pid, deadline, max(max, n))
    end
  end

  defmodule SlowClient do
    use XmppBridge.Client

    def init({test, conn_opts}), do: {:ok, %{test: test, handled: 0, order_ok: true}, conn_opts}

    def handle_connect(_online, s) do
      send(s.test, {:slow_client, :online})
      {:noreply, s}
    end

    def handle_stanza(%Message{id: id}, s) do
      if rem(s.handled, 10) == 0, do: Process.sleep(1)
      ok = s.order_ok and id == Integer.to_string(s.handled + 1)
      {:noreply, %{s | handled: s.handled + 1, order_ok: ok}}
    end

    def handle_info({:report, to}, s) do
      send(to, {:slow_client, s.handled, s.order_ok})
      {:noreply, s}
    end

    def handle_info(msg, s), do: super(msg, s)
  end

  describe "a server that lies during SASL" do
    test "a SCRAM challenge with 4,294,967,295 iterations is refused at once" do
      server =
        HostileServer.start(fn sock ->
          HostileServer.expect_header(sock)

          HostileServer.push(
            sock,
            HostileServer.header() <>
              HostileServer.features(HostileServer.mechanisms(["SCRAM-SHA-1"]))
          )

          auth = HostileServer.expect(sock, "mechanism='SCRAM-SHA-1'>")
          [first, _] = :binary.split(HostileServer.read_until(sock, "</auth>", auth), "</auth>")
          "n,,n=victim,r=" <> client_nonce = Base.decode64!(first)

          challenge =
            Base.encode64("r=#{client_nonce}hostile,s=#{Base.encode64("salt")},i=4294967295")

          HostileServer.push(
            sock,
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>#{challenge}</challenge>"
          )
        end)

      started = System.monotonic_time(:millisecond)
      conn = open(server)
      id = conn.id
      assert_receive {:xmpp_bridge, ^id, {:closed, {:auth_failed, detail}}}, 3_000
      took = System.monotonic_time(:millisecond) - started
      IO.puts("\n  SCRAM bomb: {:auth_failed, #{inspect(detail)}} after #{took} ms")
      assert detail =~ "4294967295"
      assert detail =~ "iteration"
      assert took < 2_000
    end
  end

  describe "a server that sends what XMPP forbids" do
    test "a DTD after the stream header fails at once, named" do
      server =
        HostileServer.start(fn sock ->
          HostileServer.expect_header(sock)
          HostileServer.push(sock, HostileServer.header() <> "<!DOCTYPE x [<!ENTITY a 'b'>]>")
        end)

      conn = open(server)
      id = conn.id

      assert_receive {:xmpp_bridge, ^id,
                      {:closed, {:protocol_error, "forbidden XML construct: dtd"}}},
                     # well before connect_timeout (4 s)
                     1_500
    end

    test "bytes that are not TLS in the same packet as <proceed/> fail at once, named" do
      server =
        HostileServer.start(fn sock ->
          HostileServer.expect_header(sock)

          HostileServer.push(
            sock,
            HostileServer.header() <>
              HostileServer.features(
                "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
              )
          )

          HostileServer.expect(sock, "<starttls")

          HostileServer.push(
            sock,
            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><stream:features/>"
          )
        end)

      conn = open(server, tls: :starttls)
      id = conn.id
      assert_receive {:xmpp_bridge, ^id, {:closed, {:tls_failed, detail}}}, 1_500
      assert detail =~ "<proceed/>"
    end

    test "bytes that are not TLS after <proceed/> fail at once, named" do
      server =
        HostileServer.start(fn sock ->
          HostileServer.expect_header(sock)

          HostileServer.push(
            sock,
            HostileServer.header() <>
              HostileServer.features(
                "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
              )
          )

          HostileServer.expect(sock, "<starttls")
          HostileServer.push(sock, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
          # The client's ClientHello, answered with XML instead of TLS.
          {:ok, _hello} = :gen_tcp.recv(sock, 0, 5_000)
          HostileServer.push(sock, "<stream:features><mechanisms/></stream:features>")
        end)

      conn = open(server, tls: :starttls)
      id = conn.id
      assert_receive {:xmpp_bridge, ^id, {:closed, {:tls_failed, detail}}}, 1_500
      assert detail =~ "not TLS"
    end
  end

  describe "close/1 ends the session in bounded time" do
    for {story, scenario} <- [
          {"under a whitespace flood, the stream end never answered", :whitespace},
          {"when the server stays silent, the stream end never answered", :silent},
          {"under a stanza flood while the owner is passive", :flood}
        ] do
      test story do
        scenario = unquote(scenario)
        sent = :counters.new(1, [])

        server =
          HostileServer.start(fn sock ->
            HostileServer.login(sock)

            case scenario do
              :whitespace -> HostileServer.whitespace_flood(sock)
              :silent -> :ok
              :flood -> HostileServer.flood(sock, sent)
            end
          end)

        conn = open(server, active: 10)
        id = conn.id
        await_online(conn)
        Process.sleep(300)
        started = System.monotonic_time(:millisecond)
        :ok = Connection.close(conn)
        assert_receive {:xmpp_bridge, ^id, {:closed, :normal}}, @close_bound_ms + 1_000
        took = System.monotonic_time(:millisecond) - started
        IO.puts("\n  close #{scenario}: {:closed, :normal} after #{took} ms")
        assert took <= @close_bound_ms
      end
    end
  end

  describe "a session task that fails" do
    test "still tells its owner {:closed, {:internal_error, _}}, last" do
      server = HostileServer.start(&HostileServer.login/1)
      conn = open(server)
      id = conn.id
      await_online(conn)

      :ok = Native.conn_inject_panic(conn.ref)

      assert_receive {:xmpp_bridge, ^id, {:closed, {:internal_error, detail}}}, 2_000
      assert detail =~ "panic"
      refute_receive {:xmpp_bridge, ^id, _}, 300
      refute Connection.alive?(conn)

      assert {:error, %XmppBridge.Error{reason: :closed}} =
               Connection.send(conn, Message.chat("a@b", "x"))
    end
  end
end
