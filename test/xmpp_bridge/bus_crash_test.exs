defmodule XmppBridge.BusCrashTest do
  # Confirmed delivery across server crashes: a BEAM node sends confirmed
  # terms to a Rust node (an OS process) while the private ejabberd is
  # killed with SIGKILL and restarted. Every ref must end delivered or
  # failed; the Rust node must see each term at most once, and with retries
  # exactly once.
  use ExUnit.Case, async: false

  import XmppBridge.Test.XmppCase

  alias XmppBridge.Bus
  alias XmppBridge.Test.RustPeer
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 600_000

  setup_all do
    RustPeer.build!()
    :ok
  end

  setup do
    server = TestServer.start!(:ejabberd, accounts: ["sender", "sink"])
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  defp start_bus(server, user, opts) do
    opts =
      session_opts(server, user)
      |> Keyword.merge(receiver: self(), reconnect: [initial: 200, max: 1000])
      |> Keyword.merge(opts)

    {:ok, bus} = Bus.start_link(opts)
    :ok = Bus.await_online(bus, 20_000)
    bus
  end

  # Sends {:n, i} for i in 1..count from a process of its own, waiting a
  # little whenever the session's queue is full; tells `test` each ref and
  # when it reached `kill_at` terms.
  defp start_sender(bus, rust_jid, count, send_opts, kill_points) do
    test = self()

    spawn_link(fn ->
      for i <- 1..count do
        if i in kill_points, do: Kernel.send(test, {:sent_so_far, i})
        ref = send_retrying(bus, rust_jid, i, send_opts)
        Kernel.send(test, {:ref, ref, i})
      end

      Kernel.send(test, :all_sent)
      # Outcomes go to this process (it called send): pass them on.
      relay(test)
    end)
  end

  defp send_retrying(bus, to, i, opts) do
    case Bus.send(bus, to, {:n, i}, opts) do
      {:ok, ref} ->
        ref

      {:error, %XmppBridge.Error{reason: :queue_full}} ->
        Process.sleep(20)
        send_retrying(bus, to, i, opts)
    end
  end

  defp relay(test) do
    receive do
      msg ->
        Kernel.send(test, msg)
        relay(test)
    end
  end

  defp kill_and_restart(server) do
    :ok = TestServer.kill(server)
    Process.sleep(500)
    {:ok, server} = TestServer.restart(server)
    server
  end

  # Waits for the outcome of every ref, while taking the sink's events.
  defp await_outcomes(refs, outcomes, seen, rust, deadline) do
    if map_size(outcomes) == map_size(refs) and map_size(refs) > 0 do
      {outcomes, seen}
    else
      if System.monotonic_time(:millisecond) > deadline do
        flunk("#{map_size(refs) - map_size(outcomes)} refs never ended (of #{map_size(refs)})")
      end

      receive do
        {:ref, ref, i} ->
          await_outcomes(Map.put(refs, ref, i), outcomes, seen, rust, deadline)

        {:xmpp_bridge_bus, :delivered, ref, _} ->
          await_outcomes(refs, Map.put(outcomes, ref, :delivered), seen, rust, deadline)

        {:xmpp_bridge_bus, :failed, ref, reason} ->
          await_outcomes(refs, Map.put(outcomes, ref, {:failed, reason}), seen, rust, deadline)

        {port, {:data, {:eol, line}}} when port == rust.port ->
          await_outcomes(refs, outcomes, count_message(seen, line), rust, deadline)

        _other ->
          await_outcomes(refs, outcomes, seen, rust, deadline)
      after
        1000 -> await_outcomes(refs, outcomes, seen, rust, deadline)
      end
    end
  end

  defp count_message(seen, line) do
    case XmppBridge.Payload.Json.to_term(%XmppBridge.Payload.Json{json: line}) do
      {:ok, %{"event" => "message", "etf" => b64}} ->
        {:n, i} = RustPeer.term64(b64)
        Map.update(seen, i, 1, &(&1 + 1))

      _ ->
        seen
    end
  end

  # Events still in the sink's pipe after the last outcome.
  defp drain(rust, seen, idle) do
    receive do
      {port, {:data, {:eol, line}}} when port == rust.port ->
        drain(rust, count_message(seen, line), idle)
    after
      idle -> seen
    end
  end

  defp run(server, count, send_opts, kill_points) do
    bus = start_bus(server, "sender", retry_interval: 2000)
    rust = RustPeer.start(server, "sink", heartbeat: 5000, heartbeat_timeout: 5000)
    _sender = start_sender(bus, rust.jid, count, send_opts, kill_points)

    server =
      Enum.reduce(kill_points, server, fn point, server ->
        assert_receive {:sent_so_far, ^point}, 120_000
        kill_and_restart(server)
      end)

    deadline = System.monotonic_time(:millisecond) + 240_000
    {outcomes, seen} = await_outcomes(%{}, %{}, %{}, rust, deadline)
    seen = drain(rust, seen, 2000)
    RustPeer.stop(rust)
    Bus.stop(bus)
    {server, outcomes, seen}
  end

  test "20,000 confirmed terms with retries, server killed -9 twice: each arrives exactly once",
       %{server: server} do
    count = 20_000

    {server, outcomes, seen} =
      run(server, count, [delivery: :confirmed, retry: true, deadline: 180_000], [5_000, 12_000])

    delivered = Enum.count(outcomes, fn {_, o} -> o == :delivered end)
    failed = Enum.count(outcomes, fn {_, o} -> o != :delivered end)
    dups = Enum.count(seen, fn {_, n} -> n > 1 end)
    missing = count - map_size(seen)

    report(
      server,
      "bus crash",
      "#{count} confirmed terms with retries, ejabberd SIGKILLed twice: #{delivered} delivered, " <>
        "#{failed} failed; the Rust node saw #{map_size(seen)} distinct terms, #{dups} more than once, #{missing} never"
    )

    assert map_size(outcomes) == count
    assert dups == 0
    assert delivered == count
    assert missing == 0
  end

  test "5,000 confirmed terms without retries, server killed -9: every ref ends, at most once",
       %{server: server} do
    count = 5_000

    {server, outcomes, seen} =
      run(server, count, [delivery: :confirmed, deadline: 30_000], [2_000])

    delivered = Enum.count(outcomes, fn {_, o} -> o == :delivered end)
    failed = count - delivered
    dups = Enum.count(seen, fn {_, n} -> n > 1 end)

    report(
      server,
      "bus crash",
      "#{count} confirmed terms without retries, ejabberd SIGKILLed once: #{delivered} delivered, " <>
        "#{failed} failed; the Rust node saw #{map_size(seen)} distinct terms, #{dups} more than once"
    )

    assert map_size(outcomes) == count
    assert dups == 0
    # What the receiver saw and what was confirmed agree: a delivered ref
    # was seen; a term seen but reported failed lost only its receipt.
    assert map_size(seen) >= delivered
  end
end
