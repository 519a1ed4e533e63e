defmodule XmppBridge.NodeCliTest do
  # The `xmpp-bridge-node` program (native/xmpp_bridge/src/bin/) as OS
  # processes against a private ejabberd: `serve` under a Port, the
  # one-shot `send`, `call` and `monitor` run to their exit, and Elixir
  # bus nodes (XmppBridge.Bus in this VM) on either side.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase,
    only: [session_opts: 2, open_session: 2, send_stanza: 2, close_session: 1]

  alias XmppBridge.{Bus, Error, Presence}
  alias XmppBridge.Payload.{MucHistory, MucJoin}
  alias XmppBridge.Test.NodeCli
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 300_000

  # clikill is the account of the node killed -9: ejabberd keeps its
  # session waiting for a resumption, and a later node binding the same
  # JID may be cut once by the replacement, so no other test uses it.
  @users ~w(clisrv clicall clielx clikill)

  # The exit codes of --help.
  @usage 2
  @send_failed 4
  @timeout 5
  @no_method 6
  @crashed 7
  @unavailable 9
  @join_failed 12

  setup_all do
    NodeCli.build!()
    server = TestServer.start!(:ejabberd, accounts: @users)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  defp start_bus(server, user, extra \\ []) do
    opts =
      session_opts(server, user)
      |> Keyword.merge(receiver: self(), heartbeat: 500, heartbeat_timeout: 1000)
      |> Keyword.merge(extra)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    bus
  end

  defp stop_quietly(bus) do
    if Process.alive?(bus), do: Bus.stop(bus)
  catch
    :exit, _ -> :ok
  end

  defp serve(server, user, extra \\ [], env \\ []) do
    node = NodeCli.serve(server, user, extra, env)
    on_exit(fn -> NodeCli.kill_quietly(node) end)
    node
  end

  defp call(server, to, method, args, extra \\ []) do
    NodeCli.run_as(server, "clicall", ["call", to, method, args | extra])
  end

  describe "the command line" do
    test "--help exits 0 and documents every subcommand, flag group and exit code" do
      for flag <- ["--help", "-h", "help"] do
        %{status: 0, stdout: help} = NodeCli.run([flag])

        for word <-
              ~w(serve send call monitor broadcast members --join XMPP_BRIDGE_JOIN --status
                 --show --discovery --commands member_left --jid XMPP_BRIDGE_PASSWORD --timeout
                 --confirmed) ++
                ["EXIT CODES", "METHODS SERVED", "TERMS AS JSON", "COMMANDS"] do
          assert help =~ word, "#{flag}: no #{word}"
        end
      end

      assert %{status: 0, stdout: "xmpp-bridge-node " <> _} = NodeCli.run(["--version"])
    end

    test "bad flags and arguments give a clear error and exit 2, before connecting" do
      login = ["--jid", "a@localhost", "--password", "pw", "--host", "127.0.0.1", "--port", "1"]

      cases = [
        {["--frob"], "unknown flag --frob"},
        {["--jid"], "--jid needs a value"},
        {["serve", "--password", "pw"], "no account"},
        {["call", "b@localhost", "add", "[1,"] ++ login, "not JSON"},
        {["call", "b@localhost", "add", "1"] ++ login, "must be a JSON array"},
        {["send", "b@localhost"] ++ login, "too few arguments"},
        {["send", "@@", "1"] ++ login, "not a node's address"},
        {["call", "b@localhost", "add", "[]", "--confirmed"] ++ login, "not a flag of `call`"},
        {["frob"] ++ login, "unknown subcommand"},
        {["serve", "--tls", "ssl", "--jid", "a@localhost", "--password", "pw"],
         "starttls, direct or plain"},
        {["--join", "Jobs"] ++ login, "must start with a-z or 0-9"},
        {["--show", "sleepy"] ++ login, "available, chat, away, xa or dnd"},
        {["broadcast", "jobs"] ++ login, "too few arguments"},
        {["members", "a@b"] ++ login, "is not one of"},
        {["send", "b@localhost", "1", "--join", "jobs"] ++ login, "not a flag of `send`"}
      ]

      for {args, why} <- cases do
        %{status: status, stderr: stderr, stdout: stdout} = NodeCli.run(args)
        assert status == @usage, "#{inspect(args)}: status #{status}"
        assert stderr =~ why, "#{inspect(args)}: #{stderr}"
        assert stderr =~ "--help"
        assert stdout == ""
      end

      # A port nothing listens on: the bad JSON was found first (exit 2,
      # not 3), and a good command line fails to connect with 3.
      assert %{status: 3, stderr: stderr} =
               NodeCli.run(["call", "b@localhost", "load", "--connect-timeout", "500"] ++ login)

      assert stderr =~ "could not connect"
    end
  end

  describe "a serving CLI node, called from the CLI" do
    test "every method; a timeout and a panic have their exit codes, and it keeps serving", %{
      server: server
    } do
      node = serve(server, "clisrv")
      to = node.jid

      echo = call(server, to, "echo", ~s([1, "a", {"$atom": "ok"}, {"$tuple": [2.5, null]}]))
      assert echo.status == 0, echo.stderr
      assert NodeCli.json!(echo) == [1, "a", %{"$atom" => "ok"}, %{"$tuple" => [2.5, nil]}]

      a = 2 ** 100
      b = -(2 ** 70)
      add = call(server, to, "add", "[#{a}, #{b}, 1]")
      assert add.status == 0, add.stderr
      assert String.trim(add.stdout) == Integer.to_string(a + b + 1)

      assert %{status: 0, stdout: "50\n"} = call(server, to, "slow", "[50]")

      slow = call(server, to, "slow", "[3000]", ["--timeout", "300"])
      assert slow.status == @timeout
      assert slow.stderr =~ "timeout"
      assert slow.stdout == ""

      panic = call(server, to, "panic", ~s(["on purpose"]))
      assert panic.status == @crashed
      assert panic.stderr =~ "crashed"
      assert panic.stderr =~ "on purpose"

      nope = call(server, to, "nope", "[]")
      assert nope.status == @no_method
      assert nope.stderr =~ "no_method"

      again = call(server, to, "add", "[1, 2]")
      assert {again.status, again.stdout} == {0, "3\n"}, "the node keeps serving after a panic"

      load = call(server, to, "load", "[]")
      assert load.status == 0

      assert %{"active" => 0, "served" => served, "max_calls" => 64, "uptime_ms" => up} =
               NodeCli.json!(load)

      # echo, add, slow twice, panic, add (no_method never reaches a handler)
      assert served == 6 and up > 0

      # --etf prints the result's ETF; --json-payload calls with XEP-0335 JSON.
      etf = call(server, to, "echo", Base.encode64(:erlang.term_to_binary([{:x, 1}])), ["--etf"])
      assert etf.status == 0
      assert NodeCli.term64(NodeCli.json!(etf)) == [{:x, 1}]

      json = call(server, to, "echo", ~s([{"k": [1, true]}]), ["--json-payload"])
      assert json.status == 0
      assert NodeCli.json!(json) == [%{"k" => [1, true]}]

      # What the node printed: one `served` line per call, outcomes named.
      {events, 0} = NodeCli.stop(node)
      served = for %{"event" => "served"} = e <- events, do: {e["method"], e["outcome"]}
      assert {"panic", "panic"} in served
      assert {"slow", "cancelled"} in served
      assert {"add", "ok"} in served
      assert List.last(events) == %{"event" => "stopped"}
    end

    test "a call to a node that is not online exits with `unavailable`", %{server: server} do
      off = call(server, TestServer.jid(server, "clielx"), "add", "[1]")
      assert off.status == @unavailable, off.stderr
      assert off.stderr =~ "peer_unavailable"
    end
  end

  describe "the CLI and Elixir bus nodes" do
    test "send: an Elixir node receives the term; --confirmed waits for the receipt", %{
      server: server
    } do
      bus = start_bus(server, "clielx")
      to = Bus.jid(bus)

      sent =
        NodeCli.run_as(server, "clicall", [
          "send",
          to,
          ~s({"$tuple": [{"$atom": "job"}, 42, "résumé", [#{2 ** 80}], {"a": null}]})
        ])

      assert sent.status == 0, sent.stderr
      assert %{"event" => "sent", "to" => ^to} = NodeCli.json!(sent)

      assert_receive {:xmpp_bridge_bus, :message, from,
                      {:job, 42, "résumé", [big], %{"a" => nil}}},
                     5000

      assert big == 2 ** 80
      assert from =~ ~r"^clicall@localhost/cli-[0-9a-f]{8}$"

      confirmed =
        NodeCli.run_as(server, "clicall", ["send", to, ~s({"$atom": "ok"}), "--confirmed"])

      assert confirmed.status == 0, confirmed.stderr
      assert %{"event" => "delivered"} = NodeCli.json!(confirmed)
      assert_receive {:xmpp_bridge_bus, :message, _, :ok}, 5000

      etf = Base.encode64(:erlang.term_to_binary({:raw, <<0, 255>>}))
      assert %{status: 0} = NodeCli.run_as(server, "clicall", ["send", to, etf, "--etf"])
      assert_receive {:xmpp_bridge_bus, :message, _, {:raw, <<0, 255>>}}, 5000

      json = NodeCli.run_as(server, "clicall", ["send", to, ~s({"n": [1, 2]}), "--json-payload"])
      assert json.status == 0, json.stderr
      assert_receive {:xmpp_bridge_bus, :message, _, %{"n" => [1, 2]}}, 5000

      # An account the server does not have: the message bounces.
      nobody = NodeCli.run_as(server, "clicall", ["send", "nobody@localhost", "1"])
      assert nobody.status == @send_failed, inspect(nobody)
      assert nobody.stderr =~ "service-unavailable"

      stop_quietly(bus)
    end

    test "Elixir calls the CLI node's methods, and sends it terms it prints and echoes", %{
      server: server
    } do
      node = serve(server, "clisrv", ["--echo"])
      bus = start_bus(server, "clielx")

      assert Bus.call(bus, node.jid, "add", [2 ** 100, 1, -5]) == {:ok, 2 ** 100 - 4}

      assert Bus.call(bus, node.jid, "echo", [{:a, "b"}, %{1 => 2}]) ==
               {:ok, [{:a, "b"}, %{1 => 2}]}

      assert {:ok, 20} = Bus.call(bus, node.jid, "slow", [20])

      assert {:error, %Error{reason: {:crashed, detail}}} =
               Bus.call(bus, node.jid, "panic", ["from elixir"])

      assert detail =~ "from elixir"
      assert {:error, %Error{reason: {:no_method, "frob"}}} = Bus.call(bus, node.jid, "frob", [])
      assert {:error, %Error{reason: :timeout}} = Bus.call(bus, node.jid, "slow", [2000], 200)
      assert {:ok, %{"served" => served}} = Bus.call(bus, node.jid, "load", [])
      assert served >= 5
      assert {:ok, 3} = Bus.call(bus, node.jid, "add", [1, 2]), "still serving"

      term = {:hello, [1, 2.5], %{"k" => <<255, 1>>}}
      {:ok, _} = Bus.send(bus, node.jid, term)

      msg = NodeCli.next(node, &(&1["event"] == "message"))
      assert msg["from"] == Bus.jid(bus)
      assert msg["payload"] == "term"
      assert NodeCli.term64(msg["etf"]) == term
      assert msg["text"] == inspect(term)

      assert msg["json"] == %{
               "$tuple" => [%{"$atom" => "hello"}, [1, 2.5], %{"k" => %{"$binary" => "/wE="}}]
             }

      # --echo sends it back.
      assert_receive {:xmpp_bridge_bus, :message, from, ^term}, 5000
      assert from == node.jid

      stop_quietly(bus)
      NodeCli.stop(node)
    end
  end

  describe "monitors and shutdown" do
    test "monitor prints the DOWN of a node stopped with SIGTERM (shutdown)", %{server: server} do
      node = serve(server, "clisrv")

      watcher =
        Task.async(fn ->
          NodeCli.run_as(server, "clicall", ["monitor", node.jid, "--timeout", "20000"])
        end)

      # The monitor's directed presence reaches the node before it stops:
      # give the watcher time to connect and ping.
      Process.sleep(1500)
      {events, status} = NodeCli.stop(node)
      assert status == 0
      assert List.last(events) == %{"event" => "stopped"}

      down = Task.await(watcher, 25_000)
      assert down.status == 0, down.stderr

      assert %{"event" => "down", "jid" => jid, "reason" => "shutdown"} = NodeCli.json!(down)
      assert jid == node.jid

      # Nobody there now: the first ping bounces.
      gone = NodeCli.run_as(server, "clicall", ["monitor", node.jid, "--timeout", "10000"])
      assert gone.status == 0
      assert %{"reason" => "noconnection"} = NodeCli.json!(gone)
    end

    test "SIGINT stops serve cleanly too; a wrong password exits 3", %{server: server} do
      node = serve(server, "clisrv")
      NodeCli.signal(node, "INT")
      {events, status} = NodeCli.until_exit(node)
      assert status == 0
      assert List.last(events) == %{"event" => "stopped"}

      wrong =
        NodeCli.run(
          ["call", "clisrv@localhost", "load" | NodeCli.conn_args(server, "clicall")],
          [{"XMPP_BRIDGE_PASSWORD", "not-the-password"}]
        )

      assert wrong.status == 3
      assert wrong.stderr =~ "could not connect"
    end

    test "serve --monitor prints the DOWN of an Elixir node", %{server: server} do
      bus = start_bus(server, "clielx")
      node = serve(server, "clisrv", ["--monitor", Bus.jid(bus)])
      Process.sleep(500)
      Bus.stop(bus)
      down = NodeCli.next(node, &(&1["event"] == "down"), 10_000)
      assert down["reason"] == "shutdown"
      assert {_, 0} = NodeCli.stop(node)
    end
  end

  describe "groups (docs/PROTOCOL.md §6)" do
    defp group, do: "cli-#{System.unique_integer([:positive])}"

    # A process in the test VM that joins `group` on `bus` with events and
    # forwards what it receives as {:elx, message}.
    defp elixir_member(bus, group) do
      test = self()

      pid =
        spawn_link(fn ->
          Kernel.send(test, {:elx_joined, Bus.join(bus, group, events: true)})
          forward(test)
        end)

      assert_receive {:elx_joined, :ok}, 15_000
      pid
    end

    defp forward(test) do
      receive do
        msg ->
          Kernel.send(test, {:elx, msg})
          forward(test)
      end
    end

    defp jids(members), do: Enum.map(members, & &1["jid"])

    test "serve --join: members, broadcasts both ways with their payload, join/leave events",
         %{server: server} do
      g = group()
      bus = start_bus(server, "clielx")
      elixir_member(bus, g)
      elx = Bus.jid(bus)

      node = serve(server, "clisrv", ["--join", g, "--commands"])
      me = node.jid
      assert jids(node.joined[g]) == Enum.sort([elx, me])
      assert Enum.all?(node.joined[g], & &1["bus"])
      assert_receive {:elx, {:xmpp_bridge_bus, :joined, ^g, ^me}}, 5000

      # Elixir broadcasts a term, then JSON: printed like messages.
      term = {:job, 7, "résumé", [2 ** 70]}
      :ok = Bus.broadcast(bus, g, term)
      :ok = Bus.broadcast(bus, g, %{"k" => [1, true]}, format: :json)

      b1 = NodeCli.next(node, &(&1["event"] == "broadcast"))
      assert %{"group" => ^g, "from" => ^elx, "payload" => "term"} = b1
      assert NodeCli.term64(b1["etf"]) == term
      assert b1["text"] == inspect(term)
      assert b1["json"] == %{"$tuple" => [%{"$atom" => "job"}, 7, "résumé", [2 ** 70]]}

      b2 = NodeCli.next(node, &(&1["event"] == "broadcast"))
      assert %{"payload" => "json", "json" => %{"k" => [1, true]}} = b2

      # The node broadcasts from its stdin: a term, JSON, ETF, in order.
      NodeCli.command(node, %{
        "cmd" => "broadcast",
        "id" => 1,
        "group" => g,
        "term" => %{"$tuple" => [%{"$atom" => "n"}, 1]}
      })

      NodeCli.command(node, %{
        "cmd" => "broadcast",
        "id" => 2,
        "group" => g,
        "json" => %{"n" => 2}
      })

      etf = Base.encode64(:erlang.term_to_binary({:n, <<3, 255>>}))
      NodeCli.command(node, %{"cmd" => "broadcast", "id" => 3, "group" => g, "etf" => etf})
      assert_receive {:elx, {:xmpp_bridge_bus, :group, ^g, ^me, {:n, 1}}}, 5000
      assert_receive {:elx, {:xmpp_bridge_bus, :group, ^g, ^me, %{"n" => 2}}}, 5000
      assert_receive {:elx, {:xmpp_bridge_bus, :group, ^g, ^me, {:n, <<3, 255>>}}}, 5000

      for id <- 1..3,
          do: assert(%{"event" => "broadcast_sent"} = NodeCli.next(node, &(&1["id"] == id)))

      # Commands it cannot do say why; the node goes on.
      NodeCli.command(node, %{
        "cmd" => "broadcast",
        "id" => 4,
        "group" => "elsewhere",
        "term" => 1
      })

      assert %{"event" => "command_failed", "reason" => why} =
               NodeCli.next(node, &(&1["id"] == 4))

      assert why =~ "not in group"
      NodeCli.command(node, %{"cmd" => "frob", "id" => 5})

      assert %{"event" => "command_failed", "reason" => "unknown cmd" <> _} =
               NodeCli.next(node, &(&1["id"] == 5))

      NodeCli.command(node, %{"cmd" => "members", "id" => 6, "group" => g})
      assert %{"event" => "members", "members" => ms} = NodeCli.next(node, &(&1["id"] == 6))
      assert jids(ms) == Enum.sort([elx, me])

      # The broadcast subcommand: joins, sends in order, leaves, exit 0.
      sent =
        NodeCli.run_as(server, "clicall", ["broadcast", g, "1", "[2]", ~s({"$atom": "three"})])

      assert sent.status == 0, sent.stderr
      assert %{"event" => "broadcast", "group" => ^g, "count" => 3} = NodeCli.json!(sent)

      for t <- [1, [2], :three] do
        assert_receive {:elx, {:xmpp_bridge_bus, :group, ^g, from, ^t}}, 5000
        assert from =~ ~r"^clicall@localhost/cli-[0-9a-f]{8}$"
      end

      joined = NodeCli.next(node, &(&1["event"] == "member_joined"))
      cli = joined["jid"]
      assert cli =~ ~r"^clicall@localhost/cli-"
      got = for _ <- 1..3, do: NodeCli.next(node, &(&1["event"] == "broadcast"))
      assert Enum.map(got, & &1["json"]) == [1, [2], %{"$atom" => "three"}]
      assert Enum.all?(got, &(&1["from"] == cli))

      assert %{"jid" => ^cli, "reason" => "left"} =
               NodeCli.next(node, &(&1["event"] == "member_left"))

      # members: the list, the one-shot node itself included.
      listed = NodeCli.run_as(server, "clicall", ["members", g])
      assert listed.status == 0, listed.stderr
      members = NodeCli.json!(listed)
      assert length(members) == 3
      assert elx in jids(members) and me in jids(members)

      assert %{"bus" => true, "show" => nil, "term" => %{"active" => 0, "max_calls" => 64}} =
               Enum.find(members, &(&1["jid"] == me))

      # The Elixir member leaves: `left`.
      stop_quietly(bus)

      assert %{"jid" => ^elx, "reason" => "left"} =
               NodeCli.next(node, &(&1["event"] == "member_left" and &1["jid"] == elx))

      {events, 0} = NodeCli.stop(node)
      assert List.last(events) == %{"event" => "stopped"}
    end

    test "the status: --show, --status and the load, updated when it changes; status command",
         %{server: server} do
      g = group()
      bus = start_bus(server, "clielx")
      elixir_member(bus, g)

      node =
        serve(server, "clisrv", [
          "--join",
          g,
          "--show",
          "chat",
          "--status",
          "ready",
          "--status-interval-ms",
          "100",
          "--commands"
        ])

      me = node.jid
      assert_receive {:elx, {:xmpp_bridge_bus, :joined, ^g, ^me}}, 5000

      assert {:ok, %{show: :chat, text: "ready", term: %{"active" => 0, "max_calls" => 64}}} =
               Bus.status(bus, me)

      # Two calls at once: the load goes up, then back to 0.
      calls = for _ <- 1..2, do: Task.async(fn -> Bus.call(bus, me, "slow", [1200]) end)

      assert_receive {:elx, {:xmpp_bridge_bus, :status, ^g, ^me, %{term: %{"active" => 2}}}},
                     5000

      assert [{:ok, 1200}, {:ok, 1200}] = Task.await_many(calls, 5000)

      assert_receive {:elx,
                      {:xmpp_bridge_bus, :status, ^g, ^me,
                       %{show: :chat, text: "ready", term: %{"active" => 0}}}},
                     5000

      # The node prints the statuses it sees, its own too.
      NodeCli.command(node, %{"cmd" => "status", "id" => 1, "show" => "dnd", "text" => "busy"})
      assert %{"event" => "status_set"} = NodeCli.next(node, &(&1["id"] == 1))

      assert_receive {:elx,
                      {:xmpp_bridge_bus, :status, ^g, ^me,
                       %{show: :dnd, text: "busy", term: %{"active" => 0}}}},
                     5000

      :ok = Bus.set_status(bus, show: :away, text: "lunch", term: {:load, 3})
      elx = Bus.jid(bus)

      st = NodeCli.next(node, &(&1["event"] == "status" and &1["jid"] == elx))
      assert %{"group" => ^g, "show" => "away", "text" => "lunch"} = st
      assert st["term"] == %{"$tuple" => [%{"$atom" => "load"}, 3]}
      assert NodeCli.term64(st["etf"]) == {:load, 3}

      stop_quietly(bus)
      assert {_, 0} = NodeCli.stop(node)
    end

    test "--discovery and XMPP_BRIDGE_JOIN; a serve member killed -9 leaves by heartbeat",
         %{server: server} do
      d = group()
      g1 = group()
      g2 = group()
      bus = start_bus(server, "clielx")
      elixir_member(bus, g2)

      node =
        serve(server, "clikill", ["--discovery", d, "--status", "up"], [
          {"XMPP_BRIDGE_JOIN", "#{g1},#{g2}"}
        ])

      assert Map.keys(node.joined) |> Enum.sort() == Enum.sort([d, g1, g2])
      me = node.jid
      assert_receive {:elx, {:xmpp_bridge_bus, :joined, ^g2, ^me}}, 5000

      # An Elixir node with the same discovery group lists the CLI node.
      disc = start_bus(server, "clicall", discovery: d)

      assert {:ok, nodes} = Bus.nodes(disc)
      assert %{bus: true, status: %{text: "up"}} = Enum.find(nodes, &(&1.jid == me))

      NodeCli.signal(node, "KILL")
      t0 = System.monotonic_time(:millisecond)
      assert_receive {:elx, {:xmpp_bridge_bus, :left, ^g2, ^me, reason}}, 10_000
      elapsed = System.monotonic_time(:millisecond) - t0
      IO.puts("\n  serve killed -9: left #{g2} after #{elapsed} ms (#{inspect(reason)})")
      assert reason in [:heartbeat_timeout, :noconnection]

      Enum.each([bus, disc], &stop_quietly/1)
    end

    test "serve --join of a room that refuses the node prints join_failed and exits 12",
         %{server: server} do
      g = group()
      bus = start_bus(server, "clielx")
      elixir_member(bus, g)
      # A plain session takes the nickname clisrv's node would have in the
      # room (its full JID): the room refuses that join with `conflict`.
      squatter = open_session(server, "clicall")
      room = "#{g}@#{server.muc_domain}"

      send_stanza(
        squatter,
        Presence.available(
          to: "#{room}/clisrv@localhost/bus",
          payloads: [%MucJoin{history: %MucHistory{maxstanzas: 0}}]
        )
      )

      # Known by its real JID (the room is not anonymous).
      sq = squatter.jid
      assert_receive {:elx, {:xmpp_bridge_bus, :joined, ^g, ^sq}}, 5000

      run =
        NodeCli.run(
          ["serve", "--join", g | NodeCli.conn_args(server, "clisrv")],
          NodeCli.conn_env(server, "clisrv")
        )

      assert run.status == @join_failed, inspect(run)
      assert run.stderr =~ "cannot join #{g}"
      lines = NodeCli.lines!(run)

      assert %{"group" => ^g, "reason" => reason} =
               Enum.find(lines, &(&1["event"] == "join_failed"))

      assert reason =~ "conflict"
      assert List.last(lines) == %{"event" => "stopped"}

      close_session(squatter)
      stop_quietly(bus)
    end
  end
end
