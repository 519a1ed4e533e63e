# Codec benchmark: xmpp_bridge (Rust NIF) against the ProcessOne stack
# (fast_xml + xmpp) on the same deterministic corpus, in one VM run.
#
#   make bench-codec            # = mix run bench/codec.exs
#
# Environment knobs (all optional):
#   BENCH_ROUNDS=5      timed rounds per measurement (the median is reported)
#   BENCH_MIN_MS=200    minimum duration of one timed round
#   BENCH_CHUNK=4096    chunk size fed to the streaming parsers
#   BENCH_ONLY=p1       measure only the ProcessOne stack (also automatic when
#                       XmppBridge.Stanza is not available)
#   BENCH_CATEGORIES=chat,mixed   measure only these corpus categories
#
# For every corpus category it measures, for both stacks:
#   one-shot decode   ours: XmppBridge.Stanza.decode/1
#                     P1:   fxml_stream:parse_element/1 then xmpp:decode/1
#   streaming decode  ours: XmppBridge.StreamParser.new/1 + feed/2, counting stanza structs
#                     P1:   fxml_stream:new/2 + parse/2, receiving
#                           {'$gen_event', {xmlstreamelement, El}} and xmpp:decode/1 on each
#   encode            ours: XmppBridge.Stanza.encode/1 of the decoded structs
#                     P1:   xmpp:encode/1 + fxml:element_to_binary/1 of the decoded records
#
# Each measurement runs in a fresh process (its own heap, nothing else live),
# warms up, calibrates an iteration count so that one round lasts at least
# BENCH_MIN_MS, then times BENCH_ROUNDS rounds with a GC before each one.
# MB/s is computed on the wire bytes of the input (10^6 bytes per MB): the
# stanza bytes for one-shot decode and encode, the whole stream for streaming.
# This is a benchmark report, not a test: it never fails the build.

Code.require_file("corpus.exs", __DIR__)

