defmodule XmppBridge.BusNamesTest do
  # A JID for every process (docs/PROTOCOL.md §7), the BEAM side: an
  # XmppBridge.Bus name host (an external component of a private ejabberd)
  # whose names are processes of this VM; an Elixir client node and a Rust
  # bus_peer client node send to them, call them and monitor them.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase, only: [session_opts: 2]

  alias XmppBridge.{Bus, Error}
  alias XmppBridge.Bus.Call
  alias XmppBridge.Test.{RustPeer, TcpProxy}
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 300_000

  @users ~w(hostclient hostrust)

  setup_all do
    RustPeer.build!()
    server = TestServer.start!(:ejabberd, accounts: @users)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  # ------------------------------------------------------------ helpers

  defp host_opts(server, extra) do
    [
      mode: :component,
      jid: server.component_domain,
      password: server.component_secret,
      host: server.host,
      port: server.ports.component,
      tls: :plain,
      heartbeat: 500,
      heartbeat_timeout: 1000
    ]
    |> Keyword.merge(extra)
  end

  defp start_host(server, extra \\ []) do
    {:ok, host} = Bus.start_link(host_opts(server, extra))
    :ok = Bus.await_online(host)
    on_exit(fn -> stop_quietly(host) end)
    host
  end

  defp start_client(server, extra \\ []) do
    opts =
      session_opts(server, "hostclient")
      |> Keyword.merge(receiver: self(), heartbeat: 500, heartbeat_timeout: 1000)
      |> Keyword.merge(extra)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    on_exit(fn -> stop_quietly(bus) end)
    bus
  end

  defp stop_quietly(bus) do
    if Process.alive?(bus), do: Bus.stop(bus)
  catch
    :exit, _ -> :ok
  end

  defp name, do: "p#{System.unique_integer([:positive])}"

  # A process that registers `name` on `host` and tells `parent` what it
  # gets; it answers calls as `answer` says.
  defp named(host, name, answer \\ :echo) do
    parent = self()

    pid =
      spawn(fn ->
        :ok = Bus.register(host, name)
        send(parent, {:registered, self()})
        named_loop(parent, answer)
      end)

    assert_receive {:registered, ^pid}, 5000
    pid
  end

  defp named_loop(parent, answer) do
    receive do
      {:xmpp_bridge_bus, :message, from, term} ->
        send(parent, {:got, self(), from, term})
        named_loop(parent, answer)

      {:xmpp_bridge_bus, :call, %Call{} = call, from, method, args} ->
        send(parent, {:call, self(), call, from, method, args})

        case {answer, method} do
          {:echo, "add"} -> Bus.reply(call, Enum.sum(args))
          {:echo, "echo"} -> Bus.reply(call, args)
          {:echo, "crash"} -> exit(:boom)
          {:echo, _} -> Bus.reply_error(call, :no_method)
          {:hold, _} -> :ok
        end

        named_loop(parent, answer)

      {:run, fun} ->
        send(parent, {:ran, self(), fun.()})
        named_loop(parent, answer)

      other ->
        send(parent, {:other, self(), other})
        named_loop(parent, answer)
    end
  end

  defp run_in(pid, fun) do
    send(pid, {:run, fun})
    assert_receive {:ran, ^pid, result}, 10_000
    result
  end

  # ------------------------------------------------------------- tests

  describe "registering" do
    test "register, whereis, registered, jid; and the errors", %{server: server} do
      host = start_host(server)
      n = name()
      pid = named(host, n)
      assert Bus.whereis(host, n) == pid
      assert n in Bus.registered(host)
      assert Bus.jid(host, n) == "#{n}@#{server.component_domain}/bus"

      assert {:error, %Error{reason: {:name_taken, ^n}}} = Bus.register(host, n)

      assert {:error, %Error{reason: {:already_named, ^n}}} = Bus.register(host, name(), pid)

      for bad <- ["", "Upper", "-dash", "sp ace", String.duplicate("a", 65), :atom] do
        assert {:error, %Error{reason: {:bad_name, why}} = e} = Bus.register(host, bad)
        assert is_binary(why)
        assert Exception.message(e) =~ "name"
      end

      dead = spawn(fn -> :ok end)
      Process.sleep(20)
      assert {:error, %Error{reason: :noproc}} = Bus.register(host, name(), dead)

      assert {:error, %Error{reason: :name_host_has_no_groups}} = Bus.join(host, "jobs")
      # sync/2 on a host: a round trip through the server to its own domain.
      assert :ok = Bus.sync(host)

      assert :ok = Bus.unregister(host, n)
      assert Bus.whereis(host, n) == nil
      assert {:error, %Error{reason: {:not_registered, ^n}}} = Bus.unregister(host, n)

      # The process holds no name now: it may take another.
      assert :ok = Bus.register(host, n <> "b", pid)
      assert Bus.whereis(host, n <> "b") == pid

      # A process that exits releases its name.
      Process.exit(pid, :kill)
      Process.sleep(100)
      assert Bus.whereis(host, n <> "b") == nil
      refute (n <> "b") in Bus.registered(host)

      client = start_client(server)

      assert {:error, %Error{reason: :not_a_name_host}} = Bus.register(client, "x")
      assert Bus.whereis(client, "x") == nil
      assert Bus.registered(client) == []

      assert {:error, %Error{reason: :name_host_has_no_groups}} =
               Bus.start_link(host_opts(server, discovery: "nodes"))
    end
  end

  describe "an Elixir client node and BEAM names" do
    test "terms reach the process; confirmed receipts come from the name; noproc bounces",
         %{server: server} do
      host = start_host(server)
      client = start_client(server)
      n = name()
      pid = named(host, n)
      me = Bus.jid(client)

      {:ok, ref} = Bus.send(client, "#{n}@#{server.component_domain}", {:job, 7})
      assert_receive {:got, ^pid, ^me, {:job, 7}}, 5000

      {:ok, ref2} = Bus.send(client, Bus.jid(host, n), %{"k" => [1, 2]}, delivery: :confirmed)

      assert_receive {:got, ^pid, ^me, %{"k" => [1, 2]}}, 5000
      own = Bus.jid(host, n)
      assert_receive {:xmpp_bridge_bus, :delivered, ^ref2, ^own}, 5000
      refute_received {:xmpp_bridge_bus, :failed, ^ref, _}

      # Nobody holds it: the send fails with the host's bounce.
      {:ok, ref3} = Bus.send(client, "nobody-#{n}@#{server.component_domain}", :hello)
      assert_receive {:xmpp_bridge_bus, :failed, ^ref3, {:bounced, "item-not-found"}}, 5000

      # A registered process sends from its name's address, both ways of
      # sending; the other name on the same host is reached too.
      {:ok, _} = run_in(pid, fn -> Bus.send(host, me, :from_name) end)
      assert_receive {:xmpp_bridge_bus, :message, ^own, :from_name}, 5000

      {:ok, r} = run_in(pid, fn -> Bus.send(host, me, :confirmed, delivery: :confirmed) end)
      assert_receive {:xmpp_bridge_bus, :message, ^own, :confirmed}, 5000
      # The receipt goes to the sender: the registered process.
      assert_receive {:other, ^pid, {:xmpp_bridge_bus, :delivered, ^r, ^me}}, 5000

      n2 = name()
      pid2 = named(host, n2)
      {:ok, _} = run_in(pid, fn -> Bus.send(host, Bus.jid(host, n2), :sibling) end)
      assert_receive {:got, ^pid2, ^own, :sibling}, 5000

      # What is not sent by a registered process goes from the host.
      {:ok, _} = Bus.send(host, me, :from_host)
      host_jid = server.component_domain
      assert_receive {:xmpp_bridge_bus, :message, ^host_jid, :from_host}, 5000
    end

    test "calls: the reply, the process's errors, the host's timeout, crashed on exit",
         %{server: server} do
      host = start_host(server)
      client = start_client(server)
      n = name()
      pid = named(host, n)
      jid = Bus.jid(host, n)
      me = Bus.jid(client)

      assert {:ok, 6} = Bus.call(client, jid, "add", [1, 2, 3], 5000)
      assert_receive {:call, ^pid, %Call{name: ^n, caller: ^me, method: "add"}, ^me, "add", _}

      big = 2 ** 100
      assert {:ok, [^big, "é", {:t, 1.5}]} = Bus.call(client, jid, "echo", [big, "é", {:t, 1.5}])

      assert {:error, %Error{reason: {:no_method, "nope"}}} = Bus.call(client, jid, "nope", [])

      # The process exits with the call unanswered: crashed.
      assert {:error, %Error{reason: {:crashed, text}}} = Bus.call(client, jid, "crash", [])
      assert text =~ "exited: error"
      assert Bus.whereis(host, n) == nil

      # Held and never answered: the caller's timeout; a late reply is
      # dropped (no second answer reaches anyone).
      n2 = name()
      held = named(host, n2, :hold)
      jid2 = Bus.jid(host, n2)
      assert {:error, %Error{reason: :timeout}} = Bus.call(client, jid2, "add", [1], 600)
      assert_receive {:call, ^held, call, _, "add", [1]}
      Process.sleep(300)
      assert :ok = Bus.reply(call, 1)

      # reply_error from any process; bad values are refused and the call
      # still waits.
      task = Task.async(fn -> Bus.call(client, jid2, "x", [], 5000) end)
      assert_receive {:call, ^held, call, _, "x", []}, 5000
      assert {:error, %Error{reason: {:not_portable, "pid"}}} = Bus.reply(call, self())

      assert {:error, %Error{reason: {:bad_argument, _}}} = Bus.reply_error(call, :frob)
      assert :ok = Bus.reply_error(call, {:bad_args, "want two"})
      assert {:error, %Error{reason: {:bad_args, "want two"}}} = Task.await(task)

      task = Task.async(fn -> Bus.call(client, jid2, "y", [], 5000) end)
      assert_receive {:call, ^held, call, _, "y", []}, 5000
      assert :ok = Bus.reply_error(call, :busy)
      assert {:error, %Error{reason: :busy}} = Task.await(task)

      # Unregistered with a call pending: crashed "exited: normal".
      task = Task.async(fn -> Bus.call(client, jid2, "z", [], 5000) end)
      assert_receive {:call, ^held, _call, _, "z", []}, 5000
      :ok = Bus.unregister(host, n2)
      assert {:error, %Error{reason: {:crashed, "exited: normal"}}} = Task.await(task)

      # Nobody holds it: peer unavailable, at once.
      assert {:error, %Error{reason: {:peer_unavailable, "item-not-found"}}} =
               Bus.call(client, jid2, "add", [1], 5000)

      # A registered process calls from its name's address.
      :ok = Bus.serve(client, "whoami", fn -> :ok end)
      n3 = name()
      caller = named(host, n3)
      assert {:ok, :ok} = run_in(caller, fn -> Bus.call(host, me, "whoami", [], 5000) end)
      n4 = name()
      callee = named(host, n4)
      jid4 = Bus.jid(host, n4)
      own3 = Bus.jid(host, n3)
      assert {:ok, 3} = run_in(caller, fn -> Bus.call(host, jid4, "add", [1, 2], 5000) end)
      assert_receive {:call, ^callee, _, ^own3, "add", [1, 2]}
    end

    test "a monitor of a name: alive while held, DOWN saying how it ended, noproc",
         %{server: server} do
      host = start_host(server)
      client = start_client(server)

      for {how, reason} <- [
            {:kill, {:exit, :killed}},
            {:shutdown, {:exit, :shutdown}},
            {:crash, {:exit, :error}},
            {:normal, {:exit, :normal}},
            {:unregister, {:exit, :normal}}
          ] do
        n = name()
        pid = named(host, n)
        jid = Bus.jid(host, n)
        ref = Bus.monitor(client, jid)
        refute_receive {:DOWN, ^ref, :bus_node, _, _}, 1500

        case how do
          :kill -> Process.exit(pid, :kill)
          :shutdown -> Process.exit(pid, :shutdown)
          :crash -> Process.exit(pid, {:error, :bad})
          :normal -> send(pid, {:run, fn -> exit(:normal) end})
          :unregister -> :ok = Bus.unregister(host, n)
        end

        assert_receive {:DOWN, ^ref, :bus_node, ^jid, ^reason}, 5000
      end

      ref = Bus.monitor(client, "nobody@#{server.component_domain}")
      assert_receive {:DOWN, ^ref, :bus_node, _, :noproc}, 5000

      # Registered again: a new incarnation, the old watchers were told.
      n = name()
      pid = named(host, n)
      ref = Bus.monitor(client, Bus.jid(host, n))
      refute_receive {:DOWN, ^ref, :bus_node, _, _}, 1200
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :bus_node, _, {:exit, :killed}}, 5000
      _again = named(host, n)
      ref2 = Bus.monitor(client, Bus.jid(host, n))
      refute_receive {:DOWN, ^ref2, :bus_node, _, _}, 1200

      # The host stops: every watched name says goodbye (shutdown).
      Bus.stop(host)
      assert_receive {:DOWN, ^ref2, :bus_node, _, {:exit, :shutdown}}, 5000
    end

    test "a host that reconnects keeps its names and their watchers", %{server: server} do
      proxy = TcpProxy.start(server.ports.component)
      on_exit(fn -> TcpProxy.stop(proxy) end)
      host = start_host(server, port: proxy.port)
      # Pings bounce while the host is away: a long timeout rides that out.
      client = start_client(server, heartbeat_timeout: 10_000)
      n = name()
      pid = named(host, n)
      jid = Bus.jid(host, n)
      me = Bus.jid(client)
      ref = Bus.monitor(client, jid)
      refute_receive {:DOWN, ^ref, :bus_node, _, _}, 1000

      TcpProxy.cut(proxy)

      # Sent until one arrives: the host is back, and still holds the name.
      assert Enum.any?(1..30, fn i ->
               {:ok, _} = Bus.send(client, jid, {:after_cut, i})

               receive do
                 {:got, ^pid, ^me, {:after_cut, _}} -> true
               after
                 1000 -> false
               end
             end)

      # Same incarnation after the reconnect: no DOWN; then the goodbye.
      refute_receive {:DOWN, ^ref, :bus_node, _, _}, 1500
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :bus_node, ^jid, {:exit, :killed}}, 10_000
    end
  end

  describe "a Rust client node and BEAM names" do
    test "the Rust node sends to a BEAM name, calls it, and gets DOWN when it exits",
         %{server: server} do
      host = start_host(server)
      rust = RustPeer.start(server, "hostrust")
      n = name()
      pid = named(host, n)
      jid = Bus.jid(host, n)

      RustPeer.command(rust, %{
        "cmd" => "send",
        "id" => 1,
        "to" => jid,
        "etf" => RustPeer.etf64({:from_rust, [1, 2]}),
        "delivery" => "confirmed",
        "deadline_ms" => 5000
      })

      rust_jid = rust.jid
      assert_receive {:got, ^pid, ^rust_jid, {:from_rust, [1, 2]}}, 5000
      assert %{"event" => "delivered"} = RustPeer.next(rust, &(&1["id"] == 1))

      RustPeer.command(rust, %{
        "cmd" => "call",
        "id" => 2,
        "to" => jid,
        "method" => "add",
        "args_etf" => RustPeer.etf64([40, 2])
      })

      assert %{"event" => "result", "etf" => b64} = RustPeer.next(rust, &(&1["id"] == 2))
      assert RustPeer.term64(b64) == 42

      RustPeer.command(rust, %{"cmd" => "monitor", "id" => 3, "jid" => jid})
      Process.sleep(1200)
      Process.exit(pid, :shutdown)

      assert %{"event" => "down", "reason" => "exit:shutdown"} =
               RustPeer.next(rust, &(&1["id"] == 3 and &1["event"] == "down"))

      RustPeer.stop(rust)
    end
  end

  describe "the Erlang facade" do
    test "an EUnit suite registers a name and is sent to, called and monitored", %{
      server: server
    } do
      dir = XmppBridge.Test.Eunit.tmp_dir!()
      on_exit(fn -> File.rm_rf!(dir) end)

      Application.put_env(:xmpp_bridge, :eunit_names, %{
        host: server.host,
        c2s: server.ports.c2s_plain,
        component: {server.component_domain, server.component_secret, server.ports.component},
        client:
          {TestServer.jid(server, "hostclient"),
           Map.get(server.accounts, "hostclient", "hostclient-secret")}
      })

      on_exit(fn -> Application.delete_env(:xmpp_bridge, :eunit_names) end)
      source = XmppBridge.Test.Eunit.source("xmpp_bridge_names_tests.erl")
      module = XmppBridge.Test.Eunit.compile_and_load!(source, dir)
      assert :eunit.test(module, [:verbose]) == :ok
    end
  end

  describe "many names" do
    test "1000 names on one host: each gets its own terms, and a slow one is not flooded",
         %{server: server} do
      host = start_host(server, window: 50, max_mailbox: 200)
      client = start_client(server)
      parent = self()
      names = for _ <- 1..1000, do: name()

      pids =
        for n <- names do
          pid =
            spawn(fn ->
              :ok = Bus.register(host, n)
              send(parent, {:ready, n})

              receive do
                {:xmpp_bridge_bus, :message, _from, {:for, ^n}} -> send(parent, {:ok, n})
                {:xmpp_bridge_bus, :message, _from, other} -> send(parent, {:wrong, n, other})
              end
            end)

          assert_receive {:ready, ^n}, 5000
          pid
        end

      assert length(Bus.registered(host)) >= 1000

      for n <- names, do: {:ok, _} = Bus.send(client, Bus.jid(host, n), {:for, n})
      for n <- names, do: assert_receive({:ok, ^n}, 10_000)
      refute_received {:wrong, _, _}
      assert Enum.all?(pids, &(not Process.alive?(&1)))

      # The processes exited: their names went with them.
      Process.sleep(200)
      assert Enum.all?(names, &(Bus.whereis(host, &1) == nil))

      # A slow name: 3000 terms, taken 1 per ms at first; its mailbox stays
      # near :max_mailbox (the window is the slack), and all arrive in order.
      slow = name()

      slow_pid =
        spawn(fn ->
          :ok = Bus.register(host, slow)
          send(parent, {:ready, slow})
          slow_loop(parent, 0, 0)
        end)

      assert_receive {:ready, ^slow}, 5000
      to = Bus.jid(host, slow)
      for i <- 1..3000, do: {:ok, _} = Bus.send(client, to, i)
      assert_receive {:slow_done, peak}, 60_000
      assert is_integer(peak), inspect(peak)
      IO.puts("\n  BEAM name host, slow name: 3000/3000 in order; mailbox peak #{peak}")
      assert peak <= 200 + 2 * 50 + 10
      refute Process.alive?(slow_pid)
    end
  end

  defp slow_loop(parent, 3000, peak), do: send(parent, {:slow_done, peak})

  defp slow_loop(parent, n, peak) do
    {:message_queue_len, q} = Process.info(self(), :message_queue_len)

    receive do
      {:xmpp_bridge_bus, :message, _from, i} when i == n + 1 ->
        if n < 1500, do: Process.sleep(1)
        slow_loop(parent, i, max(peak, q))

      {:xmpp_bridge_bus, :message, _from, other} ->
        send(parent, {:slow_done, {:out_of_order, n, other}})
    end
  end
