defmodule XmppBridge.StreamParserTest do
  use ExUnit.Case, async: true

  alias XmppBridge.{Error, Iq, Message, Presence, StreamParser}
  alias XmppBridge.Payload

  doctest XmppBridge.StreamParser

  @streams "http://etherx.jabber.org/streams"
  @header "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='#{@streams}' " <>
            "from='example.com' id='s1' version='1.0' xml:lang='en'>"
  @header_attrs [
    {"xmlns", "jabber:client"},
    {"xmlns:stream", @streams},
    {"from", "example.com"},
    {"id", "s1"},
    {"version", "1.0"},
    {"xml:lang", "en"}
  ]

  @body "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\n" <>
          "<message to='Bob@Example.com' type='chat'><body>h\u00e9llo &amp; <![CDATA[x>y]]> \u{1F600}</body></message> " <>
          "<presence><show>away</show></presence>" <>
          "<iq type='get' id='1' a='&gt;/>'><ping xmlns='urn:xmpp:ping'/></iq>" <>
          "</stream:stream>"

  defp expected_events do
    [
      {:stream_start, @header_attrs},
      {:xmlel, "stream:features", [],
       [{:xmlel, "bind", [{"xmlns", "urn:ietf:params:xml:ns:xmpp-bind"}], []}]},
      %Message{type: :chat, to: "bob@example.com", bodies: [{nil, "héllo & x>y 😀"}]},
      %Presence{show: :away},
      %Iq{type: :get, id: "1", payload: %Payload.Ping{}, attrs: [{"a", ">/>"}]},
      :stream_end
    ]
  end

  defp feed_all(parser, chunks) do
    Enum.flat_map(chunks, fn chunk ->
      assert {:ok, events} = StreamParser.feed(parser, chunk)
      events
    end)
  end

  defp chunks(binary, size) do
    for <<chunk::binary-size(size) <- binary>>, do: chunk
  end

  test "header, stream-level element, stanzas and end in one chunk" do
    parser = StreamParser.new()
    assert StreamParser.feed(parser, @header <> @body) == {:ok, expected_events()}
    assert StreamParser.buffered(parser) == 0
  end

  test "split at every byte position, and in chunks of every size up to 9" do
    stream = @header <> @body

    for cut <- 1..(byte_size(stream) - 1) do
      <<a::binary-size(cut), b::binary>> = stream
      assert feed_all(StreamParser.new(), [a, b]) == expected_events(), "cut at #{cut}"
    end

    for size <- 1..9 do
      rest_size = rem(byte_size(stream), size)
      full = chunks(binary_part(stream, 0, byte_size(stream) - rest_size), size)
      tail = binary_part(stream, byte_size(stream) - rest_size, rest_size)
      assert feed_all(StreamParser.new(), full ++ [tail]) == expected_events(), "size #{size}"
    end
  end

  test "events come as soon as their element is complete" do
    parser = StreamParser.new()
    assert StreamParser.feed(parser, "<stream:stream xmlns:stream='#{@streams}'") == {:ok, []}

    assert StreamParser.feed(parser, ">") ==
             {:ok, [{:stream_start, [{"xmlns:stream", @streams}]}]}

    assert StreamParser.feed(parser, "<presence><status>a") == {:ok, []}
    assert StreamParser.buffered(parser) > 0
    assert StreamParser.feed(parser, "</status></presence") == {:ok, []}
    assert StreamParser.feed(parser, ">") == {:ok, [%Presence{statuses: [{nil, "a"}]}]}
    assert StreamParser.buffered(parser) == 0
  end

  test "a byte-order mark may precede the header" do
    assert {:ok, [{:stream_start, _}, %Presence{}]} =
             StreamParser.feed(StreamParser.new(), "\uFEFF" <> @header <> "<presence/>")
  end

  test "stanzas inherit the stream's namespace" do
    header = "<stream:stream xmlns='jabber:server' xmlns:stream='#{@streams}'>"

    assert {:ok, [{:stream_start, _}, %Message{} = m]} =
             StreamParser.feed(
               StreamParser.new(),
               header <> "<message from='a@b' to='c@d'><body>x</body></message>"
             )

    assert m.attrs == [{"xmlns", "jabber:server"}]
    assert m.bodies == [{nil, "x"}]
    assert XmppBridge.Stanza.encode!(m) =~ "xmlns='jabber:server'"

    header = "<stream xmlns='jabber:component:accept' xmlns:stream='#{@streams}'>"
    # An unprefixed stream element needs xmlns to be the streams namespace.
    assert {:ok, [{:parse_error, {:bad_namespace, "jabber:component:accept"}}]} =
             StreamParser.feed(StreamParser.new(), header)
  end

  test "a component stream" do
    header =
      "<stream:stream xmlns='jabber:component:accept' xmlns:stream='#{@streams}' to='c.example.com'>"

    assert {:ok, [{:stream_start, _}, {:xmlel, "handshake", [], _}, %Iq{} = iq]} =
             StreamParser.feed(
               StreamParser.new(),
               header <> "<handshake>abc</handshake><iq type='result' id='1'/>"
             )

    assert iq.attrs == [{"xmlns", "jabber:component:accept"}]
  end

  test "a self-closed stream header starts and ends the stream" do
    assert StreamParser.feed(StreamParser.new(), "<stream:stream xmlns:stream='#{@streams}'/>") ==
             {:ok, [{:stream_start, [{"xmlns:stream", @streams}]}, :stream_end]}
  end

  test "a new stream may follow the end of one (restart), and reset forgets a partial one" do
    parser = StreamParser.new()

    assert {:ok, events} =
             StreamParser.feed(parser, @header <> "<presence/></stream:stream>" <> @header)

    assert [{:stream_start, _}, %Presence{}, :stream_end, {:stream_start, _}] = events

    assert {:ok, []} = StreamParser.feed(parser, "<message><body>half")
    assert StreamParser.reset(parser) == :ok
    assert StreamParser.buffered(parser) == 0

    assert StreamParser.feed(parser, @header <> "<presence/>") ==
             {:ok, [{:stream_start, @header_attrs}, %Presence{}]}
  end

  test "an invalid stanza is reported with its element and the stream goes on" do
    parser = StreamParser.new()
    {:ok, _} = StreamParser.feed(parser, @header)

    assert StreamParser.feed(parser, "<message to='a@b@c'><body>x</body></message><presence/>") ==
             {:ok,
              [
                {:invalid_stanza, {:invalid_jid, {"a@b@c", :domainpart}},
                 {:xmlel, "message", [{"to", "a@b@c"}],
                  [{:xmlel, "body", [], [{:xmlcdata, "x"}]}]}},
                %Presence{}
              ]}

    assert StreamParser.feed(parser, "<iq type='get' id='1'/>") ==
             {:ok,
              [
                {:invalid_stanza, {:invalid_iq, "an IQ of type get carries 0 payload element(s)"},
                 {:xmlel, "iq", [{"type", "get"}, {"id", "1"}], []}}
              ]}

    assert {:ok, [%Presence{}]} = StreamParser.feed(parser, "<presence/>")
  end

  test "custom limits apply per top-level element, not to the stream" do
    parser = StreamParser.new(max_bytes: 200, max_depth: 3)
    {:ok, _} = StreamParser.feed(parser, @header)
    stanza = "<message><body>" <> String.duplicate("x", 150) <> "</body></message>"

    # Many elements of 180 bytes each: the stream is far over 200 bytes.
    for _ <- 1..20 do
      assert {:ok, [%Message{}]} = StreamParser.feed(parser, stanza)
    end

    assert {:ok, [%Message{}]} =
             StreamParser.feed(parser, "<message><a xmlns='urn:a'><b/></a></message>")
  end

  # BUG (reported to the lead): the size limit is checked against everything
  # buffered, including bytes of the same chunk that follow the element being
  # scanned, so one network read holding several elements (say the header and
  # a big stanza, or a burst of offline messages) is refused although each
  # element is under the limit. (StreamParser.check_size in stream.rs uses
  # buf.len() - start, where the scan position was meant.)
  # Input:    max_bytes: 1000; one chunk = header <> 3 stanzas of ~600 bytes
  # Expected: {:ok, [{:stream_start, _}, %Message{}, %Message{}, %Message{}]}
  # Got:      {:ok, [{:parse_error, {:too_large, 1000}}]} (even the header
  #           event is lost); same with the default limit for header <>
  #           a 262_000-byte stanza, or two 150 KB stanzas in one chunk.
  test "max_bytes applies to each element, not to the chunk that carries it" do
    stanza = "<message><body>" <> String.duplicate("x", 570) <> "</body></message>"
    assert byte_size(stanza) < 1000

    parser = StreamParser.new(max_bytes: 1000)

    assert {:ok, [{:stream_start, _}, %Message{}, %Message{}, %Message{}]} =
             StreamParser.feed(parser, @header <> stanza <> stanza <> stanza)

    big = "<message><body>" <> String.duplicate("y", 262_000) <> "</body></message>"
    assert byte_size(big) < 262_144

    assert {:ok, [{:stream_start, _}, %Message{}]} =
             StreamParser.feed(StreamParser.new(), @header <> big)
  end

  test "inspect shows a parser" do
    assert inspect(StreamParser.new()) =~ "#XmppBridge.StreamParser<"
  end

  test "new/1 raises on bad options" do
    assert_raise Error, fn -> StreamParser.new(max_depth: 0) end
    assert_raise Error, fn -> StreamParser.new(foo: 1) end
  end
end
