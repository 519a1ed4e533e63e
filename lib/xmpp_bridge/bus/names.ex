defmodule XmppBridge.Bus.Names do
  @moduledoc false
  # A JID for every process (docs/PROTOCOL.md §7): the names of a bus node
  # whose session is an external component (a name host). The functions
  # take and return the bus's state; what they send goes on its session.
  #
  # State (fields of the bus state):
  #   names      %{name => %{pid, incarnation, watchers: MapSet, calls: %{key => ref}}}
  #   named      %{pid => {name, monitor ref}}
  #   name_calls %{ref => %{name, key, id, caller, timer}}
  #   touched    %{pid => true}: processes given a term or a call since the
  #              session was last granted stanzas (flow control looks at
  #              these mailboxes only, never at every name's)
  #   names_tab  ETS: {pid, jid} and {name, pid}, read by callers (whereis,
  #              the `from` of what a registered process sends)

  alias XmppBridge.{Connection, Error, Iq, Message, Presence, StanzaError}
  alias XmppBridge.Payload.{DiscoIdentity, DiscoInfo, DiscoItems, Ping}
  alias XmppBridge.Bus.{Bounded, Call, Wire}

  @max_name_bytes 64
  @max_pending_calls 1000
  @dedupe_size 65_536

  ## Setup

  def new_state(:client, _domain),
    do: %{names: nil, named: %{}, name_calls: %{}, touched: %{}, names_tab: nil, domain: nil}

  def new_state(:component, domain) do
    tab = :ets.new(:xmpp_bridge_bus_names, [:set, :protected, read_concurrency: true])

    %{
      names: %{},
      named: %{},
      name_calls: %{},
      touched: %{},
      names_tab: tab,
      domain: String.downcase(domain)
    }
  end

  @doc false
  # Checks a name: 1 to 64 bytes of [a-z0-9._-], starting with a letter or
  # a digit (§7.1).
  def check_name(name) when is_binary(name) do
    cond do
      byte_size(name) not in 1..@max_name_bytes ->
        {:error, %Error{reason: {:bad_name, "#{inspect(name)}: a name is 1 to 64 bytes long"}}}

      not Regex.match?(~r/\A[a-z0-9]/, name) ->
        {:error,
         %Error{reason: {:bad_name, "#{inspect(name)}: a name starts with a letter or a digit"}}}

      not Regex.match?(~r/\A[a-z0-9._-]+\z/, name) ->
        {:error,
         %Error{
           reason: {:bad_name, "#{inspect(name)}: a name is made of a-z, 0-9, '.', '_' and '-'"}
         }}

      true ->
        :ok
    end
  end

  def check_name(name),
    do: {:error, %Error{reason: {:bad_name, "a name is a string, got: #{inspect(name)}"}}}

  @doc false
  # The address of `name`.
  def jid(state, name), do: name <> "@" <> state.domain <> "/bus"

  @doc false
  # The name a stanza to `to` is for; nil for the host itself.
  def name_of(_state, nil), do: nil

  def name_of(_state, to) do
    case :binary.split(to, "@") do
      [local, _domain] -> String.downcase(local)
      _ -> nil
    end
  end

  ## Registration

  def register(%{names: nil}, _name, _pid), do: {:error, %Error{reason: :not_a_name_host}}

  def register(state, name, pid) do
    with :ok <- check_name(name),
         :ok <- free(state, name, pid) do
      incarnation = Base.encode16(:crypto.strong_rand_bytes(8), case: :lower)
      mref = Process.monitor(pid)
      entry = %{pid: pid, incarnation: incarnation, watchers: MapSet.new(), calls: %{}}
      # Copied: a JID of up to 64 bytes is then kept inside the table.
      jid = :binary.copy(jid(state, name))
      true = :ets.insert(state.names_tab, [{pid, jid}, {:binary.copy(name), pid}])

      {:ok,
       %{
         state
         | names: Map.put(state.names, name, entry),
           named: Map.put(state.named, pid, {name, mref})
       }}
    end
  end

  defp free(state, name, pid) do
    cond do
      Map.has_key?(state.names, name) ->
        {:error, %Error{reason: {:name_taken, name}}}

      Map.has_key?(state.named, pid) ->
        {:error, %Error{reason: {:already_named, elem(state.named[pid], 0)}}}

      not Process.alive?(pid) ->
        {:error, %Error{reason: :noproc}}

      true ->
        :ok
    end
  end

  def unregister(%{names: nil}, _name), do: {:error, %Error{reason: :not_a_name_host}}

  def unregister(state, name) do
    case state.names[name] do
      nil -> {:error, %Error{reason: {:not_registered, name}}}
      entry -> {:ok, release(state, name, entry, "normal")}
    end
  end

  def registered(%{names: nil}), do: []
  def registered(state), do: state.names |> Map.keys() |> Enum.sort()

  @doc false
  # The process of a registered name went down: true and the new state, or
  # false when `pid`/`mref` is no registration of ours.
  def down(state, pid, mref, reason) do
    case state.named do
      %{^pid => {name, ^mref}} ->
        {true, release(state, name, state.names[name], exit_kind(reason))}

      _ ->
        {false, state}
    end
  end

  defp exit_kind(:normal), do: "normal"
  defp exit_kind(:shutdown), do: "shutdown"
  defp exit_kind({:shutdown, _}), do: "shutdown"
  defp exit_kind(:killed), do: "killed"
  defp exit_kind(_), do: "error"

  # The name ends: its unanswered calls get `crashed`, its watchers the
  # goodbye with `exit`.
  defp release(state, name, entry, exit) do
    case state.named[entry.pid] do
      {^name, mref} -> Process.demonitor(mref, [:flush])
      _ -> :ok
    end

    :ets.delete(state.names_tab, entry.pid)
    :ets.delete(state.names_tab, name)
    from = jid(state, name)

    name_calls =
      Enum.reduce(entry.calls, state.name_calls, fn {_key, ref}, acc ->
        {call, acc} = Map.pop(acc, ref)

        if call do
          Process.cancel_timer(call.timer)
          send_from(state, Wire.error_iq(fake_iq(call), {:crashed, "exited: " <> exit}), from)
        end

        acc
      end)

    for w <- entry.watchers do
      goodbye = %Presence{
        to: w,
        type: :unavailable,
        payloads: [
          Wire.node_element(entry.incarnation, [{"goodbye", "true"}, {"exit", exit}])
        ]
      }

      send_from(state, goodbye, from)
    end

    %{
      state
      | names: Map.delete(state.names, name),
        named: Map.delete(state.named, entry.pid),
        name_calls: name_calls,
        touched: Map.delete(state.touched, entry.pid)
    }
  end

  @doc false
  # The host stops: every name says goodbye (`shutdown`); the sequence
  # numbers of those presences, to wait for their acks.
  def goodbyes(%{names: nil}), do: []

  def goodbyes(state) do
    for {name, entry} <- state.names,
        w <- entry.watchers,
        {:ok, seq} <- [
          Connection.send(state.conn, %Presence{
            to: w,
            from: jid(state, name),
            type: :unavailable,
            payloads: [
              Wire.node_element(entry.incarnation, [{"goodbye", "true"}, {"exit", "shutdown"}])
            ]
          })
        ],
        do: seq
  end

  @doc false
  # After a (re)connect: every watcher of every name gets the name's
  # presence again (a component stream never resumes).
  def online(%{names: nil} = state), do: state

  def online(state) do
    for {name, entry} <- state.names, w <- entry.watchers do
      send_from(state, name_presence(entry, w), jid(state, name))
    end

    state
  end

  ## Flow control

  @doc false
  # Whether every process given stanzas since the last grant can take more.
  def ready?(%{touched: touched}, max_mailbox) when map_size(touched) == 0 or max_mailbox == nil,
    do: true

  def ready?(state, max_mailbox) do
    Enum.all?(Map.keys(state.touched), fn pid ->
      case Process.info(pid, :message_queue_len) do
        {:message_queue_len, n} -> n < max_mailbox
        nil -> true
      end
    end)
  end

  def granted(state), do: %{state | touched: %{}}

  ## Stanzas to a name

  @doc false
  # A message to `name` that is neither an error nor a receipt (the bus
  # handles those for all its senders).
  def message(state, name, %Message{} = msg) do
    cond do
      id = Wire.cancel_of(msg) ->
        cancel(state, name, msg.from, id)

      msg.type in [:error, :groupchat] ->
        state

      true ->
        term(state, name, msg)
    end
  end

  defp term(state, name, %Message{from: from} = msg) when is_binary(from) do
    own = jid(state, name)

    case {state.names[name], Wire.message_value(msg.payloads)} do
      {_, :none} ->
        state

      {nil, _} ->
        # Nobody holds the name: bounced (a headline is not answered).
        if msg.type != :headline, do: send_from(state, noproc_message(msg), own)
        state

      {_entry, {:refused, reason}} ->
        send_from(state, Wire.not_acceptable(msg, Error.format(reason)), own)
        state

      {entry, {:ok, value, _format}} ->
        key = {:name, name, Wire.bare(from), Wire.origin_id(msg)}

        if elem(key, 3) != nil and Bounded.seen?(state.seen, key) do
          receipt(state, msg, own)
        else
          seen =
            if elem(key, 3) != nil,
              do: Bounded.remember(state.seen, key, true, @dedupe_size),
              else: state.seen

          Kernel.send(entry.pid, {:xmpp_bridge_bus, :message, from, value})

          receipt(
            %{state | seen: seen, touched: Map.put(state.touched, entry.pid, true)},
            msg,
            own
          )
        end
    end
  end

  defp term(state, _name, _msg), do: state

  defp receipt(state, msg, own) do
    if Wire.receipt_requested?(msg) and is_binary(msg.id),
      do: send_from(state, Wire.receipt(msg.from, Wire.origin_id(msg)), own)

    state
  end

  @doc false
  # An IQ request to `name`: a ping, disco, or a call.
  def iq(state, name, %Iq{} = iq) do
    own = jid(state, name)
    entry = state.names[name]

    cond do
      entry == nil ->
        send_from(state, noproc_iq(iq), own)
        state

      match?(%Ping{}, iq.payload) ->
        answer = %Iq{
          type: :result,
          id: iq.id,
          to: iq.from,
          payload: Wire.node_element(entry.incarnation)
        }

        send_from(state, answer, own)
        state

      match?(%DiscoInfo{node: nil}, iq.payload) and iq.type == :get ->
        send_from(state, disco_info(iq), own)
        state

      match?(%DiscoItems{}, iq.payload) and iq.type == :get ->
        # A name serves what its process answers: no method list to give.
        send_from(state, Wire.methods_answer(iq, own, []), own)
        state

      call = Wire.call_of(iq) ->
        call(state, name, entry, iq, call)

      true ->
        send_from(state, Wire.error_iq(iq, :not_a_call), own)
        state
    end
  end

  defp call(state, name, entry, iq, {:call, method, timeout, args}) do
    own = jid(state, name)
    refuse = fn reason -> send_from(state, Wire.error_iq(iq, reason), own) && state end

    cond do
      not is_binary(method) or method == "" ->
        refuse.({:bad_args, "a call names its method"})

      map_size(entry.calls) >= @max_pending_calls ->
        refuse.(:busy)

      true ->
        case args do
          {:ok, list, format} when is_list(list) ->
            deliver_call(state, name, entry, iq, method, list, format, timeout)

          {:ok, _other, _} ->
            refuse.({:bad_args, "the arguments are not a list"})

          {:refused, reason} ->
            refuse.({:bad_args, Error.format(reason)})
        end
    end
  end

  defp deliver_call(state, name, entry, iq, method, args, format, timeout) do
    key = {iq.from, iq.id}

    # The same id again from the same caller: the old one is forgotten.
    state =
      case entry.calls[key] do
        nil -> state
        old -> forget_call(state, old) |> elem(1)
      end

    entry = state.names[name]
    ref = make_ref()
    timer = Process.send_after(self(), {:name_call_deadline, ref}, timeout)
    pending = %{name: name, key: key, id: iq.id, caller: iq.from, timer: timer}

    call = %Call{
      bus: self(),
      ref: ref,
      name: name,
      caller: iq.from,
      method: method,
      format: format
    }

    Kernel.send(entry.pid, {:xmpp_bridge_bus, :call, call, iq.from, method, args})

    %{
      state
      | names: Map.put(state.names, name, %{entry | calls: Map.put(entry.calls, key, ref)}),
        name_calls: Map.put(state.name_calls, ref, pending),
        touched: Map.put(state.touched, entry.pid, true)
    }
  end

  # Takes a pending call out of the state: {call or nil, state}.
  defp forget_call(state, ref) do
    case Map.pop(state.name_calls, ref) do
      {nil, _} ->
        {nil, state}

      {call, name_calls} ->
        Process.cancel_timer(call.timer)

        names =
          case state.names[call.name] do
            nil -> state.names
            e -> Map.put(state.names, call.name, %{e | calls: Map.delete(e.calls, call.key)})
          end

        {call, %{state | name_calls: name_calls, names: names}}
    end
  end

  @doc false
  # The process answers (Bus.reply/2, reply_error/2): {:result, el} or
  # {:error, reason}. A call that no longer waits drops it.
  def answer(state, ref, outcome) do
    case forget_call(state, ref) do
      {nil, state} ->
        state

      {call, state} ->
        req = fake_iq(call)

        stanza =
          case outcome do
            {:result, el} -> Wire.result_iq(req, el)
            {:error, reason} -> Wire.error_iq(req, reason)
          end

        send_from(state, stanza, jid(state, call.name))
        state
    end
  end

  @doc false
  def deadline(state, ref), do: answer(state, ref, {:error, :timeout})

  defp cancel(state, name, from, id) do
    case state.names[name] do
      %{calls: %{{^from, ^id} => ref}} -> answer(state, ref, {:error, :timeout})
      _ -> state
    end
  end

  @doc false
  # A presence to `name`: a watcher comes (answered with the name's
  # presence, or noproc) or goes.
  def presence(state, name, %Presence{from: from} = p) when is_binary(from) do
    node = Wire.node_info(p.payloads)
    own = jid(state, name)

    case {p.type, state.names[name]} do
      {:available, nil} ->
        if node.watch, do: send_from(state, noproc_presence(from), own)
        state

      {:available, entry} ->
        if MapSet.member?(entry.watchers, from) do
          state
        else
          send_from(state, name_presence(entry, from), own)
          entry = %{entry | watchers: MapSet.put(entry.watchers, from)}
          %{state | names: Map.put(state.names, name, entry)}
        end

      {:unavailable, %{} = entry} ->
        entry = %{entry | watchers: MapSet.delete(entry.watchers, from)}
        %{state | names: Map.put(state.names, name, entry)}

      _ ->
        state
    end
  end

  def presence(state, _name, _p), do: state

  ## Wire (§7.2, §7.3)

  defp send_from(state, stanza, from) do
    _ = Connection.send(state.conn, %{stanza | from: from})
    true
  end

  defp fake_iq(call), do: %Iq{type: :set, id: call.id, from: call.caller}

  defp noproc_error,
    do: %StanzaError{
      type: :cancel,
      condition: :item_not_found,
      app: {:xmlel, "noproc", [{"xmlns", Wire.ns()}], []}
    }

  defp noproc_message(msg),
    do: %Message{type: :error, to: msg.from, id: msg.id, error: noproc_error()}

  defp noproc_iq(iq), do: %Iq{type: :error, to: iq.from, id: iq.id, error: noproc_error()}

  defp noproc_presence(to), do: %Presence{type: :error, to: to, error: noproc_error()}

  defp name_presence(entry, to),
    do: %Presence{to: to, payloads: [Wire.node_element(entry.incarnation)]}

  defp disco_info(iq),
    do: %Iq{
      type: :result,
      id: iq.id,
      to: iq.from,
      payload: %DiscoInfo{
        identities: [%DiscoIdentity{category: "component", type: "generic", name: "xmpp_bridge"}],
        features: [
          "http://jabber.org/protocol/disco#info",
          "urn:xmpp:ping",
          Wire.ns()
        ]
      }
    }
end
