defmodule XmppBridge.SlixmppTest do
  # slixmpp, an ordinary third-party XMPP client that knows nothing of
  # xmpp_bridge but docs/PROTOCOL.md (test/support/slixmpp_peer.py, run in
  # the venv scripts/install-deps.sh makes), against bus nodes in Elixir
  # (XmppBridge.Bus) and Rust (xmpp-bridge-node serve), through a private
  # ejabberd.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase

  alias XmppBridge.{Bus, Message, Presence}
  alias XmppBridge.Payload.{Json, MucHistory, MucJoin, MucUser, OriginId}
  alias XmppBridge.Test.NodeCli
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 180_000

  @users ~w(slix slixelx slixrust slixroom)

  @venv System.get_env("XMPP_BRIDGE_VENV", "/var/tmp/xmpp_bridge-venv")
  @script Path.expand("../support/slixmpp_peer.py", __DIR__)

  setup_all do
    python = Path.join([@venv, "bin", "python"])

    unless File.exists?(python) do
      raise "no slixmpp venv at #{@venv}: run scripts/install-deps.sh"
    end

    NodeCli.build!()
    server = TestServer.start!(:ejabberd, accounts: @users)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server, python: python}
  end

  # ------------------------------------------------------------ the peer

  defp start_slix(%{server: server, python: python}, user \\ "slix") do
    args = [
      @script,
      "--jid",
      TestServer.jid(server, user),
      "--password",
      Map.fetch!(server.accounts, user),
      "--host",
      server.host,
      "--port",
      Integer.to_string(server.ports.c2s_plain),
      "--tls",
      "plain"
    ]

    port =
      Port.open({:spawn_executable, python}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    on_exit(fn ->
      System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end)

    %{"jid" => jid} = slix_next(port, &(&1["event"] == "online"), 20_000)
    %{port: port, jid: jid}
  end

  defp slix_command(%{port: port}, cmd) do
    {:ok, %Json{json: json}} = Json.from_term(cmd)
    true = Port.command(port, json <> "\n")
    :ok
  end

  defp slix_next(%{port: port}, match?, timeout), do: slix_next(port, match?, timeout)

  defp slix_next(port, match?, timeout) when is_port(port) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        {:ok, event} = Json.to_term(%Json{json: line})
        if match?.(event), do: event, else: slix_next(port, match?, timeout)

      {^port, {:exit_status, status}} ->
        raise "slixmpp_peer exited with status #{status}"
    after
      timeout -> raise "no matching line from slixmpp_peer within #{timeout} ms"
    end
  end

  defp slix_stop(%{port: port} = slix) do
    slix_command(slix, %{"cmd" => "stop"})
    slix_next(port, &(&1["event"] == "stopped"), 10_000)

    receive do
      {^port, {:exit_status, status}} -> status
    after
      10_000 -> :timeout
    end
  end

  defp answer(slix, id), do: slix_next(slix, &(&1["id"] == id), 10_000)

  defp call(slix, id, to, method, args, timeout \\ 5000) do
    slix_command(slix, %{
      "cmd" => "call",
      "id" => id,
      "to" => to,
      "method" => method,
      "args" => args,
      "timeout" => timeout
    })

    answer(slix, id)
  end

  defp start_bus(server, user) do
    opts =
      session_opts(server, user)
      |> Keyword.merge(receiver: self(), heartbeat: 500, heartbeat_timeout: 1000)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    bus
  end

  defp stop_quietly(bus) do
    if Process.alive?(bus), do: Bus.stop(bus)
  catch
    :exit, _ -> :ok
  end

  # ------------------------------------------------------------ the tests

  describe "RPC with XEP-0335 JSON arguments (§5.3)" do
    test "slixmpp calls an Elixir bus node: results and a no-method error", ctx do
      bus = start_bus(ctx.server, "slixelx")
      :ok = Bus.serve(bus, "add", fn a, b -> a + b end)
      :ok = Bus.serve(bus, "greet", fn %{"name" => name} -> %{"hello" => name} end)
      slix = start_slix(ctx)
      to = Bus.jid(bus)

      assert %{"event" => "result", "json" => 42} = call(slix, 1, to, "add", [40, 2])

      assert %{"event" => "result", "json" => %{"hello" => "slix"}} =
               call(slix, 2, to, "greet", [%{"name" => "slix"}])

      assert %{
               "event" => "error",
               "type" => "cancel",
               "condition" => "item-not-found",
               "bus" => "no-method",
               "text" => "nope"
             } = call(slix, 3, to, "nope", [])

      assert %{"event" => "error", "bus" => "crashed", "condition" => "internal-server-error"} =
               call(slix, 4, to, "add", ["x", 1])

      assert slix_stop(slix) == 0
      stop_quietly(bus)
    end

    test "slixmpp calls a Rust node (xmpp-bridge-node serve): results and a no-method error",
         ctx do
      node = NodeCli.serve(ctx.server, "slixrust")
      on_exit(fn -> NodeCli.kill_quietly(node) end)
      slix = start_slix(ctx)

      assert %{"event" => "result", "json" => [1, "two", %{"three" => [3]}]} =
               call(slix, 1, node.jid, "echo", [1, "two", %{"three" => [3]}])

      assert %{"event" => "result", "json" => 5} = call(slix, 2, node.jid, "add", [2, 3])

      assert %{"event" => "error", "bus" => "no-method", "condition" => "item-not-found"} =
               call(slix, 3, node.jid, "nope", [1])

      assert %{"event" => "error", "bus" => "crashed"} =
               call(slix, 4, node.jid, "panic", ["from slixmpp"])

      # The node stops the handler at the deadline and answers `timeout`;
      # slixmpp's own iq timeout (the same 300 ms) may come first.
      slow = call(slix, 5, node.jid, "slow", [3000], 300)
      assert slow["event"] == "error"
      assert slow["bus"] == "timeout" or slow["condition"] == "timeout", inspect(slow)

      assert %{"event" => "result", "json" => 3} = call(slix, 6, node.jid, "add", [1, 2])

      served = NodeCli.next(node, &(&1["event"] == "served" and &1["method"] == "echo"))
      assert served["outcome"] == "ok"

      assert slix_stop(slix) == 0
      assert {_, 0} = NodeCli.stop(node)
    end
  end

  describe "terms as JSON messages (§5.2)" do
    test "slixmpp sends a JSON term to an Elixir node, which receives it as a term", ctx do
      bus = start_bus(ctx.server, "slixelx")
      slix = start_slix(ctx)

      value = %{"job" => 7, "tags" => ["a", "b"], "done" => false, "none" => nil}

      slix_command(slix, %{"cmd" => "send", "id" => 1, "to" => Bus.jid(bus), "json" => value})

      assert_receive {:xmpp_bridge_bus, :message, from, received}, 5000
      assert from == slix.jid
      assert received == %{"job" => 7, "tags" => ["a", "b"], "done" => false, "none" => nil}
      # The bus confirms with an XEP-0184 receipt.
      assert %{"event" => "delivered"} = answer(slix, 1)

      assert slix_stop(slix) == 0
      stop_quietly(bus)
    end
  end

  describe "a process JID on a BEAM name host (§7)" do
    test "slixmpp sends JSON to a registered process and calls it", ctx do
      server = ctx.server

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
      parent = self()

      worker =
        spawn(fn ->
          :ok = Bus.register(host, "slix-worker")
          send(parent, :registered)
          slix_worker(parent)
        end)

      assert_receive :registered, 5000
      jid = Bus.jid(host, "slix-worker")
      slix = start_slix(ctx)

      slix_command(slix, %{"cmd" => "send", "id" => 1, "to" => jid, "json" => %{"job" => 9}})
      assert_receive {:worker_got, from, %{"job" => 9}}, 5000
      assert from == slix.jid
      # The receipt comes from the process's JID.
      assert %{"event" => "delivered"} = answer(slix, 1)

      assert %{"event" => "result", "json" => %{"sum" => 7}} = call(slix, 2, jid, "add", [3, 4])

      assert %{"event" => "error", "bus" => "no-method", "condition" => "item-not-found"} =
               call(slix, 3, jid, "nope", [])

      # Nobody holds the name any more: the host answers item-not-found.
      Process.exit(worker, :kill)
      Process.sleep(100)

      assert %{"event" => "error", "condition" => "item-not-found"} =
               call(slix, 4, jid, "add", [1, 2])

      assert slix_stop(slix) == 0
      stop_quietly(host)
    end
  end

  defp slix_worker(parent) do
    receive do
      {:xmpp_bridge_bus, :message, from, term} ->
        send(parent, {:worker_got, from, term})

      {:xmpp_bridge_bus, :call, call, _from, "add", [a, b]} ->
        :ok = Bus.reply(call, %{"sum" => a + b})

      {:xmpp_bridge_bus, :call, call, _from, _method, _args} ->
        :ok = Bus.reply_error(call, :no_method)
    end

    slix_worker(parent)
  end

  describe "groups are MUC rooms (§6.1)" do
    # The broadcast here is sent by a plain XmppBridge.Connection session
    # in the shape §6.1 gives a broadcast (groupchat, <body/>, <json/>,
    # origin id): slixmpp joins as §6.1 says and reads such a payload. The
    # next test has bus nodes broadcast.
    test "slixmpp receives a groupchat broadcast with a <json/> payload", ctx do
      slix = start_slix(ctx)
      room = "jobs-#{System.unique_integer([:positive])}@#{ctx.server.muc_domain}"

      slix_command(slix, %{"cmd" => "join", "id" => 1, "room" => room, "nick" => slix.jid})
      assert %{"event" => "joined", "created" => true} = answer(slix, 1)

      elx = open_session(ctx.server, "slixroom")
      nick = elx.jid

      send_stanza(
        elx,
        Presence.available(
          to: "#{room}/#{nick}",
          payloads: [%MucJoin{history: %MucHistory{maxstanzas: 0}}]
        )
      )

      await_self_presence(elx, room)

      send_stanza(
        elx,
        Message.new(
          type: :groupchat,
          to: room,
          id: "b7",
          body: ~s(%{"job" => 7}),
          payloads: [Json.new(~s({"job": 7, "input": [1, 2]})), %OriginId{id: "b7"}]
        )
      )

      assert %{
               "event" => "groupchat",
               "room" => ^room,
               "nick" => ^nick,
               "body" => ~s(%{"job" => 7}),
               "json" => %{"job" => 7, "input" => [1, 2]}
             } = slix_next(slix, &(&1["event"] == "groupchat"), 10_000)

      close_session(elx)
      assert slix_stop(slix) == 0
    end

    test "slixmpp receives broadcasts from XmppBridge.Bus and xmpp-bridge-node in a group it " <>
           "joined: a readable body, and <json/> for a JSON broadcast",
         ctx do
      g = "slixg-#{System.unique_integer([:positive])}"
      room = "#{g}@#{ctx.server.muc_domain}"
      bus = start_bus(ctx.server, "slixelx")
      elx = Bus.jid(bus)
      test = self()

      member =
        spawn_link(fn ->
          Kernel.send(test, {:joined, Bus.join(bus, g, events: true)})
          forward(test)
        end)

      assert_receive {:joined, :ok}, 15_000

      # slixmpp joins the room the bus node created and configured.
      slix = start_slix(ctx)
      slix_command(slix, %{"cmd" => "join", "id" => 1, "room" => room, "nick" => slix.jid})
      assert %{"event" => "joined", "created" => false} = answer(slix, 1)
      slix_jid = slix.jid
      assert_receive {:member, {:xmpp_bridge_bus, :joined, ^g, ^slix_jid}}, 5000
      {:ok, members} = Bus.members(bus, g)
      assert %{bus: false} = Enum.find(members, &(&1.jid == slix_jid)), "an ordinary client"

      # A term broadcast: the body is the term in Elixir syntax, no <json/>.
      :ok = Bus.broadcast(bus, g, {:job, 7, "resize"})

      assert %{"room" => ^room, "nick" => ^elx, "body" => ~s({:job, 7, "resize"}), "json" => nil} =
               slix_next(slix, &(&1["event"] == "groupchat"), 10_000)

      # A JSON broadcast: the same readable body, and the JSON itself.
      value = %{"job" => 8, "input" => [1, 2], "ok" => true}
      :ok = Bus.broadcast(bus, g, value, format: :json)
      got = slix_next(slix, &(&1["event"] == "groupchat"), 10_000)
      assert %{"nick" => ^elx, "json" => ^value} = got
      assert got["body"] == inspect(value)

      # A Rust member (the CLI node) broadcasts from its stdin: the same.
      node = NodeCli.serve(ctx.server, "slixrust", ["--join", g, "--commands"])
      on_exit(fn -> NodeCli.kill_quietly(node) end)
      rust = node.jid

      NodeCli.command(node, %{
        "cmd" => "broadcast",
        "group" => g,
        "term" => %{"$tuple" => [%{"$atom" => "ok"}, 1]}
      })

      NodeCli.command(node, %{"cmd" => "broadcast", "group" => g, "json" => %{"rust" => [1]}})

      assert %{"nick" => ^rust, "body" => "{:ok, 1}", "json" => nil} =
               slix_next(slix, &(&1["event"] == "groupchat"), 10_000)

      # The Rust crate writes a JSON payload's body as the JSON text
      # (bus/wire.rs), where Elixir writes the term's Elixir syntax: both
      # readable, not the same text.
      assert %{"nick" => ^rust, "body" => ~s({"rust":[1]}), "json" => %{"rust" => [1]}} =
               slix_next(slix, &(&1["event"] == "groupchat"), 10_000)

      assert_receive {:member, {:xmpp_bridge_bus, :group, ^g, ^rust, {:ok, 1}}}, 5000
      assert_receive {:member, {:xmpp_bridge_bus, :group, ^g, ^rust, %{"rust" => [1]}}}, 5000

      # slixmpp's own chat in the room: plain text is not a broadcast and
      # the bus drops it; with <json/> it is one, for both kinds of node.
      slix_command(slix, %{"cmd" => "groupchat", "id" => 2, "room" => room, "body" => "hi all"})
      assert %{"event" => "sent"} = answer(slix, 2)

      slix_command(slix, %{
        "cmd" => "groupchat",
        "id" => 3,
        "room" => room,
        "body" => "job 9",
        "json" => %{"job" => 9}
      })

      assert %{"event" => "sent"} = answer(slix, 3)
      assert_receive {:member, {:xmpp_bridge_bus, :group, ^g, ^slix_jid, %{"job" => 9}}}, 5000
      refute_received {:member, {:xmpp_bridge_bus, :group, _, _, "hi all"}}

      b = NodeCli.next(node, &(&1["event"] == "broadcast"))
      assert %{"from" => ^slix_jid, "payload" => "json", "json" => %{"job" => 9}} = b

      assert [] == for(%{"event" => "broadcast"} = e <- NodeCli.drain(node, 300), do: e)
      refute_receive {:member, {:xmpp_bridge_bus, :group, _, _, _}}, 300

      assert slix_stop(slix) == 0
      assert {_, 0} = NodeCli.stop(node)
      Process.unlink(member)
      stop_quietly(bus)
    end
  end

  defp forward(test) do
    receive do
      msg ->
        Kernel.send(test, {:member, msg})
        forward(test)
    end
  end

  defp await_self_presence(session, room) do
    id = session.id

    receive do
      {:xmpp_bridge, ^id, {:stanza, %Presence{from: from, payloads: payloads}}} ->
        self? =
          String.starts_with?(from || "", room <> "/") and
            Enum.any?(payloads, fn
              %MucUser{status_codes: codes} -> 110 in codes
              _ -> false
            end)

        if self?, do: :ok, else: await_self_presence(session, room)
    after
      10_000 -> flunk("no self-presence from #{room}")
    end
  end
end
