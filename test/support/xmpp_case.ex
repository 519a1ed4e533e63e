defmodule XmppBridge.Test.XmppCase do
  @moduledoc false
  # Escalus-style helpers for integration tests against the private server,
  # so that a test reads like the story it checks:
  #
  #     alice = open_session(server, "alice")
  #     bob = open_session(server, "bob")
  #     send_stanza(alice, chat_to(bob, "Hi Bob!"))
  #     assert_chat(wait_for_stanza(bob), from: alice, body: "Hi Bob!")
  #
  # A session is owned by the process that opened it: its events
  # (`{:xmpp_bridge, id, event}`) arrive in that process's mailbox, so the
  # helpers that wait for them must run there too.

  import ExUnit.Assertions

  alias XmppBridge.{Connection, Iq, Message, Presence}
  alias XmppTestServer, as: TestServer
  alias XmppBridge.Payload.Ping

  defmodule Session do
    @moduledoc false
    # An open, online session: `jid` is the full JID the server bound.
    @enforce_keys [:conn, :id, :jid, :user]
    defstruct [:conn, :id, :jid, :user]
  end

  @online_timeout 10_000

  ## Sessions

  @doc """
  Connection options for `user` on `server`: the plaintext loopback
  listener unless `opts` says otherwise; `opts` win over the defaults.
  """
  def session_opts(%TestServer{} = server, user, opts \\ []) do
    password = Map.get(server.accounts, user, "#{user}-secret")

    Keyword.merge(
      [
        jid: TestServer.jid(server, user),
        password: password,
        host: server.host,
        port: server.ports.c2s_plain,
        tls: :plain
      ],
      opts
    )
  end

  @doc """
  Opens a session for `user` and waits until it is online. The caller owns
  it. Options are those of `XmppBridge.Connection.open/1`.
  """
  def open_session(%TestServer{} = server, user, opts \\ []) do
    conn = Connection.open!(session_opts(server, user, opts))
    jid = await_online(conn)
    %Session{conn: conn, id: conn.id, jid: jid, user: user}
  end

  @doc "Opens an external component session (XEP-0114) as the server's component domain."
  def open_component(%TestServer{} = server, opts \\ []) do
    conn =
      Connection.open!(
        Keyword.merge(
          [
            mode: :component,
            jid: server.component_domain,
            password: server.component_secret,
            host: server.host,
            port: server.ports.component,
            tls: :plain
          ],
          opts
        )
      )

    %Session{conn: conn, id: conn.id, jid: await_online(conn), user: server.component_domain}
  end

  defp await_online(%Connection{id: id}) do
    receive do
      {:xmpp_bridge, ^id, {:online, %{jid: jid}}} ->
        jid

      {:xmpp_bridge, ^id, {:closed, reason}} ->
        flunk("session closed before online: #{inspect(reason)}")
    after
      @online_timeout ->
        flunk("no {:online, _} within #{@online_timeout} ms; #{mailbox_summary(id)}")
    end
  end

  @doc "Closes the session and waits for its `{:closed, :normal}`."
  def close_session(%Session{conn: conn, id: id}) do
    :ok = Connection.close(conn)

    receive do
      {:xmpp_bridge, ^id, {:closed, :normal}} -> :ok
    after
      5_000 -> flunk("no {:closed, :normal} after close/1; #{mailbox_summary(id)}")
    end
  end

  ## Stanzas

  @doc "A chat message to a session (its full JID) or a JID."
  def chat_to(to, text, opts \\ []), do: Message.chat(jid(to), text, opts)

  @doc "A ping (XEP-0199) request to a session or a JID."
  def ping(to), do: Iq.get(jid(to), %Ping{})

  @doc "Queues a stanza on the session; returns its sequence number."
  def send_stanza(%Session{conn: conn}, stanza), do: Connection.send!(conn, stanza)

  @doc """
  The next stanza the session receives, presences skipped (the server echoes
  each session's own initial presence).
  """
  def wait_for_stanza(%Session{id: id}, timeout \\ 5_000), do: next_stanza(id, timeout)

  defp next_stanza(id, timeout) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Presence{}}} -> next_stanza(id, timeout)
      {:xmpp_bridge, ^id, {:stanza, stanza}} -> stanza
    after
      timeout -> flunk("no stanza within #{timeout} ms; #{mailbox_summary(id)}")
    end
  end

  @doc """
  The next IQ request (`get` or `set`) the session's owner receives; other
  stanzas stay in the mailbox.
  """
  def wait_for_iq_request(%Session{id: id}, timeout \\ 5_000) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Iq{type: type} = iq}} when type in [:get, :set] -> iq
    after
      timeout -> flunk("no IQ request within #{timeout} ms; #{mailbox_summary(id)}")
    end
  end

  @doc "Asserts that `stanza` is a chat message; `expected` may give `from`, `to` and `body`."
  def assert_chat(stanza, expected \\ []) do
    assert %Message{type: :chat} = stanza

    for {key, want} <- expected do
      case key do
        :body -> assert Message.body(stanza) == want
        :from -> assert stanza.from == jid(want)
        :to -> assert stanza.to == jid(want)
      end
    end

    stanza
  end

  @doc "The JID of a session, or the JID itself."
  def jid(%Session{jid: jid}), do: jid
  def jid(jid) when is_binary(jid), do: jid

  ## Events

  @doc """
  Asserts that the session reports an event matching `pattern` within
  `timeout` ms (other messages stay in the mailbox); binds its variables.
  """
  defmacro assert_event(session, pattern, timeout \\ 5_000) do
    id = Macro.var(:xmpp_case_id, __MODULE__)

    quote do
      unquote(id) = unquote(session).id

      ExUnit.Assertions.assert_receive(
        {:xmpp_bridge, ^unquote(id), unquote(pattern)},
        unquote(timeout)
      )
    end
  end

  @doc "Asserts that no event matching `pattern` arrives within `timeout` ms."
  defmacro refute_event(session, pattern, timeout \\ 100) do
    id = Macro.var(:xmpp_case_id, __MODULE__)

    quote do
      unquote(id) = unquote(session).id

      ExUnit.Assertions.refute_receive(
        {:xmpp_bridge, ^unquote(id), unquote(pattern)},
        unquote(timeout)
      )
    end
  end

  @doc """
  Sends each stanza `make.(i)` for `i` in `range`, in order, riding out
  backpressure: on `:queue_full` it takes the events that arrived (acks),
  and retries. Returns a tally, `%{sent: %{seq => i}, queue_full: n, acked:
  MapSet, failed: MapSet}`, with the acks and failures seen so far; pass it
  back in to go on.
  """
  def send_all(%Session{} = session, range, make, tally \\ new_tally()) do
    Enum.reduce(range, tally, fn i, tally -> send_one(session, i, make.(i), tally) end)
  end

  def new_tally, do: %{sent: %{}, queue_full: 0, acked: MapSet.new(), failed: MapSet.new()}

  @doc "The sequence numbers of the stanzas a tally sent."
  def sent_seqs(tally), do: MapSet.new(Map.keys(tally.sent))

  defp send_one(%Session{conn: conn} = session, i, stanza, tally) do
    case Connection.send(conn, stanza) do
      {:ok, seq} ->
        %{tally | sent: Map.put(tally.sent, seq, i)}

      {:error, %XmppBridge.Error{reason: :queue_full}} ->
        tally = take_delivery_events(session, %{tally | queue_full: tally.queue_full + 1}, 1)
        send_one(session, i, stanza, tally)

      {:error, error} ->
        flunk("send failed: #{Exception.message(error)}")
    end
  end

  @doc """
  Takes the `{:acked, _}` and `{:failed, _, _}` events of the session until
  every stanza the tally sent is accounted for, or `timeout` ms pass without
  a new event. Returns the tally.
  """
  def await_delivery(%Session{} = session, tally, timeout \\ 10_000) do
    if MapSet.size(tally.acked) + MapSet.size(tally.failed) >= map_size(tally.sent) do
      tally
    else
      next = take_delivery_events(session, tally, timeout)

      if next == tally,
        do: tally,
        else: await_delivery(session, next, timeout)
    end
  end

  # Waits up to `timeout` ms for one delivery event, then takes those
  # already there.
  defp take_delivery_events(%Session{id: id} = session, tally, timeout) do
    receive do
      {:xmpp_bridge, ^id, {:acked, seqs}} ->
        take_delivery_events(
          session,
          %{tally | acked: MapSet.union(tally.acked, MapSet.new(seqs))},
          0
        )

      {:xmpp_bridge, ^id, {:failed, seqs, _reason}} ->
        take_delivery_events(
          session,
          %{tally | failed: MapSet.union(tally.failed, MapSet.new(seqs))},
          0
        )
    after
      timeout -> tally
    end
  end

  @doc """
  Starts a process that opens a session for `user`, tells the caller its
  JID, then collects the bodies of `count` chat messages (presences and
  other stanzas ignored) and sends them, in arrival order, as `{ref, :bodies,
  bodies, elapsed_native}` (elapsed since the first one). Gives up after
  `idle` ms without a message. Returns `{ref, jid}`.
  """
  def start_receiver(%TestServer{} = server, user, count, opts \\ [], idle \\ 15_000) do
    parent = self()
    ref = make_ref()

    spawn_link(fn ->
      session = open_session(server, user, opts)
      send(parent, {ref, :ready, session.jid})
      {bodies, elapsed} = collect_bodies(session.conn, count, idle, [], nil)
      send(parent, {ref, :bodies, bodies, elapsed})
      receive do: (:stop -> :ok)
    end)

    receive do
      {^ref, :ready, jid} -> {ref, jid}
    after
      @online_timeout + 1_000 -> flunk("the receiver #{user} did not come online")
    end
  end

  defp collect_bodies(_conn, 0, _idle, acc, t0),
    do: {Enum.reverse(acc), System.monotonic_time() - (t0 || System.monotonic_time())}

  defp collect_bodies(%Connection{id: id} = conn, left, idle, acc, t0) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{type: :chat} = msg}} ->
        collect_bodies(
          conn,
          left - 1,
          idle,
          [Message.body(msg) | acc],
          t0 || System.monotonic_time()
        )

      {:xmpp_bridge, ^id, :passive} ->
        rearm(conn)
        collect_bodies(conn, left, idle, acc, t0)

      {:xmpp_bridge, ^id, _other} ->
        collect_bodies(conn, left, idle, acc, t0)
    after
      idle -> {Enum.reverse(acc), System.monotonic_time() - (t0 || System.monotonic_time())}
    end
  end

  @doc "Waits for what `start_receiver/5` collected: `{bodies, elapsed_native}`."
  def await_receiver({ref, _jid}, timeout \\ 60_000) do
    receive do
      {^ref, :bodies, bodies, elapsed} -> {bodies, elapsed}
    after
      timeout -> flunk("the receiver did not report within #{timeout} ms")
    end
  end

  @doc """
  Asserts that `bodies` are `prefix <> "1"` .. `prefix <> "count"`, in this
  order; names the first one out of place.
  """
  def assert_in_order(bodies, prefix, count) do
    expected = Enum.map(1..count, &"#{prefix}#{&1}")

    case Enum.find_index(Enum.zip(bodies, expected), fn {got, want} -> got != want end) do
      nil ->
        assert length(bodies) == count

      i ->
        flunk(
          "message #{i + 1} out of order: got #{inspect(Enum.at(bodies, i))}, " <>
            "expected #{inspect(Enum.at(expected, i))}; around it: " <>
            inspect(Enum.slice(bodies, max(i - 3, 0), 7))
        )
    end
  end

  @doc """
  Takes the session's lifecycle events (`:online`, `:disconnected`,
  `:reconnecting`, `:closed`) in the order they came, until one for which
  `done?` is true; returns them all. Flunks after `timeout` ms.

  Stanzas stay in the mailbox, but a `:passive` notice is answered with more
  credit: a passive session reads nothing, so it would not notice a lost
  connection, and the lifecycle event waited for would never come.
  """
  def await_lifecycle(%Session{conn: conn}, done?, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    take_lifecycle(conn, done?, deadline, [])
  end

  defp take_lifecycle(%Connection{id: id} = conn, done?, deadline, acc) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:xmpp_bridge, ^id, {tag, _} = event}
      when tag in [:online, :disconnected, :reconnecting, :closed] ->
        if done?.(event),
          do: Enum.reverse([event | acc]),
          else: take_lifecycle(conn, done?, deadline, [event | acc])

      {:xmpp_bridge, ^id, :passive} ->
        rearm(conn)
        take_lifecycle(conn, done?, deadline, acc)
    after
      left -> flunk("lifecycle so far: #{inspect(Enum.reverse(acc))}; #{mailbox_summary(id)}")
    end
  end

  @doc "Takes the bodies of the chat messages the session received, until `idle` ms pass without one."
  def drain_bodies(%Session{conn: conn}, idle), do: drain_bodies(conn, idle, [])

  defp drain_bodies(%Connection{id: id} = conn, idle, acc) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{type: :chat} = msg}} ->
        drain_bodies(conn, idle, [Message.body(msg) | acc])

      {:xmpp_bridge, ^id, :passive} ->
        rearm(conn)
        drain_bodies(conn, idle, acc)
    after
      idle -> Enum.reverse(acc)
    end
  end

  @doc """
  Grants a session that went passive its next 1000 stanzas (the default
  `:active`): what an owner that keeps up with a burst does.
  """
  def rearm(%Connection{} = conn), do: :ok = Connection.set_active(conn, 1000)

  @doc "The messages waiting in the caller's mailbox (left there)."
  def mailbox do
    {:messages, messages} = Process.info(self(), :messages)
    messages
  end

  ## Misc

  @doc "Polls `fun` every `every` ms until it returns a truthy value or `timeout` ms pass; returns the last value."
  def eventually(fun, timeout \\ 10_000, every \\ 20) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline, every)
  end

  defp poll(fun, deadline, every) do
    value = fun.()

    if value || System.monotonic_time(:millisecond) >= deadline do
      value
    else
      Process.sleep(every)
      poll(fun, deadline, every)
    end
  end

  @doc """
  Ends the process of MUC room `name` on ejabberd `server` without a word
  to its occupants (as when the server node hosting it dies in a
  cluster), and waits until the server no longer knows the room.
  """
  def vanish_room(%TestServer{kind: :ejabberd} = server, name, service \\ "conference.localhost") do
    room = ~s|mod_muc:find_online_room(<<"#{name}">>, <<"#{service}">>)|

    assert {:ok, :killed} =
             XmppTestServer.Ejabberd.eval(server, "{ok, P} = #{room}, exit(P, kill), killed")

    gone = fn ->
      XmppTestServer.Ejabberd.eval(server, "case #{room} of error -> gone; _ -> there end")
    end

    assert eventually(fn -> gone.() == {:ok, :gone} end, 5_000, 50), "room #{name} still there"
    :ok
  end

  @doc """
  Option `option` of MUC room `name` on ejabberd `server`, as
  `mod_muc_admin:get_room_options/2` prints it (`"anonymous"` -> `"true"`
  or `"false"`); nil when the room does not exist.
  """
  def room_option(
        %TestServer{kind: :ejabberd} = server,
        name,
        option,
        service \\ "conference.localhost"
      ) do
    {:ok, options} =
      XmppTestServer.Ejabberd.rpc(server, :mod_muc_admin, :get_room_options, [name, service])

    Enum.find_value(options, fn {k, v} -> if k == option, do: v end)
  end

  @doc "Milliseconds from native time units."
  def ms(native), do: System.convert_time_unit(native, :native, :microsecond) / 1000

  @doc "Prints a figure for the lead's report, tagged with the server kind."
  def report(%TestServer{kind: kind}, what, text), do: IO.puts("\n[#{kind}] #{what}: #{text}")

  # What waits in the mailbox for session `id`, for failure messages.
  defp mailbox_summary(id) do
    {:messages, messages} = Process.info(self(), :messages)
    mine = for {:xmpp_bridge, ^id, event} <- messages, do: event
    "#{length(mine)} events of this session waiting: #{inspect(Enum.take(mine, 5), limit: 12)}"
  end
end
