defmodule XmppBridge.SchedulerTest do
  # DESIGN.md: "No NIF call blocks a scheduler for more than ~1 ms ... Large
  # decodes go to a dirty CPU scheduler or are split. Measure it
  # (erlang:system_monitor(self(), [{long_schedule, 1}]))."
  #
  # How it is measured: this test process becomes the system monitor with
  # {:long_schedule, 1}, and the calls run in a separate worker process.
  # (The VM does not report long schedules of the monitor process itself,
  # so running the calls here would make the test vacuous.) A long_schedule
  # message for the worker means one of its calls held a normal scheduler
  # for 1 ms or more; work on a dirty scheduler is not reported. The worker
  # only calls the codec: inputs are built beforehand, and it gets a heap
  # big enough that no garbage collection interrupts it. Other processes of
  # a busy machine may be reported too; only the worker's reports count.
  #
  # A positive control checks, first, that the monitor does see a worker
  # that blocks its scheduler.
  use ExUnit.Case, async: false

  alias XmppBridge.{Stanza, StreamParser, Xml}

  @moduletag timeout: 300_000
  @rounds 5
  @limit 262_144
  @header "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

  setup_all do
    roster = roster_stanza()
    body = body_stanza()
    assert byte_size(roster) < @limit and byte_size(roster) > @limit - 2_000
    assert byte_size(body) < @limit and byte_size(body) > 250_000

    inputs = [roster: roster, body: body]

    decoded = for {name, xml} <- inputs, do: {name, Stanza.decode!(xml)}
    parsed = for {name, xml} <- inputs, do: {name, Xml.parse!(xml)}
    assert length(elem(hd(decoded), 1).payload.items) > 2_400

    # Words the worker needs: the biggest term it builds, several times over.
    words =
      (decoded ++ parsed)
      |> Enum.map(fn {_, term} -> :erts_debug.flat_size(term) end)
      |> Enum.max()

    %{inputs: inputs, decoded: decoded, parsed: parsed, heap: words * 8}
  end

  setup do
    previous = :erlang.system_monitor()
    :erlang.system_monitor(self(), [{:long_schedule, 1}])
    on_exit(fn -> restore_monitor(previous) end)
    flush_monitor_messages()
    :ok
  end

  defp restore_monitor(:undefined), do: :erlang.system_monitor(:undefined)
  defp restore_monitor({pid, options}), do: :erlang.system_monitor(pid, options)

  defp flush_monitor_messages do
    receive do
      {:monitor, _, :long_schedule, _} -> flush_monitor_messages()
    after
      0 -> :ok
    end
  end

  ## Inputs

  # A roster result just under the default 256 KiB limit: ~2500 items.
  defp roster_stanza do
    head =
      "<iq xmlns='jabber:client' type='result' id='roster1'><query xmlns='jabber:iq:roster' ver='v1'>"

    tail = "</query></iq>"

    item = fn i ->
      "<item jid='user#{i}@example.com' name='Üser #{i}' subscription='both'><group>G#{rem(i, 9)}</group></item>"
    end

    Stream.iterate(1, &(&1 + 1))
    |> Enum.reduce_while({[], byte_size(head) + byte_size(tail)}, fn i, {acc, size} ->
      next = item.(i)

      if size + byte_size(next) >= @limit,
        do: {:halt, {acc, size}},
        else: {:cont, {[next | acc], size + byte_size(next)}}
    end)
    |> then(fn {items, _} -> IO.iodata_to_binary([head, Enum.reverse(items), tail]) end)
  end

  # A message with a 250 KB body: entities, 2-, 3- and 4-byte characters.
  defp body_stanza do
    head = "<message xmlns='jabber:client' to='bob@example.com' type='chat'><body>"
    tail = "</body></message>"
    unit = "a &amp; b &lt; c é 中 😀 "

    text =
      String.duplicate(unit, div(@limit - 1 - byte_size(head) - byte_size(tail), byte_size(unit)))

    head <> text <> tail
  end

  ## Running in a worker

  # Runs `fun` in a fresh worker @rounds times; returns the per-call
  # timings (µs) and the long_schedule reports about the worker.
  defp measure(heap_bytes, fun) do
    parent = self()

    {pid, ref} =
      :erlang.spawn_opt(
        fn ->
          timings =
            for _ <- 1..@rounds do
              {us, _} = :timer.tc(fun)
              us
            end

          send(parent, {:timings, self(), timings})
        end,
        [:monitor, min_heap_size: div(heap_bytes * 4, 8) + 100_000]
      )

    timings =
      receive do
        {:timings, ^pid, timings} -> timings
      after
        120_000 -> flunk("worker did not finish")
      end

    receive do
      {:DOWN, ^ref, :process, ^pid, :normal} -> :ok
    after
      5_000 -> flunk("worker did not exit")
    end

    # Reports are sent when the worker is scheduled out: give them time.
    Process.sleep(50)
    {timings, collect_reports(pid)}
  end

  defp collect_reports(pid) do
    receive do
      {:monitor, ^pid, :long_schedule, info} -> [info | collect_reports(pid)]
    after
      0 -> []
    end
  end

  defp assert_no_stall(what, {timings, reports}) do
    assert reports == [],
           "#{what} held a normal scheduler for >= 1 ms: long_schedule reports " <>
             "#{inspect(reports)}; wall-clock timings per call (µs): #{inspect(timings)}"
  end

  test "positive control: the monitor sees a worker that blocks its scheduler", %{heap: heap} do
    big = :binary.copy("x", 8_000_000)
    # binary:copy/2 does not yield: copying 40 MB takes well over 1 ms.
    {_timings, reports} = measure(heap, fn -> byte_size(:binary.copy(big, 5)) end)

    assert reports != [],
           "no long_schedule report for a 40 MB binary:copy/2; the measurement below cannot be trusted"

    assert Enum.all?(reports, &(Keyword.fetch!(&1, :timeout) >= 1))
  end

  for {label, input} <- [roster: "a 2500-item roster", body: "a message with a 250 KB body"] do
    describe "#{label}: #{input} just under 256 KiB" do
      test "Stanza.decode", %{inputs: inputs, heap: heap} do
        xml = Keyword.fetch!(inputs, unquote(label))
        assert_no_stall("Stanza.decode", measure(heap, fn -> {:ok, _} = Stanza.decode(xml) end))
      end

      test "Xml.parse", %{inputs: inputs, heap: heap} do
        xml = Keyword.fetch!(inputs, unquote(label))
        assert_no_stall("Xml.parse", measure(heap, fn -> {:ok, _} = Xml.parse(xml) end))
      end

      test "StreamParser.feed in one chunk", %{inputs: inputs, heap: heap} do
        stream = @header <> Keyword.fetch!(inputs, unquote(label))

        result =
          measure(heap, fn ->
            {:ok, [_, %_{}]} = StreamParser.feed(StreamParser.new(), stream)
          end)

        assert_no_stall("StreamParser.feed (one chunk)", result)
      end

      test "StreamParser.feed in 100 KB chunks", %{inputs: inputs, heap: heap} do
        chunks = chunk(@header <> Keyword.fetch!(inputs, unquote(label)), 100_000)
        assert length(chunks) == 3
        assert_no_stall("StreamParser.feed (100 KB chunks)", measure(heap, feed_all(chunks)))
      end

      test "StreamParser.feed in 16 KB chunks", %{inputs: inputs, heap: heap} do
        # Small chunks, each cheap to scan; the last one completes the big
        # element, whose parse and term building must not run on a normal
        # scheduler either.
        chunks = chunk(@header <> Keyword.fetch!(inputs, unquote(label)), 16_384)
        assert_no_stall("StreamParser.feed (16 KB chunks)", measure(heap, feed_all(chunks)))
      end

      test "Stanza.encode of the decoded struct", %{decoded: decoded, heap: heap} do
        stanza = Keyword.fetch!(decoded, unquote(label))

        assert_no_stall(
          "Stanza.encode",
          measure(heap, fn -> {:ok, _} = Stanza.encode(stanza) end)
        )
      end

      test "Xml.encode of the parsed tree", %{parsed: parsed, heap: heap} do
        el = Keyword.fetch!(parsed, unquote(label))
        assert_no_stall("Xml.encode", measure(heap, fn -> {:ok, _} = Xml.encode(el) end))
      end
    end
  end

  defp chunk(binary, size) when byte_size(binary) <= size, do: [binary]

  defp chunk(binary, size) do
    <<head::binary-size(size), rest::binary>> = binary
    [head | chunk(rest, size)]
  end

  defp feed_all(chunks) do
    fn ->
      parser = StreamParser.new()

      events =
        Enum.flat_map(chunks, fn c ->
          {:ok, events} = StreamParser.feed(parser, c)
          events
        end)

      [{:stream_start, _}, %_{}] = events
    end
  end
end
