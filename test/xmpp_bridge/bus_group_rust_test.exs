defmodule XmppBridge.BusGroupRustTest do
  # Groups, status and discovery (docs/PROTOCOL.md §6) between Rust bus
  # nodes: three or four bus_peer OS processes in MUC rooms of a private
  # ejabberd (and Prosody), no mock anywhere.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase, only: [report: 3, vanish_room: 2, room_option: 3]

  alias XmppBridge.Test.{RustPeer, TcpProxy}
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 300_000

  @users ~w(groupa groupb groupc groupd)

  setup_all do
    RustPeer.build!()
    server = TestServer.start!(:ejabberd, accounts: @users)
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  # ------------------------------------------------------------ helpers

  defp group, do: "g#{System.unique_integer([:positive])}"

  defp start(server, user, flags \\ []) do
    # The test process owns the peer's port: when it ends, the port
    # closes, and the peer stops at the end of its stdin.
    RustPeer.start_with_flags(server, user, [heartbeat: 500, heartbeat_timeout: 1000], flags)
  end

  defp id, do: System.unique_integer([:positive])

  # Sends a command with a fresh id; returns the id.
  defp cmd(peer, map) do
    id = id()
    RustPeer.command(peer, Map.put(map, "id", id))
    id
  end

  defp answer(peer, id, timeout \\ 15_000),
    do: RustPeer.next(peer, &(&1["id"] == id and &1["event"] != nil), timeout)

  defp join!(peer, g, extra \\ %{}) do
    id = cmd(peer, Map.merge(%{"cmd" => "join", "group" => g}, extra))
    assert %{"event" => "joined_ok"} = answer(peer, id)
    :ok
  end

  defp members(peer, g) do
    id = cmd(peer, %{"cmd" => "members", "group" => g})
    %{"event" => "members", "members" => members} = answer(peer, id)
    members
  end

  defp jids(members), do: members |> Enum.map(& &1["jid"]) |> Enum.sort()

  defp broadcast(peer, g, term),
    do: cmd(peer, %{"cmd" => "broadcast", "group" => g, "etf" => RustPeer.etf64(term)})

  defp broadcast?(e), do: e["event"] == "broadcast"

  # Polls `fun` until it returns a truthy value; that value.
  defp eventually(fun, timeout, every \\ 200) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline, every)
  end

  defp poll(fun, deadline, every) do
    case fun.() do
      v when v not in [nil, false] ->
        v

      _ ->
        if System.monotonic_time(:millisecond) > deadline, do: flunk("not within the time")
        Process.sleep(every)
        poll(fun, deadline, every)
    end
  end

  defp ms_since(t0), do: System.monotonic_time(:millisecond) - t0

  # ------------------------------------------------------------- tests

  test "three nodes join: the first creates and configures the room, all see each other's real JIDs",
       %{server: server} do
    [a, b, c] = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    t0 = System.monotonic_time(:millisecond)
    join!(a, g)
    created = ms_since(t0)
    # The others join a room that is configured: non-anonymous, so even
    # a participant (not a moderator) reads everyone's real JID.
    join!(b, g)
    join!(c, g)
    # Joined events: a saw b then c arrive, b saw c; c saw nobody arrive
    # (the members it found are its list, not news).
    joined? = &(&1["event"] == "member_joined")
    assert [%{"jid" => bj}, %{"jid" => cj}] = RustPeer.take(a, joined?, &(length(&1) == 2))
    assert [bj, cj] == [b.jid, c.jid]
    assert [%{"jid" => ^cj, "group" => ^g}] = RustPeer.take(b, joined?, &(length(&1) == 1))
    assert RustPeer.drain(c, 300) |> Enum.filter(joined?) == []
    all = Enum.sort([a.jid, b.jid, c.jid])

    for p <- [a, b, c] do
      list = members(p, g)
      assert jids(list) == all, "#{p.user} lists #{inspect(jids(list))}"
      assert Enum.all?(list, & &1["bus"])
      assert Enum.all?(list, &(&1["show"] == nil and &1["text"] == nil))
    end

    # Joining again is fine; bad names and groups not joined are errors.
    join!(b, g)
    id = cmd(a, %{"cmd" => "join", "group" => "Not Valid"})
    assert %{"event" => "error", "reason" => "invalid_group"} = answer(a, id)
    id = broadcast(a, "nowhere", :x)
    assert %{"event" => "error", "reason" => "not_joined"} = answer(a, id)
    assert members(a, "nowhere") == []

    report(server, "bus groups (Rust)", "room created and configured in #{created} ms; 3 members")
  end

  test "broadcasts: 200 from each of three reach the other two once, in order, no echo; no history replay",
       %{server: server} do
    peers = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    for p <- peers, do: join!(p, g)
    # Everyone knows everyone before the first broadcast.
    for p <- peers, do: eventually(fn -> length(members(p, g)) == 3 end, 5_000)
    n = 200
    t0 = System.monotonic_time(:millisecond)

    for i <- 1..n, {p, k} <- Enum.with_index(peers) do
      broadcast(p, g, {:b, k, i})
    end

    for {p, k} <- Enum.with_index(peers) do
      got = RustPeer.take(p, &broadcast?/1, &(length(&1) >= 2 * n), 60_000)
      # Nothing more (no echo, no duplicate).
      extra = RustPeer.drain(p, 1000) |> Enum.filter(&broadcast?/1)
      assert extra == [], "#{p.user} got #{length(extra)} more"

      by_sender = Enum.group_by(got, & &1["from"], fn e -> RustPeer.term64(e["etf"]) end)

      others = peers |> List.delete(p) |> Enum.map(& &1.jid) |> Enum.sort()
      assert Enum.sort(Map.keys(by_sender)) == others, "no echo of its own"

      for {from, terms} <- by_sender do
        {_, kk} = Enum.find(Enum.with_index(peers), fn {q, _} -> q.jid == from end)
        assert kk != k
        assert terms == for(i <- 1..n, do: {:b, kk, i}), "#{p.user}: #{from}'s in order, once"
      end
    end

    elapsed = ms_since(t0)

    # A late joiner gets no history (the room keeps 20); one asking for 3
    # gets the last 3.
    d = start(server, "groupd")
    join!(d, g)
    assert RustPeer.drain(d, 1000) |> Enum.filter(&broadcast?/1) == []
    id = cmd(d, %{"cmd" => "leave", "group" => g})
    assert %{"event" => "left_ok"} = answer(d, id)
    eventually(fn -> length(members(hd(peers), g)) == 3 end, 5_000)
    join!(d, g, %{"history" => 3})
    # (Waited for, then nothing more: a loaded machine may be slow.)
    replayed = RustPeer.take(d, &broadcast?/1, &(length(&1) >= 3), 10_000)
    replayed = replayed ++ (RustPeer.drain(d, 1000) |> Enum.filter(&broadcast?/1))
    # The room's last three, whatever their senders.
    assert length(replayed) == 3
    terms = Enum.map(replayed, &RustPeer.term64(&1["etf"]))
    assert length(Enum.uniq(terms)) == 3
    assert Enum.all?(terms, &match?({:b, _, i} when i > n - 3, &1))

    report(
      server,
      "bus groups (Rust)",
      "#{3 * n} broadcasts by 3 nodes, each seen by the 2 others once and in order, in #{elapsed} ms"
    )
  end

  test "joined, status and left events; the status in the member list", %{server: server} do
    peers = [a, b, c] = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    for p <- peers, do: join!(p, g)
    d = start(server, "groupd")
    join!(d, g)

    for p <- peers do
      assert %{"group" => ^g, "jid" => jid} =
               RustPeer.next(p, &(&1["event"] == "member_joined" and &1["jid"] == d.jid))

      assert jid == d.jid
    end

    load = %{load: 12}

    id =
      cmd(d, %{
        "cmd" => "status",
        "show" => "dnd",
        "text" => "busy: 12 jobs",
        "etf" => RustPeer.etf64(load)
      })

    assert %{"event" => "status_ok"} = answer(d, id)

    for p <- peers do
      e = RustPeer.next(p, &(&1["event"] == "status" and &1["jid"] == d.jid))
      assert %{"group" => ^g, "show" => "dnd", "text" => "busy: 12 jobs"} = e
      assert RustPeer.term64(e["etf"]) == load
      # Once: the same status again is no news.
      assert RustPeer.drain(p, 300) |> Enum.filter(&(&1["event"] == "status")) == []
    end

    dm = Enum.find(members(a, g), &(&1["jid"] == d.jid))
    assert %{"show" => "dnd", "text" => "busy: 12 jobs"} = dm
    assert RustPeer.term64(dm["etf"]) == load
    # Its own entry has it too.
    assert %{"show" => "dnd"} = Enum.find(members(d, g), &(&1["jid"] == d.jid))

    # A node that joins later reads the status from the join.
    id = cmd(b, %{"cmd" => "leave", "group" => g})
    assert %{"event" => "left_ok"} = answer(b, id)
    join!(b, g)
    assert %{"show" => "dnd"} = Enum.find(members(b, g), &(&1["jid"] == d.jid))

    # Back to available.
    id = cmd(d, %{"cmd" => "status", "show" => nil, "text" => nil})
    assert %{"event" => "status_ok"} = answer(d, id)

    assert %{"show" => nil, "text" => nil} =
             RustPeer.next(c, &(&1["event"] == "status" and &1["jid"] == d.jid))

    id = cmd(d, %{"cmd" => "leave", "group" => g})
    assert %{"event" => "left_ok"} = answer(d, id)

    for p <- peers do
      assert %{"reason" => "left", "group" => ^g} =
               RustPeer.next(p, &(&1["event"] == "member_left" and &1["jid"] == d.jid))

      assert jids(members(p, g)) == Enum.sort(Enum.map(peers, & &1.jid))
    end

    assert members(d, g) == []
  end

  # The room is gone without a word (its cluster node died) and the
  # node's next status presence makes it again with the server's default
  # options, which hide real JIDs: the node, its owner now, configures it
  # as a bus room, and whoever joins next is seen by JID.
  test "a room gone without a word and made again by a member's status is configured as a bus room",
       %{server: server} do
    # No self-ping during the test: the status presence comes first.
    a =
      RustPeer.start_with_flags(
        server,
        "groupa",
        [heartbeat: 60_000, heartbeat_timeout: 60_000],
        []
      )

    g = group()
    join!(a, g)
    vanish_room(server, g)

    id = cmd(a, %{"cmd" => "status", "show" => "away", "text" => "after the vanishing"})
    assert %{"event" => "status_ok"} = answer(a, id)

    eventually(fn -> room_option(server, g, "anonymous") == "false" end, 10_000, 100)

    b = start(server, "groupb")
    join!(b, g)

    assert %{"group" => ^g} =
             RustPeer.next(a, &(&1["event"] == "member_joined" and &1["jid"] == b.jid))

    assert jids(members(b, g)) == Enum.sort([a.jid, b.jid])
  end

  test "discovery: the nodes online and the methods each serves", %{server: server} do
    disco = group()

    peers =
      [a, b, c] = for u <- ~w(groupa groupb groupc), do: start(server, u, ["--discovery", disco])

    all = Enum.sort(Enum.map(peers, & &1.jid))

    for p <- peers do
      nodes =
        eventually(
          fn ->
            id = cmd(p, %{"cmd" => "nodes"})
            %{"members" => ms} = answer(p, id)
            jids(ms) == all and ms
          end,
          5_000
        )

      assert Enum.all?(nodes, & &1["bus"])
    end

    id = cmd(a, %{"cmd" => "methods", "jid" => b.jid})
    assert %{"event" => "methods", "methods" => methods} = answer(a, id)
    assert methods == ~w(add crash echo sleep whoami)
    # A bare JID means the bus node.
    id = cmd(c, %{"cmd" => "methods", "jid" => TestServer.jid(server, "groupa")})
    assert %{"methods" => ^methods} = answer(c, id)
    # A node that is not online: the server answers for it.
    id = cmd(a, %{"cmd" => "methods", "jid" => TestServer.jid(server, "groupd")})
    assert %{"event" => "error", "reason" => "stanza_error", "detail" => detail} = answer(a, id)
    assert detail in ["service-unavailable", "recipient-unavailable", "item-not-found"]

    # A node that stops leaves the discovery group at once.
    RustPeer.stop(c)

    for p <- [a, b] do
      assert %{"reason" => "left", "group" => ^disco} =
               RustPeer.next(p, &(&1["event"] == "member_left" and &1["jid"] == c.jid))
    end
  end

  test "three nodes join a new group at once: joins to the locked room are tried again",
       %{server: server} do
    peers = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    ids = for p <- peers, do: {p, cmd(p, %{"cmd" => "join", "group" => g})}
    for {p, id} <- ids, do: assert(%{"event" => "joined_ok"} = answer(p, id))
    all = Enum.sort(Enum.map(peers, & &1.jid))
    for p <- peers, do: eventually(fn -> jids(members(p, g)) == all end, 5_000)
  end

  test "a node whose connection drops (no resumption) joins again; the others see it go and come back",
       %{server: server} do
    proxy = TcpProxy.start(server.ports.c2s_plain)
    on_exit(fn -> TcpProxy.stop(proxy) end)
    [a, b] = for u <- ~w(groupa groupb), do: start(server, u)

    c = RustPeer.start_with_flags(server, "groupc", [port: proxy.port], ["--no-sm"])

    g = group()
    for p <- [a, b, c], do: join!(p, g)
    all = Enum.sort([a.jid, b.jid, c.jid])
    for p <- [a, b, c], do: eventually(fn -> jids(members(p, g)) == all end, 5_000)
    TcpProxy.cut(proxy)
    assert %{"resumed" => false} = RustPeer.next(c, &(&1["event"] == "online"), 30_000)

    for p <- [a, b] do
      assert %{"reason" => reason} =
               RustPeer.next(p, &(&1["event"] == "member_left" and &1["jid"] == c.jid))

      assert reason in ["left", "noconnection"]

      assert %{"group" => ^g} =
               RustPeer.next(p, &(&1["event"] == "member_joined" and &1["jid"] == c.jid))
    end

    for p <- [a, b, c], do: eventually(fn -> jids(members(p, g)) == all end, 5_000)
    # c found a and b again in the room: no news for it.
    assert RustPeer.drain(c, 500)
           |> Enum.filter(&(&1["event"] in ["member_left", "member_joined"])) ==
             []

    broadcast(c, g, :back)
    assert %{"from" => from} = RustPeer.next(a, &broadcast?/1)
    assert from == c.jid
  end

  test "a member killed with kill -9 leaves the others' lists within heartbeat + timeout",
       %{server: server} do
    peers = [a, b, c] = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    for p <- peers, do: join!(p, g)
    for p <- peers, do: eventually(fn -> length(members(p, g)) == 3 end, 5_000)
    # Heartbeats are running.
    Process.sleep(700)
    t0 = System.monotonic_time(:millisecond)
    RustPeer.kill(c)

    for p <- [a, b] do
      e = RustPeer.next(p, &(&1["event"] == "member_left" and &1["jid"] == c.jid), 10_000)
      took = ms_since(t0)
      # ejabberd keeps the dead session for resumption (and its ghost in
      # the room): only the heartbeat can tell.
      assert e["reason"] in ["heartbeat_timeout", "noconnection"]
      assert took <= 500 + 1000 + 1000, "#{p.user} took #{took} ms"
      assert jids(members(p, g)) == Enum.sort([a.jid, b.jid])

      report(
        server,
        "bus groups (Rust)",
        "#{p.user}: killed member gone (#{e["reason"]}) after #{took} ms"
      )
    end

    # The ghost does not come back, and broadcasts still flow.
    broadcast(a, g, :after)
    assert %{"from" => from} = RustPeer.next(b, &broadcast?/1)
    assert from == a.jid
    Process.sleep(1500)
    assert jids(members(a, g)) == Enum.sort([a.jid, b.jid])
  end

  test "member_heartbeat false: a member killed -9 stays listed (no pings), a clean leave is seen",
       %{server: server} do
    [a, b, c, d] = for u <- ~w(groupa groupb groupc groupd), do: start(server, u)
    g = group()
    join!(a, g)
    join!(b, g, %{"member_heartbeat" => false})
    join!(c, g)
    join!(d, g)
    for p <- [a, b], do: eventually(fn -> length(members(p, g)) == 4 end, 5_000)
    RustPeer.kill(c)

    # a watches by heartbeat and sees c go; b does not, even well after.
    e = RustPeer.next(a, &(&1["event"] == "member_left" and &1["jid"] == c.jid), 10_000)
    assert e["reason"] in ["heartbeat_timeout", "noconnection"]
    Process.sleep(500)
    b_events = RustPeer.drain(b, 100)

    refute Enum.any?(b_events, &(&1["event"] == "member_left" and &1["jid"] == c.jid)),
           inspect(b_events)

    assert jids(members(b, g)) == Enum.sort([a.jid, b.jid, c.jid, d.jid])

    # A clean leave is the room's word: b sees it.
    id = cmd(d, %{"cmd" => "leave", "group" => g})
    assert %{"event" => "left_ok"} = answer(d, id)

    assert %{"reason" => "left"} =
             RustPeer.next(b, &(&1["event"] == "member_left" and &1["jid"] == d.jid))

    assert jids(members(b, g)) == Enum.sort([a.jid, b.jid, c.jid])

    # A bad value is refused by the peer's parser, not taken as true.
    cmd(a, %{"cmd" => "join", "group" => group(), "member_heartbeat" => "no"})
    assert %{"detail" => detail} = RustPeer.next(a, &(&1["event"] == "bad_command"))
    assert detail =~ "member_heartbeat"
  end

  test "after ejabberd is killed -9 and restarted, the nodes join again and broadcast" do
    server = TestServer.start!(:ejabberd, accounts: ~w(groupa groupb groupc))
    on_exit(fn -> TestServer.stop(server) end)
    peers = [_a, b, _c] = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    for p <- peers, do: join!(p, g)
    all = Enum.sort(Enum.map(peers, & &1.jid))
    for p <- peers, do: eventually(fn -> jids(members(p, g)) == all end, 5_000)

    :ok = TestServer.kill(server)
    Process.sleep(500)
    t0 = System.monotonic_time(:millisecond)
    {:ok, server} = TestServer.restart(server)

    # The rooms died with the server: each node reconnects (not resumed),
    # joins again, the first creates the room again.
    for p <- peers do
      assert %{"resumed" => false} = RustPeer.next(p, &(&1["event"] == "online"), 60_000)
    end

    for p <- peers, do: eventually(fn -> jids(members(p, g)) == all end, 30_000)
    took = ms_since(t0)

    for {p, k} <- Enum.with_index(peers), i <- 1..10, do: broadcast(p, g, {:again, k, i})

    for {p, k} <- Enum.with_index(peers) do
      got = RustPeer.take(p, &broadcast?/1, &(length(&1) >= 20), 30_000)
      terms = Enum.map(got, &RustPeer.term64(&1["etf"]))

      for {_, kk} <- Enum.with_index(peers), kk != k do
        assert Enum.filter(terms, &match?({:again, ^kk, _}, &1)) ==
                 for(i <- 1..10, do: {:again, kk, i})
      end
    end

    # Still a non-anonymous room: real JIDs, configured by whoever came back first.
    assert jids(members(b, g)) == all

    report(
      server,
      "bus groups (Rust)",
      "all 3 back in the group #{took} ms after the restart began"
    )
  end

  test "Prosody: three nodes join at once, list each other, broadcast and see a status" do
    server = TestServer.start!(:prosody, accounts: ~w(groupa groupb groupc))
    on_exit(fn -> TestServer.stop(server) end)
    peers = [a, _b, _c] = for u <- ~w(groupa groupb groupc), do: start(server, u)
    g = group()
    # All at once: Prosody locks the room until its creator configured it,
    # the others are refused (item-not-found) and try again.
    ids = for p <- peers, do: {p, cmd(p, %{"cmd" => "join", "group" => g})}
    for {p, id} <- ids, do: assert(%{"event" => "joined_ok"} = answer(p, id))
    all = Enum.sort(Enum.map(peers, & &1.jid))

    for p <- peers do
      list =
        eventually(
          fn ->
            l = members(p, g)
            jids(l) == all and l
          end,
          5_000
        )

      assert Enum.all?(list, & &1["bus"])
    end

    n = 50
    for i <- 1..n, {p, k} <- Enum.with_index(peers), do: broadcast(p, g, {:p, k, i})

    for {p, k} <- Enum.with_index(peers) do
      got = RustPeer.take(p, &broadcast?/1, &(length(&1) >= 2 * n), 30_000)
      assert RustPeer.drain(p, 1000) |> Enum.filter(&broadcast?/1) == []
      by_sender = Enum.group_by(got, & &1["from"], &RustPeer.term64(&1["etf"]))
      assert map_size(by_sender) == 2
      refute Map.has_key?(by_sender, p.jid)

      for {from, terms} <- by_sender do
        {_, kk} = Enum.find(Enum.with_index(peers), fn {q, _} -> q.jid == from end)
        assert kk != k
        assert terms == for(i <- 1..n, do: {:p, kk, i})
      end
    end

    id = cmd(a, %{"cmd" => "status", "show" => "away", "text" => "on prosody"})
    assert %{"event" => "status_ok"} = answer(a, id)

    for p <- tl(peers) do
      assert %{"show" => "away"} =
               RustPeer.next(p, &(&1["event"] == "status" and &1["jid"] == a.jid))
    end

    report(
      server,
      "bus groups (Rust)",
      "Prosody: 3 members, #{3 * n} broadcasts in order, status seen"
    )
  end
end
