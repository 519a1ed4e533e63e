defmodule XmppBridge.RoundtripPropertyTest do
  # Property-style round trips with a seeded :rand generator
  # (XmppBridge.Test.Generators). A failure prints XB_PROP_SEED=<n>; run
  # `XB_PROP_SEED=<n> mix test test/xmpp_bridge/roundtrip_property_test.exs`
  # to replay it (or `mix test --seed <ExUnit seed>`).
  use ExUnit.Case, async: true

  alias XmppBridge.{StreamParser, Stanza, Xml}
  alias XmppBridge.Test.Generators, as: Gen

  @cases 600

  test "typed stanzas: decode(encode(s)) == s" do
    Gen.check(:typed_stanzas, @cases, &Gen.stanza/0, fn stanza ->
      assert {:ok, xml} = Stanza.encode(stanza)
      assert String.valid?(xml)
      assert {:ok, decoded} = Stanza.decode(xml)
      assert decoded == stanza
      # Encoding is a function of the struct: the same bytes again.
      assert Stanza.encode!(decoded) == xml
    end)
  end

  test "every typed payload kind is generated, and comes back typed" do
    # Guards the property above against a generator that silently stops
    # producing some payload kind.
    Gen.check(:payload_kinds, 300, fn -> Gen.list_of(1, 4, &Gen.payload/0) end, fn payloads ->
      msg = %XmppBridge.Message{payloads: payloads}
      assert Stanza.decode!(Stanza.encode!(msg)).payloads == payloads
    end)

    kinds =
      for _ <- 1..2000, uniq: true do
        case Gen.payload() do
          %mod{} -> mod
          {:xmlel, _, _, _} -> :xmlel
        end
      end

    assert length(kinds) == 15
  end

  test "generic trees: Xml.parse(Xml.encode(el)) == el" do
    Gen.check(:generic_trees, @cases, fn -> Gen.xmlel(5) end, fn el ->
      assert {:ok, xml} = Xml.encode(el)
      assert {:ok, ^el} = Xml.parse(xml)
    end)
  end

  describe "streaming" do
    @streams "http://etherx.jabber.org/streams"

    defp stream_case do
      stanzas = Gen.list_of(1, 6, &Gen.stanza/0)

      header_attrs =
        [
          {"xmlns", "jabber:client"},
          {"xmlns:stream", @streams},
          {"to", Gen.jid()},
          {"version", "1.0"}
        ] ++ if(Gen.bool(), do: [{"xml:lang", Gen.lang()}, {"id", Gen.text()}], else: [])

      {header_attrs, stanzas, Gen.bool()}
    end

    defp header(attrs, decl?) do
      tag = Xml.encode!({:xmlel, "stream:stream", attrs, []})
      open = binary_part(tag, 0, byte_size(tag) - 2) <> ">"
      if decl?, do: "<?xml version='1.0' encoding='UTF-8'?>\n" <> open, else: open
    end

    defp whitespace, do: Gen.one_of(["", "", " ", "\n", "\r\n\t  "])

    # Random cut points; when the stream holds multi-byte characters, at
    # least one cut falls inside one (before a continuation byte).
    defp cuts(bytes) do
      size = byte_size(bytes)

      if Gen.chance(3) do
        Enum.to_list(1..(size - 1))
      else
        inside_char =
          for(<<b <- bytes>>, do: b)
          |> Enum.with_index()
          |> Enum.filter(fn {b, i} -> i > 0 and Bitwise.band(b, 0xC0) == 0x80 end)
          |> Enum.map(&elem(&1, 1))

        forced = if inside_char == [], do: [], else: [Gen.one_of(inside_char)]

        (forced ++ Gen.list_of(0, 10, fn -> Gen.int(1, size - 1) end))
        |> Enum.uniq()
        |> Enum.sort()
      end
    end

    defp split(bytes, cuts) do
      {chunks, last, _} =
        Enum.reduce(cuts, {[], bytes, 0}, fn cut, {acc, rest, offset} ->
          <<chunk::binary-size(cut - offset), rest::binary>> = rest
          {[chunk | acc], rest, cut}
        end)

      Enum.reverse([last | chunks])
    end

    test "a stream split at random byte positions yields the one-shot decodes" do
      Gen.check(:stream_split, @cases, &stream_case/0, fn {attrs, stanzas, decl?} ->
        encoded = Enum.map(stanzas, &Stanza.encode!/1)

        stream =
          IO.iodata_to_binary([
            header(attrs, decl?),
            Enum.map(encoded, &[whitespace(), &1]),
            whitespace(),
            "</stream:stream>"
          ])

        expected =
          [{:stream_start, attrs}] ++ Enum.map(encoded, &Stanza.decode!/1) ++ [:stream_end]

        chunks = split(stream, cuts(stream))
        assert IO.iodata_to_binary(chunks) == stream

        parser = StreamParser.new()

        events =
          Enum.flat_map(chunks, fn chunk ->
            assert {:ok, events} = StreamParser.feed(parser, chunk)
            events
          end)

        assert events == expected
        assert StreamParser.buffered(parser) == 0
      end)
    end
  end
end
