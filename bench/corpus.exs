# Deterministic stanza corpus for the codec benchmark (bench/codec.exs).
#
# Every stanza is generated here from a fixed :rand seed, so two runs (and two
# machines with the same OTP) measure exactly the same bytes. Nothing is read
# from disk.
#
# Each stanza is a binary carrying xmlns='jabber:client' on its top element (the
# form a one-shot decoder needs). The streaming benchmark strips that
# attribute, as a server or client stream does, and wraps the stanzas in a
# <stream:stream> header.

defmodule XmppBridge.Bench.Corpus do
  @moduledoc false

  @seed {2024, 11, 25}

  @stream_header "<stream:stream xmlns='jabber:client' " <>
                   "xmlns:stream='http://etherx.jabber.org/streams' " <>
                   "to='example.com' version='1.0'>"
  @stream_footer "</stream:stream>"

  # {category, description, number of stanzas}
  @categories [
    {:chat, "chat messages, receipts (XEP-0184), chat states (XEP-0085)", 2000},
    {:presence_caps, "presences with entity caps <c/> (XEP-0115)", 1000},
    {:muc_presence, "MUC presences, muc#user items and status codes", 1000},
    {:roster_10, "roster results, 10 items", 100},
    {:roster_100, "roster results, 100 items", 20},
    {:roster_500, "roster results, 500 items", 5},
    {:disco_info, "disco#info results, identities, features, data form", 100},
    {:large, "20-50 KB stanzas: big message bodies, big rosters", 6}
  ]

  @users ~w(alice bob carol dave erin frank grace heidi ivan judy mallory niaj
            olivia peggy rupert sybil trent victor walter xena yannick zoe)
  @domains ~w(example.com example.net jabber.example.org chat.example.io)
  @resources ~w(laptop phone Conversations.k3Xa gajim.Qm2Z Dino.f00d tablet work)
  @words ~w(the a meeting is at noon please review patch deploy server node
            cluster ok thanks later tomorrow build failed passed ping pong
            latency queue backlog retry café naïve Grüße привет 日本語 😀 👍
            & <tag> "quoted" it's 100% x<y a>b coffee lunch release candidate)
  @groups ["Friends", "Work", "Family", "Ops team", "Café ☕", "Beta testers", "Kollegen"]
  @names [
    "Alice Smith",
    "Bob",
    "Carol D.",
    "Dave (work)",
    "Érin Müller",
    "Frank & Co",
    "Grace Hopper",
    "李雷",
    "Ivan Петров",
    "Judy <admin>",
    "Mallory",
    "Zoë"
  ]
  @nicks ["alice", "Bob", "carol_d", "Dave", "Érin", "frank", "グレース", "heidi-bot", "Ivan", "judy"]
  @caps_nodes [
    "https://conversations.im",
    "https://gajim.org",
    "https://dino.im",
    "http://psi-im.org",
    "https://monal-im.org"
  ]

  @doc "Stream header (what a client sends) and footer used by the streaming benchmark."
  def stream_header, do: @stream_header
  def stream_footer, do: @stream_footer

  @doc """
  Builds the corpus. Returns `[{category, description, [stanza_binary]}]`
  followed by the `:mixed` category: every stanza of the others, shuffled.
  """
  def build do
    :rand.seed(:exsss, @seed)

    cats =
      for {cat, desc, n} <- @categories do
        {cat, desc, Enum.map(0..(n - 1), &stanza(cat, &1))}
      end

    mixed = cats |> Enum.flat_map(fn {_, _, list} -> list end) |> Enum.shuffle()
    cats ++ [{:mixed, "all of the above, shuffled", mixed}]
  end

  @doc "The stanza as it appears inside a client stream (no xmlns='jabber:client')."
  def streamed(stanza) do
    String.replace(stanza, " xmlns='jabber:client'", "", global: false)
  end

  @doc "A whole client stream: header, the stanzas, footer."
  def stream(stanzas) do
    IO.iodata_to_binary([@stream_header, Enum.map(stanzas, &streamed/1), @stream_footer])
  end

  @doc "Splits a binary into chunks of `size` bytes (sub-binaries, no copy)."
  def chunks(bin, size) do
    for off <- 0..(byte_size(bin) - 1)//size do
      binary_part(bin, off, min(size, byte_size(bin) - off))
    end
  end

  # ---------------------------------------------------------------------------
  # chat messages, ~300 bytes

  defp stanza(:chat, i) do
    from = full_jid()
    to = full_jid()
    id = "msg-" <> hex(12)

    {type_attrs, children} =
      case rem(i, 8) do
        k when k in 0..2 ->
          {"",
           [
             tag("body", text(20, 90)),
             "<active xmlns='http://jabber.org/protocol/chatstates'/>",
             "<request xmlns='urn:xmpp:receipts'/>"
           ]}

        k when k in 3..4 ->
          {" xml:lang='en'",
           [
             tag("body", text(10, 60)),
             "<active xmlns='http://jabber.org/protocol/chatstates'/>",
             "<request xmlns='urn:xmpp:receipts'/>",
             "<origin-id xmlns='urn:xmpp:sid:0' id='#{uuid()}'/>"
           ]}

        5 ->
          state = Enum.random(~w(composing paused inactive))

          {"",
           [
             "<#{state} xmlns='http://jabber.org/protocol/chatstates'/>",
             tag("thread", hex(16)),
             "<no-store xmlns='urn:xmpp:hints'/>"
           ]}

        6 ->
          {"",
           [
             "<received xmlns='urn:xmpp:receipts' id='msg-#{hex(12)}'/>",
             "<store xmlns='urn:xmpp:hints'/>",
             "<origin-id xmlns='urn:xmpp:sid:0' id='#{uuid()}'/>"
           ]}

        7 ->
          # offline delivery: delay + server-assigned stanza-id
          {" xml:lang='en'",
           [
             tag("body", text(10, 50)),
             "<request xmlns='urn:xmpp:receipts'/>",
             "<delay xmlns='urn:xmpp:delay' from='example.com' stamp='#{stamp()}'/>",
             "<stanza-id xmlns='urn:xmpp:sid:0' id='#{uuid()}' by='#{bare(to)}'/>"
           ]}
      end

    el(
      "message",
      "from='#{from}' to='#{to}' type='chat' id='#{id}'" <> type_attrs,
      children
    )
  end

  # ---------------------------------------------------------------------------
  # presences with entity capabilities

  defp stanza(:presence_caps, i) do
    from = full_jid()
    to_attr = if rem(i, 3) == 0, do: " to='#{bare_jid()}'", else: ""
    id = "pres-" <> hex(10)

    if rem(i, 10) == 9 do
      el("presence", "from='#{from}'#{to_attr} id='#{id}' type='unavailable'", [
        tag("status", text(10, 40))
      ])
    else
      show =
        case rem(i, 5) do
          0 -> []
          1 -> [tag("show", "away")]
          2 -> [tag("show", "dnd")]
          3 -> [tag("show", "xa")]
          4 -> [tag("show", "chat")]
        end

      status = if rem(i, 2) == 0, do: [tag("status", text(8, 50))], else: []
      photo = if rem(i, 4) < 2, do: [vcard_update()], else: []

      el(
        "presence",
        "from='#{from}'#{to_attr} id='#{id}' xml:lang='en'",
        show ++
          status ++
          [tag("priority", Integer.to_string(:rand.uniform(50) - 10)), caps()] ++ photo
      )
    end
  end

  # ---------------------------------------------------------------------------
  # MUC occupant presences

  defp stanza(:muc_presence, i) do
    room = "room#{:rand.uniform(40)}@conference.example.com"
    nick = Enum.random(@nicks) <> Integer.to_string(:rand.uniform(99))
    from = "#{room}/#{esc(nick)}"
    to = full_jid()
    real = full_jid()
    id = "mp-" <> hex(8)

    {type, item, codes, extra} =
      case rem(i, 10) do
        k when k in 0..5 ->
          aff = Enum.random(~w(member none none admin owner))
          role = if aff in ["admin", "owner"], do: "moderator", else: "participant"
          {nil, "<item affiliation='#{aff}' role='#{role}' jid='#{real}'/>", [], [caps()]}

        6 ->
          {nil, "<item affiliation='member' role='participant' jid='#{real}'/>", [100, 110, 170],
           [caps()]}

        7 ->
          new_nick = Enum.random(@nicks) <> "_"

          {"unavailable",
           "<item affiliation='none' role='participant' jid='#{real}' nick='#{esc(new_nick)}'/>",
           [303, 110], []}

        8 ->
          {"unavailable",
           "<item affiliation='none' role='none'><actor nick='moderator'/>" <>
             "<reason>#{esc(text(20, 60))}</reason></item>", [307], []}

        9 ->
          {nil, "<item affiliation='owner' role='moderator' jid='#{real}'/>", [201, 110],
           [caps()]}
      end

    type_attr = if type, do: " type='#{type}'", else: ""
    status = Enum.map(codes, &"<status code='#{&1}'/>")

    x =
      "<x xmlns='http://jabber.org/protocol/muc#user'>" <>
        item <> IO.iodata_to_binary(status) <> "</x>"

    el("presence", "from='#{from}' to='#{to}' id='#{id}'#{type_attr}", [x | extra])
  end

  # ---------------------------------------------------------------------------
  # roster results

  defp stanza(:roster_10, i), do: roster(i, 10, 0)
  defp stanza(:roster_100, i), do: roster(i, 100, 0)
  defp stanza(:roster_500, i), do: roster(i, 500, 0)

  # ---------------------------------------------------------------------------
  # disco#info results

  defp stanza(:disco_info, i) do
    if rem(i, 2) == 0, do: server_disco(i), else: client_disco(i)
  end

  # ---------------------------------------------------------------------------
  # large stanzas (20-50 KB)

  defp stanza(:large, i) do
    case i do
      0 -> big_message(20_000)
      1 -> big_message(35_000)
      2 -> big_message(50_000)
      3 -> roster(i, 160, 40)
      4 -> roster(i, 260, 40)
      5 -> big_message(28_000)
    end
  end

  # ---------------------------------------------------------------------------
  # building blocks

  defp roster(i, n, extra_name) do
    items =
      for k <- 1..n do
        jid = "#{Enum.random(@users)}.#{k}@#{Enum.random(@domains)}"
        name = Enum.random(@names) <> String.duplicate("·", :rand.uniform(extra_name + 1) - 1)

        {sub, ask} =
          case :rand.uniform(10) do
            r when r <= 6 -> {"both", ""}
            7 -> {"to", ""}
            8 -> {"from", ""}
            9 -> {"none", " ask='subscribe'"}
            10 -> {"none", ""}
          end

        groups =
          @groups
          |> Enum.take_random(:rand.uniform(3) - 1)
          |> Enum.map(&tag("group", &1))

        "<item jid='#{jid}' name='#{esc(name)}' subscription='#{sub}'#{ask}>" <>
          IO.iodata_to_binary(groups) <> "</item>"
      end

    query =
      "<query xmlns='jabber:iq:roster' ver='ver#{i + 1}#{hex(6)}'>" <>
        Enum.join(items) <> "</query>"

    el("iq", "to='#{full_jid()}' type='result' id='roster-#{hex(8)}'", [query])
  end

  defp server_disco(i) do
    domain = Enum.random(@domains)

    features = ~w(http://jabber.org/protocol/commands http://jabber.org/protocol/disco#info
         http://jabber.org/protocol/disco#items http://jabber.org/protocol/pubsub
         http://jabber.org/protocol/pubsub#publish http://jabber.org/protocol/pubsub#retrieve-items
         http://jabber.org/protocol/pubsub#subscribe http://jabber.org/protocol/pubsub#access-presence
         http://jabber.org/protocol/rsm http://jabber.org/protocol/stats iq jabber:iq:last
         jabber:iq:privacy jabber:iq:register jabber:iq:roster jabber:iq:version msgoffline
         presence urn:xmpp:blocking urn:xmpp:carbons:2 urn:xmpp:carbons:rules:0
         urn:xmpp:mam:0 urn:xmpp:mam:1 urn:xmpp:mam:2 urn:xmpp:ping urn:xmpp:push:0
         urn:xmpp:sid:0 urn:xmpp:time vcard-temp urn:xmpp:http:upload:0)

    form =
      form("result", [
        {"FORM_TYPE", "hidden", ["http://jabber.org/network/serverinfo"]},
        {"abuse-addresses", nil, ["mailto:abuse@#{domain}", "xmpp:abuse@#{domain}"]},
        {"admin-addresses", nil, ["mailto:admin@#{domain}", "xmpp:admin@#{domain}"]},
        {"support-addresses", nil, ["https://#{domain}/support"]},
        {"security-addresses", nil, ["mailto:security@#{domain}"]}
      ])

    query =
      "<query xmlns='http://jabber.org/protocol/disco#info'>" <>
        "<identity category='server' type='im' name='ejabberd'/>" <>
        "<identity category='pubsub' type='pep'/>" <>
        Enum.map_join(features, &"<feature var='#{&1}'/>") <> form <> "</query>"

    el("iq", "from='#{domain}' to='#{full_jid()}' type='result' id='disco-#{i}-#{hex(6)}'", [
      query
    ])
  end

  defp client_disco(i) do
    node = Enum.random(@caps_nodes) <> "#" <> caps_ver()

    features = ~w(http://jabber.org/protocol/caps http://jabber.org/protocol/chatstates
         http://jabber.org/protocol/disco#info http://jabber.org/protocol/disco#items
         http://jabber.org/protocol/muc http://jabber.org/protocol/nick
         http://jabber.org/protocol/nick+notify jabber:iq:version jabber:x:conference
         jabber:x:oob urn:xmpp:avatar:metadata+notify urn:xmpp:bookmarks:1+notify
         urn:xmpp:chat-markers:0 urn:xmpp:receipts urn:xmpp:ping urn:xmpp:time
         urn:xmpp:jingle:1 urn:xmpp:jingle:apps:rtp:1 urn:xmpp:jingle:apps:rtp:audio
         urn:xmpp:jingle:apps:rtp:video urn:xmpp:jingle:transports:ice-udp:1
         urn:xmpp:message-correct:0 urn:xmpp:omemo:2:devices+notify urn:xmpp:reactions:0)

    form =
      form("result", [
        {"FORM_TYPE", "hidden", ["urn:xmpp:dataforms:softwareinfo"]},
        {"os", nil, ["Android"]},
        {"os_version", nil, ["14"]},
        {"software", nil, ["Conversations"]},
        {"software_version", nil, ["2.16.#{rem(i, 10)}"]}
      ])

    query =
      "<query xmlns='http://jabber.org/protocol/disco#info' node='#{node}'>" <>
        "<identity category='client' type='phone' name='Conversations'/>" <>
        "<identity category='client' type='phone' name='Conversations (français)' xml:lang='fr'/>" <>
        Enum.map_join(features, &"<feature var='#{&1}'/>") <> form <> "</query>"

    el("iq", "from='#{full_jid()}' to='#{full_jid()}' type='result' id='caps-#{hex(8)}'", [query])
  end

  defp form(type, fields) do
    "<x xmlns='jabber:x:data' type='#{type}'>" <>
      Enum.map_join(fields, fn {var, ftype, values} ->
        type_attr = if ftype, do: " type='#{ftype}'", else: ""

        "<field var='#{var}'#{type_attr}>" <>
          Enum.map_join(values, &tag("value", &1)) <> "</field>"
      end) <> "</x>"
  end

  defp big_message(body_bytes) do
    # paragraphs of text until the escaped body reaches the wanted size
    body = grow_text(body_bytes, [])

    el("message", "from='#{full_jid()}' to='#{full_jid()}' type='chat' id='big-#{hex(8)}'", [
      "<body>" <> body <> "</body>",
      "<request xmlns='urn:xmpp:receipts'/>",
      "<active xmlns='http://jabber.org/protocol/chatstates'/>"
    ])
  end

  defp grow_text(target, acc) do
    size = IO.iodata_length(acc)

    if size >= target do
      IO.iodata_to_binary(acc)
    else
      grow_text(target, [acc, esc(text(200, 600)), "\n\n"])
    end
  end

  defp caps do
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' " <>
      "node='#{Enum.random(@caps_nodes)}' ver='#{caps_ver()}'/>"
  end

  defp vcard_update, do: "<x xmlns='vcard-temp:x:update'><photo>#{hex(40)}</photo></x>"

  defp caps_ver, do: Base.encode64(rand_bytes(20))

  defp el(name, attrs, children) do
    IO.iodata_to_binary([
      "<",
      name,
      " xmlns='jabber:client' ",
      attrs,
      ">",
      children,
      "</",
      name,
      ">"
    ])
  end

  defp tag(name, text), do: "<#{name}>#{esc(text)}</#{name}>"

  defp full_jid, do: bare_jid() <> "/" <> Enum.random(@resources)

  defp bare_jid do
    "#{Enum.random(@users)}#{:rand.uniform(999)}@#{Enum.random(@domains)}"
  end

  defp bare(jid), do: jid |> String.split("/", parts: 2) |> hd()

  # random words with between min and max bytes (unescaped)
  defp text(min, max) do
    target = min + :rand.uniform(max - min + 1) - 1
    take_words(target, [])
  end

  defp take_words(target, acc) do
    s = Enum.join(Enum.reverse(acc), " ")

    if byte_size(s) >= target,
      do: s,
      else: take_words(target, [Enum.random(@words) | acc])
  end

  defp stamp do
    d = Date.add(~D[2024-01-01], :rand.uniform(300))
    t = Time.add(~T[00:00:00], :rand.uniform(86_399))
    "#{Date.to_iso8601(d)}T#{Time.to_iso8601(t)}Z"
  end

  defp uuid do
    <<a::binary-8, b::binary-4, c::binary-4, d::binary-4, e::binary-12>> = hex(32)
    Enum.join([a, b, c, d, e], "-")
  end

  defp hex(n), do: rand_bytes(div(n + 1, 2)) |> Base.encode16(case: :lower) |> binary_part(0, n)

  defp rand_bytes(n), do: for(_ <- 1..n, into: <<>>, do: <<:rand.uniform(256) - 1>>)

  defp esc(s) do
    s
    |> String.replace("&", "&amp;")
    |> String.replace("<", "&lt;")
    |> String.replace(">", "&gt;")
    |> String.replace("'", "&apos;")
  end
end
