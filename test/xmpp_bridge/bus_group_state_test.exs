defmodule XmppBridge.BusGroupStateTest do
  # A bus node's group bookkeeping without a server (the rooms' side is
  # in bus_group_test.exs): the room self-ping (XEP-0410, docs/PROTOCOL.md
  # §6.1), whose answer about an earlier stay in a room must not make the
  # node join that room again, and a rejoin the room refuses or never
  # answers, which is tried again until the room takes it.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias XmppBridge.{Error, Iq, Message, Payload, Presence, StanzaError}
  alias XmppBridge.Payload.MucUser
  alias XmppBridge.Bus.Group

  @room "jobs@conference.localhost"

  defp state do
    Map.merge(Group.new_state(), %{
      online: false,
      conn: nil,
      jid: "ann@localhost/bus",
      epoch: 3,
      status: Group.empty_status(),
      muc_service: "conference.localhost"
    })
  end

  defp joined(state, token) do
    g = %{
      room: @room,
      phase: :joined,
      subs: %{self() => true},
      waiters: [],
      history: 0,
      members: %{},
      stale: nil,
      deadline: System.monotonic_time(:millisecond),
      pinned: false,
      established: true,
      retry: nil,
      watch: true,
      gone: %{}
    }

    %{
      state
      | groups: Map.put(state.groups, "jobs", g),
        rooms: Map.put(state.rooms, @room, "jobs"),
        room_pings:
          if(token, do: Map.put(state.room_pings, "jobs", token), else: state.room_pings)
    }
  end

  defp not_in_room do
    iq = %Iq{type: :error, error: %StanzaError{type: :cancel, condition: :not_acceptable}}
    {:error, %Error{reason: {:iq_error, iq}}}
  end

  test "the answer to a ping from the room's own stay makes the node join again" do
    token = make_ref()
    {state, _effects} = Group.room_ping(joined(state(), token), "jobs", token, 3, not_in_room())
    assert state.groups["jobs"].phase == :joining
    assert state.room_pings == %{}
  end

  test "a ping answered after a leave and a new join of the same group changes nothing" do
    token = make_ref()
    s = joined(state(), token)
    {s, _} = Group.leave(s, "jobs", self())
    assert s.groups == %{}
    assert s.room_pings == %{}, "the ping out is forgotten with the group"

    s = joined(s, nil)
    {s, effects} = Group.room_ping(s, "jobs", token, 3, not_in_room())
    assert effects == []
    assert s.groups["jobs"].phase == :joined
  end

  test "a ping answered after the node was put out and joined again changes nothing" do
    token = make_ref()
    {s, _} = Group.room_ping(joined(state(), token), "jobs", token, 3, not_in_room())
    assert s.groups["jobs"].phase == :joining
    # Back in: a second, older answer (a retry's) finds no ping out.
    s = put_in(s.groups["jobs"].phase, :joined)
    {s, effects} = Group.room_ping(s, "jobs", token, 3, not_in_room())
    assert effects == [] and s.groups["jobs"].phase == :joined
  end

  test "an answer from before a reconnect (another epoch) changes nothing" do
    token = make_ref()
    {s, _} = Group.room_ping(joined(state(), token), "jobs", token, 2, not_in_room())
    assert s.groups["jobs"].phase == :joined
  end

  defp refused(condition) do
    %Presence{
      type: :error,
      from: @room <> "/ann@localhost/bus",
      error: %StanzaError{type: :auth, condition: condition, text: "Go away"}
    }
  end

  test "a rejoin the room refuses is tried again, and again while it is refused" do
    s = put_in(joined(state(), nil).groups["jobs"].phase, :joining)

    log =
      capture_log(fn ->
        {s, []} = Group.presence(s, "jobs", "ann@localhost/bus", refused(:forbidden))
        assert s.groups["jobs"].phase == :joining
        ref = s.groups["jobs"].retry
        assert_receive {:group_retry, "jobs", ^ref}, 2_000
        # Offline here, so nothing is sent; the next try is set up.
        s = Group.retry(s, "jobs", ref)
        next = s.groups["jobs"].retry
        assert next != ref
        assert_receive {:group_retry, "jobs", ^next}, 2_000
        # An older timer does nothing.
        assert Group.retry(s, "jobs", ref) == s
        # In the room again: the tries stop.
        s = Group.presence(s, "jobs", "ann@localhost/bus", %Presence{type: :available})
        {s, []} = s
        assert s.groups["jobs"].phase == :joined
        assert Group.retry(s, "jobs", next) == s
      end)

    assert log =~ "rejoin was refused; trying again: forbidden (Go away)"
  end

  test "a first join the room refuses fails, with the room's reason, and is forgotten" do
    from = {self(), make_ref()}
    {_, tag} = from
    s = joined(state(), nil)

    s =
      update_in(s.groups["jobs"], fn g ->
        %{g | phase: :joining, established: false, waiters: [from], deadline: now() + 5_000}
      end)

    log =
      capture_log(fn ->
        {s, _} = Group.presence(s, "jobs", "ann@localhost/bus", refused(:forbidden))
        assert s.groups == %{}
      end)

    assert_receive {^tag, {:error, %Error{reason: {:join_failed, "forbidden"}}}}
    assert log =~ "the join was refused: forbidden (Go away)"
  end

  test "a room made again that refuses its configuration keeps the group, and is configured again" do
    s = joined(state(), nil)
    s = put_in(s.groups["jobs"].phase, :configuring)

    log =
      capture_log(fn ->
        {s2, effects} = Group.configured(s, "jobs", {:error, %Error{reason: :timeout}})
        send(self(), {:after, s2, effects})
      end)

    assert_received {:after, s2, []}
    assert s2.groups["jobs"].phase == :configuring, "kept, waiting for the next try"
    assert s2.rooms[@room] == "jobs"
    assert log =~ "refused its configuration"
    assert log =~ "trying again"

    # A new group's room that refuses: the join fails and the group is gone.
    s = joined(state(), nil)
    from = {self(), make_ref()}

    s =
      update_in(
        s.groups["jobs"],
        &%{&1 | phase: :configuring, established: false, waiters: [from]}
      )

    log =
      capture_log(fn ->
        send(self(), {:after, Group.configured(s, "jobs", {:error, %Error{reason: :timeout}})})
      end)

    assert_received {:after, {s3, _}}
    assert s3.groups == %{}
    {_, tag} = from
    assert_received {^tag, {:error, %Error{reason: {:join_failed, _}}}}
    assert log =~ "refused its configuration"
  end

  test "a room made again by a status presence of ours (201 while in it) is configured" do
    s = joined(state(), nil)

    own = %Presence{
      from: @room <> "/ann@localhost/bus",
      payloads: [%MucUser{status_codes: [110, 201]}]
    }

    log =
      capture_log(fn ->
        send(self(), {:after, Group.presence(s, "jobs", "ann@localhost/bus", own)})
      end)

    assert_received {:after, {s2, []}}
    assert s2.groups["jobs"].phase == :configuring
    assert log =~ "made again by us; configuring it"

    # A plain reflection of a status presence (no 201) changes nothing.
    plain = %{own | payloads: [%MucUser{status_codes: [110]}]}
    {s3, []} = Group.presence(s, "jobs", "ann@localhost/bus", plain)
    assert s3.groups["jobs"].phase == :joined
  end

  test "a member the heartbeat finds down: its broadcasts still relayed by the room arrive" do
    bob = "bob@localhost/bus"
    ref = make_ref()
    s = joined(state(), nil)
    s = put_in(s.groups["jobs"].members[bob], %{jid: bob, bus: true, status: nil, mon: ref})
    s = put_in(s.group_mons[ref], {"jobs", bob})
    broadcast = fn v -> %Message{type: :groupchat, payloads: [%Payload.Term{value: v}]} end

    {s, []} = Group.member_down(s, ref, :noconnection)
    assert_received {:xmpp_bridge_bus, :left, "jobs", ^bob, :noconnection}
    assert {:ok, []} = Group.members(s, "jobs")

    # Sent before it went, relayed after the heartbeat's verdict.
    Group.message(s, "jobs", bob, broadcast.(:late))
    assert_received {:xmpp_bridge_bus, :group, "jobs", ^bob, :late}

    # The room says it left: no second `left`, and nothing more from it.
    {s, []} =
      Group.presence(s, "jobs", bob, %Presence{type: :unavailable, from: @room <> "/" <> bob})

    refute_received {:xmpp_bridge_bus, :left, _, _, _}
    Group.message(s, "jobs", bob, broadcast.(:after))
    Group.message(s, "jobs", "carol@localhost/bus", broadcast.(:stranger))
    refute_received {:xmpp_bridge_bus, :group, _, _, _}
  end

  test "a join timer finds a group the node is in (or was in) and leaves it be" do
    s = put_in(joined(state(), nil).groups["jobs"].phase, :joining)
    assert {^s, []} = Group.join_timeout(s, "jobs")
  end

  defp now, do: System.monotonic_time(:millisecond)
end
