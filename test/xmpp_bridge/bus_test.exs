defmodule XmppBridge.BusTest do
  # XmppBridge.Bus between BEAM nodes in this VM, against a private
  # ejabberd: terms, RPC, monitors, confirmed and offline delivery, flow
  # control. (Rust peers as OS processes: bus_mixed_test.exs.)
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase

  alias XmppBridge.{Bus, Error, Message}
  alias XmppBridge.Bus.UnknownAtom
  alias XmppBridge.Test.TcpProxy
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 180_000

  @users ~w(ann ben cid dee eve fay gus hal ivy jon kim)

  setup_all do
    server = TestServer.start!(:ejabberd, accounts: @users)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  defp start_bus(server, user, opts \\ []) do
    opts =
      Keyword.merge(session_opts(server, user),
        receiver: self(),
        heartbeat: 500,
        heartbeat_timeout: 1000
      )
      |> Keyword.merge(opts)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    bus
  end

  defp bus_jid(server, user), do: TestServer.jid(server, user) <> "/bus"

  defp stop_quietly(bus) do
    if Process.alive?(bus), do: Bus.stop(bus)
  catch
    :exit, _ -> :ok
  end

  describe "terms to a JID" do
    test "arrive once, tagged with the sender, for any portable term", %{server: server} do
      ann = start_bus(server, "ann")
      ben = start_bus(server, "ben")

      terms = [
        {:job, 42, %{"state" => :done, nested: [1, 2.5, {"x", <<0, 255>>}]}},
        [2 ** 100, -(2 ** 70), "héllo ✓", :ok],
        %{{1, 2} => [%{}]},
        []
      ]

      for t <- terms, do: {:ok, _ref} = Bus.send(ann, "ben@localhost", t)

      for t <- terms do
        assert_receive {:xmpp_bridge_bus, :message, from, ^t}, 5000
        assert from == bus_jid(server, "ann")
      end

      refute_receive {:xmpp_bridge_bus, :message, _, _}, 300
      Enum.each([ann, ben], &stop_quietly/1)
    end

    test "a bounce is reported to the sender of a :server send", %{server: server} do
      ann = start_bus(server, "ann")
      {:ok, ref} = Bus.send(ann, "nobody@unknown.invalid", :hello)
      assert_receive {:xmpp_bridge_bus, :failed, ^ref, {:bounced, condition}}, 10_000
      assert is_binary(condition)
      {:ok, ref} = Bus.send(ann, "nobody@unknown.invalid", :hello, delivery: :none)
      refute_receive {:xmpp_bridge_bus, _, ^ref, _}, 1000
      stop_quietly(ann)
    end

    test "pids, references, ports and funs are refused at send", %{server: server} do
      ann = start_bus(server, "ann")

      for {term, what} <- [
            {{:reply_to, self()}, "pid"},
            {[make_ref()], "reference"},
            {%{port: hd(Port.list())}, "port"},
            {fn -> :x end, "fun"}
          ] do
        assert {:error, %Error{reason: {:not_portable, ^what}} = e} =
                 Bus.send(ann, "ben@localhost", term)

        assert Exception.message(e) =~ what
      end

      stop_quietly(ann)
    end

    test "an ordinary client sees a readable body; its unknown atom arrives safe", %{
      server: server
    } do
      ann = start_bus(server, "ann")
      cid = open_session(server, "cid", resource: "bus")

      {:ok, _} = Bus.send(ann, "cid@localhost", {:job, 7, "text"})
      %Message{} = msg = wait_for_stanza(cid)
      assert Message.body(msg) == ~s({:job, 7, "text"})

      # A peer writes an atom this VM does not know, inside a tuple.
      name = "zz_unknown_#{System.unique_integer([:positive])}"
      etf = <<131, 104, 2, 97, 1, 119, byte_size(name)>> <> name

      term_el =
        {:xmlel, "term", [{"xmlns", "urn:xmpp-bridge:term:0"}], [{:xmlcdata, Base.encode64(etf)}]}

      send_stanza(cid, %Message{
        to: bus_jid(server, "ann"),
        id: "u1",
        bodies: [{nil, "x"}],
        payloads: [term_el]
      })

      assert_receive {:xmpp_bridge_bus, :message, _, {1, %UnknownAtom{name: ^name}}}, 5000
      assert_raise ArgumentError, fn -> String.to_existing_atom(name) end

      # A pid from a peer is refused, and the sender told so.
      pid_el =
        {:xmlel, "term", [{"xmlns", "urn:xmpp-bridge:term:0"}],
         [{:xmlcdata, Base.encode64(:erlang.term_to_binary(self()))}]}

      send_stanza(cid, %Message{
        to: bus_jid(server, "ann"),
        id: "p1",
        bodies: [{nil, "x"}],
        payloads: [pid_el]
      })

      %Message{type: :error, id: "p1", error: error} = wait_for_stanza(cid)
      assert error.condition == :not_acceptable
      refute_receive {:xmpp_bridge_bus, :message, _, _}, 300

      close_session(cid)
      stop_quietly(ann)
    end

    test "JSON (XEP-0335) for peers that speak neither Erlang nor Rust", %{server: server} do
      ann = start_bus(server, "ann")
      cid = open_session(server, "cid", resource: "bus")

      {:ok, _} =
        Bus.send(ann, "cid@localhost", %{"job" => 7, "tags" => ["a", nil]}, format: :json)

      %Message{payloads: payloads} = msg = wait_for_stanza(cid)
      assert [%XmppBridge.Payload.Json{json: json} | _] = payloads

      assert XmppBridge.Payload.Json.to_term(%XmppBridge.Payload.Json{json: json}) ==
               {:ok, %{"job" => 7, "tags" => ["a", nil]}}

      assert Message.body(msg) =~ "job"

      json_el = %XmppBridge.Payload.Json{json: ~s({"from":"a client","n":[1,2.5]})}

      send_stanza(cid, %Message{
        to: bus_jid(server, "ann"),
        id: "j1",
        bodies: [{nil, "hi"}],
        payloads: [json_el]
      })

      assert_receive {:xmpp_bridge_bus, :message, from, %{"from" => "a client", "n" => [1, 2.5]}},
                     5000

      assert from == cid.jid

      close_session(cid)
      stop_quietly(ann)
    end

    test "confirmed sends are delivered, duplicates dropped", %{server: server} do
      ann = start_bus(server, "ann")
      ben = start_bus(server, "ben")

      refs =
        for i <- 1..200,
            do: elem(Bus.send(ann, "ben@localhost", {:n, i}, delivery: :confirmed), 1)

      for ref <- refs, do: assert_receive({:xmpp_bridge_bus, :delivered, ^ref, _}, 10_000)

      got =
        for _ <- 1..200, do: assert_receive({:xmpp_bridge_bus, :message, _, {:n, i}}, 5000) && i

      assert got == Enum.to_list(1..200)

      # The same origin id twice (a resend): handed over once, confirmed twice.
      dee = open_session(server, "dee", resource: "bus")
      {:ok, el} = XmppBridge.Bus.Wire.value_element(:once, :term)
      msg = XmppBridge.Bus.Wire.term_message(bus_jid(server, "ann"), "dup-1", el, ":once", true)
      send_stanza(dee, msg)
      send_stanza(dee, msg)
      assert_receive {:xmpp_bridge_bus, :message, _, :once}, 5000
      refute_receive {:xmpp_bridge_bus, :message, _, :once}, 500
      receipts = for _ <- 1..2, do: wait_for_stanza(dee)

      assert Enum.all?(
               receipts,
               &match?(%Message{payloads: [%XmppBridge.Payload.ReceiptReceived{id: "dup-1"}]}, &1)
             )

      close_session(dee)
      Enum.each([ann, ben], &stop_quietly/1)
    end

    test "a term to an offline node waits on the server, arrives in order with receipts", %{
      server: server
    } do
      ann = start_bus(server, "ann")

      refs =
        for i <- 1..100,
            do: elem(Bus.send(ann, "eve@localhost", {:queued, i}, delivery: :confirmed), 1)

      :ok = Bus.sync(ann)
      refute_receive {:xmpp_bridge_bus, :delivered, _, _}, 500

      eve = start_bus(server, "eve")

      got =
        for _ <- 1..100,
            do: assert_receive({:xmpp_bridge_bus, :message, _, {:queued, i}}, 10_000) && i

      assert got == Enum.to_list(1..100)
      for ref <- refs, do: assert_receive({:xmpp_bridge_bus, :delivered, ^ref, _}, 10_000)
      Enum.each([ann, eve], &stop_quietly/1)
    end

    test "what the server refuses to store offline (its quota) is reported failed" do
      server = TestServer.start!(:ejabberd, accounts: ["ann", "eve"], offline_limit: 10)
      on_exit(fn -> TestServer.stop(server) end)
      ann = start_bus(server, "ann")

      refs =
        for i <- 1..25,
            do: elem(Bus.send(ann, "eve@localhost", {:queued, i}, delivery: :confirmed), 1)

      failed =
        for ref <- refs, reduce: [] do
          acc ->
            receive do
              {:xmpp_bridge_bus, :failed, ^ref, {:bounced, condition}} -> [condition | acc]
            after
              0 -> acc
            end
        end

      failed =
        failed ++
          for _ <- 1..(15 - length(failed))//1 do
            assert_receive {:xmpp_bridge_bus, :failed, _, {:bounced, condition}}, 10_000
            condition
          end

      report(
        server,
        "bus offline",
        "quota 10: 25 sent, #{length(failed)} bounced (#{Enum.uniq(failed) |> Enum.join(", ")})"
      )

      assert length(failed) == 15

      # The 10 stored arrive, with their receipts, when the node comes back.
      eve = start_bus(server, "eve")

      got =
        for _ <- 1..10,
            do: assert_receive({:xmpp_bridge_bus, :message, _, {:queued, i}}, 10_000) && i

      assert got == Enum.to_list(1..10)
      for _ <- 1..10, do: assert_receive({:xmpp_bridge_bus, :delivered, _, _}, 10_000)
      Enum.each([ann, eve], &stop_quietly/1)
    end

    test "a slow receiver holds the stream back instead of its mailbox growing", %{server: server} do
      test = self()
      sink = spawn_link(fn -> slow_sink(test, 0, 0) end)
      ann = start_bus(server, "ann")
      ben = start_bus(server, "ben", receiver: sink, max_mailbox: 200, window: 50)

      for i <- 1..3000,
          do: {:ok, _} = Bus.send(ann, "ben@localhost", {:flood, i}, delivery: :none)

      assert_receive {:sink_done, max_len}, 60_000

      report(
        server,
        "bus flow control",
        "3000 terms; the receiver's mailbox peaked at #{max_len}"
      )

      assert max_len <= 200 + 50 + 10
      Enum.each([ann, ben], &stop_quietly/1)
    end
  end

  defp slow_sink(test, n, max_len) do
    receive do
      {:xmpp_bridge_bus, :message, _, {:flood, _}} ->
        {:message_queue_len, len} = Process.info(self(), :message_queue_len)
        if rem(n, 100) == 0, do: Process.sleep(20)

        if n + 1 == 3000,
          do: Kernel.send(test, {:sink_done, max(max_len, len)}),
          else: slow_sink(test, n + 1, max(max_len, len))
    end
  end

  describe "RPC" do
    test "results, no method, crash, timeout, busy, peer unavailable", %{server: server} do
      test = self()
      ann = start_bus(server, "ann")

      ben =
        start_bus(server, "ben",
          max_calls: 2,
          handlers: %{
            "add" => fn a, b -> a + b end,
            "crash" => fn -> raise ArgumentError, "boom" end,
            "sleep" => fn ms ->
              Kernel.send(test, {:sleeping, self()})
              Process.sleep(ms)
              :ok
            end
          }
        )

      assert {:ok, 3} = Bus.call(ann, "ben@localhost", "add", [1, 2])
      assert Bus.call(ann, "ben@localhost/bus", :add, [2 ** 64, 2 ** 64]) == {:ok, 2 ** 65}

      assert {:error, %Error{reason: {:no_method, "nope"}}} =
               Bus.call(ann, "ben@localhost", "nope", [])

      assert {:error, %Error{reason: {:crashed, detail}}} =
               Bus.call(ann, "ben@localhost", "crash", [])

      assert detail =~ "boom"
      assert {:ok, 5} = Bus.call(ann, "ben@localhost", "add", [2, 3]), "the node keeps serving"

      # A wrong arity crashes the call, not the node.
      assert {:error, %Error{reason: {:crashed, _}}} = Bus.call(ann, "ben@localhost", "add", [1])

      # Timeout: the caller gives up, the handler is stopped on the other side.
      t0 = System.monotonic_time(:millisecond)

      assert {:error, %Error{reason: :timeout}} =
               Bus.call(ann, "ben@localhost", "sleep", [10_000], 300)

      assert System.monotonic_time(:millisecond) - t0 < 1000
      assert_receive {:sleeping, handler}, 1000
      eventually(fn -> not Process.alive?(handler) end, 3000)

      # Busy: two calls run, a third is refused at once.
      slow =
        for _ <- 1..2,
            do: Task.async(fn -> Bus.call(ann, "ben@localhost", "sleep", [1500], 5000) end)

      for _ <- 1..2, do: assert_receive({:sleeping, _}, 2000)
      assert {:error, %Error{reason: :busy}} = Bus.call(ann, "ben@localhost", "add", [1, 1])
      assert Enum.map(slow, &Task.await/1) == [{:ok, :ok}, {:ok, :ok}]

      # A peer that is not online is reported at once, not after the timeout.
      t0 = System.monotonic_time(:millisecond)

      assert {:error, %Error{reason: {:peer_unavailable, _}}} =
               Bus.call(ann, "fay@localhost", "add", [1, 2], 10_000)

      elapsed = System.monotonic_time(:millisecond) - t0
      report(server, "bus rpc", "call to an offline peer answered in #{elapsed} ms")
      assert elapsed < 3000

      # Arguments that cannot cross the bus are refused before sending.
      assert {:error, %Error{reason: {:not_portable, "pid"}}} =
               Bus.call(ann, "ben@localhost", "add", [self(), 1])

      # Round trips, one at a time.
      times =
        for i <- 1..200 do
          t = System.monotonic_time(:microsecond)
          {:ok, _} = Bus.call(ann, "ben@localhost", "add", [i, 1])
          System.monotonic_time(:microsecond) - t
        end
        |> Enum.sort()

      report(
        server,
        "bus rpc",
        "200 calls BEAM->BEAM: p50 #{Enum.at(times, 100)} µs, p99 #{Enum.at(times, 198)} µs"
      )

      Enum.each([ann, ben], &stop_quietly/1)
    end

    test "a timed-out call leaks no waiter on either side", %{server: server} do
      ann = start_bus(server, "ann")
      ben = start_bus(server, "ben", handlers: %{"sleep" => fn ms -> Process.sleep(ms) end})

      for _ <- 1..20 do
        assert {:error, %Error{reason: :timeout}} =
                 Bus.call(ann, "ben@localhost", "sleep", [2000], 50)
      end

      # The serving side stopped every handler, and the caller's mailbox
      # holds no late answer.
      eventually(fn -> map_size(:sys.get_state(ben).running) == 0 end, 3000)
      Process.sleep(300)
      refute_received {:xmpp_bridge_iq, _, _}
      assert Process.info(self(), :message_queue_len) == {:message_queue_len, 0}
      Enum.each([ann, ben], &stop_quietly/1)
    end

    test "method names never become atoms", %{server: server} do
      ann = start_bus(server, "ann")
      ben = start_bus(server, "ben")
      name = "never_an_atom_#{System.unique_integer([:positive])}"

      assert {:error, %Error{reason: {:no_method, ^name}}} =
               Bus.call(ann, "ben@localhost", name, [])

      assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
      Enum.each([ann, ben], &stop_quietly/1)
    end
  end

  describe "supervision" do
    test "a node under a supervisor, restarted with its served methods", %{server: server} do
      opts =
        session_opts(server, "cid") ++
          [name: :bus_under_supervision, handlers: %{"twice" => fn x -> 2 * x end}]

      sup =
        start_supervised!(
          {Supervisor, [strategy: :one_for_one, children: [{Bus, opts}]]}
          |> sup_spec()
        )

      assert :ok = Bus.await_online(:bus_under_supervision)
      ann = start_bus(server, "ann")
      assert {:ok, 42} = Bus.call(ann, "cid@localhost", "twice", [21])

      old = Process.whereis(:bus_under_supervision)
      Process.exit(old, :kill)
      eventually(fn -> (pid = Process.whereis(:bus_under_supervision)) && pid != old end, 5000)
      assert :ok = Bus.await_online(:bus_under_supervision)
      eventually(fn -> Bus.call(ann, "cid@localhost", "twice", [4]) == {:ok, 8} end, 10_000)
      assert [{Bus, _, :worker, [Bus]}] = Supervisor.which_children(sup)
      stop_quietly(ann)
    end
  end

  describe "monitors" do
    test "DOWN at once for a node that is not online", %{server: server} do
      ann = start_bus(server, "ann")
      t0 = System.monotonic_time(:millisecond)
      ref = Bus.monitor(ann, "gus@localhost")
      assert_receive {:DOWN, ^ref, :bus_node, "gus@localhost/bus", :noconnection}, 3000

      report(
        server,
        "bus monitor",
        "offline node reported in #{System.monotonic_time(:millisecond) - t0} ms"
      )

      stop_quietly(ann)
    end

    test "a clean stop gives :shutdown; demonitor gives nothing", %{server: server} do
      ann = start_bus(server, "ann")
      hal = start_bus(server, "hal")
      ref = Bus.monitor(ann, "hal@localhost")
      ref2 = Bus.monitor(ann, "hal@localhost")
      :ok = Bus.demonitor(ann, ref2)
      Process.sleep(300)
      stop_quietly(hal)
      assert_receive {:DOWN, ^ref, :bus_node, _, :shutdown}, 3000
      refute_receive {:DOWN, ^ref2, _, _, _}, 300
      stop_quietly(ann)
    end

    test "a node whose process dies gives :noconnection; a restart under the same JID gives :restarted",
         %{server: server} do
      ann = start_bus(server, "ann")
      Process.flag(:trap_exit, true)

      ivy = start_bus(server, "ivy")
      ref = Bus.monitor(ann, "ivy@localhost")
      Process.sleep(300)
      Process.exit(ivy, :kill)
      t0 = System.monotonic_time(:millisecond)
      assert_receive {:DOWN, ^ref, :bus_node, _, :noconnection}, 5000

      report(
        server,
        "bus monitor",
        "a dead BEAM node seen down after #{System.monotonic_time(:millisecond) - t0} ms"
      )

      ivy = start_bus(server, "ivy")
      ref = Bus.monitor(ann, "ivy@localhost")
      Process.sleep(300)
      Process.exit(ivy, :kill)
      ivy2 = start_bus(server, "ivy")
      assert_receive {:DOWN, ^ref, :bus_node, _, reason}, 5000
      assert reason in [:restarted, :noconnection]
      Enum.each([ann, ivy2], &stop_quietly/1)
    end

    test "the watcher's own reconnect gives no false DOWN", %{server: server} do
      proxy = TcpProxy.start(server.ports.c2s_plain)
      ann = start_bus(server, "ann", port: proxy.port, reconnect: [initial: 100, max: 200])
      jon = start_bus(server, "jon")
      ref = Bus.monitor(ann, "jon@localhost")
      Process.sleep(500)

      for _ <- 1..3 do
        TcpProxy.cut(proxy)
        Process.sleep(1500)
      end

      refute_receive {:DOWN, ^ref, _, _, _}, 2000
      stop_quietly(jon)
      assert_receive {:DOWN, ^ref, :bus_node, _, :shutdown}, 5000
      stop_quietly(ann)
      TcpProxy.stop(proxy)
    end

    test "the monitored node's reconnect gives no false DOWN", %{server: server} do
      proxy = TcpProxy.start(server.ports.c2s_plain)
      ann = start_bus(server, "ann")
      kim = start_bus(server, "kim", port: proxy.port, reconnect: [initial: 100, max: 200])
      ref = Bus.monitor(ann, "kim@localhost")
      Process.sleep(500)
      TcpProxy.cut(proxy)
      refute_receive {:DOWN, ^ref, _, _, _}, 4000

      assert {:ok, :pong} =
               (
                 Bus.serve(kim, "ping", fn -> :pong end)
                 Bus.call(ann, "kim@localhost", "ping", [])
               )

      Enum.each([ann, kim], &stop_quietly/1)
      TcpProxy.stop(proxy)
    end
  end

  describe "the Erlang facade" do
    test "an EUnit suite sends, calls and monitors through xmpp_bridge:bus_*", %{server: server} do
      dir = XmppBridge.Test.Eunit.tmp_dir!()
      on_exit(fn -> File.rm_rf!(dir) end)

      Application.put_env(:xmpp_bridge, :eunit_bus, %{
        host: server.host,
        port: server.ports.c2s_plain,
        a: {TestServer.jid(server, "ann"), "ann-secret"},
        b: {TestServer.jid(server, "ben"), "ben-secret"}
      })

      on_exit(fn -> Application.delete_env(:xmpp_bridge, :eunit_bus) end)
      source = XmppBridge.Test.Eunit.source("xmpp_bridge_bus_tests.erl")
      module = XmppBridge.Test.Eunit.compile_and_load!(source, dir)
      assert :eunit.test(module, [:verbose]) == :ok
    end
  end

  defp sup_spec({Supervisor, opts}) do
    %{
      id: :bus_sup,
      start:
        {Supervisor, :start_link,
         [Keyword.fetch!(opts, :children), Keyword.delete(opts, :children)]},
      type: :supervisor
    }
  end
end
