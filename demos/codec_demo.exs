# The codec demo (`make demo`): an XMPP stream arrives in arbitrary chunks,
# is decoded in Rust into typed Elixir structs, answered, and encoded back.
# It shows what the codec layer of xmpp_bridge does today; the BEAM-Rust
# demo (a BEAM process and a Rust program over a real server) builds on it.

alias XmppBridge.{Iq, Message, Payload, Stanza, StreamParser}

defmodule Demo do
  def section(title), do: IO.puts(["\n== ", title])

  def show(label, value),
    do:
      IO.puts([
        String.pad_trailing(label, 22),
        inspect(value, pretty: true, width: 96, charlists: :as_lists)
      ])
end

stream =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " <>
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s1' version='1.0'>" <>
    "<message from='Juliet@Example.com/balcony' to='romeo@example.net' type='chat' id='m1'>" <>
    "<body>Wherefore art thou, Romeo? ☀</body><active xmlns='http://jabber.org/protocol/chatstates'/>" <>
    "<request xmlns='urn:xmpp:receipts'/><x xmlns='urn:example:unknown' keep='me'>as it came</x></message>" <>
    "<presence from='room@conference.example.com/nurse'><show>away</show>" <>
    "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/>" <>
    "<status code='110'/></x></presence>" <>
    "<iq type='get' id='r1' from='juliet@example.com/balcony'><query xmlns='jabber:iq:roster'/></iq>" <>
    "<message to='bad@@jid'/></stream:stream>"

Demo.section(
  "Streaming decode: the stream arrives in 7-byte chunks (split inside tags and UTF-8)"
)

parser = StreamParser.new()

events =
  for <<chunk::binary-size(7) <- stream>>, reduce: [] do
    acc ->
      {:ok, new} = StreamParser.feed(parser, chunk)
      acc ++ new
  end

rest =
  binary_part(stream, byte_size(stream) - rem(byte_size(stream), 7), rem(byte_size(stream), 7))

{:ok, last} = StreamParser.feed(parser, rest)

for event <- events ++ last do
  case event do
    %Message{} = m -> Demo.show("message", m)
    %XmppBridge.Presence{} = p -> Demo.show("presence", p)
    %Iq{} = iq -> Demo.show("iq", iq)
    other -> Demo.show("event", other)
  end
end

Demo.section("Answering the roster request, with a typed payload")
roster_get = Enum.find(events ++ last, &match?(%Iq{type: :get}, &1))

reply =
  Iq.result(roster_get, %Payload.Roster{
    ver: "v1",
    items: [
      %Payload.RosterItem{
        jid: "romeo@example.net",
        name: "Romeo",
        subscription: :both,
        groups: ["Montague"]
      }
    ]
  })

IO.puts(Stanza.encode!(reply))

Demo.section("A message carrying an Erlang term (ETF, base64), decoded safely")
term = {:order, 42, %{items: ["tea", "cake"], total: 7.5}, 2 ** 70}

msg = %Message{Message.chat("romeo@example.net", "order 42") | payloads: [Payload.Term.new(term)]}
xml = Stanza.encode!(msg)
IO.puts(xml)
%Message{payloads: [%Payload.Term{value: back}]} = Stanza.decode!(xml)
Demo.show("term back", back)
Demo.show("same term?", back == term)

# A pid means nothing on another node: refused when encoding, naming it.
Demo.show(
  "with a pid",
  Stanza.encode(%Message{msg | payloads: [Payload.Term.new({:reply_to, self()})]})
)

Demo.section("Bad input is an error that names the problem, never a crash")

for bad <- [
      "<message><body>unclosed</message>",
      "<!DOCTYPE lolz [<!ENTITY lol 'lol'>]><message>&lol;</message>",
      "<message to='a@b@c'/>",
      "<iq type='get'/>",
      <<"<message><body>", 0xFF, "</body></message>">>,
      42
    ] do
  {:error, error} = Stanza.decode(bad)

  IO.puts([
    "  ",
    String.pad_trailing(inspect(bad, limit: 4, printable_limit: 40), 70),
    " -> ",
    Exception.message(error)
  ])
end

Demo.section("Speed (one core, this machine): decode + encode of a chat message")

chat =
  "<message xmlns='jabber:client' from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='m1'><body>Art thou not Romeo, and a Montague?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"

n = 100_000
{t, _} = :timer.tc(fn -> Enum.each(1..n, fn _ -> Stanza.decode!(chat) end) end)
decoded = Stanza.decode!(chat)
{t2, _} = :timer.tc(fn -> Enum.each(1..n, fn _ -> Stanza.encode!(decoded) end) end)

IO.puts(
  "  decode #{Float.round(t / n, 2)} µs/stanza, encode #{Float.round(t2 / n, 2)} µs/stanza (`make bench-codec` compares with fast_xml + xmpp)"
)
