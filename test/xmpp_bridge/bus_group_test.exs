defmodule XmppBridge.BusGroupTest do
  # Groups over MUC, status and method discovery between BEAM bus nodes in
  # this VM, against a private ejabberd (docs/PROTOCOL.md §6). Rust and
  # mixed members: bus_group_mixed_test.exs.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase

  alias XmppBridge.{Bus, Error}
  alias XmppBridge.Test.TcpProxy
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 180_000

  @users ~w(ann ben cid dee eve)

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

  # A process that joins `group` on `bus` and forwards what it gets to the
  # test process as {tag, message}.
  defp member(bus, group, tag, opts \\ []) do
    test = self()

    pid =
      spawn_link(fn ->
        Kernel.send(test, {tag, :join_result, Bus.join(bus, group, opts)})
        forward(test, tag)
      end)

    assert_receive {^tag, :join_result, :ok}, 15_000
    pid
  end

  defp forward(test, tag) do
    receive do
      {:leave, bus, group} ->
        Kernel.send(test, {tag, :left_result, Bus.leave(bus, group)})
        forward(test, tag)

      msg ->
        Kernel.send(test, {tag, msg})
        forward(test, tag)
    end
  end

  defp unique_group(base), do: "#{base}-#{System.unique_integer([:positive])}"

  test "three members: member lists with real JIDs, broadcasts in order, once, no echo",
       %{server: server} do
    group = unique_group("farm")
    [ann, ben, cid] = Enum.map(~w(ann ben cid), &start_bus(server, &1))
    member(ann, group, :ann)
    member(ben, group, :ben)
    member(cid, group, :cid)

    expected = Enum.sort(Enum.map(~w(ann ben cid), &bus_jid(server, &1)))

    # Each node learns of the others' joins from the room, a moment later.
    for bus <- [ann, ben, cid] do
      assert eventually(fn ->
               {:ok, members} = Bus.members(bus, group)
               Enum.map(members, & &1.jid) == expected and Enum.all?(members, & &1.bus)
             end)
    end

    n = 200

    for i <- 1..n do
      :ok = Bus.broadcast(ann, group, {:ann, i})
      :ok = Bus.broadcast(ben, group, {:ben, i})
    end

    # cid gets both senders' broadcasts, each in the order sent, once.
    got = collect(:cid, 2 * n)
    assert for({:ann, i} <- got, do: i) == Enum.to_list(1..n)
    assert for({:ben, i} <- got, do: i) == Enum.to_list(1..n)
    # ann gets ben's, ben gets ann's, and no one its own echo.
    assert collect(:ann, n) == for(i <- 1..n, do: {:ben, i})
    assert collect(:ben, n) == for(i <- 1..n, do: {:ann, i})
    refute_receive {_, {:xmpp_bridge_bus, :group, _, _, _}}, 500

    Enum.each([ann, ben, cid], &stop_quietly/1)
  end

  defp collect(tag, count), do: collect(tag, count, [])
  defp collect(_tag, 0, acc), do: Enum.reverse(acc)

  defp collect(tag, count, acc) do
    receive do
      {^tag, {:xmpp_bridge_bus, :group, _group, _from, term}} ->
        collect(tag, count - 1, [term | acc])
    after
      10_000 -> flunk("#{tag} got #{length(acc)} broadcasts, expected #{length(acc) + count}")
    end
  end

  test "no history replay on join unless asked", %{server: server} do
    group = unique_group("hist")
    ann = start_bus(server, "ann")
    ben = start_bus(server, "ben")
    member(ann, group, :ann)
    for i <- 1..3, do: :ok = Bus.broadcast(ann, group, {:old, i})
    :ok = Bus.sync(ann)
    member(ben, group, :ben)
    refute_receive {:ben, {:xmpp_bridge_bus, :group, _, _, _}}, 700
    :ok = Bus.broadcast(ann, group, :new)
    assert_receive {:ben, {:xmpp_bridge_bus, :group, ^group, from, :new}}, 5000
    assert from == bus_jid(server, "ann")

    cid = start_bus(server, "cid")
    member(cid, group, :cid, history: 10)

    for t <- [{:old, 1}, {:old, 2}, {:old, 3}, :new],
        do: assert_receive({:cid, {:xmpp_bridge_bus, :group, ^group, _, ^t}}, 5000)

    Enum.each([ann, ben, cid], &stop_quietly/1)
  end

  test "join and leave events; the node leaves the room with its last member process",
       %{server: server} do
    group = unique_group("ev")
    ann = start_bus(server, "ann")
    ben = start_bus(server, "ben")
    member(ann, group, :ann, events: true)
    b = member(ben, group, :ben)
    ben_jid = bus_jid(server, "ben")
    assert_receive {:ann, {:xmpp_bridge_bus, :joined, ^group, ^ben_jid}}, 5000

    # A second process on ben joins the same group: still one occupant.
    b2 = member(ben, group, :ben2)
    refute_receive {:ann, {:xmpp_bridge_bus, :joined, ^group, _}}, 300

    Kernel.send(b, {:leave, ben, group})
    assert_receive {:ben, :left_result, :ok}
    refute_receive {:ann, {:xmpp_bridge_bus, :left, ^group, _, _}}, 300

    # The last member process on ben exits: ben's node leaves the room.
    Process.unlink(b2)
    Process.exit(b2, :kill)
    assert_receive {:ann, {:xmpp_bridge_bus, :left, ^group, ^ben_jid, :left}}, 5000
    {:ok, members} = Bus.members(ann, group)
    assert Enum.map(members, & &1.jid) == [bus_jid(server, "ann")]
    assert {:error, %Error{reason: {:not_joined, ^group}}} = Bus.members(ben, group)
    assert {:error, %Error{reason: {:not_joined, ^group}}} = Bus.broadcast(ben, group, :x)

    Enum.each([ann, ben], &stop_quietly/1)
  end

  # As after the death of the cluster node that hosted the room: the room
  # is gone without a word, and the member's next status presence makes it
  # again (a presence to a room that does not exist creates it), with the
  # server's default options, which hide real JIDs. The member, its owner
  # now, configures it as a bus room: whoever joins next is seen by JID.
  test "a room gone without a word and made again by a member's status is configured as a bus room",
       %{server: server} do
    group = unique_group("remade")
    # No self-ping during the test: the status presence comes first.
    ann = start_bus(server, "ann", heartbeat: 60_000, heartbeat_timeout: 60_000)
    member(ann, group, :ann, events: true)
    vanish_room(server, group)

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        :ok = Bus.set_status(ann, text: "after the vanishing")
        # Made again by the status presence, then configured by ann.
        assert eventually(
                 fn -> room_option(server, group, "anonymous") == "false" end,
                 10_000,
                 100
               ),
               "the remade room still hides real JIDs: #{inspect(room_option(server, group, "anonymous"))}"
      end)

    assert log =~ "the room of group #{group} was made again by us; configuring it"

    ben = start_bus(server, "ben")
    member(ben, group, :ben, events: true)
    ben_jid = bus_jid(server, "ben")
    ann_jid = bus_jid(server, "ann")
    assert_receive {:ann, {:xmpp_bridge_bus, :joined, ^group, ^ben_jid}}, 5000
    assert_receive {:ben, {:xmpp_bridge_bus, :joined, ^group, ^ann_jid}}, 5000

    {:ok, members} = Bus.members(ben, group)
    assert Enum.sort(Enum.map(members, & &1.jid)) == Enum.sort([ann_jid, ben_jid])

    :ok = Bus.broadcast(ann, group, {:hello, 1})
    assert_receive {:ben, {:xmpp_bridge_bus, :group, ^group, ^ann_jid, {:hello, 1}}}, 5000

    Enum.each([ann, ben], &stop_quietly/1)
  end

  test "status: published, read by members, changes are events", %{server: server} do
    group = unique_group("st")
    ann = start_bus(server, "ann")
    ben = start_bus(server, "ben")
    :ok = Bus.set_status(ben, show: :dnd, text: "busy: 3 jobs", term: %{load: 3})
    member(ann, group, :ann, events: true)
    member(ben, group, :ben)
    ben_jid = bus_jid(server, "ben")
    assert_receive {:ann, {:xmpp_bridge_bus, :joined, ^group, ^ben_jid}}, 5000

    assert {:ok, %{show: :dnd, text: "busy: 3 jobs", term: %{load: 3}}} = Bus.status(ann, ben_jid)

    :ok = Bus.set_status(ben, show: nil, text: "idle", term: %{load: 0})

    assert_receive {:ann,
                    {:xmpp_bridge_bus, :status, ^group, ^ben_jid,
                     %{show: nil, text: "idle", term: %{load: 0}}}},
                   5000

    {:ok, members} = Bus.members(ann, group)
    assert %{status: %{text: "idle"}} = Enum.find(members, &(&1.jid == ben_jid))

    assert {:error, %Error{reason: {:bad_option, _}}} = Bus.set_status(ben, show: :sleepy)
    assert {:error, %Error{reason: {:not_portable, _}}} = Bus.set_status(ben, term: self())
    Enum.each([ann, ben], &stop_quietly/1)
  end

  test "discovery group: nodes/1 lists the nodes online with their status",
       %{server: server} do
    group = unique_group("disc")
    ann = start_bus(server, "ann", discovery: group)
    ben = start_bus(server, "ben", discovery: group)
    :ok = Bus.set_status(ben, text: "ready", term: {:load, 1})
    ben_jid = bus_jid(server, "ben")

    assert eventually(fn ->
             match?(
               {:ok, [%{jid: _}, %{jid: ^ben_jid, status: %{text: "ready", term: {:load, 1}}}]},
               Bus.nodes(ann)
             )
           end)

    stop_quietly(ben)
    assert eventually(fn -> match?({:ok, [%{}]}, Bus.nodes(ann)) end)

    cid = start_bus(server, "cid")
    assert {:error, %Error{reason: :no_discovery_group}} = Bus.nodes(cid)
    Enum.each([ann, cid], &stop_quietly/1)
  end

  test "a member whose connection dies leaves the member list within the heartbeat window",
       %{server: server} do
    group = unique_group("hb")
    ann = start_bus(server, "ann")
    member(ann, group, :ann, events: true)

    # dee reaches the server through a proxy; stopping the proxy cuts its
    # TCP and every reconnect: its server keeps the session for resumption
    # and the room keeps a ghost occupant, as after a kill -9.
    proxy = TcpProxy.start(server.ports.c2s_plain)
    dee = start_bus(server, "dee", port: proxy.port, reconnect: [initial: 100, max: 200])
    member(dee, group, :dee)
    dee_jid = bus_jid(server, "dee")
    assert_receive {:ann, {:xmpp_bridge_bus, :joined, ^group, ^dee_jid}}, 5000
    TcpProxy.stop(proxy)
    t0 = System.monotonic_time(:millisecond)
    assert_receive {:ann, {:xmpp_bridge_bus, :left, ^group, ^dee_jid, reason}}, 5000
    elapsed = System.monotonic_time(:millisecond) - t0
    IO.puts("\n  member cut off: left #{group} after #{elapsed} ms (#{inspect(reason)})")
    assert reason in [:heartbeat_timeout, :noconnection]
    {:ok, members} = Bus.members(ann, group)
    refute Enum.any?(members, &(&1.jid == dee_jid))
    Enum.each([ann, dee], &stop_quietly/1)
  end

  # The same cut, seen by two members: ann watches the members by
  # heartbeat (the default), ben joined with member_heartbeat: false and
  # sends the members no pings: the ghost stays on his list until the room
  # says otherwise, while a clean leave reaches both.
  test "member_heartbeat: false: no pings to members, a ghost stays listed, a clean leave is seen",
       %{server: server} do
    group = unique_group("nohb")
    ann = start_bus(server, "ann")
    ben = start_bus(server, "ben")
    member(ann, group, :ann, events: true)
    member(ben, group, :ben, events: true, member_heartbeat: false)

    proxy = TcpProxy.start(server.ports.c2s_plain)
    dee = start_bus(server, "dee", port: proxy.port, reconnect: [initial: 100, max: 200])
    d = member(dee, group, :dee)
    dee_jid = bus_jid(server, "dee")
    cid = start_bus(server, "cid")
    c = member(cid, group, :cid)
    cid_jid = bus_jid(server, "cid")

    for tag <- [:ann, :ben],
        jid <- [dee_jid, cid_jid],
        do: assert_receive({^tag, {:xmpp_bridge_bus, :joined, ^group, ^jid}}, 5000)

    # ann watches ben, dee and cid; ben watches no one.
    assert map_size(:sys.get_state(ann).group_mons) == 3
    assert :sys.get_state(ben).group_mons == %{}

    TcpProxy.stop(proxy)
    assert_receive {:ann, {:xmpp_bridge_bus, :left, ^group, ^dee_jid, reason}}, 5000
    assert reason in [:heartbeat_timeout, :noconnection]
    # Heartbeat 500 + timeout 1000 ms have long passed for ben too.
    refute_received {:ben, {:xmpp_bridge_bus, :left, ^group, ^dee_jid, _}}
    {:ok, members} = Bus.members(ben, group)
    assert Enum.any?(members, &(&1.jid == dee_jid)), "the ghost is still listed"

    # A clean leave is the room's word: both see it.
    Kernel.send(c, {:leave, cid, group})
    assert_receive {:cid, :left_result, :ok}
    assert_receive {:ann, {:xmpp_bridge_bus, :left, ^group, ^cid_jid, :left}}, 5000
    assert_receive {:ben, {:xmpp_bridge_bus, :left, ^group, ^cid_jid, :left}}, 5000

    Process.unlink(d)
    Enum.each([ann, ben, cid, dee], &stop_quietly/1)
  end

  test "method discovery over disco#items", %{server: server} do
    ann = start_bus(server, "ann")
    ben = start_bus(server, "ben", handlers: %{"add" => &Kernel.+/2, "echo" => & &1})
    assert {:ok, ["add", "echo"]} = Bus.methods(ann, "ben@localhost")
    :ok = Bus.serve(ben, "zeta", fn -> :z end)
    assert {:ok, ["add", "echo", "zeta"]} = Bus.methods(ann, "ben@localhost")
    assert {:ok, []} = Bus.methods(ben, "ann@localhost")
    assert {:error, %Error{reason: {:peer_unavailable, _}}} = Bus.methods(ann, "eve@localhost")
    Enum.each([ann, ben], &stop_quietly/1)
  end

  test "after the server is killed -9 and restarted, every node is back in the group",
       %{server: server} do
    group = unique_group("crash")
    fast = [reconnect: [initial: 100, max: 500]]
    [ann, ben, cid] = Enum.map(~w(ann ben cid), &start_bus(server, &1, fast))
    member(ann, group, :ann, events: true)
    member(ben, group, :ben)
    member(cid, group, :cid)
    expected = Enum.sort(Enum.map(~w(ann ben cid), &bus_jid(server, &1)))

    member_jids = fn bus ->
      with {:ok, ms} <- Bus.members(bus, group), do: Enum.map(ms, & &1.jid)
    end

    assert eventually(fn -> member_jids.(ann) == expected end)

    :ok = TestServer.kill(server)
    Process.sleep(500)
    {:ok, _server} = TestServer.restart(server)
    t0 = System.monotonic_time(:millisecond)

    # The room died with the server: the first node back creates it again,
    # the others join it (some before it is configured). A broadcast gets
    # through once ben is back in the room, and reaches the others once
    # they are.
    assert eventually(
             fn ->
               k = System.unique_integer()
               _ = Bus.broadcast(ben, group, {:probe, k})
               got = fn tag -> assert_probe(tag, k) end
               got.(:ann) and got.(:cid)
             end,
             30_000,
             200
           )

    IO.puts("\n  group back #{System.monotonic_time(:millisecond) - t0} ms after the restart")

    # Every node lists all three by their real JIDs again.
    for bus <- [ann, ben, cid],
        do: assert(eventually(fn -> member_jids.(bus) == expected end))

    :ok = Bus.broadcast(cid, group, :after_restart)
    assert_receive {:ann, {:xmpp_bridge_bus, :group, ^group, _, :after_restart}}, 5000
    assert_receive {:ben, {:xmpp_bridge_bus, :group, ^group, _, :after_restart}}, 5000
    Enum.each([ann, ben, cid], &stop_quietly/1)
  end

  defp assert_probe(tag, k) do
    receive do
      {^tag, {:xmpp_bridge_bus, :group, _, _, {:probe, ^k}}} -> true
    after
      500 -> false
    end
  end

  test "flow control: a slow member process is not flooded; nothing is lost",
       %{server: server} do
    group = unique_group("flow")
    # Heartbeats wait behind the held-back broadcasts: long enough not to
    # time out while the member sleeps.
    slow_hb = [heartbeat: 2000, heartbeat_timeout: 20_000]
    ann = start_bus(server, "ann", slow_hb)
    ben = start_bus(server, "ben", [receiver: nil, max_mailbox: 200, window: 50] ++ slow_hb)
    test = self()
    # ann's member drops what it gets (no echo is expected anyway).
    spawn_link(fn ->
      Kernel.send(test, {:ann_joined, Bus.join(ann, group)})
      Process.sleep(:infinity)
    end)

    assert_receive {:ann_joined, :ok}, 15_000

    # ben's member process takes nothing until told, then counts.
    slow =
      spawn_link(fn ->
        Kernel.send(test, {:slow, Bus.join(ben, group)})
        receive do: (:go -> :ok)
        Kernel.send(test, {:slow_count, count_group(0, 3000)})
      end)

    assert_receive {:slow, :ok}, 15_000
    n = 3000
    for i <- 1..n, do: :ok = Bus.broadcast(ann, group, {:n, i})

    peak =
      Enum.reduce(1..30, 0, fn _, peak ->
        Process.sleep(100)
        {:message_queue_len, len} = Process.info(slow, :message_queue_len)
        max(peak, len)
      end)

    Kernel.send(slow, :go)
    assert_receive {:slow_count, got}, 60_000

    IO.puts(
      "\n  group flow control: #{n} broadcasts; the slow member's mailbox peaked " <>
        "at #{peak} (max_mailbox 200, window 50); it got #{got}"
    )

    # At most one window beyond max_mailbox, plus the ones in flight.
    assert peak < 200 + 100
    assert got == n
    Enum.each([ann, ben], &stop_quietly/1)
  end

  defp count_group(n, n), do: n

  defp count_group(got, n) do
    receive do
      {:xmpp_bridge_bus, :group, _, _, {:n, _}} -> count_group(got + 1, n)
    after
      10_000 -> got
    end
  end

  test "Prosody: three nodes join at once, list each other, broadcast in order, see a status" do
    server = TestServer.start!(:prosody, accounts: ~w(pa pb pc))

    try do
      group = unique_group("pros")
      [pa, pb, pc] = Enum.map(~w(pa pb pc), &start_bus(server, &1))
      test = self()

      # All at once: Prosody keeps the room locked until its creator has
      # configured it; the others are let in by the retry.
      for {tag, bus} <- [pa: pa, pb: pb, pc: pc] do
        spawn_link(fn ->
          Kernel.send(test, {tag, :join_result, Bus.join(bus, group, events: tag == :pa)})
          forward(test, tag)
        end)
      end

      for tag <- [:pa, :pb, :pc], do: assert_receive({^tag, :join_result, :ok}, 20_000)
      expected = Enum.sort(Enum.map(~w(pa pb pc), &bus_jid(server, &1)))

      for bus <- [pa, pb, pc] do
        assert eventually(fn ->
                 {:ok, members} = Bus.members(bus, group)
                 Enum.map(members, & &1.jid) == expected
               end)
      end

      n = 100

      for i <- 1..n do
        :ok = Bus.broadcast(pb, group, {:pb, i})
        :ok = Bus.broadcast(pc, group, {:pc, i})
      end

      got = collect(:pa, 2 * n)
      assert for({:pb, i} <- got, do: i) == Enum.to_list(1..n)
      assert for({:pc, i} <- got, do: i) == Enum.to_list(1..n)
      assert collect(:pb, n) == for(i <- 1..n, do: {:pc, i})

      :ok = Bus.set_status(pc, show: :away, text: "on prosody")
      pc_jid = bus_jid(server, "pc")

      assert_receive {:pa,
                      {:xmpp_bridge_bus, :status, ^group, ^pc_jid,
                       %{show: :away, text: "on prosody"}}},
                     5000

      stop_quietly(pc)
      assert_receive {:pa, {:xmpp_bridge_bus, :left, ^group, ^pc_jid, _}}, 5000
      Enum.each([pa, pb], &stop_quietly/1)
    after
      TestServer.stop(server)
    end
  end

  test "bad group names and options are refused with clear errors", %{server: server} do
    ann = start_bus(server, "ann")

    for bad <- ["", "Upper", "with space", "a@b", String.duplicate("x", 65), :atom] do
      assert {:error, %Error{reason: {:bad_group, _}}} = Bus.join(ann, bad)
    end

    assert {:error, %Error{reason: {:bad_option, _}}} = Bus.join(ann, "ok", history: -1)

    assert {:error, %Error{reason: {:bad_option, _}}} = Bus.join(ann, "ok", member_heartbeat: :no)
    assert {:error, %Error{reason: {:not_joined, "nope"}}} = Bus.broadcast(ann, "nope", 1)
    assert {:error, %Error{reason: {:not_portable, _}}} = Bus.broadcast(ann, "nope", self())
    stop_quietly(ann)
  end
end