defmodule XmppBridge.Bench.Codec do
  @moduledoc false

  alias XmppBridge.Bench.Corpus

  @ops [
    one_shot: "One-shot decode",
    stream: "Streaming decode",
    encode: "Encode"
  ]

  # targets of the issue, checked on the mixed corpus
  @ratio_targets [stream: 10.0, one_shot: 10.0, encode: 2.0]
  @throughput_target_mbs 150.0

  def main do
    rounds = env_int("BENCH_ROUNDS", 5)
    min_ms = env_int("BENCH_MIN_MS", 200)
    chunk = env_int("BENCH_CHUNK", 4096)

    start_p1!()
    ours? = System.get_env("BENCH_ONLY") != "p1" and ours_available?()

    unless ours? do
      IO.puts(
        "NOTE: XmppBridge.Stanza / StreamParser not usable (or BENCH_ONLY=p1): " <>
          "measuring the ProcessOne stack only.\n"
      )
    end

    corpus = Corpus.build() |> select_categories(System.get_env("BENCH_CATEGORIES"))
    sets = Enum.map(corpus, &prepare(&1, chunk, ours?))

    checks = Enum.flat_map(sets, &checks(&1, ours?))
    print_checks(checks)

    opts = %{rounds: rounds, min_ns: min_ms * 1_000_000}

    results =
      for set <- sets do
        IO.write(:stderr, "measuring #{set.cat} ")

        per_op =
          for {op, _} <- @ops, into: %{} do
            p1 = measure(p1_fun(op), p1_input(set, op), opts)
            IO.write(:stderr, ".")

            ours =
              if ours?,
                do: measure(ours_fun(op), ours_input(set, op), opts)

            IO.write(:stderr, ".")
            {op, %{p1: p1, ours: ours}}
          end

        IO.write(:stderr, "\n")
        {set, per_op}
      end

    report = render(results, checks, chunk, opts, ours?)
    IO.puts(report)

    path = Path.join([__DIR__, "results", "codec.md"])
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, report)
    IO.puts("(written to #{Path.relative_to_cwd(path)})")
  end

  # ---------------------------------------------------------------------------
  # setup

  # Debian installs fast_xml / xmpp and their deps under the OTP lib dir, which
  # is in erl's default code path. Add the paths explicitly anyway, in case the
  # runner pruned them.
  defp start_p1! do
    for dir <- Path.wildcard(Path.join(:code.lib_dir(), "*/ebin")),
        Path.basename(Path.dirname(dir)) =~ ~r/^(p1_|idna-|unicode_util_compat-)/ do
      :code.add_pathz(String.to_charlist(dir))
    end

    case Application.ensure_all_started(:xmpp) do
      {:ok, _} -> :ok
      {:error, reason} -> raise "cannot start the ProcessOne stack: #{inspect(reason)}"
    end
  end

  defp ours_available? do
    Code.ensure_loaded?(XmppBridge.Stanza) and Code.ensure_loaded?(XmppBridge.StreamParser) and
      match?(
        {:ok, _},
        XmppBridge.Stanza.decode("<message xmlns='jabber:client'><body>x</body></message>")
      )
  rescue
    _ -> false
  end

  defp select_categories(corpus, nil), do: corpus

  defp select_categories(corpus, names) do
    wanted = String.split(names, ",", trim: true)
    Enum.filter(corpus, fn {cat, _, _} -> Atom.to_string(cat) in wanted end)
  end

  defp prepare({cat, desc, stanzas}, chunk, ours?) do
    stream = Corpus.stream(stanzas)

    set = %{
      cat: cat,
      desc: desc,
      stanzas: stanzas,
      count: length(stanzas),
      bytes: stanzas |> Enum.map(&byte_size/1) |> Enum.sum(),
      stream_bytes: byte_size(stream),
      chunks: Corpus.chunks(stream, chunk),
      p1_records: Enum.map(stanzas, &p1_decode/1),
      ours_structs: nil,
      ours_encodable: nil,
      ours_errors: []
    }

    if ours? do
      decoded = Enum.map(stanzas, &{&1, XmppBridge.Stanza.decode(&1)})
      errors = for {bin, {:error, _} = error} <- decoded, do: {bin, error}
      structs = for {_, {:ok, s}} <- decoded, do: s
      # encode is timed on the structs we could decode and that encode without raising
      encodable = Enum.filter(structs, &encodes?/1)
      %{set | ours_structs: structs, ours_encodable: encodable, ours_errors: errors}
    else
      set
    end
  end

  # ---------------------------------------------------------------------------
  # the operations; each returns how many stanzas it handled

  defp p1_decode(bin), do: :xmpp.decode(:fxml_stream.parse_element(bin))

  defp ours_fun(:one_shot) do
    fn stanzas ->
      Enum.reduce(stanzas, 0, fn bin, n ->
        case XmppBridge.Stanza.decode(bin) do
          {:ok, _} -> n + 1
          {:error, _} -> n
        end
      end)
    end
  end

  defp ours_fun(:stream) do
    fn chunks ->
      parser = new_parser()

      Enum.reduce(chunks, 0, fn chunk, n ->
        case XmppBridge.StreamParser.feed(parser, chunk) do
          {:ok, events} -> n + count_stanzas(events)
          {:error, _} -> n
        end
      end)
    end
  end

  defp ours_fun(:encode) do
    fn structs ->
      Enum.reduce(structs, 0, fn s, n ->
        case XmppBridge.Stanza.encode(s) do
          {:ok, _} -> n + 1
          {:error, _} -> n
        end
      end)
    end
  end

  defp p1_fun(:one_shot) do
    fn stanzas ->
      Enum.reduce(stanzas, 0, fn bin, n ->
        _ = :xmpp.decode(:fxml_stream.parse_element(bin))
        n + 1
      end)
    end
  end

  defp p1_fun(:stream) do
    fn chunks ->
      state = :fxml_stream.new(self(), :infinity)

      {state, n} =
        Enum.reduce(chunks, {state, 0}, fn chunk, {state, n} ->
          state = :fxml_stream.parse(state, chunk)
          {state, p1_drain(n)}
        end)

      :fxml_stream.close(state)
      p1_drain(n)
    end
  end

  defp p1_fun(:encode) do
    fn records ->
      Enum.reduce(records, 0, fn rec, n ->
        _ = :fxml.element_to_binary(:xmpp.encode(rec))
        n + 1
      end)
    end
  end

  # the fast_xml stream parser sends its events to the callback pid (us)
  defp p1_drain(n) do
    receive do
      {:"$gen_event", {:xmlstreamelement, el}} ->
        _ = :xmpp.decode(el)
        p1_drain(n + 1)

      {:"$gen_event", {:xmlstreamerror, reason}} ->
        raise "fast_xml stream error: #{inspect(reason)}"

      {:"$gen_event", _start_or_end} ->
        p1_drain(n)
    after
      0 -> n
    end
  end

  defp new_parser do
    case XmppBridge.StreamParser.new([]) do
      {:ok, parser} -> parser
      parser -> parser
    end
  end

  @stanza_structs [XmppBridge.Message, XmppBridge.Presence, XmppBridge.Iq]

  defp count_stanzas(events), do: Enum.count(events, &stanza_struct?/1)

  defp stanza_struct?(%{__struct__: mod}) when mod in @stanza_structs, do: true
  defp stanza_struct?(_), do: false

  defp ours_input(set, :one_shot), do: set.stanzas
  defp ours_input(set, :stream), do: set.chunks
  defp ours_input(set, :encode), do: set.ours_encodable

  defp encodes?(struct) do
    _ = XmppBridge.Stanza.encode(struct)
    true
  rescue
    _ -> false
  end

  defp p1_input(set, :one_shot), do: set.stanzas
  defp p1_input(set, :stream), do: set.chunks
  defp p1_input(set, :encode), do: set.p1_records

  # ---------------------------------------------------------------------------
  # correctness on the side (not timed)

  defp checks(set, ours?) do
    p1_stream = p1_fun(:stream).(set.chunks)

    p1_roundtrip =
      Enum.count(set.p1_records, fn rec ->
        p1_decode(:fxml.element_to_binary(:xmpp.encode(rec))) == rec
      end)

    p1 = [
      {set.cat, "P1 one-shot decode: #{length(set.p1_records)}/#{set.count} stanzas",
       Enum.all?(set.p1_records, &(elem(&1, 0) in [:message, :presence, :iq]))},
      {set.cat, "P1 streaming decode: #{p1_stream}/#{set.count} stanzas", p1_stream == set.count},
      {set.cat, "P1 encode re-decodes equal: #{p1_roundtrip}/#{set.count}",
       p1_roundtrip == set.count}
    ]

    if ours?, do: p1 ++ ours_checks(set), else: p1
  end

  defp ours_checks(set) do
    decoded = length(set.ours_structs)

    one_shot_detail =
      case set.ours_errors do
        [] -> ""
        [{bin, error} | _] -> " (first: #{inspect(error)} on #{excerpt(bin)})"
      end

    events = ours_stream_events(set.chunks)
    {structs, others} = Enum.split_with(events, &stanza_struct?/1)

    stream_detail =
      case others do
        [] -> ""
        [other | _] -> " (#{length(others)} other events, first: #{excerpt(inspect(other))})"
      end

    bad_roundtrips =
      for s <- set.ours_structs,
          result = roundtrip(s),
          result != :ok,
          do: result

    roundtrip_detail =
      case bad_roundtrips do
        [] -> ""
        [first | _] -> " (first: #{excerpt(inspect(first))})"
      end

    [
      {set.cat, "ours one-shot decode: #{decoded}/#{set.count} stanzas" <> one_shot_detail,
       decoded == set.count},
      {set.cat, "ours streaming decode: #{length(structs)}/#{set.count} stanzas" <> stream_detail,
       length(structs) == set.count and others == []},
      {set.cat, "ours streaming structs == one-shot structs", structs == set.ours_structs},
      {set.cat,
       "ours encode re-decodes equal: #{decoded - length(bad_roundtrips)}/#{decoded}" <>
         roundtrip_detail, bad_roundtrips == []}
    ]
  end

  defp roundtrip(struct) do
    with {:ok, bin} <- XmppBridge.Stanza.encode(struct),
         {:ok, ^struct} <- XmppBridge.Stanza.decode(bin) do
      :ok
    else
      {:ok, other} -> {:not_equal, struct, other}
      {:error, _} = error -> {error, struct}
    end
  rescue
    e -> {:raised, e, struct}
  end

  # every event except the stream header and footer
  defp ours_stream_events(chunks) do
    parser = new_parser()

    Enum.flat_map(chunks, fn chunk ->
      case XmppBridge.StreamParser.feed(parser, chunk) do
        {:ok, events} -> Enum.reject(events, &match?({:stream_start, _}, &1))
        {:error, reason} -> [{:feed_error, reason}]
      end
    end)
    |> Enum.reject(&(&1 == :stream_end))
  end

  defp excerpt(bin) when byte_size(bin) > 300, do: String.slice(bin, 0, 300) <> "…"
  defp excerpt(bin), do: bin

  defp print_checks(checks) do
    failed = Enum.reject(checks, fn {_, _, ok} -> ok end)
    IO.puts("Correctness checks: #{length(checks) - length(failed)}/#{length(checks)} ok")

    for {cat, what, _} <- failed do
      IO.puts("  FAILED #{cat}: #{what}")
    end

    IO.puts("")
  end

  # ---------------------------------------------------------------------------
  # timing

  # Runs `fun.(input)` in a fresh process: warm-up, calibration, then
  # `rounds` timed rounds of `iters` calls each. Returns the median time of one
  # call in nanoseconds (one call handles the whole input once) and how many
  # stanzas one call handled successfully.
  defp measure(fun, input, opts) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        send(parent, {self(), run_rounds(fun, input, opts)})
      end)

    receive do
      {^pid, result} ->
        Process.demonitor(ref, [:flush])
        result

      {:DOWN, ^ref, :process, ^pid, reason} ->
        raise "measurement crashed: #{inspect(reason)}"
    end
  end

  defp run_rounds(fun, input, %{rounds: rounds, min_ns: min_ns}) do
    # warm-up: at least 2 calls and min_ns / 2
    {t1, handled} = time_calls(fun, input, 1)
    warm_until = :erlang.monotonic_time(:nanosecond) + div(min_ns, 2)
    warm_up(fun, input, warm_until)

    iters = max(1, ceil(min_ns / max(t1, 1)))

    times =
      for _ <- 1..rounds do
        :erlang.garbage_collect()
        {t, _} = time_calls(fun, input, iters)
        t / iters
      end

    %{ns: median(times), handled: handled}
  end

  defp warm_up(fun, input, until) do
    fun.(input)
    if :erlang.monotonic_time(:nanosecond) < until, do: warm_up(fun, input, until)
  end

  defp time_calls(fun, input, iters) do
    t0 = :erlang.monotonic_time(:nanosecond)
    n = call_n(fun, input, iters, 0)
    {:erlang.monotonic_time(:nanosecond) - t0, n}
  end

  defp call_n(_fun, _input, 0, n), do: n
  defp call_n(fun, input, k, _n), do: call_n(fun, input, k - 1, fun.(input))

  defp median(xs) do
    sorted = Enum.sort(xs)
    len = length(sorted)
    mid = div(len, 2)

    if rem(len, 2) == 1,
      do: Enum.at(sorted, mid),
      else: (Enum.at(sorted, mid - 1) + Enum.at(sorted, mid)) / 2
  end

  # ---------------------------------------------------------------------------
  # report

  defp render(results, checks, chunk, opts, ours?) do
    mixed = Enum.find(results, fn {set, _} -> set.cat == :mixed end)

    [
      "## Codec benchmark: xmpp_bridge vs ProcessOne fast_xml + xmpp\n\n",
      environment(chunk, opts),
      "\n### Corpus\n\n",
      corpus_table(results),
      for {op, title} <- @ops do
        ["\n### #{title}\n\n", op_table(results, op, ours?)]
      end,
      "\n### Targets (mixed corpus)\n\n",
      targets(mixed, ours?),
      "\n",
      checks_summary(checks)
    ]
    |> IO.iodata_to_binary()
  end

  defp environment(chunk, %{rounds: rounds, min_ns: min_ns}) do
    cpu =
      case File.read("/proc/cpuinfo") do
        {:ok, info} ->
          case Regex.run(~r/model name\s*:\s*(.*)/, info) do
            [_, model] -> model
            _ -> "unknown CPU"
          end

        _ ->
          "unknown CPU"
      end

    """
    - #{cpu}, #{:erlang.system_info(:logical_processors_available)} logical CPUs; \
    one process, one scheduler at a time
    - Erlang/OTP #{:erlang.system_info(:otp_release)} (erts #{:erlang.system_info(:version)}), \
    Elixir #{System.version()}
    - ProcessOne: fast_xml #{Application.spec(:fast_xml, :vsn)}, \
    xmpp #{Application.spec(:xmpp, :vsn)} (Debian packages)
    - median of #{rounds} rounds of ≥ #{div(min_ns, 1_000_000)} ms after warm-up; \
    stream fed in #{chunk}-byte chunks; MB = 10^6 bytes
    - speedup = P1 time / our time (> 1 means we are faster)
    """
  end

  defp corpus_table(results) do
    rows =
      for {set, _} <- results do
        "| #{set.cat} | #{set.desc} | #{set.count} | #{div(set.bytes, set.count)} | " <>
          "#{fmt(set.bytes / 1000, 1)} |\n"
      end

    [
      "| category | content | stanzas | avg bytes | total KB |\n",
      "|---|---|---:|---:|---:|\n"
      | rows
    ]
  end

  defp op_table(results, op, ours?) do
    rows =
      for {set, per_op} <- results do
        %{p1: p1, ours: ours} = per_op[op]
        bytes = if op == :stream, do: set.stream_bytes, else: set.bytes

        ours_cols =
          if ours?,
            do:
              "#{fmt(us_per(ours, set), 2)}#{dagger(ours, set)} | #{fmt(mbs(bytes, ours), 1)} | " <>
                "**#{fmt(p1.ns / ours.ns, 1)}×**",
            else: "– | – | –"

        "| #{set.cat} | #{ours_cols} | #{fmt(us_per(p1, set), 2)}#{dagger(p1, set)} | " <>
          "#{fmt(mbs(bytes, p1), 1)} |\n"
      end

    incomplete? =
      Enum.any?(results, fn {set, per_op} ->
        Enum.any?(Map.values(per_op[op]), &(&1 && &1.handled != set.count))
      end)

    [
      "| category | ours µs/stanza | ours MB/s | speedup | P1 µs/stanza | P1 MB/s |\n",
      "|---|---:|---:|---:|---:|---:|\n",
      rows,
      if(incomplete?,
        do: "\n† handled fewer stanzas than the corpus holds (errors, see the checks)\n",
        else: ""
      )
    ]
  end

  defp dagger(%{handled: n}, %{count: n}), do: ""
  defp dagger(_, _), do: "†"

  defp targets(nil, _), do: "no mixed corpus\n"

  defp targets(_mixed, false), do: "ours not measured: targets not evaluated\n"

  defp targets({set, per_op}, true) do
    ratio_lines =
      for {op, target} <- @ratio_targets do
        %{p1: p1, ours: ours} = per_op[op]
        ratio = p1.ns / ours.ns
        title = Keyword.fetch!(@ops, op)

        "- #{pass(ratio >= target and complete?(ours, set))} #{title} ≥ " <>
          "#{fmt(target, 0)}× faster than P1: #{fmt(ratio, 1)}×#{dagger(ours, set)}\n"
      end

    stream_mbs = mbs(set.stream_bytes, per_op[:stream].ours)
    one_shot_mbs = mbs(set.bytes, per_op[:one_shot].ours)
    encode_mbs = mbs(set.bytes, per_op[:encode].ours)

    [
      ratio_lines,
      "- #{pass(stream_mbs >= @throughput_target_mbs and complete?(per_op[:stream].ours, set))} " <>
        "decode throughput ≥ " <>
        "#{fmt(@throughput_target_mbs, 0)} MB/s on one core (streaming, mixed corpus): " <>
        "#{fmt(stream_mbs, 1)} MB/s\n",
      "\nOur mixed-corpus throughput on one core: streaming decode #{fmt(stream_mbs, 1)} MB/s, " <>
        "one-shot decode #{fmt(one_shot_mbs, 1)} MB/s, encode #{fmt(encode_mbs, 1)} MB/s.\n"
    ]
  end

  defp checks_summary(checks) do
    failed = for {cat, what, false} <- checks, do: "  - FAILED #{cat}: #{what}\n"
    ok = length(checks) - length(failed)
    ["Correctness checks (untimed): #{ok}/#{length(checks)} ok\n" | failed]
  end

  defp pass(true), do: "PASS"
  defp pass(false), do: "FAIL"

  defp complete?(%{handled: handled}, set), do: handled == set.count

  defp us_per(%{ns: ns_per_call}, set), do: ns_per_call / set.count / 1000
  defp mbs(bytes, %{ns: ns_per_call}), do: bytes * 1000 / ns_per_call

  defp fmt(x, 0), do: x |> round() |> Integer.to_string()
  defp fmt(x, decimals), do: :erlang.float_to_binary(x / 1, decimals: decimals)

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      v -> String.to_integer(v)
    end
  end
end

XmppBridge.Bench.Codec.main()
