# The game demo (`make demo-game`): a game of Go on a 9x9 board between
# an Elixir player (this script, black) and a Rust player
# (native/xmpp_bridge/examples/go_player.rs, white, an OS process of its
# own), over XMPP alone, through a private ejabberd on loopback.
#
#   - moves go by RPC: each player serves `move(game, n, color, move,
#     hash)` and calls the other's on its turn; each checks the move with
#     its own rules (demos/go_game/rules.exs here, the Rust player's own
#     module there) and compares the position hash; an illegal move is a
#     `crashed` RPC error that says why (each side sends one on purpose);
#   - each player's state is in its presence (its bus status: text "to
#     move: black, move 24", a term with the move number, captures and
#     area score), in the room `go-game` (a bus group) where spectators
#     sit; after every move a plain session of this script ("board") posts
#     the board as text, the groupchat body any XMPP client shows;
#   - after white's move 30 the demo kills the Rust player (`kill -9`);
#     black's next RPC finds the peer unavailable, so black queues the
#     game for white as plain terms with `delivery: :confirmed` (a resume
#     header and every move so far, one term each): ejabberd stores them
#     offline. The Rust player, restarted with nothing but its flags,
#     gets them at login, checks and replays them, and plays on;
#   - two passes end the game: both sides' views are compared (moves,
#     position hash, board text, captures, score), and the demo exits 1
#     on any difference, an illegal move accepted, a move lost or applied
#     twice, or a player that failed.
#
# GO_GAME_SPECTATORS=n waits (up to 30 s) for n plain clients to join the
# room before the first move; the account spectator@localhost (password
# "spectator") is there for them.

Code.require_file("go_game/rules.exs", __DIR__)

defmodule GoGame.IllegalMove do
  defexception [:message]
end

defmodule GoGame.Board do
  # A plain XMPP session (no bus) in the room: it joins with a MUC join
  # presence and posts each board as a groupchat body, as any client would.
  # It counts the room's echoes of its posts: what the room relayed.
  alias XmppBridge.{Connection, Message, Presence}
  alias XmppBridge.Payload.{MucHistory, MucJoin, MucUser}

  def start(opts) do
    parent = self()
    pid = spawn_link(fn -> init(parent, opts) end)

    receive do
      {:board_ready, ^pid} -> {:ok, pid}
      {:board_failed, ^pid, why} -> {:error, why}
    after
      15_000 -> {:error, :timeout}
    end
  end

  def post(pid, text), do: send(pid, {:post, text})

  def relayed(pid) do
    send(pid, {:relayed, self()})

    receive do
      {:relayed, ^pid, n} -> n
    after
      5_000 -> nil
    end
  end

  defp init(parent, opts) do
    room = Keyword.fetch!(opts, :room)
    nick = Keyword.fetch!(opts, :nick)

    conn =
      Connection.open!(
        jid: Keyword.fetch!(opts, :jid),
        password: Keyword.fetch!(opts, :password),
        host: Keyword.fetch!(opts, :host),
        port: Keyword.fetch!(opts, :port),
        tls: :plain,
        resource: nick,
        active: true
      )

    receive do
      {:xmpp_bridge, id, {:online, _}} when id == conn.id -> :ok
    after
      10_000 -> send(parent, {:board_failed, self(), :not_online})
    end

    join = %MucJoin{history: %MucHistory{maxstanzas: 0}}
    {:ok, _} = Connection.send(conn, %Presence{to: "#{room}/#{nick}", payloads: [join]})
    await_join(conn, room, nick)
    send(parent, {:board_ready, self()})
    loop(%{conn: conn, room: room, me: "#{room}/#{nick}", relayed: 0})
  end

  # Joined at the self-presence (status 110).
  defp await_join(conn, room, nick) do
    me = "#{room}/#{nick}"

    receive do
      {:xmpp_bridge, id, {:stanza, %Presence{from: ^me, payloads: ps}}} when id == conn.id ->
        if Enum.any?(
             ps,
             &(match?(%MucUser{status_codes: [_ | _]}, &1) and 110 in &1.status_codes)
           ),
           do: :ok,
           else: await_join(conn, room, nick)

      {:xmpp_bridge, id, _} when id == conn.id ->
        await_join(conn, room, nick)
    after
      10_000 -> raise "the board session could not join #{room}"
    end
  end

  defp loop(s) do
    receive do
      {:post, text} ->
        msg = %Message{type: :groupchat, to: s.room, bodies: [{nil, text}]}
        {:ok, _} = Connection.send(s.conn, msg)
        loop(s)

      {:relayed, from} ->
        send(from, {:relayed, self(), s.relayed})
        loop(s)

      {:xmpp_bridge, id, {:stanza, %Message{type: :groupchat, from: from, bodies: [_ | _]}}}
      when id == s.conn.id and from == s.me ->
        loop(%{s | relayed: s.relayed + 1})

      _ ->
        loop(s)
    end
  end
