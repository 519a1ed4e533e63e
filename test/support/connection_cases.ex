defmodule XmppBridge.Test.ConnectionCases do
  @moduledoc false
  # The client suite of XmppBridge.Connection against a real server, shared
  # by the ejabberd and Prosody test modules:
  #
  #     use XmppBridge.Test.ConnectionCases, server: :prosody
  #
  # Options: `:server` (`:ejabberd` or `:prosody`, required), `:burst` (size
  # of the message burst, default 20,000), `:kill_burst` (messages sent
  # while the server is killed, default 5,000).
  #
  # The using module gets its own server, started in setup_all and stopped
  # in on_exit, and `%{server: server}` in each test's context. Each story
  # uses its own accounts, so that nothing one leaves behind (offline
  # messages after the kill -9, say) reaches another.
  #
  # Modules are not async: the figures they print (throughput, times) are
  # measured without other suites competing for the two cores, and the
  # owner-death story counts every session of the VM.

  @accounts ~w(alice bob carol dave erin frank ivan judy kate leo oscar peggy)

  def accounts, do: Enum.map(@accounts, &{&1, "#{&1}-pw"})

  defmacro __using__(opts) do
    quote location: :keep, bind_quoted: [opts: opts] do
      use ExUnit.Case, async: false

      import XmppBridge.Test.XmppCase

      alias XmppBridge.{Connection, Error, Iq, Message, StanzaError}
      alias XmppTestServer, as: TestServer

      @moduletag :integration
      @moduletag timeout: 180_000

      @server Keyword.fetch!(opts, :server)
      @burst Keyword.get(opts, :burst, 20_000)
      @kill_burst Keyword.get(opts, :kill_burst, 5_000)

      # A query nobody answers by itself: the owner of the session sees it.
      @version_ns "jabber:iq:version"

      setup_all do
        {:ok, server} =
          TestServer.start(@server, accounts: XmppBridge.Test.ConnectionCases.accounts())

        report(server, "server", "started in #{server.started_in_ms} ms")
        on_exit(fn -> TestServer.stop(server) end)
        %{server: server}
      end

      # A story that kills the server brings it back even when it fails, so
      # that the next ones find it running.
      defp restart_on_exit(server) do
        on_exit(fn ->
          unless TestServer.alive?(server), do: {:ok, _} = TestServer.restart(server)
        end)
      end

      defp version_query(to),
        do: Iq.get(jid(to), {:xmlel, "query", [{"xmlns", @version_ns}], []})

      defp version_answer(request) do
        name = {:xmlel, "name", [], [{:xmlcdata, "xmpp_bridge test"}]}
        Iq.result(request, {:xmlel, "query", [{"xmlns", @version_ns}], [name]})
      end

      describe "two sessions owned by BEAM processes" do
        test "alice and bob chat, and bob's session answers alice's ping by itself",
             %{server: server} do
          alice = open_session(server, "alice")
          bob = open_session(server, "bob")

          send_stanza(alice, chat_to(bob, "Hi Bob!"))
          assert_chat(wait_for_stanza(bob), from: alice, to: bob, body: "Hi Bob!")

          send_stanza(bob, chat_to(alice, "Hi Alice."))
          assert_chat(wait_for_stanza(alice), from: bob, to: alice, body: "Hi Alice.")

          assert {:ok, %Iq{type: :result} = pong} = Connection.iq(alice.conn, ping(bob))
          assert pong.from == bob.jid
          # ... without bob's owner seeing the ping
          refute_event(bob, {:stanza, %Iq{}})
        end

        test "the pongs bob's session sends by itself count for XEP-0198: sends around them are acked, the stream stays up",
             %{server: server} do
          alice = open_session(server, "alice")
          bob = open_session(server, "bob")

          # Each round bob sends a message (asking for an ack a few ms later)
          # while alice's ping reaches him: the server's count then includes
          # bob's pong. A session that did not count its own answers took
          # that count for a protocol error and dropped the connection.
          tally =
            Enum.reduce(1..20, new_tally(), fn i, tally ->
              tally = send_all(bob, [i], &chat_to(alice, "round #{&1}"), tally)
              assert {:ok, %Iq{type: :result}} = Connection.iq(alice.conn, ping(bob))
              tally
            end)

          tally = await_delivery(bob, tally)
          assert MapSet.equal?(tally.acked, sent_seqs(tally)), "not all of bob's sends were acked"
          assert MapSet.size(tally.failed) == 0
          refute_event(bob, {:disconnected, _})
        end

        test "an IQ that bob's owner answers is the result of alice's iq/3",
             %{server: server} do
          alice = open_session(server, "alice")
          bob = open_session(server, "bob")

          asking = Task.async(fn -> Connection.iq(alice.conn, version_query(bob)) end)

          assert %Iq{type: :get, from: from} = request = wait_for_iq_request(bob)
          assert from == alice.jid
          send_stanza(bob, version_answer(request))

          assert {:ok, %Iq{type: :result, id: id, payload: {:xmlel, "query", _, [name]}}} =
                   Task.await(asking)

          assert id == request.id
          assert name == {:xmlel, "name", [], [{:xmlcdata, "xmpp_bridge test"}]}
        end

        test "an IQ to a resource that does not exist returns the server's error",
             %{server: server} do
          alice = open_session(server, "alice")
          nowhere = TestServer.jid(server, "bob") <> "/nowhere"

          assert {:error, %Error{reason: {:iq_error, %Iq{type: :error} = answer}}} =
                   Connection.iq(alice.conn, ping(nowhere))

          assert answer.from == nowhere
          assert %StanzaError{condition: :service_unavailable} = answer.error
        end

        test "an unanswered IQ times out, and its late answer finds no waiter",
             %{server: server} do
          alice = open_session(server, "alice")
          bob = open_session(server, "bob")
          rounds = 20

          started = System.monotonic_time()

          for _ <- 1..rounds do
            assert {:error, %Error{reason: :timeout}} =
                     Connection.iq(alice.conn, version_query(bob), 50)
          end

          took = ms(System.monotonic_time() - started)
          assert took >= rounds * 50

          # bob's owner answers every one of them, too late
          requests = for _ <- 1..rounds, do: wait_for_iq_request(bob)
          assert Enum.all?(requests, &match?(%Iq{type: :get}, &1))
          Enum.each(requests, &send_stanza(bob, version_answer(&1)))

          refute_receive {:xmpp_bridge_iq, _, _}, 500

          # A late answer is an ordinary stanza for alice's owner now.
          ids = MapSet.new(requests, & &1.id)

          late =
            for {:xmpp_bridge, id, {:stanza, %Iq{type: :result} = iq}} <- mailbox(),
                id == alice.id and MapSet.member?(ids, iq.id),
                do: iq

          report(
            server,
            "iq timeout",
            "#{rounds} IQs timed out after 50 ms each (#{round(took)} ms in all); " <>
              "no late answer reached a waiter; #{length(late)} of #{rounds} late answers " <>
              "arrived in the owner's mailbox as {:stanza, %Iq{type: :result}}"
          )
        end
      end

      describe "delivery" do
        test "a #{@burst}-message burst arrives complete and in order, and every send is acked",
             %{server: server} do
          dave = start_receiver(server, "dave", @burst)
          {_, dave_jid} = dave
          carol = open_session(server, "carol")

          started = System.monotonic_time()
          tally = send_all(carol, 1..@burst, &chat_to(dave_jid, "burst #{&1}"))
          queued = System.monotonic_time()
          {bodies, _} = await_receiver(dave)
          received = System.monotonic_time()
          tally = await_delivery(carol, tally)
          confirmed = System.monotonic_time()

          assert length(bodies) == @burst, "dave received #{length(bodies)} of #{@burst}"
          assert_in_order(bodies, "burst ", @burst)

          assert MapSet.size(tally.failed) == 0
          assert MapSet.equal?(tally.acked, sent_seqs(tally))
          assert map_size(tally.sent) == @burst

          total = ms(received - started)

          report(
            server,
            "burst",
            "#{@burst} messages carol->dave complete and in order in #{round(total)} ms " <>
              "(#{round(@burst / total * 1000)} msg/s; sends queued in #{round(ms(queued - started))} ms, " <>
              "#{tally.queue_full} :queue_full retries); " <>
              "#{MapSet.size(tally.acked)} acked, 0 failed, last ack after #{round(ms(confirmed - started))} ms"
          )
        end

        test "a tiny queue_limit pushes back on a fast sender, and nothing is lost",
             %{server: server} do
          count = 3_000
          judy = start_receiver(server, "judy", count)
          {_, judy_jid} = judy
          ivan = open_session(server, "ivan", queue_limit: 10)

          # 4 KB of padding each: far more than the session may hold unwritten
          # (1 MB), so the queue fills even when the writer keeps up.
          pad =
            {:xmlel, "pad", [{"xmlns", "urn:xmpp-bridge:test"}],
             [{:xmlcdata, String.duplicate("x", 4096)}]}

          tally = send_all(ivan, 1..count, &chat_to(judy_jid, "pushed #{&1}", payloads: [pad]))
          {bodies, _} = await_receiver(judy)
          tally = await_delivery(ivan, tally)

          assert tally.queue_full > 0, "the queue of 10 never filled"
          assert length(bodies) == count
          assert_in_order(bodies, "pushed ", count)
          assert MapSet.size(tally.failed) == 0
          assert MapSet.equal?(tally.acked, sent_seqs(tally))

          report(
            server,
            "queue_limit 10",
            "#{tally.queue_full} :queue_full answers while sending #{count}; " <>
              "all #{count} received in order and acked"
          )
        end
      end

      describe "closing" do
        test "what the owner received just before close/1 is acked: no bounce to the sender, nothing comes again",
             %{server: server} do
          kate = open_session(server, "kate")
          leo = open_session(server, "leo")

          for i <- 1..50, do: send_stanza(kate, chat_to(leo, "just before close #{i}"))
          for i <- 1..50, do: assert_chat(wait_for_stanza(leo), body: "just before close #{i}")
          close_session(leo)

          # What the server still counts as unacked when the stream closes,
          # ejabberd bounces to the sender and Prosody puts in offline storage.
          refute_event(kate, {:stanza, %Message{type: :error}}, 1_000)
          leo = open_session(server, "leo")
          refute_event(leo, {:stanza, %Message{}}, 1_000)
        end
      end

      describe "a server killed with SIGKILL" do
        test "every stanza sent across the kill is acked or reported failed, and both sessions come back",
             %{server: server} do
          restart_on_exit(server)
          reconnect = [initial: 100, max: 1_000]
          frank = open_session(server, "frank", reconnect: reconnect)
          erin = open_session(server, "erin", reconnect: reconnect)
          n = @kill_burst
          chunk = 100
          kill_after = div(div(n, chunk) * 3, 10)

          # erin sends in chunks, a little apart, and the server is killed
          # after the first 30% while she goes on sending.
          {tally, killer} =
            1..n
            |> Enum.chunk_every(chunk)
            |> Enum.with_index()
            |> Enum.reduce({new_tally(), nil}, fn {numbers, i}, {tally, killer} ->
              killer =
                if i == kill_after,
                  do: Task.async(fn -> TestServer.kill(server) end),
                  else: killer

              tally = send_all(erin, numbers, &chat_to(frank, "across #{&1}"), tally)
              Process.sleep(2)
              {tally, killer}
            end)

          assert :ok = Task.await(killer)
          refute TestServer.alive?(server)
          assert {:ok, _} = TestServer.restart(server)

          for session <- [erin, frank] do
            events = await_lifecycle(session, &match?({:online, _}, &1), 30_000)
            assert [{:disconnected, _} | _] = events
            assert {:online, %{resumed: false}} = List.last(events)
            assert Enum.any?(events, &match?({:reconnecting, %{attempt: _}}, &1))
          end

          tally = await_delivery(erin, tally, 20_000)
          sent = map_size(tally.sent)
          acked = MapSet.size(tally.acked)
          failed = MapSet.size(tally.failed)

          assert sent == n
          assert MapSet.disjoint?(tally.acked, tally.failed)

          assert acked + failed == sent,
                 "#{sent - acked - failed} stanzas neither acked nor failed"

          assert MapSet.equal?(MapSet.union(tally.acked, tally.failed), sent_seqs(tally))

          # What frank got, for the record: the server acks a stanza once it
          # has taken it, so an acked one may still die with the server, and
          # one reported failed may have got through before the crash.
          bodies = drain_bodies(frank, 2_000)
          delivered = MapSet.new(bodies)
          numbers = fn seqs -> MapSet.new(seqs, &"across #{tally.sent[&1]}") end
          acked_lost = MapSet.size(MapSet.difference(numbers.(tally.acked), delivered))
          failed_delivered = MapSet.size(MapSet.intersection(numbers.(tally.failed), delivered))

          report(
            server,
            "kill -9",
            "erin sent #{sent} (the kill started after #{kill_after * chunk}): " <>
              "#{acked} acked + #{failed} failed = #{acked + failed}; frank received " <>
              "#{length(bodies)} (#{MapSet.size(delivered)} distinct): " <>
              "#{acked_lost} acked ones never reached him, #{failed_delivered} reported " <>
              "failed did"
          )
        end
      end

      describe "JIDs with an emoji resource" do
        # RFC 7622 lets a resource carry emoji; servers that still use RFC
        # 6122's stringprep see it otherwise. What each server does is
        # pinned below (so that a change shows), and so is what the library
        # must do whatever the server does: report the outcome, lose nothing
        # silently, decode what arrives (emoji JIDs included) to typed structs.
        test "binding one, and a message to one, through the server", %{server: server} do
          resource = "📱 Phone"
          opts = session_opts(server, "oscar", resource: resource, reconnect: false)
          conn = Connection.open!(opts)
          id = conn.id

          bound =
            receive do
              {:xmpp_bridge, ^id, {:online, %{jid: jid}}} -> {:online, jid}
              {:xmpp_bridge, ^id, {:closed, reason}} -> {:closed, reason}
            after
              10_000 -> flunk("neither online nor closed; #{inspect(mailbox())}")
            end

          report(server, "emoji resource", "bind #{inspect(resource)}: #{inspect(bound)}")

          case {server.kind, bound} do
            # ejabberd's resourceprep refuses the emoji: the bind fails.
            {:ejabberd, {:closed, reason}} ->
              assert reason == {:protocol_error, "request bind1 failed: bad-request"}

            # Prosody binds a resource of its own choosing instead.
            {:prosody, {:online, jid}} ->
              assert "oscar@localhost/" <> chosen = jid
              assert chosen != resource
              :ok = Connection.close(conn)

            other ->
              flunk("unexpected outcome for #{server.kind}: #{inspect(other)}")
          end

          # A message to an emoji resource of an account that is online.
          oscar = open_session(server, "oscar")
          peggy = open_session(server, "peggy")
          to = TestServer.jid(server, "oscar") <> "/" <> resource
          send_stanza(peggy, chat_to(to, "to an emoji resource"))

          seen =
            receive do
              {:xmpp_bridge, pid, {:stanza, %Message{} = m}} when pid == oscar.id ->
                {:oscar, m.to, m.type}

              {:xmpp_bridge, pid, {:stanza, %Message{} = m}} when pid == peggy.id ->
                {:peggy, m.from, m.type, m.error && m.error.condition}

              {:xmpp_bridge, _, {:invalid_stanza, reason, _}} ->
                {:invalid_stanza, reason}
            after
              5_000 -> :nothing
            end

          report(server, "emoji resource", "chat to #{inspect(to)}: #{inspect(seen)}")
          assert seen == expected_emoji_delivery(@server, to)
          close_session(oscar)
          close_session(peggy)
        end
      end

      # ejabberd bounces a message to a JID its stringprep refuses (bad-request,
      # from the emoji JID, which PRECIS reads); Prosody
      # hands it to the account's online resource (a message to an unknown
      # full JID goes to the bare JID, RFC 6121 §8.5.3.2.1).
      defp expected_emoji_delivery(:ejabberd, to), do: {:peggy, to, :error, :bad_request}
      defp expected_emoji_delivery(:prosody, to), do: {:oscar, to, :chat}

      describe "a server that is down" do
        test "send/2 accepts no more than queue_limit stanzas, and those are delivered once it is back",
             %{server: server} do
          restart_on_exit(server)
          limit = 100
          tries = 10_000

          ivan =
            open_session(server, "ivan", queue_limit: limit, reconnect: [initial: 100, max: 500])

          assert :ok = TestServer.kill(server)
          assert_event(ivan, {:disconnected, _}, 5_000)

          nobody = TestServer.jid(server, "nobody")

          results =
            for i <- 1..tries, do: Connection.send(ivan.conn, chat_to(nobody, "while down #{i}"))

          accepted = for {:ok, seq} <- results, do: seq
          full = Enum.count(results, &match?({:error, %Error{reason: :queue_full}}, &1))
          assert length(accepted) + full == tries

          assert {:ok, _} = TestServer.restart(server)
          assert_event(ivan, {:online, %{resumed: false}}, 30_000)

          tally =
            await_delivery(ivan, %{new_tally() | sent: Map.new(accepted, &{&1, &1})}, 20_000)

          acked = MapSet.size(tally.acked)
          failed = MapSet.size(tally.failed)

          report(
            server,
            "queue_limit #{limit} while down",
            "#{length(accepted)} of #{tries} sends accepted while the server was down " <>
              "(#{full} :queue_full); after the restart #{acked} acked + #{failed} failed"
          )

          assert acked + failed == length(accepted)

          assert length(accepted) <= limit,
                 "#{length(accepted)} stanzas accepted with queue_limit #{limit}"
        end
      end

      describe "security and errors" do
        test "STARTTLS with the run's CA gets online", %{server: server} do
          alice =
            open_session(server, "alice",
              tls: :starttls,
              port: server.ports.c2s_starttls,
              ca_file: server.ca_file
            )

          assert String.starts_with?(alice.jid, TestServer.jid(server, "alice") <> "/")
          assert {:ok, %Iq{type: :result}} = Connection.iq(alice.conn, ping(server.domain))
        end

        @tag :tmp_dir
        test "a server certificate from an unknown CA fails with a TLS error naming the issuer",
             %{server: server, tmp_dir: tmp_dir} do
          {:ok, stranger} = XmppTestServer.TLS.generate(tmp_dir, [server.domain], "stranger")

          # a CA that did not sign the certificate, and the bundled web roots
          for ca_file <- [stranger.ca_file, nil] do
            opts = [tls: :starttls, port: server.ports.c2s_starttls, ca_file: ca_file]
            session = %{id: Connection.open!(session_opts(server, "alice", opts)).id}

            assert_event(session, {:disconnected, {:tls_failed, detail}}, 5_000)
            assert detail =~ ~r/issuer/i
            assert_event(session, {:closed, {:tls_failed, ^detail}}, 1_000)
            refute_event(session, {:reconnecting, _}, 200)
          end
        end

        test "plaintext to a host that is not loopback is refused", %{server: server} do
          for host <- ["192.0.2.1", "example.com"] do
            case Connection.open(session_opts(server, "alice", host: host, tls: :plain)) do
              {:ok, conn} ->
                session = %{id: conn.id}
                assert_event(session, {:closed, {:bad_config, detail}}, 1_000)
                assert detail =~ "loopback"
                refute_event(session, {:online, _}, 100)

              {:error, %Error{reason: reason}} ->
                assert {:bad_config, _} = reason
            end
          end
        end

        test "a wrong password fails at once, with no reconnect attempt", %{server: server} do
          for opts <- [
                [],
                [tls: :starttls, port: server.ports.c2s_starttls, ca_file: server.ca_file]
              ] do
            started = System.monotonic_time()
            conn = Connection.open!(session_opts(server, "alice", [password: "wrong"] ++ opts))
            session = %{id: conn.id}

            assert_event(session, {:disconnected, {:auth_failed, condition}}, 5_000)
            assert_event(session, {:closed, {:auth_failed, ^condition}}, 1_000)
            took = ms(System.monotonic_time() - started)
            refute_event(session, {:reconnecting, _}, 300)
            assert took < 2_000

            report(
              server,
              "wrong password",
              "#{inspect(Keyword.get(opts, :tls, :plain))}: {:auth_failed, #{inspect(condition)}} " <>
                "and closed after #{round(took)} ms"
            )
          end
        end
      end

      describe "an external component (XEP-0114)" do
        test "routes messages for two addresses under its domain, both ways",
             %{server: server} do
          component = open_component(server)
          assert component.jid == server.component_domain
          kate = open_session(server, "kate")
          worker1 = "worker1@#{server.component_domain}"
          worker2 = "worker2@#{server.component_domain}"

          send_stanza(kate, chat_to(worker1, "job for worker 1"))
          send_stanza(kate, chat_to(worker2, "job for worker 2"))

          assert_chat(wait_for_stanza(component),
            from: kate,
            to: worker1,
            body: "job for worker 1"
          )

          assert_chat(wait_for_stanza(component),
            from: kate,
            to: worker2,
            body: "job for worker 2"
          )

          send_stanza(component, chat_to(kate, "done by worker 1", from: worker1))
          send_stanza(component, chat_to(kate, "done by worker 2", from: worker2))

          assert_chat(wait_for_stanza(kate), from: worker1, to: kate, body: "done by worker 1")
          assert_chat(wait_for_stanza(kate), from: worker2, to: kate, body: "done by worker 2")
        end
      end
    end
  end
end
