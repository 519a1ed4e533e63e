defmodule XmppBridge.Bus.Group do
  @moduledoc false
  # Groups over MUC rooms (docs/PROTOCOL.md §6.1) and the status a node
  # shows in its presence (§6.2): the part of a bus node's state that is
  # about rooms. Functions take and return the bus state; what only the bus
  # can do (start or stop a heartbeat on a member) comes back as effects:
  # `{:watch, jid, ref}` and `{:unwatch, ref}`.

  alias XmppBridge.{Connection, Error, Iq, Message, Presence}
  alias XmppBridge.Bus.Wire
  alias XmppBridge.Payload.{MucHistory, MucItem, MucJoin, MucUser}

  require Logger

  @muc_owner "http://jabber.org/protocol/muc#owner"
  # A join refused because the room is being made is tried again soon; a
  # rejoin (of a group the node was in) is tried again, slower, until the
  # room takes it: the join presence of a rejoin can be lost (sent to a
  # room whose server just died) or refused for a moment.
  @retry_ms 200
  @slow_retry_ms 1_000

  @doc false
  def new_state,
    do: %{groups: %{}, rooms: %{}, group_subs: %{}, group_mons: %{}, room_pings: %{}}

  ## Names

  @doc false
  # A group name is its own room localpart: 1-64 of [a-z0-9._-], starting
  # with a letter or digit.
  def check_name(name) when is_binary(name) do
    if Regex.match?(~r/\A[a-z0-9][a-z0-9._-]{0,63}\z/, name),
      do: :ok,
      else: bad_name(name)
  end

  def check_name(name), do: bad_name(name)

  defp bad_name(name),
    do:
      {:error,
       %Error{
         reason:
           {:bad_group,
            "a group name is 1-64 of a-z, 0-9, '.', '_', '-' starting with a letter or digit, got: #{inspect(name)}"}
       }}

  @doc false
  # The default MUC service: conference.<domain of the node's JID>.
  def default_service(jid) when is_binary(jid) do
    domain = jid |> Wire.bare() |> String.split("@") |> List.last()
    "conference." <> domain
  end

  def default_service(_), do: nil

  ## Status (§6.2)

  @doc false
  def empty_status, do: %{show: nil, text: nil, term: nil}

  @doc false
  def check_status(opts) when is_list(opts) or is_map(opts) do
    opts = Map.new(opts)

    with [] <- Map.keys(opts) -- [:show, :text, :term],
         true <- Map.get(opts, :show) in [nil, :chat, :away, :xa, :dnd],
         true <- Map.get(opts, :text) == nil or is_binary(Map.get(opts, :text)),
         {:ok, term_el} <- status_term(Map.get(opts, :term)) do
      {:ok, Map.merge(empty_status(), opts), term_el}
    else
      {:error, %Error{}} = error -> error
      _ -> {:error, %Error{reason: {:bad_option, {:status, opts}}}}
    end
  end

  def check_status(other), do: {:error, %Error{reason: {:bad_option, {:status, other}}}}

  defp status_term(nil), do: {:ok, nil}
  defp status_term(term), do: Wire.value_element(term, :term)

  @doc false
  # The node's presence with its status, to `to` (nil: broadcast presence).
  def status_presence(state, to, extra_attrs \\ [], extra_payloads \\ []) do
    children = if state.status_el, do: [state.status_el], else: []

    %Presence{
      to: to,
      show: state.status.show,
      statuses: if(state.status.text, do: [{nil, state.status.text}], else: []),
      payloads:
        extra_payloads ++
          [
            {:xmlel, "node",
             [{"xmlns", Wire.ns()}, {"incarnation", state.incarnation}] ++ extra_attrs, children}
          ]
    }
  end

  @doc false
  # Sends the node's current status to every room it is in.
  def announce_status(state) do
    for {_group, %{phase: :joined} = g} <- state.groups,
        do: _ = Connection.send(state.conn, status_presence(state, occupant(g.room, state.jid)))

    state
  end

  # What a presence says about its sender's status.
  defp read_status(%Presence{show: show, statuses: statuses, payloads: payloads}) do
    text =
      case statuses do
        [{_, t} | _] -> t
        [] -> nil
      end

    term =
      Enum.find_value(payloads, fn
        {:xmlel, "node", attrs, children} ->
          if List.keyfind(attrs, "xmlns", 0) == {"xmlns", Wire.ns()} do
            Enum.find_value(children, fn
              {:xmlel, _, _, _} = el ->
                case Wire.read_value(el) do
                  {:ok, value, _} -> {:value, value}
                  _ -> nil
                end

              _ ->
                nil
            end)
          end

        _ ->
          nil
      end)

    %{
      show: show,
      text: text,
      term:
        case term do
          {:value, v} -> v
          nil -> nil
        end
    }
  end

  ## Joining and leaving

  @doc false
  # A process joins `group`: the first one makes the node join the room.
  # Returns {:reply, reply, state, effects} or {:noreply, state, effects}.
  def join(state, group, pid, from, opts) do
    state = subscribe(state, group, pid, opts.events)

    case state.groups[group] do
      %{phase: :joined} ->
        {:reply, :ok, state, []}

      %{} = g ->
        state = put_in(state.groups[group], %{g | waiters: [from | g.waiters]})
        {:noreply, state, []}

      nil ->
        room = group <> "@" <> state.muc_service

        g = %{
          room: room,
          phase: :joining,
          subs: %{pid => opts.events},
          waiters: [from],
          history: opts.history,
          members: %{},
          stale: nil,
          deadline: now() + opts.timeout,
          pinned: false,
          established: false,
          retry: nil,
          watch: opts.member_heartbeat,
          gone: %{}
        }

        state = %{
          state
          | groups: Map.put(state.groups, group, g),
            rooms: Map.put(state.rooms, room, group)
        }

        Process.send_after(self(), {:group_timeout, group}, opts.timeout)
        {:noreply, send_join(state, group), []}
    end
  end

  @doc false
  # The discovery group: joined at start, by the node itself, for good.
  def pin(state, group, timeout) do
    room = group <> "@" <> state.muc_service

    g = %{
      room: room,
      phase: :joining,
      subs: %{},
      waiters: [],
      history: 0,
      members: %{},
      stale: nil,
      deadline: now() + timeout,
      pinned: true,
      established: false,
      retry: nil,
      watch: true,
      gone: %{}
    }

    %{state | groups: Map.put(state.groups, group, g), rooms: Map.put(state.rooms, room, group)}
  end

  defp subscribe(state, group, pid, events) do
    state =
      if Map.has_key?(state.group_subs, pid),
        do: state,
        else: put_in(state.group_subs[pid], Process.monitor(pid))

    case state.groups[group] do
      nil -> state
      g -> put_in(state.groups[group], %{g | subs: Map.put(g.subs, pid, events)})
    end
  end

  defp send_join(%{online: false} = state, _group), do: state

  defp send_join(state, group) do
    g = state.groups[group]
    join_el = %MucJoin{history: %MucHistory{maxstanzas: g.history}}

    _ =
      Connection.send(
        state.conn,
        status_presence(state, occupant(g.room, state.jid), [], [join_el])
      )

    state
  end

  @doc false
  # `pid` leaves `group` (or every group, `:all`, when it exited).
  def leave(state, group, pid) do
    case state.groups[group] do
      nil ->
        {state, []}

      g ->
        g = %{g | subs: Map.delete(g.subs, pid)}
        state = put_in(state.groups[group], g)
        state = maybe_unsubscribe(state, pid)

        if map_size(g.subs) == 0 and not g.pinned,
          do: drop_group(state, group, true),
          else: {state, []}
    end
  end

  @doc false
  def subscriber_down(state, pid) do
    groups = for {name, g} <- state.groups, Map.has_key?(g.subs, pid), do: name
    state = %{state | group_subs: Map.delete(state.group_subs, pid)}

    Enum.reduce(groups, {state, []}, fn name, {acc, effects} ->
      {acc, more} = leave(acc, name, pid)
      {acc, effects ++ more}
    end)
  end

  defp maybe_unsubscribe(state, pid) do
    if Enum.any?(state.groups, fn {_, g} -> Map.has_key?(g.subs, pid) end) do
      state
    else
      case Map.pop(state.group_subs, pid) do
        {nil, _} ->
          state

        {mref, subs} ->
          Process.demonitor(mref, [:flush])
          %{state | group_subs: subs}
      end
    end
  end

  # Forgets a group (leaving its room when `unavailable?`); the members'
  # heartbeats stop.
  defp drop_group(state, group, unavailable?) do
    g = state.groups[group]

    if unavailable? and state.online and g.phase != :joining,
      do:
        _ =
          Connection.send(state.conn, %Presence{
            type: :unavailable,
            to: occupant(g.room, state.jid)
          })

    effects = for {_nick, %{mon: ref}} <- g.members, ref != nil, do: {:unwatch, ref}
    mons = Map.drop(state.group_mons, for({:unwatch, ref} <- effects, do: ref))

    # A self-ping still out is about this stay in the room: its answer
    # must not reach a later join of the same group.
    state = %{
      state
      | groups: Map.delete(state.groups, group),
        rooms: Map.delete(state.rooms, g.room),
        group_mons: mons,
        room_pings: Map.delete(state.room_pings, group)
    }

    state = Enum.reduce(Map.keys(g.subs), state, &maybe_unsubscribe(&2, &1))
    {state, effects}
  end

  @doc false
  # The join did not complete in time: fail its waiters, forget the group.
  def join_timeout(state, group) do
    # (A timer of an earlier join of the same group finds a later
    # deadline, and a group the node was in is not given up.)
    case state.groups[group] do
      %{phase: phase, pinned: false, established: false, deadline: deadline} = g
      when phase != :joined ->
        if now() >= deadline, do: give_up(state, group, g), else: {state, []}

      _ ->
        {state, []}
    end
  end

  defp give_up(state, group, g) do
    for from <- g.waiters, do: GenServer.reply(from, {:error, %Error{reason: :timeout}})
    drop_group(state, group, g.phase == :configuring)
  end

  # One retry timer per group: a newer one replaces the one before.
  defp schedule_retry(state, group, ms) do
    ref = make_ref()
    Process.send_after(self(), {:group_retry, group, ref}, ms)
    put_in(state.groups[group].retry, ref)
  end

  # A group the node is to stay in whatever happens: one it was in
  # before (a rejoin), or the discovery group.
  defp keep?(g), do: g.established or g.pinned

  @doc false
  # The retry timer of `group`: join again while the room has not taken
  # the node; a group to keep is tried until it is back in.
  def retry(state, group, ref) do
    case state.groups[group] do
      %{phase: :joining, retry: ^ref} = g ->
        state = send_join(state, group)
        if keep?(g), do: schedule_retry(state, group, @slow_retry_ms), else: state

      _ ->
        state
    end
  end

  @doc false
  # After a reconnect that was not a resumption: join every room again;
  # members the room does not announce again have left.
  def rejoin(state) do
    Enum.reduce(Map.keys(state.groups), state, fn group, acc ->
      g = acc.groups[group]
      stale = g.members |> Map.keys() |> MapSet.new()
      g = %{g | phase: :joining, stale: stale, gone: %{}, deadline: now() + 10_000}
      acc = send_join(put_in(acc.groups[group], g), group)
      if keep?(g), do: schedule_retry(acc, group, @slow_retry_ms), else: acc
    end)
  end

  @doc false
  # XEP-0410 self-ping, one at a time per room, at each heartbeat: is the
  # room still there, with us in it? When a server of a cluster dies, the
  # rooms it hosted vanish without a word to occupants on the other
  # servers (their view of the room stays as it was), and those who come
  # back through another server make a new, empty room of the same name.
  # A ping to our own occupant JID then fails, and we join again, into the
  # new room.
  def self_ping(%{online: false} = state, _timeout), do: state

  def self_ping(state, timeout) do
    Enum.reduce(state.groups, state, fn
      {group, %{phase: :joined, room: room}}, acc when not is_map_key(acc.room_pings, group) ->
        token = make_ref()
        bus = self()
        conn = acc.conn
        ping = Wire.ping(occupant(room, acc.jid))
        epoch = acc.epoch

        spawn(fn ->
          Kernel.send(bus, {:room_ping, group, token, epoch, Connection.iq(conn, ping, timeout)})
        end)

        put_in(acc.room_pings[group], token)

      _, acc ->
        acc
    end)
  end

  @doc false
  # The answer to self_ping/2: only "you are not in this room" (or "no such
  # room") counts; no answer, or an occupant client that does not do
  # pings, says nothing.
  def room_ping(state, group, token, epoch, result) do
    case Map.pop(state.room_pings, group) do
      {^token, pings} ->
        state = %{state | room_pings: pings}
        g = state.groups[group]

        if epoch == state.epoch and g != nil and g.phase == :joined and out_of_room?(result),
          do: kicked(state, group, g),
          else: {state, []}

      _ ->
        {state, []}
    end
  end

  defp out_of_room?({:error, %Error{reason: {:iq_error, %Iq{error: %{condition: c}}}}}),
    do: Wire.condition_name(c) in ["not-acceptable", "item-not-found"]

  defp out_of_room?(_), do: false

  ## Incoming stanzas

  @doc false
  def room_of(%{rooms: rooms}, _from) when map_size(rooms) == 0, do: nil

  def room_of(state, from) when is_binary(from) do
    [room | rest] = :binary.split(from, "/")

    case state.rooms do
      %{^room => group} -> {group, List.first(rest)}
      _ -> nil
    end
  end

  def room_of(_state, _from), do: nil

  @doc false
  # A presence from a room we are in (or joining).
  def presence(state, group, nick, %Presence{} = p) do
    g = state.groups[group]
    user = Enum.find(p.payloads, &match?(%MucUser{}, &1)) || %MucUser{}
    self? = 110 in user.status_codes or nick == state.jid

    cond do
      p.type == :error -> join_error(state, group, g, p)
      nick == nil -> {state, []}
      p.type == :unavailable and self? -> kicked(state, group, g)
      p.type == :unavailable -> occupant_left(state, group, g, nick)
      p.type != :available -> {state, []}
      self? -> self_presence(state, group, g, user, p)
      true -> occupant_presence(state, group, nick, user, p)
    end
  end

  defp join_error(state, group, %{phase: phase} = g, p) when phase != :joined do
    condition = Wire.condition_name((p.error && p.error.condition) || :undefined_condition)
    soon? = now() + @retry_ms < g.deadline

    cond do
      condition == "item-not-found" and soon? ->
        # The room is locked while its creator configures it.
        {schedule_retry(state, group, @retry_ms), []}

      g.established ->
        # A rejoin: the room comes back, or the ghost of our previous
        # session that holds the nickname goes away.
        unless soon?, do: log_refused(g, p, "the rejoin was refused; trying again")
        {schedule_retry(state, group, if(soon?, do: @retry_ms, else: @slow_retry_ms)), []}

      true ->
        log_refused(g, p, "the join was refused")

        for from <- g.waiters,
            do: GenServer.reply(from, {:error, %Error{reason: {:join_failed, condition}}})

        if g.pinned do
          state = put_in(state.groups[group], %{g | waiters: []})
          {schedule_retry(state, group, @slow_retry_ms), []}
        else
          drop_group(state, group, false)
        end
    end
  end

  defp join_error(state, _group, _g, _p), do: {state, []}

  defp log_refused(g, %Presence{error: error}, what) do
    why =
      case error do
        %{condition: c, text: text} when is_binary(text) and text != "" ->
          "#{Wire.condition_name(c)} (#{text})"

        %{condition: c} ->
          Wire.condition_name(c)

        _ ->
          "no reason given"
      end

    Logger.warning("XmppBridge.Bus: room #{g.room}: #{what}: #{why}")
  end

  # We are out of the room without asking (kicked, or the room was
  # destroyed): join it again.
  defp kicked(state, group, g) do
    {state, effects} = forget_members(state, group, Map.keys(g.members), :left)
    g = %{state.groups[group] | phase: :joining, gone: %{}, deadline: now() + 10_000}
    state = %{put_in(state.groups[group], g) | room_pings: Map.delete(state.room_pings, group)}
    {schedule_retry(state, group, @retry_ms), effects}
  end

  defp self_presence(state, group, g, user, p) do
    me = %{jid: state.jid, bus: true, status: read_status(p), mon: nil}
    g = %{g | members: Map.put(g.members, state.jid, me)}

    cond do
      g.phase == :joined and 201 in user.status_codes ->
        # The room had gone (its server died) and a presence of ours made
        # it again, with the server's default options (hiding real JIDs):
        # configure it as a bus room, or no member learns who joins it.
        Logger.warning(
          "xmpp_bridge bus: the room of group #{group} was made again by us; configuring it"
        )

        configure(state, group, g)
        {put_in(state.groups[group], %{g | phase: :configuring}), []}

      g.phase == :joined ->
        {put_in(state.groups[group], g), []}

      201 in user.status_codes ->
        # We created the room: configure it before anyone else gets in.
        configure(state, group, g)
        {put_in(state.groups[group], %{g | phase: :configuring}), []}

      true ->
        joined(put_in(state.groups[group], g), group)
    end
  end

  # Offline, there is no room to configure: the rejoin after the
  # reconnect makes (or finds) it again.
  defp configure(state, group, g, delay \\ 0)
  defp configure(%{online: false}, _group, _g, _delay), do: :ok

  defp configure(state, group, g, delay) do
    bus = self()
    conn = state.conn
    iq = config_iq(g.room)

    spawn(fn ->
      if delay > 0, do: Process.sleep(delay)
      Kernel.send(bus, {:group_configured, group, Connection.iq(conn, iq, 10_000)})
    end)
  end

  @doc false
  def configured(state, group, result) do
    case {state.groups[group], result} do
      {%{phase: :configuring}, {:ok, _}} ->
        # Occupants that came in before the configuration saw us
        # anonymously: show our presence again (now with our real JID).
        joined(state, group, true)

      {%{phase: :configuring} = g, {:error, error}} when g.established or g.pinned ->
        # A group this node belongs to for good (it was in it, or it is the
        # discovery group): the room it made again must be configured too.
        Logger.warning(
          "xmpp_bridge bus: the room of group #{group} refused its configuration " <>
            "(#{Error.format(error.reason)}); trying again"
        )

        configure(state, group, g, @slow_retry_ms)
        {state, []}

      {%{phase: :configuring} = g, {:error, error}} ->
        detail = Error.format(error.reason)

        Logger.warning(
          "xmpp_bridge bus: the room of group #{group} refused its configuration: #{detail}"
        )

        for from <- g.waiters,
            do: GenServer.reply(from, {:error, %Error{reason: {:join_failed, detail}}})

        drop_group(
          %{state | groups: Map.put(state.groups, group, %{g | waiters: []})},
          group,
          true
        )

      _ ->
        {state, []}
    end
  end

  defp joined(state, group, announce? \\ false) do
    g = state.groups[group]
    for from <- g.waiters, do: GenServer.reply(from, :ok)

    # The status may have changed while the join was on its way: the room
    # must show the current one.
    case g.members[state.jid] do
      %{status: seen} when seen == state.status and not announce? ->
        :ok

      _ ->
        _ = Connection.send(state.conn, status_presence(state, occupant(g.room, state.jid)))
    end

    stale = if g.stale, do: MapSet.to_list(MapSet.delete(g.stale, state.jid)), else: []
    g = %{g | phase: :joined, waiters: [], stale: nil, established: true, retry: nil}
    forget_members(put_in(state.groups[group], g), group, stale, :left)
  end

  defp occupant_presence(state, group, nick, user, p) do
    g = state.groups[group]
    status = read_status(p)
    # A room that hides real JIDs (not configured by a bus node) leaves
    # only the occupant's room JID.
    real = Enum.find_value(user.items, fn %MucItem{jid: j} -> j end) || occupant(g.room, nick)
    bus? = Wire.node_info(p.payloads).incarnation != nil
    g = %{g | stale: g.stale && MapSet.delete(g.stale, nick), gone: Map.delete(g.gone, nick)}

    case g.members[nick] do
      %{jid: old} when old != real ->
        # The room shows the real JID now (it was configured after this
        # occupant came in): the member known by its room JID is this one.
        {state, effects} = forget_members(put_in(state.groups[group], g), group, [nick], :left)
        {state, more} = occupant_presence(state, group, nick, user, p)
        {state, effects ++ more}

      nil ->
        {mon, effects} =
          if bus? and g.watch do
            ref = make_ref()
            {ref, [{:watch, real, ref}]}
          else
            {nil, []}
          end

        member = %{jid: real, bus: bus?, status: status, mon: mon}
        state = put_in(state.groups[group], %{g | members: Map.put(g.members, nick, member)})
        state = if mon, do: put_in(state.group_mons[mon], {group, nick}), else: state
        notify(g, {:xmpp_bridge_bus, :joined, group, real})
        {state, effects}

      %{status: ^status} ->
        {put_in(state.groups[group], g), []}

      member ->
        member = %{member | status: status}
        notify(g, {:xmpp_bridge_bus, :status, group, member.jid, status})
        {put_in(state.groups[group], %{g | members: Map.put(g.members, nick, member)}), []}
    end
  end

  @doc false
  # A member's heartbeat says it is gone.
  def member_down(state, ref, reason) do
    case Map.pop(state.group_mons, ref) do
      {nil, _} ->
        {state, []}

      {{group, nick}, mons} ->
        state = %{state | group_mons: mons}

        case state.groups[group] do
          %{members: %{^nick => %{mon: ^ref}}} ->
            state = put_in(state.groups[group].members[nick].mon, nil)
            member_gone(state, group, nick, reason)

          _ ->
            {state, []}
        end
    end
  end

  defp member_gone(state, group, nick, reason) do
    # The room still lists it: what it relays from this member until it
    # says the member left was sent while it was in, and is handed over.
    g = state.groups[group]
    gone = Map.put(g.gone, nick, g.members[nick])
    forget_members(put_in(state.groups[group].gone, gone), group, [nick], reason)
  end

  defp occupant_left(state, group, g, nick) do
    state = put_in(state.groups[group], %{g | gone: Map.delete(g.gone, nick)})
    forget_members(state, group, [nick], :left)
  end

  defp forget_members(state, group, nicks, reason) do
    Enum.reduce(nicks, {state, []}, fn nick, {acc, effects} ->
      g = acc.groups[group]

      case Map.pop(g.members, nick) do
        {nil, _} ->
          {acc, effects}

        {member, members} ->
          acc = put_in(acc.groups[group], %{g | members: members})
          if nick != acc.jid, do: notify(g, {:xmpp_bridge_bus, :left, group, member.jid, reason})

          if member.mon do
            {%{acc | group_mons: Map.delete(acc.group_mons, member.mon)},
             [{:unwatch, member.mon} | effects]}
          else
            {acc, effects}
          end
      end
    end)
  end

  @doc false
  # A groupchat message from a room we are in: a broadcast to hand over.
  def message(state, group, nil, %Message{} = msg), do: room_notice(state, group, msg)

  def message(state, group, nick, %Message{} = msg) do
    g = state.groups[group]

    with false <- nick == state.jid,
         %{jid: from} <- g.members[nick] || g.gone[nick],
         {:ok, value, _format} <- Wire.message_value(msg.payloads) do
      event = {:xmpp_bridge_bus, :group, group, from, value}
      for {pid, _events} <- g.subs, do: Kernel.send(pid, event)
    end

    state
  end

  @doc false
  # A notice from the room itself. When its configuration changed (codes
  # 104, 172: e.g. it became non-anonymous after occupants came in), the
  # node shows its presence again, so that every member sees its real JID.
  def room_notice(state, group, %Message{payloads: payloads}) do
    codes =
      Enum.flat_map(payloads, fn
        %MucUser{status_codes: c} -> c
        _ -> []
      end)

    case state.groups[group] do
      %{phase: :joined, room: room} when codes != [] ->
        if Enum.any?(codes, &(&1 in [104, 170, 172, 173])),
          do: _ = Connection.send(state.conn, status_presence(state, occupant(room, state.jid)))

        state

      _ ->
        state
    end
  end

  defp notify(g, event) do
    for {pid, true} <- g.subs, do: Kernel.send(pid, event)
    :ok
  end

  ## Reading

  @doc false
  def members(state, group) do
    case state.groups[group] do
      %{phase: :joined, members: members} ->
        list =
          members
          |> Map.values()
          |> Enum.map(&Map.take(&1, [:jid, :bus, :status]))
          |> Enum.sort_by(& &1.jid)

        {:ok, list}

      _ ->
        {:error, %Error{reason: {:not_joined, group}}}
    end
  end

  @doc false
  def status_of(state, jid) do
    Enum.find_value(state.groups, :error, fn {_, g} ->
      Enum.find_value(g.members, fn {_, m} -> if m.jid == jid, do: {:ok, m.status} end)
    end)
  end

  @doc false
  def broadcast_message(state, group, value_el, body, id) do
    case state.groups[group] do
      %{phase: :joined, room: room} ->
        {:ok,
         %Message{
           to: room,
           type: :groupchat,
           id: id,
           bodies: [{nil, body}],
           payloads: [value_el, %XmppBridge.Payload.OriginId{id: id}]
         }}

      _ ->
        {:error, %Error{reason: {:not_joined, group}}}
    end
  end

  ## Wire

  defp occupant(room, nick), do: room <> "/" <> nick

  @doc false
  def config_iq(room) do
    fields =
      for {var, value} <- [
            {"FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig"},
            {"muc#roomconfig_whois", "anyone"},
            {"muc#roomconfig_persistentroom", "0"},
            {"muc#roomconfig_publicroom", "0"}
          ],
          do: {:xmlel, "field", [{"var", var}], [{:xmlel, "value", [], [{:xmlcdata, value}]}]}

    form = {:xmlel, "x", [{"xmlns", "jabber:x:data"}, {"type", "submit"}], fields}

    %Iq{
      type: :set,
      to: room,
      id: Iq.new_id(),
      payload: {:xmlel, "query", [{"xmlns", @muc_owner}], [form]}
    }
  end

  defp now, do: System.monotonic_time(:millisecond)
end
