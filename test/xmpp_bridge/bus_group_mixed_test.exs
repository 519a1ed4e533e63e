defmodule XmppBridge.BusGroupMixedTest do
  # One group (docs/PROTOCOL.md §6), six members of two kinds against a
  # private ejabberd: three XmppBridge.Bus nodes in this VM and three
  # `xmpp-bridge-node serve --join G` OS processes (the Rust crate), each
  # its own account. No mock anywhere.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase, only: [session_opts: 2, eventually: 2]

  alias XmppBridge.Bus
  alias XmppBridge.Test.NodeCli
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 300_000

  @beam ~w(mixa mixb mixc)
  @rust ~w(mixr1 mixr2 mixr3)

  # Member heartbeat on both sides: NodeCli.conn_args gives the Rust nodes
  # the same 500 ms interval and 1000 ms timeout.
  @heartbeat 500
  @heartbeat_timeout 1000

  setup_all do
    NodeCli.build!()
    server = TestServer.start!(:ejabberd, accounts: @beam ++ @rust)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  defp start_bus(server, user) do
    opts =
      Keyword.merge(session_opts(server, user),
        receiver: self(),
        heartbeat: @heartbeat,
        heartbeat_timeout: @heartbeat_timeout
      )

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus)
    bus
  end

  defp stop_quietly(bus) do
    if Process.alive?(bus), do: Bus.stop(bus)
  catch
    :exit, _ -> :ok
  end

  # A process that joins `group` on `bus` with events and forwards what it
  # gets to the test process as {tag, message}.
  defp member(bus, group, tag) do
    test = self()

    pid =
      spawn_link(fn ->
        Kernel.send(test, {tag, :join_result, Bus.join(bus, group, events: true)})
        forward(test, tag)
      end)

    assert_receive {^tag, :join_result, :ok}, 15_000
    pid
  end

  defp forward(test, tag) do
    receive do
      msg ->
        Kernel.send(test, {tag, msg})
        forward(test, tag)
    end
  end

  # The broadcasts a BEAM member got, `count` of them, as {from, term}.
  defp collect_beam(tag, count, acc \\ [])
  defp collect_beam(_tag, 0, acc), do: Enum.reverse(acc)

  defp collect_beam(tag, count, acc) do
    receive do
      {^tag, {:xmpp_bridge_bus, :group, _group, from, term}} ->
        collect_beam(tag, count - 1, [{from, term} | acc])
    after
      15_000 -> flunk("#{tag} got #{length(acc)} broadcasts, #{count} more expected")
    end
  end

  # The broadcasts a Rust member printed, `count` of them, as {from, term}.
  defp collect_rust(node, count) do
    for _ <- 1..count//1 do
      e = NodeCli.next(node, &(&1["event"] == "broadcast"), 15_000)
      {e["from"], NodeCli.term64(e["etf"])}
    end
  end

  # Per sender, the sequence numbers in the order received.
  defp by_sender(got) do
    Enum.group_by(got, &elem(&1, 0), fn {_, {_tag, i}} -> i end)
  end

  defp jids(members), do: members |> Enum.map(& &1.jid) |> Enum.sort()

  test "three BEAM and three Rust members: every broadcast once, in order, no echo; " <>
         "join, leave, kill -9 and status seen across",
       %{server: server} do
    g = "mixed-#{System.unique_integer([:positive])}"
    [a, b, c] = Enum.map(@beam, &start_bus(server, &1))
    on_exit(fn -> Enum.each([a, b, c], &stop_quietly/1) end)
    [ja, jb, jc] = Enum.map([a, b, c], &Bus.jid/1)

    member(a, g, :a)
    member(b, g, :b)
    c_member = member(c, g, :c)

    rust =
      for user <- @rust do
        node =
          NodeCli.serve(server, user, ["--join", g, "--commands", "--status-interval-ms", "100"])

        on_exit(fn -> NodeCli.kill_quietly(node) end)
        node
      end

    [r1, r2, r3] = rust
    [j1, j2, j3] = Enum.map(rust, & &1.jid)
    all = Enum.sort([ja, jb, jc, j1, j2, j3])

    # The joins: what each joiner found, and the joins after it as events.
    assert Enum.map(r1.joined[g], & &1["jid"]) == Enum.sort([ja, jb, jc, j1])
    assert Enum.map(r3.joined[g], & &1["jid"]) == all
    assert Enum.all?(r3.joined[g], & &1["bus"])

    for jid <- [jb, jc, j1, j2, j3],
        do: assert_receive({:a, {:xmpp_bridge_bus, :joined, ^g, ^jid}}, 5000)

    for jid <- [j1, j2, j3],
        do: assert_receive({:c, {:xmpp_bridge_bus, :joined, ^g, ^jid}}, 5000)

    for jid <- [j2, j3],
        do: assert(%{"jid" => ^jid} = NodeCli.next(r1, &(&1["event"] == "member_joined")))

    assert %{"jid" => ^j3} = NodeCli.next(r2, &(&1["event"] == "member_joined"))

    for bus <- [a, b, c] do
      assert eventually(
               fn ->
                 {:ok, ms} = Bus.members(bus, g)
                 jids(ms) == all and Enum.all?(ms, & &1.bus)
               end,
               10_000
             )
    end

    # Four senders, two of each kind (the Rust ones through their stdin),
    # interleaved, n broadcasts each.
    n = 60
    t0 = System.monotonic_time(:millisecond)

    for i <- 1..n do
      :ok = Bus.broadcast(a, g, {:a, i})
      :ok = Bus.broadcast(b, g, {:b, i})

      for {node, tag} <- [{r1, "r1"}, {r2, "r2"}] do
        term = %{"$tuple" => [%{"$atom" => tag}, i]}
        NodeCli.command(node, %{"cmd" => "broadcast", "group" => g, "term" => term})
      end
    end

    seq = Enum.to_list(1..n)
    senders = %{ja => :a, jb => :b, j1 => :r1, j2 => :r2}

    expected = fn me ->
      for {jid, _} <- senders, jid != me, into: %{}, do: {jid, seq}
    end

    # Every member gets each other sender's broadcasts once, in order, and
    # not its own.
    for {tag, me} <- [a: ja, b: jb, c: jc] do
      want = expected.(me)
      got = collect_beam(tag, map_size(want) * n)
      assert by_sender(got) == want, "#{tag}"
      assert Enum.all?(got, fn {from, {t, _}} -> senders[from] == t end)
    end

    for {node, me} <- [{r1, j1}, {r2, j2}, {r3, j3}] do
      want = expected.(me)
      got = collect_rust(node, map_size(want) * n)
      assert by_sender(got) == want, node.user
    end

    elapsed = System.monotonic_time(:millisecond) - t0

    IO.puts(
      "\n  mixed group: #{4 * n} broadcasts from 2 BEAM + 2 Rust senders reached " <>
        "the 5 other members each in #{elapsed} ms"
    )

    # Nothing more: no duplicate, no echo.
    for tag <- [:a, :b, :c],
        do: refute_receive({^tag, {:xmpp_bridge_bus, :group, _, _, _}}, 300)

    for node <- rust do
      late = for %{"event" => "broadcast"} = e <- NodeCli.drain(node, 300), do: e
      assert late == [], "#{node.user}: #{inspect(late)}"
    end

    # A Rust member's status, set on its stdin: every BEAM member sees it,
    # its load term included; then its load changes with a call.
    NodeCli.command(r2, %{"cmd" => "status", "show" => "dnd", "text" => "busy"})

    for tag <- [:a, :b, :c] do
      assert_receive {^tag,
                      {:xmpp_bridge_bus, :status, ^g, ^j2,
                       %{show: :dnd, text: "busy", term: %{"active" => 0, "max_calls" => 64}}}},
                     5000
    end

    assert %{"show" => "dnd", "text" => "busy"} =
             NodeCli.next(r1, &(&1["event"] == "status" and &1["jid"] == j2))

    call = Task.async(fn -> Bus.call(a, j2, "slow", [800]) end)

    for tag <- [:a, :b, :c] do
      assert_receive {^tag,
                      {:xmpp_bridge_bus, :status, ^g, ^j2, %{show: :dnd, term: %{"active" => 1}}}},
                     5000
    end

    assert {:ok, 800} = Task.await(call)

    for tag <- [:a, :b, :c] do
      assert_receive {^tag, {:xmpp_bridge_bus, :status, ^g, ^j2, %{term: %{"active" => 0}}}},
                     5000
    end

    assert {:ok, %{show: :dnd, text: "busy", term: %{"active" => 0}}} = Bus.status(b, j2)

    # A BEAM member leaves (its only member process exits, so its node
    # leaves the room): `left` for every kind of member.
    Process.unlink(c_member)
    Process.exit(c_member, :kill)

    for tag <- [:a, :b],
        do: assert_receive({^tag, {:xmpp_bridge_bus, :left, ^g, ^jc, :left}}, 5000)

    for node <- [r1, r2, r3] do
      assert %{"reason" => "left"} =
               NodeCli.next(node, &(&1["event"] == "member_left" and &1["jid"] == jc))
    end

    # A Rust member killed -9: the room keeps its ghost while the server
    # holds the dead session, but the members' heartbeat drops it.
    NodeCli.signal(r3, "KILL")
    t_kill = System.monotonic_time(:millisecond)

    for tag <- [:a, :b] do
      assert_receive {^tag, {:xmpp_bridge_bus, :left, ^g, ^j3, reason}}, 10_000
      took = System.monotonic_time(:millisecond) - t_kill

      IO.puts(
        "\n  Rust member killed -9: left #{tag}'s list after #{took} ms (#{inspect(reason)}; " <>
          "heartbeat #{@heartbeat} ms + timeout #{@heartbeat_timeout} ms)"
      )

      assert reason in [:heartbeat_timeout, :noconnection]
      # Within the window: one interval to the next ping, the timeout, and
      # one more interval of slack for the tick.
      assert took <= 2 * @heartbeat + @heartbeat_timeout + 1000
      {:ok, ms} = Bus.members(Map.fetch!(%{a: a, b: b}, tag), g)
      refute j3 in Enum.map(ms, & &1.jid)
    end

    left = NodeCli.next(r1, &(&1["event"] == "member_left" and &1["jid"] == j3), 10_000)
    assert left["reason"] in ["heartbeat_timeout", "noconnection"]
    took = System.monotonic_time(:millisecond) - t_kill
    IO.puts("  ... and r1's (Rust) list after #{took} ms (#{left["reason"]})")

    NodeCli.command(r1, %{"cmd" => "members", "id" => 1, "group" => g})
    %{"members" => ms} = NodeCli.next(r1, &(&1["id"] == 1))
    assert Enum.map(ms, & &1["jid"]) == Enum.sort([ja, jb, j1, j2])

    # The other Rust members stop cleanly (SIGTERM): they leave the room
    # and say goodbye to their watchers, the member heartbeat included, so
    # the reason is whichever of the two came first.
    for node <- [r1, r2], do: assert({_, 0} = NodeCli.stop(node))

    for tag <- [:a, :b], jid <- [j1, j2] do
      assert_receive {^tag, {:xmpp_bridge_bus, :left, ^g, ^jid, reason}}, 5000
      assert reason in [:left, :shutdown]
    end

    {:ok, ms} = Bus.members(a, g)
    assert jids(ms) == Enum.sort([ja, jb])
  end
end