end

defmodule XmppBridge.BusNamesProsodyTest do
  # The BEAM name host on Prosody's component port: the same wire, another
  # server (Prosody routes *@component to the component, as ejabberd does).
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase, only: [session_opts: 2]

  alias XmppBridge.{Bus, Error}
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 120_000

  test "Prosody: a registered process is sent to, called and monitored; noproc after" do
    server = TestServer.start!(:prosody, accounts: ~w(pnames))
    on_exit(fn -> TestServer.stop(server) end)

    {:ok, host} =
      Bus.start_link(
        mode: :component,
        jid: server.component_domain,
        password: server.component_secret,
        host: server.host,
        port: server.ports.component,
        tls: :plain
      )

    :ok = Bus.await_online(host)

    {:ok, client} =
      Bus.start_link(
        session_opts(server, "pnames")
        |> Keyword.merge(receiver: self(), heartbeat: 500, heartbeat_timeout: 1000)
      )

    :ok = Bus.await_online(client)
    parent = self()

    pid =
      spawn(fn ->
        :ok = Bus.register(host, "pworker")
        send(parent, :registered)
        worker(parent)
      end)

    assert_receive :registered, 5000
    jid = Bus.jid(host, "pworker")
    me = Bus.jid(client)

    {:ok, ref} = Bus.send(client, jid, {:job, 1}, delivery: :confirmed)
    assert_receive {:got, ^me, {:job, 1}}, 5000
    assert_receive {:xmpp_bridge_bus, :delivered, ^ref, ^jid}, 5000
    assert {:ok, 9} = Bus.call(client, jid, "mul", [3, 3], 5000)

    mon = Bus.monitor(client, jid)
    refute_receive {:DOWN, ^mon, :bus_node, _, _}, 1500
    Process.exit(pid, :shutdown)
    assert_receive {:DOWN, ^mon, :bus_node, ^jid, {:exit, :shutdown}}, 5000

    {:ok, ref} = Bus.send(client, jid, :late)
    assert_receive {:xmpp_bridge_bus, :failed, ^ref, {:bounced, "item-not-found"}}, 5000

    assert {:error, %Error{reason: {:peer_unavailable, "item-not-found"}}} =
             Bus.call(client, jid, "mul", [1, 1], 5000)

    Bus.stop(client)
    Bus.stop(host)
  end

  defp worker(parent) do
    receive do
      {:xmpp_bridge_bus, :message, from, term} -> send(parent, {:got, from, term})
      {:xmpp_bridge_bus, :call, call, _from, "mul", [a, b]} -> :ok = Bus.reply(call, a * b)
    end

    worker(parent)
  end
end
