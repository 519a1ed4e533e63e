defmodule XmppBridge.GameDemoTest do
  # The game demo (demos/go_game.exs, `make demo-game`, README "The game
  # demo") as users run it: `mix run` in an OS process of its own, which
  # starts its own ejabberd and the Rust player. A spectator watches from
  # the room with slixmpp (test/support/slixmpp_peer.py), an ordinary
  # client that knows nothing of the bus: it must see a readable board
  # after every move, the last one being the final board the demo prints.
  # The demo must exit 0 within a minute, and its summary must say that
  # both sides agree, that the moves queued for the killed player came
  # from offline storage, and that both illegal moves were refused.
  use ExUnit.Case, async: false

  alias XmppBridge.Payload.Json

  @moduletag :integration
  @moduletag timeout: 300_000

  @root Path.expand("../..", __DIR__)
  @venv System.get_env("XMPP_BRIDGE_VENV", "/var/tmp/xmpp_bridge-venv")
  @slix Path.expand("../support/slixmpp_peer.py", __DIR__)

  # A board as the room shows it: the title, the 9x9 grid with its
  # coordinates on four sides, the footer.
  @board ~r/\Ago-game g1, move (\d+): (black|white) (\S+).*\n    A B C D E F G H J\n(?: [1-9] [ ()][.+XO](?:[ ()][.+XO]){8}[ )][1-9]\n){9}    A B C D E F G H J\n(to move: (black|white), move \d+|game over: two passes; [BW]\+\d+\.5)/

  test "make demo-game: a full game, kill -9 and offline resume, boards seen by a plain client" do
    python = Path.join([@venv, "bin", "python"])

    unless File.exists?(python),
      do: flunk("no slixmpp venv at #{@venv}: run scripts/install-deps.sh")

    # The Rust player is built first, so the timing below is the run's.
    {_, 0} =
      System.cmd("cargo", ~w(build --release -q -p xmpp_bridge --example go_player),
        cd: @root,
        stderr_to_stdout: true
      )

    t0 = System.monotonic_time(:millisecond)
    demo = start_demo()

    # The demo waits for one spectator and says where to join.
    {lines, [_, room, jid, password, port]} =
      demo_until(demo, [], ~r/join (\S+) as (\S+) \(password (\S+)\) on 127\.0\.0\.1:(\d+)/)

    slix = start_slix(python, jid, password, port)
    command(slix, %{"cmd" => "join", "id" => 1, "room" => room, "nick" => "spectator"})

    {output, status, events} = collect(demo, slix, lines, [])
    elapsed = System.monotonic_time(:millisecond) - t0
    stop_slix(slix)

    assert status == 0, "the demo exited with #{inspect(status)}:\n#{output}"
    assert output =~ "result:         OK, both players agree on every move and the final position"

    assert output =~
             ~r/^offline: +31 moves delivered from offline storage \(31 queued, .* white replayed 31\)$/m

    assert output =~ ~r/kill -9 white \(OS pid \d+\) after move 30/
    assert output =~ ~r/the call finds white unavailable \(service-unavailable\)/

    assert output =~
             ~r/^illegal moves: +black's \w+ \(move \d+\) refused by white: illegal move \d+ \(black \w+\): .+; white's \w+ \(move \d+\) refused by black: illegal move/m

    assert output =~ ~r/^both sides: +same position [0-9a-f]{16}, same board text/m
    assert output =~ "1 plain client(s) watching"
    [_, moves] = Regex.run(~r/^moves: +(\d+) /m, output)
    moves = String.to_integer(moves)
    assert elapsed < 60_000, "the demo took #{elapsed} ms"

    assert %{"event" => "joined", "created" => false} =
             Enum.find(events, &(&1["event"] == "joined")),
           "the spectator did not join: #{inspect(events)}"

    boards = for %{"event" => "groupchat", "nick" => "board", "body" => body} <- events, do: body

    # One readable board a move, in order, each matching the layout.
    assert length(boards) == moves, "#{length(boards)} boards for #{moves} moves"

    numbers =
      for body <- boards do
        assert [_, n | _] = Regex.run(@board, body), "not a board:\n#{body}"
        String.to_integer(n)
      end

    assert numbers == Enum.to_list(1..moves)
    assert Enum.any?(boards, &(&1 =~ "white is away")), "no board said white was away"

    # The last board the spectator saw is the final board of the demo.
    [_, final] = Regex.run(~r/-- the final board .*\n((?:.*\n){11})/, output)
    last = List.last(boards)
    assert last =~ String.trim_trailing(final, "\n")
    assert last =~ ~r/game over: two passes; [BW]\+\d+\.5/

    summary = output |> String.split("== Summary\n") |> List.last()

    IO.puts(
      "\n[game] #{elapsed} ms, #{length(boards)} boards seen by slixmpp, summary:\n" <> summary
    )

    IO.puts("[game] the spectator's board after move 31:\n" <> Enum.at(boards, 30))
  end

  # `mix run demos/go_game.exs` in this environment (its build is this
  # test run's), waiting for one spectator, under a Port so that a hung
  # demo can be killed by its OS pid.
  defp start_demo do
    mix = System.find_executable("mix") || flunk("mix not on PATH")

    port =
      Port.open({:spawn_executable, mix}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 65_536},
        args: ["run", "demos/go_game.exs"],
        cd: @root,
        env: [
          {~c"MIX_ENV", ~c"test"},
          {~c"GO_GAME_SPECTATORS", ~c"1"},
          {~c"ELIXIR_ERL_OPTIONS", ~c"+fnu +sbwt none +sbwtdcpu none +sbwtdio none"}
        ]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    on_exit(fn ->
      System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end)

    port
  end

  defp demo_until(demo, lines, regex) do
    receive do
      {^demo, {:data, {:eol, line}}} ->
        case Regex.run(regex, line) do
          nil -> demo_until(demo, [line | lines], regex)
          match -> {[line | lines], match}
        end

      {^demo, {:exit_status, status}} ->
        flunk(
          "the demo exited (#{status}) before it waited for a spectator:\n" <>
            Enum.join(Enum.reverse(lines), "\n")
        )
    after
      180_000 -> flunk("the demo never waited for a spectator")
    end
  end

  # The demo's lines and the spectator's events until the demo exits.
  defp collect(demo, slix, lines, events) do
    receive do
      {^demo, {:data, {:eol, line}}} ->
        collect(demo, slix, [line | lines], events)

      {^demo, {:data, {:noeol, part}}} ->
        collect(demo, slix, [part | lines], events)

      {^demo, {:exit_status, status}} ->
        # What the room sent last may still be on its way to the spectator.
        events = drain_slix(slix, events)
        {lines |> Enum.reverse() |> Enum.join("\n"), status, Enum.reverse(events)}

      {^slix, {:data, {:eol, line}}} ->
        {:ok, event} = Json.to_term(%Json{json: line})
        collect(demo, slix, lines, [event | events])

      {^slix, {:exit_status, status}} ->
        # Only once the demo has stopped its server, and so said its summary.
        collect(demo, slix, lines, [%{"event" => "exit", "status" => status} | events])
    after
      120_000 -> flunk("the demo hung:\n" <> Enum.join(Enum.reverse(lines), "\n"))
    end
  end

  defp drain_slix(slix, events) do
    receive do
      {^slix, {:data, {:eol, line}}} ->
        {:ok, event} = Json.to_term(%Json{json: line})
        drain_slix(slix, [event | events])
    after
      1_000 -> events
    end
  end

  defp start_slix(python, jid, password, port) do
    args = [
      @slix,
      "--jid",
      jid,
      "--password",
      password,
      "--host",
      "127.0.0.1",
      "--port",
      port,
      "--tls",
      "plain"
    ]

    slix =
      Port.open({:spawn_executable, python}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(slix, :os_pid)

    on_exit(fn ->
      System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end)

    receive do
      {^slix, {:data, {:eol, line}}} ->
        {:ok, %{"event" => "online"}} = Json.to_term(%Json{json: line})
        slix
    after
      20_000 -> flunk("slixmpp did not come online")
    end
  end

  defp command(slix, cmd) do
    {:ok, %Json{json: json}} = Json.from_term(cmd)
    true = Port.command(slix, json <> "\n")
  end

  defp stop_slix(slix) do
    command(slix, %{"cmd" => "stop"})

    receive do
      {^slix, {:exit_status, _}} -> :ok
    after
      5_000 -> :ok
    end
  end
end
