defmodule XmppBridge.BusNamesRustTest do
  # A JID for every process (docs/PROTOCOL.md §7), the Rust side: a
  # bus_peer name host (an external component of a private ejabberd)
  # holds names; an Elixir bus node and a bus_peer client node send to
  # them, call them and monitor them. No mock anywhere.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase, only: [session_opts: 2]

  alias XmppBridge.{Bus, Error}
  alias XmppBridge.Test.{RustPeer, TcpProxy}
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 300_000

  @users ~w(nameselix namesrust)

  setup_all do
    RustPeer.build!()
    server = TestServer.start!(:ejabberd, accounts: @users)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  setup %{server: server} do
    host = RustPeer.start_name_host(server)
    %{host: host}
  end

  # ------------------------------------------------------------ helpers

  defp start_bus(server) do
    opts =
      session_opts(server, "nameselix")
      |> Keyword.merge(receiver: self(), heartbeat: 500, heartbeat_timeout: 1000)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    bus
  end

  defp name, do: "w#{System.unique_integer([:positive])}"

  defp id, do: System.unique_integer([:positive])

  defp cmd(peer, map) do
    id = id()
    RustPeer.command(peer, Map.put(map, "id", id))
    id
  end

  defp event?(name), do: &(&1["event"] == name)
  defp answer(peer, id), do: RustPeer.next(peer, &(&1["id"] == id and &1["event"] != nil))

  defp name_call(host, name),
    do: RustPeer.next(host, &(&1["event"] == "name_call" and &1["name"] == name))

  # ------------------------------------------------------------- tests

  describe "an Elixir node and a Rust name" do
    test "a term sent to a name reaches it, and its receipt comes from the name", %{
      server: server,
      host: host
    } do
      bus = start_bus(server)
      n = name()
      jid = RustPeer.register!(host, n)
      assert jid == "#{n}@#{server.component_domain}/bus"

      {:ok, ref} =
        Bus.send(bus, "#{n}@#{server.component_domain}", {:job, 7}, delivery: :confirmed)

      assert %{"name" => ^n, "from" => from, "etf" => b64} =
               RustPeer.next(host, event?("name_message"))

      assert from == Bus.jid(bus)
      assert RustPeer.term64(b64) == {:job, 7}
      assert_receive {:xmpp_bridge_bus, :delivered, ^ref, _}, 5000
      Bus.stop(bus)
      RustPeer.stop(host)
    end

    test "a call to a name gets its reply, its failure, or the host's timeout", %{
      server: server,
      host: host
    } do
      bus = start_bus(server)
      n = name()
      jid = RustPeer.register!(host, n)

      task = Task.async(fn -> Bus.call(bus, jid, "add", [1, 2], 5000) end)
      call = name_call(host, n)
      assert call["method"] == "add"
      assert RustPeer.term64(call["args_etf"]) == [1, 2]

      RustPeer.command(host, %{
        "cmd" => "reply",
        "call" => call["call"],
        "etf" => RustPeer.etf64(3)
      })

      assert {:ok, 3} = Task.await(task)

      task = Task.async(fn -> Bus.call(bus, jid, "nope", [], 5000) end)
      call = name_call(host, n)
      RustPeer.command(host, %{"cmd" => "fail", "call" => call["call"], "reason" => "no_method"})
      assert {:error, %Error{reason: {:no_method, "nope"}}} = Task.await(task)

      # Nobody answers: the caller's timeout (the host answers `timeout`
      # at the same deadline), and the late reply is dropped.
      task = Task.async(fn -> Bus.call(bus, jid, "slow", [], 800) end)
      call = name_call(host, n)
      assert {:error, %Error{reason: :timeout}} = Task.await(task)
      # The host's deadline counts from the call's arrival, a little after
      # the caller's: let it pass (the caller's cancel comes too).
      Process.sleep(500)

      RustPeer.command(host, %{
        "cmd" => "reply",
        "call" => call["call"],
        "etf" => RustPeer.etf64(1)
      })

      assert %{"ok" => false} = RustPeer.next(host, event?("answered"))

      # The name released with a call pending: crashed.
      task = Task.async(fn -> Bus.call(bus, jid, "add", [1], 5000) end)
      _ = name_call(host, n)
      RustPeer.command(host, %{"cmd" => "unregister", "name" => n})
      assert {:error, %Error{reason: {:crashed, text}}} = Task.await(task)
      assert text =~ "exited: normal"
      Bus.stop(bus)
      RustPeer.stop(host)
    end

    test "a name nobody holds is noproc: the send fails, the call is peer unavailable", %{
      server: server,
      host: host
    } do
      bus = start_bus(server)
      jid = "nobody-#{id()}@#{server.component_domain}/bus"
      {:ok, ref} = Bus.send(bus, jid, :hello)
      assert_receive {:xmpp_bridge_bus, :failed, ^ref, _reason}, 5000

      assert {:error, %Error{reason: {:peer_unavailable, "item-not-found"}}} =
               Bus.call(bus, jid, "add", [1, 2], 5000)

      Bus.stop(bus)
      RustPeer.stop(host)
    end

    test "a monitor of a name gets DOWN saying how the name ended, or noproc", %{
      server: server,
      host: host
    } do
      bus = start_bus(server)

      for {exit, reason} <- [
            {"killed", {:exit, :killed}},
            {"shutdown", {:exit, :shutdown}},
            {"panic", {:exit, :error}},
            {nil, {:exit, :normal}}
          ] do
        n = name()
        jid = RustPeer.register!(host, n)
        ref = Bus.monitor(bus, jid)
        # Monitored for a while: the heartbeat pings the name, alive.
        refute_receive {:DOWN, ^ref, :bus_node, _, _}, 1200
        unregister = %{"cmd" => "unregister", "name" => n}
        unregister = if exit, do: Map.put(unregister, "exit", exit), else: unregister
        RustPeer.command(host, unregister)
        assert_receive {:DOWN, ^ref, :bus_node, ^jid, ^reason}, 5000
      end

      ref = Bus.monitor(bus, "nobody-#{id()}@#{server.component_domain}")
      assert_receive {:DOWN, ^ref, :bus_node, _, :noproc}, 5000
      Bus.stop(bus)
      RustPeer.stop(host)
    end
  end

  describe "a Rust client node and a Rust name" do
    test "DOWN says how the name ended, and noproc for a name nobody holds", %{
      server: server,
      host: host
    } do
      client = RustPeer.start(server, "namesrust")

      for {exit, reason} <- [
            {"killed", "exit:killed"},
            {"shutdown", "exit:shutdown"},
            {"error", "exit:error"},
            {"panic", "exit:error"},
            {nil, "exit:normal"}
          ] do
        n = name()
        jid = RustPeer.register!(host, n)
        m = cmd(client, %{"cmd" => "monitor", "jid" => jid})
        # Not down while the name is held (pings answered per name).
        assert [] = RustPeer.drain(client, 1200) |> Enum.filter(&(&1["event"] == "down"))
        unregister = %{"cmd" => "unregister", "name" => n}
        unregister = if exit, do: Map.put(unregister, "exit", exit), else: unregister
        RustPeer.command(host, unregister)
        assert %{"event" => "down", "jid" => ^jid, "reason" => ^reason} = answer(client, m)
      end

      m = cmd(client, %{"cmd" => "monitor", "jid" => "nobody-#{id()}@#{server.component_domain}"})
      assert %{"event" => "down", "reason" => "noproc"} = answer(client, m)
      RustPeer.stop(client)
      RustPeer.stop(host)
    end

    test "a host that reconnects keeps its names and their watchers: no DOWN, and the goodbye later",
         %{server: server, host: host} do
      RustPeer.stop(host)
      proxy = TcpProxy.start(server.ports.component)
      on_exit(fn -> TcpProxy.stop(proxy) end)
      host = RustPeer.start_name_host(server, port: proxy.port)

      client =
        RustPeer.start_with_flags(
          server,
          "namesrust",
          [heartbeat: 500, heartbeat_timeout: 10_000],
          []
        )

      n = name()
      jid = RustPeer.register!(host, n)
      m = cmd(client, %{"cmd" => "monitor", "jid" => jid})
      Process.sleep(1000)
      TcpProxy.cut(proxy)
      assert %{"event" => "online"} = RustPeer.next(host, event?("online"), 30_000)
      # The pings bounced while the host was away; the name answers again
      # with the same incarnation: still up.
      assert [] = RustPeer.drain(client, 2000) |> Enum.filter(&(&1["event"] == "down"))
      RustPeer.command(host, %{"cmd" => "unregister", "name" => n, "exit" => "killed"})
      assert %{"event" => "down", "reason" => "exit:killed"} = answer(client, m)
      RustPeer.stop(client)
      RustPeer.stop(host)
    end

    test "a Rust client calls a Rust name, and the name calls back from its own JID", %{
      server: server,
      host: host
    } do
      client = RustPeer.start(server, "namesrust")
      n = name()
      jid = RustPeer.register!(host, n)

      c =
        cmd(client, %{
          "cmd" => "call",
          "to" => jid,
          "method" => "add",
          "args_etf" => RustPeer.etf64([20, 22])
        })

      call = name_call(host, n)
      assert call["from"] == client.jid
      [a, b] = RustPeer.term64(call["args_etf"])

      RustPeer.command(host, %{
        "cmd" => "reply",
        "call" => call["call"],
        "etf" => RustPeer.etf64(a + b)
      })

      assert %{"event" => "result", "etf" => b64} = answer(client, c)
      assert RustPeer.term64(b64) == 42

      # From the name: the client's `echo` method, and a term it receives
      # from the name's address.
      c =
        cmd(host, %{
          "cmd" => "name_call",
          "name" => n,
          "to" => client.jid,
          "method" => "echo",
          "args_etf" => RustPeer.etf64(["hi"])
        })

      assert %{"event" => "result", "etf" => b64} = answer(host, c)
      assert RustPeer.term64(b64) == "hi"

      s =
        cmd(host, %{
          "cmd" => "name_send",
          "name" => n,
          "to" => client.jid,
          "etf" => RustPeer.etf64(:from_name),
          "delivery" => "confirmed",
          "deadline_ms" => 5000
        })

      assert %{"from" => ^jid, "etf" => b64} = RustPeer.next(client, event?("message"))
      assert RustPeer.term64(b64) == :from_name
      assert %{"event" => "delivered"} = answer(host, s)
      RustPeer.stop(client)
      RustPeer.stop(host)
    end
  end

  describe "a name held with the blocking API" do
    test "an Elixir node sends to it, calls it, and gets DOWN when it goes", %{
      server: server,
      host: host
    } do
      # The blocking example is a component of its own: the host of the
      # other tests steps aside.
      RustPeer.stop(host)
      bus = start_bus(server)
      n = name()
      held = RustPeer.start_name_blocking(server, n, "shutdown")
      ref = Bus.monitor(bus, held.jid)

      {:ok, _} = Bus.send(bus, held.jid, {:hello, 1})
      assert %{"etf" => b64} = RustPeer.next(held, event?("name_message"))
      assert RustPeer.term64(b64) == {:hello, 1}
      assert {:ok, 6} = Bus.call(bus, held.jid, "add", [1, 2, 3], 5000)

      assert {:error, %Error{reason: {:no_method, "nope"}}} =
               Bus.call(bus, held.jid, "nope", [], 5000)

      assert {:ok, :ok} = Bus.call(bus, held.jid, "stop", [], 5000)
      assert_receive {:DOWN, ^ref, :bus_node, jid, reason}, 5000
      assert jid == held.jid
      assert reason == {:exit, :shutdown}
      assert RustPeer.await_exit_status(held) == 0
      Bus.stop(bus)
    end
  end
end
