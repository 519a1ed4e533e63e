defmodule XmppBridge.ClusterTest do
  # The bus on a 2-node ejabberd cluster (XmppTestServer.Cluster): BEAM
  # nodes on server node A, Rust nodes on server node B; terms, RPC,
  # groups, presence and monitors cross; then A is killed with kill -9 and
  # everything must carry on through B (../shared/CLUSTER.md has the traps:
  # no resumption on B, the rooms A hosted are gone, ghost presence).
  use ExUnit.Case, async: false

  alias XmppBridge.{Bus, Connection}
  alias XmppBridge.Test.NodeCli
  alias XmppTestServer.Cluster

  @moduletag :integration
  @moduletag timeout: 300_000

  @users ~w(ann ben cid dee rs1 rs2)

  setup do
    NodeCli.build!()
    cluster = Cluster.start!(accounts: @users)
    on_exit(fn -> Cluster.stop(cluster) end)

    %{
      cluster: cluster,
      a: Enum.at(Cluster.servers(cluster), 0),
      b: Enum.at(Cluster.servers(cluster), 1)
    }
  end

  defp start_bus(user, servers, opts \\ []) do
    opts =
      [
        jid: "#{user}@localhost",
        password: "#{user}-secret",
        tls: :plain,
        servers: servers,
        receiver: self(),
        heartbeat: 500,
        heartbeat_timeout: 3000,
        reconnect: [initial: 200, max: 2000]
      ]
      |> Keyword.merge(opts)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    bus
  end

  defp rust_node(cluster, user, servers, extra) do
    server = hd(cluster.nodes)

    NodeCli.serve(
      server,
      user,
      NodeCli.servers_arg(servers) ++ ["--heartbeat-timeout-ms", "3000"] ++ extra
    )
  end

  # Waits until `fun` returns a truthy value (polling), or fails.
  defp eventually(fun, what, timeout \\ 15_000, diagnose \\ fn -> :ok end) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Stream.repeatedly(fn ->
      case fun.() do
        v when v in [nil, false] ->
          if System.monotonic_time(:millisecond) > deadline do
            diagnose.()
            flunk("never: #{what}")
          end

          Process.sleep(100)
          nil

        v ->
          v
      end
    end)
    |> Enum.find(& &1)
  end

  # A process that joins `group` on `bus` (events on) and forwards what it
  # gets to the test process as {tag, message}.
  defp tagged_member(bus, group, tag) do
    test = self()

    pid =
      spawn_link(fn ->
        send(test, {tag, :join_result, Bus.join(bus, group, events: true)})
        forward(test, tag)
      end)

    assert_receive {^tag, :join_result, :ok}, 15_000
    pid
  end

  defp forward(test, tag) do
    receive do
      :stop -> :ok
      msg -> send(test, {tag, msg}) && forward(test, tag)
    end
  end

  defp flush_tagged(tag) do
    receive do
      {^tag, _} -> flush_tagged(tag)
    after
      0 -> :ok
    end
  end

  defp member_jids(bus, group) do
    case Bus.members(bus, group) do
      {:ok, members} -> MapSet.new(members, & &1.jid)
      {:error, _} -> MapSet.new()
    end
  end

  defp on_server(cluster, jid) do
    {:ok, sessions} = Cluster.sessions(cluster, 1)
    sessions[jid]
  end

  test "a session fails over to the next server when its server is killed, and stays there",
       %{cluster: cluster, a: a, b: b} do
    {:ok, conn} =
      Connection.open(
        jid: "cid@localhost",
        password: "cid-secret",
        tls: :plain,
        resource: "r",
        servers: [a, "#{elem(b, 0)}:#{elem(b, 1)}"],
        reconnect: [initial: 200, max: 1000]
      )

    assert_receive {:xmpp_bridge, _, {:online, %{resumed: false}}}, 10_000
    assert on_server(cluster, "cid@localhost/r") == 0

    t0 = System.monotonic_time(:millisecond)
    :ok = Cluster.kill(cluster, 0)
    assert_receive {:xmpp_bridge, _, {:disconnected, _}}, 10_000
    # No resumption on B (the session lived on A): a fresh one.
    assert_receive {:xmpp_bridge, _, {:online, %{resumed: false}}}, 10_000

    IO.puts(
      "failover: online on B #{System.monotonic_time(:millisecond) - t0} ms after kill -9 of A"
    )

    assert on_server(cluster, "cid@localhost/r") == 1

    # A is back: the session stays where it is (last online on B).
    {:ok, cluster} = Cluster.restart(cluster, 0)
    refute_receive {:xmpp_bridge, _, {:disconnected, _}}, 500
    assert on_server(cluster, "cid@localhost/r") == 1

    # A dead server first in the list: the next one is tried at once.
    {:ok, dead} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, dead_port} = :inet.port(dead)
    :gen_tcp.close(dead)

    {:ok, conn2} =
      Connection.open(
        jid: "ben@localhost",
        password: "ben-secret",
        tls: :plain,
        resource: "r",
        servers: [{"127.0.0.1", dead_port}, a]
      )

    assert_receive {:xmpp_bridge, _, {:online, _}}, 10_000
    assert on_server(cluster, "ben@localhost/r") == 0

    Connection.close(conn)
    Connection.close(conn2)
  end

  test "BEAM nodes on A, Rust nodes on B: everything crosses, and survives kill -9 of A",
       %{cluster: cluster, a: a, b: b} do
    g = "farm"
    # ann creates the room from A, so the room lives on A.
    ann = start_bus("ann", [a, b])
    :ok = Bus.join(ann, g, events: true)
    ben = start_bus("ben", [a, b])
    :ok = Bus.join(ben, g)

    # dee: a BEAM node on B, whose session will not move.
    dee = start_bus("dee", [b, a])
    dee_member = tagged_member(dee, g, :dee)
    rs1 = rust_node(cluster, "rs1", [b, a], ["--join", g, "--status", "ready", "--commands"])
    rs2 = rust_node(cluster, "rs2", [b, a], ["--join", g])
    ann_jid = "ann@localhost/bus"
    ben_jid = "ben@localhost/bus"

    assert on_server(cluster, ann_jid) == 0
    assert on_server(cluster, rs1.jid) == 1

    # Across server nodes: RPC, terms, groups, presence, monitors.
    assert Bus.call(ann, rs1.jid, "add", [2 ** 70, 1]) == {:ok, 2 ** 70 + 1}
    {:ok, _} = Bus.send(ann, rs1.jid, {:hello, "from A"}, delivery: :confirmed)
    assert_receive {:xmpp_bridge_bus, :delivered, _, _}, 10_000
    assert %{"event" => "message"} = NodeCli.next(rs1, &(&1["event"] == "message"))

    eventually(
      fn ->
        jids = member_jids(ann, g)
        MapSet.subset?(MapSet.new([ben_jid, rs1.jid, rs2.jid]), jids)
      end,
      "ann sees ben, rs1 and rs2 in #{g}"
    )

    {:ok, members} = Bus.members(ann, g)
    assert %{status: %{text: "ready"}} = Enum.find(members, &(&1.jid == rs1.jid))
    :ok = Bus.broadcast(ann, g, {:job, 1})
    assert %{"from" => ^ann_jid} = NodeCli.next(rs1, &(&1["event"] == "broadcast"))

    mon_rs1 = Bus.monitor(ann, rs1.jid)
    mon_ben = Bus.monitor(ann, ben_jid)
    mon_rs2 = Bus.monitor(ann, rs2.jid)

    # kill -9 of server node A: ann and ben must come back through B.
    NodeCli.drain(rs1, 100)
    NodeCli.drain(rs2, 100)
    flush_tagged(:dee)
    t0 = System.monotonic_time(:millisecond)
    :ok = Cluster.kill(cluster, 0)

    eventually(fn -> on_server(cluster, ann_jid) == 1 end, "ann on B")
    eventually(fn -> on_server(cluster, ben_jid) == 1 end, "ben on B")
    online_ms = System.monotonic_time(:millisecond) - t0

    # The room A hosted is gone; those who come back make it anew on B and
    # the Rust nodes (whose sessions never moved) find out by self-ping,
    # join the new room, and see ann there.
    # (A node that rejoins finds the members it knew: no new join event;
    # so ann broadcasts until both Rust nodes hear her in the new room.)
    for rs <- [rs1, rs2] do
      eventually(
        fn ->
          :ok = Bus.broadcast(ann, g, :probe)

          Enum.any?(
            NodeCli.drain(rs, 300),
            &(&1["event"] == "broadcast" and &1["from"] == ann_jid)
          )
        end,
        "#{rs.user} hears ann in the group again",
        20_000
      )
    end

    # And so does dee (BEAM, on B): it sees ann join again.
    assert_receive {:dee, {:xmpp_bridge_bus, :joined, ^g, ^ann_jid}}, 20_000
    rejoined = System.monotonic_time(:millisecond) - t0

    eventually(
      fn -> MapSet.subset?(MapSet.new([ben_jid, rs1.jid, rs2.jid]), member_jids(ann, g)) end,
      "ann sees the whole group again",
      20_000,
      fn -> IO.inspect(member_jids(ann, g), label: "ann's members") end
    )

    :ok = Bus.broadcast(ann, g, {:job, 2})

    assert %{"from" => ^ann_jid} =
             NodeCli.next(rs1, &(&1["event"] == "broadcast" and &1["from"] == ann_jid), 10_000)

    NodeCli.command(rs1, %{"cmd" => "broadcast", "group" => g, "term" => %{"back" => true}})

    assert_receive {:xmpp_bridge_bus, :group, ^g, from, %{"back" => true}}, 10_000
    assert from == rs1.jid

    # Terms and RPC again, in both directions' sessions now on B.
    assert Bus.call(ann, rs1.jid, "add", [1, 2]) == {:ok, 3}
    assert Bus.call(ben, rs2.jid, "add", [3, 4]) == {:ok, 7}

    # Nobody was really gone: no DOWN, whatever the ghost presence said.
    refute_received {:DOWN, ^mon_rs1, :bus_node, _, _}
    refute_received {:DOWN, ^mon_ben, :bus_node, _, _}
    refute_received {:DOWN, ^mon_rs2, :bus_node, _, _}

    # A node that is really gone is DOWN (rs2 killed, its session on B).
    NodeCli.signal(rs2, "KILL")
    assert_receive {:DOWN, ^mon_rs2, :bus_node, _, _}, 15_000
    refute_received {:DOWN, ^mon_rs1, :bus_node, _, _}
    refute_received {:DOWN, ^mon_ben, :bus_node, _, _}

    # A restarted rejoins the cluster; a new session can be on it again
    # and reaches the Rust node on B.
    {:ok, cluster} = Cluster.restart(cluster, 0)
    cid = start_bus("cid", [a, b])
    assert on_server(cluster, "cid@localhost/bus") == 0
    assert Bus.call(cid, rs1.jid, "add", [5, 5]) == {:ok, 10}
    :ok = Bus.join(cid, g)

    eventually(
      fn -> MapSet.member?(member_jids(ann, g), "cid@localhost/bus") end,
      "cid in the group, seen from ann"
    )

    IO.puts(
      "cluster failover: BEAM sessions on B #{online_ms} ms after kill -9 of A, " <>
        "group whole again at #{rejoined} ms"
    )

    NodeCli.stop(rs1)
    send(dee_member, :stop)
    for bus <- [ann, ben, cid, dee], do: Bus.stop(bus)
  end

  test "a group in a persistent room hosted on A: the room restarts on B after kill -9 of A, and the group is whole in it again",
       %{cluster: cluster, a: a, b: b} do
    g = "desk"
    room = "#{g}@conference.localhost"

    # An administrator (cid, a plain session on A) made the room beforehand,
    # persistent and non-anonymous, and left it: it lives on A, empty.
    {:ok, admin} =
      Connection.open(
        jid: "cid@localhost",
        password: "cid-secret",
        tls: :plain,
        resource: "admin",
        servers: [a, b],
        reconnect: [initial: 200, max: 1000]
      )

    assert_receive {:xmpp_bridge, _, {:online, _}}, 10_000
    make_persistent_room(admin, room)
    assert room_features(admin, room) |> MapSet.member?("muc_persistent")

    ann = start_bus("ann", [a, b])
    :ok = Bus.join(ann, g, events: true)
    dee = start_bus("dee", [b, a])
    dee_member = tagged_member(dee, g, :dee)
    rs1 = rust_node(cluster, "rs1", [b, a], ["--join", g, "--commands"])
    ann_jid = "ann@localhost/bus"

    eventually(
      fn -> MapSet.subset?(MapSet.new([rs1.jid, "dee@localhost/bus"]), member_jids(ann, g)) end,
      "ann sees dee and rs1 in #{g}"
    )

    :ok = Bus.broadcast(ann, g, {:job, 1})
    assert %{"from" => ^ann_jid} = NodeCli.next(rs1, &(&1["event"] == "broadcast"))

    NodeCli.drain(rs1, 100)
    flush_tagged(:dee)
    t0 = System.monotonic_time(:millisecond)
    :ok = Cluster.kill(cluster, 0)
    eventually(fn -> on_server(cluster, ann_jid) == 1 end, "ann on B")

    # The room restarts on B from the database (its configuration kept);
    # ann joins it again, the nodes on B find out by self-ping and follow.
    eventually(
      fn ->
        :ok = Bus.broadcast(ann, g, :probe)

        Enum.any?(
          NodeCli.drain(rs1, 300),
          &(&1["event"] == "broadcast" and &1["from"] == ann_jid)
        )
      end,
      "rs1 hears ann in the restarted room",
      20_000
    )

    assert_receive {:dee, {:xmpp_bridge_bus, :joined, ^g, ^ann_jid}}, 20_000
    rejoined = System.monotonic_time(:millisecond) - t0

    eventually(
      fn -> MapSet.subset?(MapSet.new([rs1.jid, "dee@localhost/bus"]), member_jids(ann, g)) end,
      "ann sees the whole group again",
      20_000,
      fn -> IO.inspect(member_jids(ann, g), label: "ann's members") end
    )

    # It is the same room, restarted, not a new temporary one made by the
    # first to come back (which would have configured it non-persistent).
    features = room_features(admin, room)
    assert MapSet.member?(features, "muc_persistent"), inspect(features)
    assert MapSet.member?(features, "muc_nonanonymous"), inspect(features)

    NodeCli.command(rs1, %{"cmd" => "broadcast", "group" => g, "term" => %{"back" => true}})
    assert_receive {:xmpp_bridge_bus, :group, ^g, from, %{"back" => true}}, 10_000
    assert from == rs1.jid

    IO.puts(
      "persistent room: restarted on B, group whole again #{rejoined} ms after kill -9 of A"
    )

    NodeCli.stop(rs1)
    send(dee_member, :stop)
    for bus <- [ann, dee], do: Bus.stop(bus)
    Connection.close(admin)
  end

  @muc "http://jabber.org/protocol/muc"

  # Joins `room` (creating it), configures it persistent and
  # non-anonymous, and leaves it.
  defp make_persistent_room(conn, room) do
    join =
      {:xmlel, "presence", [{"to", room <> "/admin"}], [{:xmlel, "x", [{"xmlns", @muc}], []}]}

    {:ok, _} = Connection.send(conn, join)

    assert_receive {:xmpp_bridge, _, {:stanza, %XmppBridge.Presence{from: from}}}
                   when from == room <> "/admin",
                   10_000

    fields =
      for {var, value} <- [
            {"FORM_TYPE", @muc <> "#roomconfig"},
            {"muc#roomconfig_persistentroom", "1"},
            {"muc#roomconfig_whois", "anyone"}
          ],
          do: {:xmlel, "field", [{"var", var}], [{:xmlel, "value", [], [{:xmlcdata, value}]}]}

    config = %XmppBridge.Iq{
      type: :set,
      to: room,
      id: XmppBridge.Iq.new_id(),
      payload:
        {:xmlel, "query", [{"xmlns", @muc <> "#owner"}],
         [{:xmlel, "x", [{"xmlns", "jabber:x:data"}, {"type", "submit"}], fields}]}
    }

    assert {:ok, %XmppBridge.Iq{type: :result}} = Connection.iq(conn, config, 10_000)

    {:ok, _} =
      Connection.send(
        conn,
        {:xmlel, "presence", [{"to", room <> "/admin"}, {"type", "unavailable"}], []}
      )
  end

  defp room_features(conn, room) do
    disco = %XmppBridge.Iq{
      type: :get,
      to: room,
      id: XmppBridge.Iq.new_id(),
      payload: {:xmlel, "query", [{"xmlns", "http://jabber.org/protocol/disco#info"}], []}
    }

    {:ok, %XmppBridge.Iq{type: :result, payload: %XmppBridge.Payload.DiscoInfo{features: f}}} =
      Connection.iq(conn, disco, 10_000)

    MapSet.new(f)
  end

  test "a name host (a component) fails over to the other server node, and its names answer again",
       %{cluster: cluster, b: b, a: a} do
    [comp_a, comp_b] = Cluster.servers(cluster, :component)

    {:ok, host} =
      Bus.start_link(
        mode: :component,
        jid: cluster.component_domain,
        password: cluster.component_secret,
        tls: :plain,
        servers: [comp_a, comp_b],
        heartbeat: 500,
        heartbeat_timeout: 3000,
        reconnect: [initial: 200, max: 1000]
      )

    :ok = Bus.await_online(host)
    test = self()

    worker =
      spawn_link(fn ->
        :ok = Bus.register(host, "adder")
        send(test, :registered)
        serve_adds()
      end)

    assert_receive :registered, 5000
    name = Bus.jid(host, "adder")
    # The caller is on B: calls cross to the component connected to A.
    ben = start_bus("ben", [b, a])
    assert Bus.call(ben, name, "add", [1, 2]) == {:ok, 3}
    mon = Bus.monitor(ben, name)

    t0 = System.monotonic_time(:millisecond)
    :ok = Cluster.kill(cluster, 0)

    # Until the component is connected to B, calls to its names fail
    # (the server has no route); then they are answered again.
    eventually(
      fn -> Bus.call(ben, name, "add", [2, 3], 1000) == {:ok, 5} end,
      "the name answers through B"
    )

    IO.puts(
      "name host: answering through B #{System.monotonic_time(:millisecond) - t0} ms after kill -9 of A"
    )

    # The name's holder never died: no DOWN.
    refute_receive {:DOWN, ^mon, :bus_node, _, _}, 4000
    assert Bus.whereis(host, "adder") == worker

    send(worker, :stop)
    Bus.stop(ben)
    Bus.stop(host)
  end

  defp serve_adds do
    receive do
      {:xmpp_bridge_bus, :call, call, _from, "add", args} ->
        Bus.reply(call, Enum.sum(args))
        serve_adds()

      :stop ->
        :ok

      _ ->
        serve_adds()
    end
  end
end
