# The rules of Go on a 9x9 board, in Elixir, for the game demo
# (demos/go_game.exs, `make demo-game`). The Rust player has the same
# rules of its own (native/xmpp_bridge/examples/go_player.rs): each side
# checks the other's moves with its own code.
#
#   - a move is a point ("D4": columns A-J without I, rows 1-9) or "pass";
#   - a stone that takes the last liberty of opposing groups captures
#     them; a move that leaves its own group without liberties (after the
#     captures) is suicide, forbidden;
#   - simple ko: a single stone that captured a single stone and has that
#     point as its only liberty cannot be taken back at once;
#   - two passes in a row end the game; area scoring (stones plus empty
#     regions that touch one colour only), komi 7.5 for white.
#
# The position hash both sides compare is FNV-1a (64 bits, 16 hex digits)
# of the 81-character position: points A1..J1, A2..J2, ..., A9..J9, each
# "." (empty), "X" (black) or "O" (white).

defmodule GoGame.Rules do
  @size 9
  @points @size * @size
  @cols ~c"ABCDEFGHJ"
  @komi 7.5
  # After this many moves a player only passes (a safety net: random
  # play with the eye rule ends long before).
  @max_moves 300

  defstruct board: List.to_tuple(List.duplicate(:empty, 81)),
            to_move: :black,
            n: 0,
            moves: [],
            captures: %{black: 0, white: 0},
            ko: nil,
            passes: 0,
            last: nil,
            over: false

  @type color :: :black | :white
  @type t :: %__MODULE__{}

  def new, do: %__MODULE__{}
  def komi, do: @komi

  def other(:black), do: :white
  def other(:white), do: :black

  def color_name(c), do: Atom.to_string(c)

  def parse_color("black"), do: {:ok, :black}
  def parse_color("white"), do: {:ok, :white}
  def parse_color(other), do: {:error, "not a colour: #{inspect(other)}"}

  @doc "The point index (0..80, A1 = 0, J9 = 80) of \"D4\", or :pass."
  def parse("pass"), do: {:ok, :pass}

  def parse(<<col, row::binary>>) do
    with c when is_integer(c) <- Enum.find_index(@cols, &(&1 == col)),
         {r, ""} when r in 1..@size <- Integer.parse(row) do
      {:ok, (r - 1) * @size + c}
    else
      _ -> {:error, "not a point: #{inspect(<<col, row::binary>>)}"}
    end
  end

  def parse(other), do: {:error, "not a point: #{inspect(other)}"}

  def coord(:pass), do: "pass"

  def coord(i),
    do: <<Enum.at(@cols, rem(i, @size)), Integer.to_string(div(i, @size) + 1)::binary>>

  defp neighbours(i) do
    r = div(i, @size)
    c = rem(i, @size)

    [
      if(c > 0, do: i - 1),
      if(c < @size - 1, do: i + 1),
      if(r > 0, do: i - @size),
      if(r < @size - 1, do: i + @size)
    ]
    |> Enum.reject(&is_nil/1)
  end

  # The stones of the group at i and its liberties.
  defp group(board, i) do
    color = elem(board, i)
    walk(board, color, [i], MapSet.new([i]), MapSet.new())
  end

  defp walk(_board, _color, [], stones, libs), do: {stones, libs}

  defp walk(board, color, [i | rest], stones, libs) do
    {todo, stones, libs} =
      Enum.reduce(neighbours(i), {rest, stones, libs}, fn n, {todo, stones, libs} ->
        case elem(board, n) do
          :empty ->
            {todo, stones, MapSet.put(libs, n)}

          ^color ->
            if MapSet.member?(stones, n),
              do: {todo, stones, libs},
              else: {[n | todo], MapSet.put(stones, n), libs}

          _ ->
            {todo, stones, libs}
        end
      end)

    walk(board, color, todo, stones, libs)
  end

  @doc """
  Plays `move` ("D4" or "pass") for `color`: `{:ok, game, captured}` or
  `{:error, why}`, why being a sentence for the RPC error.
  """
  def play(%__MODULE__{} = g, color, move) do
    with :ok <- if(g.over, do: {:error, "the game is over"}, else: :ok),
         :ok <-
           if(color == g.to_move,
             do: :ok,
             else: {:error, "it is #{g.to_move}'s turn, not #{color}'s"}
           ),
         {:ok, point} <- parse(move) do
      place(g, color, point)
    end
  end

  defp place(g, color, :pass) do
    passes = g.passes + 1

    {:ok,
     %{
       g
       | to_move: other(color),
         n: g.n + 1,
         moves: [{color, "pass"} | g.moves],
         ko: nil,
         passes: passes,
         last: :pass,
         over: passes >= 2
     }, 0}
  end

  defp place(g, color, i) do
    case try_place(g, color, i) do
      {:ok, board, captured, ko, _libs} ->
        caps = Map.update!(g.captures, color, &(&1 + captured))

        {:ok,
         %{
           g
           | board: board,
             to_move: other(color),
             n: g.n + 1,
             moves: [{color, coord(i)} | g.moves],
             captures: caps,
             ko: ko,
             passes: 0,
             last: i
         }, captured}

      {:error, _} = e ->
        e
    end
  end

  defp try_place(g, color, i) do
    opp = other(color)

    cond do
      elem(g.board, i) != :empty ->
        {:error, "#{coord(i)} is occupied"}

      g.ko == i ->
        {:error, "#{coord(i)} takes the ko back at once (simple ko)"}

      true ->
        board = put_elem(g.board, i, color)

        dead =
          for n <- neighbours(i), elem(board, n) == opp, reduce: MapSet.new() do
            acc ->
              {stones, libs} = group(board, n)
              if MapSet.size(libs) == 0, do: MapSet.union(acc, stones), else: acc
          end

        board = Enum.reduce(dead, board, &put_elem(&2, &1, :empty))
        {own, libs} = group(board, i)

        cond do
          MapSet.size(libs) == 0 ->
            {:error, "#{coord(i)} is suicide"}

          MapSet.size(dead) == 1 and MapSet.size(own) == 1 and MapSet.size(libs) == 1 ->
            {:ok, board, 1, hd(MapSet.to_list(dead)), 1}

          true ->
            {:ok, board, MapSet.size(dead), nil, MapSet.size(libs)}
        end
    end
  end

  @doc """
  The legal points for the player to move, each with the stones it would
  capture and the liberties its group would have.
  """
  def legal(g) do
    for i <- 0..(@points - 1),
        elem(g.board, i) == :empty,
        {:ok, _, captured, _, libs} <- [try_place(g, g.to_move, i)],
        do: {i, captured, libs}
  end

  # A point all of whose neighbours are the player's own stones: filling
  # it would destroy an eye.
  defp own_eye?(g, i), do: Enum.all?(neighbours(i), &(elem(g.board, &1) == g.to_move))

  @doc """
  The demo's policy: a random legal move, a capture when there is one,
  never filling its own eye nor putting its own group in atari without
  capturing; "pass" when nothing is left. `uniform` is `fn n -> 1..n end`
  (a random integer in 1..n).
  """
  def choose(g, uniform) do
    candidates = for {i, c, libs} <- legal(g), not own_eye?(g, i), c > 0 or libs > 1, do: {i, c}

    captures = for {i, c} <- candidates, c > 0, do: {i, c}

    pool = if captures != [], do: captures, else: candidates

    if pool == [] or g.n >= @max_moves do
      "pass"
    else
      {i, _} = Enum.at(pool, uniform.(length(pool)) - 1)
      coord(i)
    end
  end

  @doc """
  A move the player to move may not make, and why: a ko retake or a
  suicide when the position has one, else an occupied point; nil on an
  empty board.
  """
  def illegal(g) do
    points = Enum.to_list(0..(@points - 1))

    suicide =
      Enum.find(points, fn i ->
        elem(g.board, i) == :empty and match?({:error, _}, try_place(g, g.to_move, i))
      end)

    occupied = Enum.find(points, &(elem(g.board, &1) != :empty))

    case g.ko || suicide || occupied do
      nil -> nil
      i -> coord(i)
    end
  end

  @doc "The 81-character position (A1..J1, ..., A9..J9)."
  def position(g) do
    for i <- 0..(@points - 1), into: "" do
      case elem(g.board, i) do
        :empty -> "."
        :black -> "X"
        :white -> "O"
      end
    end
  end

  @doc "FNV-1a, 64 bits, of the position, as 16 hex digits."
  def hash(g) do
    g
    |> position()
    |> :binary.bin_to_list()
    |> Enum.reduce(0xCBF29CE484222325, fn byte, h ->
      Bitwise.band(Bitwise.bxor(h, byte) * 0x100000001B3, 0xFFFFFFFFFFFFFFFF)
    end)
    |> Integer.to_string(16)
    |> String.downcase()
    |> String.pad_leading(16, "0")
  end

  @doc "Area scoring: {black, white}, stones plus the empty regions each surrounds alone."
  def area(g) do
    {b, w, _} =
      Enum.reduce(0..(@points - 1), {0, 0, MapSet.new()}, fn i, {b, w, seen} ->
        case elem(g.board, i) do
          :black ->
            {b + 1, w, seen}

          :white ->
            {b, w + 1, seen}

          :empty ->
            if MapSet.member?(seen, i) do
              {b, w, seen}
            else
              {region, borders} = region(g.board, [i], MapSet.new([i]), MapSet.new())
              seen = MapSet.union(seen, region)

              case MapSet.to_list(borders) do
                [:black] -> {b + MapSet.size(region), w, seen}
                [:white] -> {b, w + MapSet.size(region), seen}
                _ -> {b, w, seen}
              end
            end
        end
      end)

    {b, w}
  end

  defp region(_board, [], region, borders), do: {region, borders}

  defp region(board, [i | rest], region, borders) do
    {todo, region, borders} =
      Enum.reduce(neighbours(i), {rest, region, borders}, fn n, {todo, region, borders} ->
        case elem(board, n) do
          :empty ->
            if MapSet.member?(region, n),
              do: {todo, region, borders},
              else: {[n | todo], MapSet.put(region, n), borders}

          color ->
            {todo, region, MapSet.put(borders, color)}
        end
      end)

    region(board, todo, region, borders)
  end

  @doc "\"B+3.5\" or \"W+0.5\" by area with komi."
  def result(g) do
    {b, w} = area(g)
    diff = b - (w + @komi)
    if diff > 0, do: "B+#{diff}", else: "W+#{-diff}"
  end

  @doc """
  The board as text: coordinates on all four sides, X black, O white,
  + the star points, the last stone in parentheses. The Rust player
  draws the same characters.
  """
  def grid(g) do
    header = "    " <> Enum.map_join(@cols, " ", &<<&1>>)

    rows =
      for r <- (@size - 1)..0//-1 do
        label = String.pad_leading(Integer.to_string(r + 1), 2)

        cells =
          for c <- 0..(@size - 1), into: "" do
            i = r * @size + c

            sep =
              cond do
                g.last == i -> "("
                c > 0 and g.last == i - 1 -> ")"
                true -> " "
              end

            sep <> cell(g.board, i)
          end

        tail = if g.last == r * @size + @size - 1, do: ")", else: " "
        "#{label} #{cells}#{tail}#{String.trim_leading(label)}"
      end

    Enum.join([header | rows] ++ [header], "\n")
  end

  @stars [20, 24, 40, 56, 60]

  defp cell(board, i) do
    case elem(board, i) do
      :black -> "X"
      :white -> "O"
      :empty -> if i in @stars, do: "+", else: "."
    end
  end
end
