defmodule XmppBridge.AckQueueLimitTest do
  # A receiver under a burst, on an ejabberd whose XEP-0198 `max_ack_queue`
  # is small: the server closes a session that has more than that many
  # delivered stanzas unacknowledged, with
  # <stream:error><policy-violation/>"Too many unacked stanzas". During a
  # fast burst the receiver's c2s process has routed messages queued ahead
  # of the client's <a/>, so no client behaviour can always prevent it.
  # ejabberd's stock limit is 5000. Since sessions read a busy stream in
  # batches, a receiver with the default `:batch_delay` keeps up with a
  # 20,000-message burst and is not cut; finn plays a slow reader, with
  # `batch_delay: 1000` (his reads wait up to a second while the burst
  # lasts), so that the server's queue for him passes the limit.
  #
  # What the session must do: take the stream error as a reason to
  # reconnect (it is not a credential problem), come back online and go on
  # receiving. What ejabberd does with the stanzas is reported, not asserted:
  # it bounces the unacknowledged queue to the sender as errors, and part of
  # the burst reaches neither side within the test (offline storage for the
  # bare JID while the receiver is away).
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase

  alias XmppBridge.Message
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 180_000

  @burst 20_000
  @limit 5_000

  setup_all do
    {:ok, srv} =
      TestServer.start(:ejabberd,
        accounts: [{"erin", "erin-pw"}, {"finn", "finn-pw"}],
        max_ack_queue: @limit,
        log_level: "warning"
      )

    on_exit(fn -> TestServer.stop(srv) end)
    %{server: srv}
  end

  test "a receiver cut by the server's max_ack_queue reconnects by itself and receives again",
       %{server: server} do
    parent = self()

    # The receiver owns its session in its own process; it reports the
    # bodies and connection events of the burst, then whether a message
    # sent afterwards reaches it.
    receiver =
      spawn_link(fn ->
        finn =
          open_session(server, "finn", reconnect: [initial: 100, max: 500], batch_delay: 1000)

        send(parent, {:finn, finn.jid})
        send(parent, {:finn_burst, collect(finn.conn, @burst, [], [])})
        after_burst = collect_one(finn.conn, "after the burst")
        send(parent, {:finn_after, after_burst})
        receive do: (:stop -> :ok)
      end)

    finn_bare = "finn@localhost"

    receive do
      {:finn, _jid} -> :ok
    after
      15_000 -> flunk("finn did not come online")
    end

    # erin reads the bounces the cut produces (thousands) only at the end:
    # with the default credit her session would stop reading after 1000 of
    # them, and the server, blocked writing to her, would stop taking what
    # she sends. Her mailbox holds at most @burst of them: no limit needed.
    erin = open_session(server, "erin", active: true)
    tally = send_all(erin, 1..@burst, &chat_to(finn_bare, "b#{&1}"))

    {bodies, events} =
      receive do
        {:finn_burst, result} -> result
      after
        120_000 -> flunk("finn did not report")
      end

    tally = await_delivery(erin, tally)

    # The server sends the stream error and closes at once; when our <a/>s
    # are still unread on its side the close is a reset, which can discard
    # the error before finn's session reads it.
    cut? =
      Enum.any?(events, fn
        {:disconnected, {:stream_error, {"policy-violation", _}}} -> true
        {:disconnected, {:io_error, "Connection reset by peer" <> _}} -> true
        _ -> false
      end)

    assert cut?, "the server never cut finn: #{inspect(Enum.take(events, 5))}"
    assert Enum.any?(events, &match?({:online, _}, &1)), "finn did not come back online"
    refute Enum.any?(events, &match?({:closed, _}, &1)), "finn's session ended"

    # Back online, finn gets what is sent now.
    send_stanza(erin, chat_to(finn_bare, "after the burst"))

    assert_receive {:finn_after, :received}, 15_000
    send(receiver, :stop)

    # Every send was accounted for by the server (acked), bounces aside.
    assert MapSet.size(tally.acked) + MapSet.size(tally.failed) == @burst
    bounced = bounced_bodies(erin.conn, [])
    distinct = MapSet.new(bodies)

    report(
      server,
      "max_ack_queue #{@limit}",
      "#{@burst} messages erin->finn: finn cut (policy-violation or reset) " <>
        "#{Enum.count(events, &match?({:disconnected, _}, &1))} time(s), reconnected each time; " <>
        "finn received #{MapSet.size(distinct)} distinct, erin got #{length(bounced)} bounced " <>
        "(#{Enum.count(bounced, &MapSet.member?(distinct, &1))} of them also received), " <>
        "#{@burst - MapSet.size(MapSet.union(distinct, MapSet.new(bounced)))} seen by neither " <>
        "within the test; #{MapSet.size(tally.acked)} acked by the server"
    )
  end

  # Bodies of chat messages in arrival order, and the other events; stops
  # after `left` bodies or 5 s without a body.
  defp collect(_conn, 0, bodies, events), do: {Enum.reverse(bodies), Enum.reverse(events)}

  defp collect(%{id: id} = conn, left, bodies, events) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{type: :chat} = m}} ->
        collect(conn, left - 1, [Message.body(m) | bodies], events)

      {:xmpp_bridge, ^id, {:stanza, _}} ->
        collect(conn, left, bodies, events)

      {:xmpp_bridge, ^id, :passive} ->
        rearm(conn)
        collect(conn, left, bodies, events)

      {:xmpp_bridge, ^id, ev} ->
        collect(conn, left, bodies, [ev | events])
    after
      5_000 -> {Enum.reverse(bodies), Enum.reverse(events)}
    end
  end

  defp collect_one(%{id: id} = conn, body) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{type: :chat} = m}} ->
        if Message.body(m) == body, do: :received, else: collect_one(conn, body)

      {:xmpp_bridge, ^id, :passive} ->
        rearm(conn)
        collect_one(conn, body)

      {:xmpp_bridge, ^id, _} ->
        collect_one(conn, body)
    after
      10_000 -> :not_received
    end
  end

  defp bounced_bodies(%{id: id} = conn, acc) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{type: :error} = m}} ->
        bounced_bodies(conn, [Message.body(m) | acc])

      {:xmpp_bridge, ^id, :passive} ->
        rearm(conn)
        bounced_bodies(conn, acc)
    after
      1_000 -> acc
    end
  end
end