end

defmodule GoGame do
  alias GoGame.{Board, Rules}
  alias XmppBridge.Bus

  @root Path.expand("..", __DIR__)
  @group "go-game"
  @game "g1"
  # The Rust player is killed right after white's move 30 (or the first
  # white move after it).
  @kill_after 30
  # How long white stays away.
  @away_ms 1_000
  # Each side tries one illegal move: black at its first turn from move
  # 11 on, white (its first run) from move 20 on.
  @black_probe_at 11
  @white_probe_at 20
  @white_seed 20_240_601
  @move_timeout 10_000
  @game_timeout_ms 50_000

  # The generic receives leave the moves white sends (through the `move`
  # handler) for white_move/2, which takes them in order.
  defguardp not_a_move(msg)
            when not (is_tuple(msg) and tuple_size(msg) == 7 and elem(msg, 0) == :move_in)

  ## Setup

  def main do
    t0 = now_ms()

    IO.puts(
      "== The game: Go on 9x9, an Elixir player against a Rust player, over one XMPP server"
    )

    rust_bin = build_rust_player!()

    accounts = [
      {"black", "black-pw"},
      {"white", "white-pw"},
      {"board", "board-pw"},
      {"spectator", "spectator"}
    ]

    {:ok, srv} = XmppTestServer.start(:ejabberd, accounts: accounts)

    try do
      run(%{srv: srv, rust_bin: rust_bin, t0: t0, server_ms: now_ms() - t0})
    after
      XmppTestServer.stop(srv)
    end
  end

  defp build_rust_player! do
    args = ~w(build --release -q -p xmpp_bridge --example go_player)
    {out, status} = System.cmd("cargo", args, cd: @root, stderr_to_stdout: true)
    if status != 0, do: raise("cargo build of the go_player example failed:\n" <> out)

    target =
      case System.get_env("CARGO_TARGET_DIR") do
        dir when dir in [nil, ""] -> Path.join(@root, "target")
        dir -> dir
      end

    Path.join([target, "release", "examples", "go_player"])
  end

  defp run(ctx) do
    srv = ctx.srv
    me = self()
    :rand.seed(:exsss, {7, 9, 13})

    {:ok, bus} =
      Bus.start_link(
        jid: XmppTestServer.jid(srv, "black"),
        password: "black-pw",
        host: srv.host,
        port: srv.ports.c2s_plain,
        tls: :plain,
        receiver: me,
        heartbeat: 500,
        heartbeat_timeout: 1000
      )

    :ok = Bus.await_online(bus)

    :ok =
      Bus.serve(bus, "move", fn game, n, color, mv, hash ->
        send(me, {:move_in, self(), game, n, color, mv, hash})

        receive do
          {:verdict, {:ok, answer}} -> answer
          {:verdict, {:error, why}} -> raise GoGame.IllegalMove, why
        after
          @move_timeout -> raise GoGame.IllegalMove, "move #{n}: black did not decide in time"
        end
      end)

    :ok = Bus.join(bus, @group, events: true)
    room = "#{@group}@#{srv.muc_domain}"

    {:ok, board} =
      Board.start(
        jid: XmppTestServer.jid(srv, "board"),
        password: "board-pw",
        host: srv.host,
        port: srv.ports.c2s_plain,
        room: room,
        nick: "board"
      )

    s = %{
      ctx: ctx,
      srv: srv,
      bus: bus,
      board: board,
      room: room,
      game: Rules.new(),
      white_jid: XmppTestServer.jid(srv, "white") <> "/bus",
      white: %{port: nil, os_pid: nil, exit: nil, state: :offline, mon: nil, log: [], starts: 0},
      exits: [],
      killed_at: nil,
      kill_move: nil,
      down: nil,
      queued: %{},
      queued_moves: 0,
      delivered_moves: 0,
      delivered_other: 0,
      failed_sends: [],
      black_probe: nil,
      white_probes: [],
      accepted_illegal: [],
      by_rpc: %{black: 0, white: 0},
      rpc_since_restart: 0,
      offline_move: nil,
      white_status: nil,
      spectators: MapSet.new(),
      posts: 0,
      problems: [],
      game_t0: nil,
      game_t1: nil
    }

    s =
      event(
        s,
        "ejabberd up on 127.0.0.1:#{srv.ports.c2s_plain} in #{ctx.server_ms} ms; black online as #{Bus.jid(bus)}, in room #{room} with the board session"
      )

    s = await_spectators(s)
    s = start_white(s, @white_probe_at)
    s = await_white_joined(s, now_ms() + 15_000)
    s = %{s | game_t0: now_ms()}
    s = publish(s)
    s = play(s)
    finish(%{s | game_t1: now_ms()})
  end

  defp await_spectators(s) do
    wanted = String.to_integer(System.get_env("GO_GAME_SPECTATORS", "0"))

    if wanted > 0 do
      s =
        event(
          s,
          "waiting for #{wanted} spectator(s): join #{s.room} as spectator@#{s.srv.domain} (password spectator) on 127.0.0.1:#{s.srv.ports.c2s_plain}"
        )

      wait_spectators(s, wanted, now_ms() + 30_000)
    else
      s
    end
  end

  defp wait_spectators(s, wanted, until) do
    if MapSet.size(s.spectators) >= wanted do
      event(s, "#{MapSet.size(s.spectators)} spectator(s) in the room")
    else
      receive do
        msg when not_a_move(msg) -> s |> handle(msg) |> wait_spectators(wanted, until)
      after
        max(until - now_ms(), 0) -> problem(s, "no spectator came within 30 s")
      end
    end
  end

  defp start_white(s, probe_at) do
    args = [
      "--jid",
      XmppTestServer.jid(s.srv, "white"),
      "--opponent",
      XmppTestServer.jid(s.srv, "black"),
      "--host",
      s.srv.host,
      "--port",
      Integer.to_string(s.srv.ports.c2s_plain),
      "--group",
      @group,
      "--seed",
      Integer.to_string(@white_seed),
      "--probe-at",
      Integer.to_string(probe_at)
    ]

    port =
      Port.open({:spawn_executable, s.ctx.rust_bin}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 16_384},
        args: args,
        env: [{~c"GO_PLAYER_PASSWORD", ~c"white-pw"}]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    white = %{s.white | port: port, os_pid: os_pid, exit: nil, state: :starting}
    s = %{s | white: %{white | starts: white.starts + 1}}
    event(s, "started white (Rust, OS pid #{os_pid}), no state but its flags")
  end

  defp await_white_joined(%{white: %{state: :online}} = s, _until), do: s

  defp await_white_joined(s, until) do
    receive do
      msg when not_a_move(msg) -> s |> handle(msg) |> await_white_joined(until)
    after
      max(until - now_ms(), 0) -> problem(s, "white did not join #{@group}")
    end
  end

  ## The game

  defp play(s) do
    cond do
      s.problems != [] ->
        s

      s.game.over ->
        s

      now_ms() - s.game_t0 > @game_timeout_ms ->
        problem(s, "the game took more than #{@game_timeout_ms} ms")

      s.game.to_move == :black ->
        s |> drain() |> maybe_kill() |> black_move() |> play()

      true ->
        s |> white_move(now_ms() + @move_timeout) |> play()
    end
  end

  defp drain(s) do
    receive do
      msg when not_a_move(msg) -> s |> handle(msg) |> drain()
    after
      0 -> s
    end
  end

  defp maybe_kill(%{killed_at: nil, white: %{state: :online}} = s) when s.game.n >= @kill_after do
    s = print_board(s, "the board before the kill")
    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(s.white.os_pid)])
    s = %{s | killed_at: now_ms(), kill_move: s.game.n}
    s = event(s, "kill -9 white (OS pid #{s.white.os_pid}) after move #{s.game.n}")
    await_down(s, now_ms() + 5_000)
  end

  defp maybe_kill(s), do: s

  defp await_down(%{down: {_, _}, white: %{exit: e}} = s, _until) when e != nil, do: s

  defp await_down(s, until) do
    receive do
      msg when not_a_move(msg) -> s |> handle(msg) |> await_down(until)
    after
      max(until - now_ms(), 0) -> problem(s, "no DOWN for white within 5 s of the kill")
    end
  end

  defp black_move(%{problems: [_ | _]} = s), do: s

  defp black_move(s) do
    s = maybe_probe(s)
    g = s.game
    n = g.n + 1
    mv = Rules.choose(g, &:rand.uniform/1)
    {:ok, g2, captured} = Rules.play(g, :black, mv)
    hash = Rules.hash(g2)

    case Bus.call(s.bus, s.white_jid, "move", [@game, n, "black", mv, hash], 5_000) do
      {:ok, {:ok, ^n, ^hash}} ->
        s = update_in(s.by_rpc.black, &(&1 + 1))
        s = if s.offline_move, do: %{s | rpc_since_restart: s.rpc_since_restart + 1}, else: s
        commit(s, g2, :black, mv, captured)

      {:ok, other} ->
        problem(s, "white answered black's move #{n} with #{inspect(other)}")

      {:error, %{reason: {:peer_unavailable, condition}}} when s.white.state == :down ->
        s =
          event(
            s,
            "move #{n} black #{mv}: the call finds white unavailable (#{condition}); black plays it and queues the game for white"
          )

        s = commit(%{s | offline_move: n}, g2, :black, mv, captured)
        s = queue_game(s)
        Process.sleep(@away_ms)
        s = drain(s)
        # Restarted without a probe: that was its first life's.
        s = start_white(s, 0)
        await_white_joined(s, now_ms() + 15_000)

      {:error, error} ->
        problem(s, "black's move #{n} #{mv}: #{inspect(error.reason)}")
    end
  end

  # Once, while white is online: an illegal move white must refuse.
  defp maybe_probe(%{black_probe: nil, white: %{state: :online}} = s)
       when s.game.n + 1 >= @black_probe_at do
    g = s.game
    n = g.n + 1

    case Rules.illegal(g) do
      nil ->
        s

      bad ->
        {:error, why} = Rules.play(g, :black, bad)

        case Bus.call(s.bus, s.white_jid, "move", [@game, n, "black", bad, Rules.hash(g)], 5_000) do
          {:error, %{reason: {:crashed, text}}} ->
            s = %{s | black_probe: {n, bad, text}}
            event(s, "black tries #{bad} as move #{n} (#{why}): white refuses: #{inspect(text)}")

          other ->
            s = %{s | black_probe: {n, bad, :accepted}}

            s = %{
              s
              | accepted_illegal: ["white accepted black's #{bad} (#{why})" | s.accepted_illegal]
            }

            problem(s, "white accepted an illegal move #{n} #{bad}: #{inspect(other)}")
        end
    end
  end

  defp maybe_probe(s), do: s

  defp white_move(%{problems: [_ | _]} = s, _until), do: s

  defp white_move(s, until) do
    n = s.game.n + 1

    receive do
      {:move_in, handler, game, ^n, "white", mv, hash} when game == @game ->
        case Rules.play(s.game, :white, mv) do
          {:ok, g2, captured} ->
            if Rules.hash(g2) == hash do
              send(handler, {:verdict, {:ok, {:ok, n, hash}}})
              s = update_in(s.by_rpc.white, &(&1 + 1))
              commit(s, g2, :white, mv, captured)
            else
              why =
                "move #{n} (white #{mv}): positions differ, mine #{Rules.hash(g2)} yours #{hash}"

              send(handler, {:verdict, {:error, why}})
              problem(s, why)
            end

          {:error, why} ->
            why = "illegal move #{n} (white #{mv}): #{why}"
            send(handler, {:verdict, {:error, why}})
            s = %{s | white_probes: [{n, mv, why} | s.white_probes]}
            s = event(s, "white tries #{mv} as move #{n}: black refuses: #{inspect(why)}")
            white_move(s, until)
        end

      {:move_in, handler, game, m, color, mv, _hash} ->
        why =
          cond do
            game != @game -> "move #{m}: not this game (#{inspect(game)})"
            m != n -> "move #{m} out of sequence: expected move #{n}"
            true -> "move #{m}: it is white's turn, not #{color}'s"
          end

        # A move lost or sent twice shows here: not a probe, a failure.
        send(handler, {:verdict, {:error, why}})
        problem(s, "refused #{color} #{mv}: #{why}")

      msg ->
        s |> handle(msg) |> white_move(until)
    after
      max(until - now_ms(), 0) ->
        problem(s, "white did not play move #{n} in #{@move_timeout} ms")
    end
  end

  defp commit(s, g2, color, mv, captured) do
    s = %{s | game: g2}
    n = g2.n
    caps = if captured > 0, do: ", #{captured} captured", else: ""
    away = if s.white.state != :online, do: " (white away)", else: ""
    s = event(s, "move #{n} #{color} #{mv}#{caps}#{away}")
    s = post_board(s, color, mv, captured)
    s = publish(s)

    if s.offline_move != nil and n == s.offline_move + 1,
      do: print_board(s, "the board after white's first move since its restart"),
      else: s
  end

  defp post_board(s, color, mv, captured) do
    g = s.game
    {ab, aw} = Rules.area(g)
    caps = if captured > 0, do: ", #{captured} captured", else: ""

    footer =
      if g.over,
        do:
          "game over: two passes; #{Rules.result(g)} (area black #{ab}, white #{aw}, komi #{Rules.komi()})",
        else:
          "to move: #{g.to_move}, move #{g.n + 1} · area black #{ab}, white #{aw} (komi #{Rules.komi()})"

    away =
      if s.white.state == :online,
        do: "",
        else: "\nwhite is away: the game waits for it on the server (offline storage)"

    text =
      "#{@group} #{@game}, move #{g.n}: #{color} #{mv}#{caps} · captures black #{g.captures.black}, white #{g.captures.white}\n" <>
        Rules.grid(g) <> "\n" <> footer <> away

    Board.post(s.board, text)
    %{s | posts: s.posts + 1}
  end

  defp publish(s) do
    g = s.game
    {ab, aw} = Rules.area(g)

    text =
      if g.over,
        do: "game over after #{g.n} moves: #{Rules.result(g)}",
        else: "to move: #{g.to_move}, move #{g.n + 1}"

    term = %{
      lang: "elixir",
      color: "black",
      move: g.n,
      to_move: Atom.to_string(g.to_move),
      over: g.over,
      captures_black: g.captures.black,
      captures_white: g.captures.white,
      area_black: ab,
      area_white: aw
    }

    :ok = Bus.set_status(s.bus, text: text, term: term)
    s
  end

  # White is gone and remembers nothing: the whole game goes to it as
  # terms the server stores, a header and then every move with the
  # position hash after it.
  defp queue_game(s) do
    moves = Enum.reverse(s.game.moves)

    {entries, _} =
      Enum.map_reduce(Enum.with_index(moves, 1), Rules.new(), fn {{color, mv}, n}, g ->
        {:ok, g, _} = Rules.play(g, color, mv)
        {{n, Atom.to_string(color), mv, Rules.hash(g)}, g}
      end)

    opts = [delivery: :confirmed, deadline: 30_000]
    total = length(entries)
    {:ok, ref} = Bus.send(s.bus, s.white_jid, {:resume, @game, total, Rules.hash(s.game)}, opts)

    queued =
      for {n, color, mv, hash} <- entries, into: %{ref => :resume} do
        {:ok, ref} = Bus.send(s.bus, s.white_jid, {:move, @game, n, color, mv, hash}, opts)
        {ref, n}
      end

    # Everything is on the server before we say so.
    :ok = Bus.sync(s.bus)
    s = %{s | queued: queued, queued_moves: total}

    event(
      s,
      "queued for white: a resume header and moves 1..#{total}, #{total + 1} confirmed terms; ejabberd stores them offline"
    )
  end

  ## Messages

  defp handle(s, {:xmpp_bridge_bus, :delivered, ref, _jid}) do
    case Map.pop(s.queued, ref) do
      {nil, _} ->
        s

      {what, rest} ->
        s =
          if what == :resume,
            do: %{s | queued: rest, delivered_other: s.delivered_other + 1},
            else: %{s | queued: rest, delivered_moves: s.delivered_moves + 1}

        if map_size(rest) == 0 do
          event(
            s,
            "white took the #{s.delivered_moves} queued moves (and the header) from offline storage: receipts in, #{now_ms() - s.killed_at} ms after the kill"
          )
        else
          s
        end
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :failed, ref, reason}) do
    case Map.pop(s.queued, ref) do
      {nil, _} ->
        s

      {what, rest} ->
        problem(%{s | queued: rest}, "queued term #{inspect(what)} failed: #{inspect(reason)}")
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :joined, @group, jid}) do
    cond do
      name_of(jid) == "white" ->
        mon = Bus.monitor(s.bus, s.white_jid)
        s = put_in(s.white.state, :online)
        s = put_in(s.white.mon, mon)
        event(s, "white joined #{@group} (#{jid}); monitored")

      name_of(jid) in ["black", "board"] ->
        s

      true ->
        s = %{s | spectators: MapSet.put(s.spectators, jid)}
        event(s, "spectator #{jid} joined #{@group}")
    end
  end

  defp handle(s, {:xmpp_bridge_bus, :left, @group, jid, reason}) do
    if name_of(jid) == "white", do: event(s, "white left #{@group} (#{inspect(reason)})"), else: s
  end

  defp handle(s, {:xmpp_bridge_bus, :status, @group, jid, status}) do
    if name_of(jid) == "white", do: %{s | white_status: status}, else: s
  end

  defp handle(s, {:DOWN, mon, :bus_node, _jid, reason}) when mon == s.white.mon do
    after_ms = if s.killed_at, do: now_ms() - s.killed_at
    s = %{s | down: {reason, after_ms}}
    s = put_in(s.white.state, :down)
    since = if after_ms, do: ", #{after_ms} ms after the kill", else: ""
    s = event(s, "DOWN white: #{inspect(reason)}#{since}")
    if s.killed_at, do: s, else: problem(s, "white went down unprompted")
  end

  defp handle(s, {port, {:data, {:eol, line}}}) when port == s.white.port do
    s = put_in(s.white.log, Enum.take([line | s.white.log], 40))

    if String.contains?(line, ~w("resume" "replayed" "probe_refused" "probe_accepted" "failed")),
      do: event(s, "[white] #{line}"),
      else: s
  end

  defp handle(s, {port, {:exit_status, status}}) when is_port(port) do
    s = if port == s.white.port, do: put_in(s.white.exit, status), else: s
    s = %{s | exits: s.exits ++ [status]}
    event(s, "[os] white's process exited with status #{status}")
  end

  defp handle(s, _other), do: s

  ## The end

  defp finish(s) do
    s = drain(s)
    s = print_board(s, "the final board")
    g = s.game

    s =
      case Bus.call(s.bus, s.white_jid, "state", [], 5_000) do
        {:ok, view} when is_map(view) -> compare(s, view)
        other -> problem(s, "white's state: #{inspect(other)}") |> Map.put(:view, nil)
      end

    if s.white.mon, do: Bus.demonitor(s.bus, s.white.mon, [:flush])
    :ok = Bus.broadcast(s.bus, @group, {:game_over, Rules.result(g)})
    s = await_exit(s, now_ms() + 5_000)
    relayed = Board.relayed(s.board)
    Bus.stop(s.bus)
    summary(Map.put(s, :relayed, relayed))
  end

  defp compare(s, view) do
    g = s.game
    {ab, aw} = Rules.area(g)

    checks = [
      {"moves", g.n, view[:moves]},
      {"position hash", Rules.hash(g), view[:hash]},
      {"board text", Rules.grid(g), view[:grid]},
      {"game over", g.over, view[:over]},
      {"captures", {g.captures.black, g.captures.white},
       {view[:captures_black], view[:captures_white]}},
      {"area", {ab, aw}, {view[:area_black], view[:area_white]}},
      {"result", Rules.result(g), view[:result]},
      {"moves replayed from offline storage", s.delivered_moves, view[:replayed]},
      {"black's moves taken by RPC since the restart", s.rpc_since_restart, view[:by_rpc]}
    ]

    s = Map.put(s, :view, view)

    Enum.reduce(checks, s, fn {what, ours, theirs}, s ->
      if ours == theirs,
        do: s,
        else: problem(s, "#{what} differ: black has #{inspect(ours)}, white #{inspect(theirs)}")
    end)
  end

  defp await_exit(%{white: %{exit: e}} = s, _until) when e != nil, do: s

  defp await_exit(s, until) do
    receive do
      msg when not_a_move(msg) -> s |> handle(msg) |> await_exit(until)
    after
      max(until - now_ms(), 0) ->
        System.cmd("kill", ["-9", Integer.to_string(s.white.os_pid)])
        problem(s, "white did not exit within 5 s of the end")
    end
  end

  defp summary(s) do
    g = s.game
    {ab, aw} = Rules.area(g)
    game_s = (s.game_t1 - s.game_t0) / 1000
    all_s = (now_ms() - s.ctx.t0) / 1000
    view = s[:view] || %{}
    {down_reason, down_ms} = s.down || {nil, nil}

    black_probe =
      case s.black_probe do
        {n, mv, text} when is_binary(text) ->
          "black's #{mv} (move #{n}) refused by white: #{first_line(text)}"

        {n, mv, :accepted} ->
          "black's #{mv} (move #{n}) ACCEPTED by white"

        nil ->
          "black sent none"
      end

    white_probes =
      case s.white_probes do
        [] ->
          "white sent none"

        ps ->
          Enum.map_join(Enum.reverse(ps), "; ", fn {n, mv, why} ->
            "white's #{mv} (move #{n}) refused by black: #{why}"
          end)
      end

    winner =
      if String.starts_with?(Rules.result(g), "B"), do: "black (Elixir)", else: "white (Rust)"

    white_status = s.white_status && s.white_status.text

    problems =
      s.problems
      |> Enum.reverse()
      |> then(fn ps ->
        if s.killed_at == nil, do: ps ++ ["the game ended before the kill"], else: ps
      end)
      |> then(fn ps ->
        if s.delivered_moves != s.queued_moves or s.queued_moves == 0,
          do: ps ++ ["#{s.delivered_moves} of #{s.queued_moves} queued moves delivered"],
          else: ps
      end)
      |> then(fn ps -> if s.accepted_illegal != [], do: ps ++ s.accepted_illegal, else: ps end)
      |> then(fn ps ->
        if s.white.exit == 0,
          do: ps,
          else: ps ++ ["white's last exit status: #{inspect(s.white.exit)}"]
      end)
      |> then(fn ps ->
        if s.relayed == s.posts,
          do: ps,
          else: ps ++ ["the room relayed #{inspect(s.relayed)} of #{s.posts} boards"]
      end)

    IO.puts("""
    == Summary
    moves:          #{g.n} (black #{count_moves(g, :black)}, white #{count_moves(g, :white)}; by RPC: black #{s.by_rpc.black}, white #{s.by_rpc.white})
    captures:       black #{g.captures.black}, white #{g.captures.white}
    score:          area black #{ab}, white #{aw} + komi #{Rules.komi()}: #{Rules.result(g)}
    winner:         #{winner}
    time:           #{fmt(game_s)} s of play (#{fmt(all_s)} s in all, ejabberd start included)
    kill -9:        white after move #{s.kill_move || "-"}, DOWN #{inspect(down_reason)} #{down_ms || "-"} ms later; back #{if s.offline_move, do: "for move #{s.offline_move + 1}", else: "-"}
    offline:        #{s.delivered_moves} moves delivered from offline storage (#{s.queued_moves} queued, header included #{s.queued_moves + 1} terms; white replayed #{inspect(view[:replayed])})
    illegal moves:  #{black_probe}; #{white_probes}
    both sides:     #{if view[:hash] == Rules.hash(g), do: "same", else: "DIFFERENT"} position #{Rules.hash(g)}, #{if view[:grid] == Rules.grid(g), do: "same", else: "different"} board text, #{inspect(view[:moves])} moves at white
    presence says:  black "#{publish_text(g)}", white #{inspect(white_status)}
    spectators:     #{s.posts} boards posted to #{s.room}, #{inspect(s.relayed)} relayed by the room; #{MapSet.size(s.spectators)} plain client(s) watching
    """)

    if problems == [] do
      IO.puts("result:         OK, both players agree on every move and the final position")
      :ok
    else
      IO.puts("result:         FAILED (#{Enum.join(problems, "; ")})")
      IO.puts("-- last lines of white:\n" <> Enum.join(Enum.reverse(s.white.log), "\n"))
      :error
    end
  end

  defp count_moves(g, color), do: Enum.count(g.moves, &(elem(&1, 0) == color))

  defp publish_text(g),
    do:
      if(g.over,
        do: "game over after #{g.n} moves: #{Rules.result(g)}",
        else: "to move: #{g.to_move}, move #{g.n + 1}"
      )

  defp first_line(text) do
    text
    |> String.split("\n")
    |> hd()
    |> String.replace_prefix("** (GoGame.IllegalMove) ", "")
  end

  ## Output

  defp problem(s, text) do
    s = event(s, "PROBLEM: " <> text)
    %{s | problems: [text | s.problems]}
  end

  defp print_board(s, title) do
    g = s.game

    IO.puts(
      "-- #{title} (move #{g.n}, captures black #{g.captures.black}, white #{g.captures.white})"
    )

    IO.puts(Rules.grid(g))
    s
  end

  defp event(s, text) do
    t = now_ms() - s.ctx.t0
    IO.puts("[#{String.pad_leading(fmt(t / 1000), 5)} s] #{text}")
    s
  end

  defp name_of(jid), do: jid |> String.split("@") |> hd()

  defp fmt(x), do: :erlang.float_to_binary(x / 1, decimals: 1)

  defp now_ms, do: System.monotonic_time(:millisecond)
end

case GoGame.main() do
  :ok -> :ok
  :error -> System.halt(1)
end
