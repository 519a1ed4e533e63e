defmodule XmppBridge.ConnectionTest do
  # XmppBridge.Connection against ejabberd: the client suite shared with
  # Prosody (test/support/connection_cases.ex), plus the owner-death story.
  use XmppBridge.Test.ConnectionCases, server: :ejabberd

  @cycles 10_000
  # Sessions allowed in flight at once: the loop waits below this, as a
  # pool would, so that the server is never asked to take thousands of
  # connections at the same instant. Reported, so a slowdown shows.
  @in_flight 500

  describe "owner death" do
    test "#{@cycles} sessions whose owner is killed are all freed, and memory stays flat",
         %{server: server} do
      opts = session_opts(server, "alice")

      # Sessions of the stories before may still be closing.
      assert eventually(fn -> Connection.count() == 0 end, 10_000)

      # Warm up (allocators, the runtime's threads), then measure.
      open_and_kill_many(opts, 200, 0)
      assert eventually(fn -> Connection.count() == 0 end, 30_000)

      before = Connection.count()
      :erlang.garbage_collect()
      memory_before = :erlang.memory(:total)
      rss_before = rss_kb()
      started = System.monotonic_time()

      {most_live, paced} = open_and_kill_many(opts, @cycles, before)
      looped = System.monotonic_time()

      assert eventually(fn -> Connection.count() == before end, 60_000),
             "#{Connection.count() - before} sessions still held after 60 s"

      freed = System.monotonic_time()
      after_count = Connection.count()
      :erlang.garbage_collect()
      memory_delta = :erlang.memory(:total) - memory_before
      rss_delta = rss_kb() - rss_before
      total = ms(freed - started)

      assert abs(memory_delta) < 16 * 1024 * 1024,
             "BEAM memory moved by #{div(memory_delta, 1024)} KB"

      assert rss_delta < 64 * 1024, "the VM's RSS grew by #{rss_delta} KB"

      # The account is still usable: nothing the dead sessions left blocks it.
      alice = open_session(server, "alice")
      assert {:ok, %Iq{type: :result}} = Connection.iq(alice.conn, ping(server.domain))
      close_session(alice)

      report(
        server,
        "owner death",
        "#{@cycles} open/kill cycles in #{round(total)} ms " <>
          "(#{round(@cycles / total * 1000)} cycles/s; loop #{round(ms(looped - started))} ms, " <>
          "all freed #{round(ms(freed - looped))} ms later); at most #{most_live} sessions live, " <>
          "#{paced} waits for the in-flight cap of #{@in_flight}; " <>
          "count #{before} -> #{after_count}; BEAM memory #{signed_kb(memory_delta)} KB, " <>
          "RSS #{signed_kb(rss_delta * 1024)} KB"
      )
    end

    test "sessions that are online when their owner dies end their streams: the server sees them go",
         %{server: server} do
      n = 200
      parent = self()
      # Without initial presence: 200 available resources of one account
      # make ejabberd broadcast 200 x 200 presences, and under that load it
      # takes seconds to read the streams' closing tags.
      opts = session_opts(server, "alice", initial_presence: false)
      # The sessions of the stories before close as their owners exit.
      assert eventually(fn -> server_sessions(server) == 0 end, 15_000),
             "#{server_sessions(server)} sessions of earlier stories are still on the server: " <>
               inspect(XmppTestServer.Ejabberd.rpc(server, :ejabberd_sm, :connected_users, []))

      started = System.monotonic_time()

      owners =
        for _ <- 1..n do
          spawn(fn ->
            conn = Connection.open!(opts)
            id = conn.id

            receive do
              {:xmpp_bridge, ^id, {:online, _}} -> send(parent, {:online, self()})
            end

            Process.sleep(:infinity)
          end)
        end

      for owner <- owners do
        assert_receive {:online, ^owner}, 30_000
      end

      online = System.monotonic_time()
      assert server_sessions(server) == n

      Enum.each(owners, &Process.exit(&1, :kill))
      assert eventually(fn -> Connection.count() == 0 end, 10_000)
      assert eventually(fn -> server_sessions(server) == 0 end, 10_000)
      gone = System.monotonic_time()

      report(
        server,
        "owner death when online",
        "#{n} sessions online in #{round(ms(online - started))} ms; " <>
          "their owners killed, the server had none left #{round(ms(gone - online))} ms later"
      )
    end
  end

  # ejabberd's own count of c2s sessions.
  defp server_sessions(server) do
    {:ok, n} = XmppTestServer.Ejabberd.rpc(server, :ejabberd_sm, :connected_users_number, [])

    n
  end

  # Each cycle: a process opens a session (it may not even be connected
  # yet), says so, and is killed. It must not hand the %Connection{} back:
  # a copy in our heap would keep the resource alive.
  defp open_and_kill_many(opts, cycles, before) do
    Enum.reduce(1..cycles, {0, 0}, fn _, {most, paced} ->
      parent = self()

      pid =
        spawn(fn ->
          {:ok, _conn} = Connection.open(opts)
          send(parent, {:opened, self()})
          Process.sleep(:infinity)
        end)

      receive do
        {:opened, ^pid} -> :ok
      after
        5_000 -> flunk("Connection.open/1 did not return within 5 s")
      end

      Process.exit(pid, :kill)
      live = Connection.count() - before

      paced =
        if live >= @in_flight do
          assert eventually(fn -> Connection.count() - before < @in_flight end, 30_000)
          paced + 1
        else
          paced
        end

      {max(most, live), paced}
    end)
  end

  defp rss_kb do
    "/proc/self/status"
    |> File.read!()
    |> then(&Regex.run(~r/VmRSS:\s+(\d+) kB/, &1, capture: :all_but_first))
    |> hd()
    |> String.to_integer()
  end

  defp signed_kb(bytes) when bytes >= 0, do: "+#{div(bytes, 1024)}"
  defp signed_kb(bytes), do: "-#{div(-bytes, 1024)}"
end
