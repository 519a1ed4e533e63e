defmodule XmppBridge.Test.Generators do
  @moduledoc false
  # Small random generators for property-style tests (no StreamData: Hex is
  # not reachable). Everything draws from the process's :rand state, which
  # `check/4` seeds, so a failing case is reproduced by its seed.
  #
  # The typed-struct generators only produce values that the wire can carry
  # exactly, so that decode(encode(x)) == x must hold:
  #
  #   * JIDs are already normalised (candidates go through Jid.normalize/1);
  #   * texts never contain characters XML 1.0 cannot carry;
  #   * fields the encoder writes only in some combinations are generated
  #     only in those: `thread_parent` needs `thread`, `text_lang` needs
  #     `text`, `condition_text` only for :gone and :redirect, an IQ `get` or
  #     `set` has a payload and no error, an IQ `error` has an error;
  #   * a Delay `reason` and a `condition_text` are never "" (an empty element
  #     reads back as nil: see the report in roundtrip_property_test.exs);
  #   * generic payloads are in test namespaces and never named like the
  #     typed children of a stanza (body, subject, thread, error, show,
  #     status, priority), so they stay generic;
  #   * generic trees have no empty text nodes and no two adjacent text nodes
  #     (XML cannot tell those apart from merged text).

  alias XmppBridge.{Iq, Jid, Message, Presence, StanzaError}
  alias XmppBridge.Payload

  ## Running properties

  @doc """
  Runs `fun` on `cases` values drawn from `gen`. The seed is derived from
  ExUnit's seed (so `mix test --seed N` replays a run) and `name`, or taken
  from the XB_PROP_SEED environment variable. A failure is re-raised with
  the seed, the case number and the failing value.
  """
  def check(name, cases, gen, fun) do
    seed =
      case System.get_env("XB_PROP_SEED") do
        nil -> :erlang.phash2({name, ExUnit.configuration()[:seed]})
        value -> String.to_integer(value)
      end

    :rand.seed(:exsss, {seed, 0x5EED, 0xB1D6E})

    Enum.each(1..cases, fn i ->
      value = gen.()

      try do
        fun.(value)
      rescue
        error ->
          header =
            "property #{inspect(name)} failed: XB_PROP_SEED=#{seed} case #{i}/#{cases}\n" <>
              "value: #{inspect(value, limit: :infinity, printable_limit: 4096)}\n"

          IO.puts(:stderr, header)

          error =
            case error do
              %ExUnit.AssertionError{message: message} ->
                %{error | message: header <> message}

              other ->
                other
            end

          reraise error, __STACKTRACE__
      end
    end)

    seed
  end

  ## Basics

  def int(lo, hi), do: lo + :rand.uniform(hi - lo + 1) - 1
  def bool, do: :rand.uniform(2) == 1
  def chance(percent), do: :rand.uniform(100) <= percent
  def one_of(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)
  def list_of(min, max, gen), do: for(_ <- 1..int(min, max)//1, do: gen.())
  def maybe(gen, percent \\ 50), do: if(chance(percent), do: gen.(), else: nil)

  ## Text

  # Characters that exercise escaping, UTF-8 widths and XML's edges.
  @specials ~c"&<>'\"]\t\n\r ;#="
  @bmp [
    ?é,
    ?ü,
    ?ß,
    ?Ω,
    ?Ж,
    ?ع,
    ?中,
    ?文,
    ?あ,
    0x2028,
    0xD7FF,
    0xE000,
    0xFFFD,
    0x00A0,
    0x200B
  ]
  @astral [0x1F600, 0x1F4A9, 0x10000, 0x1D11E, 0x2A6D6, 0x10FFFD, 0xE0001]

  @doc "One character XML 1.0 can carry."
  def char do
    case :rand.uniform(10) do
      n when n <= 4 -> int(?a, ?z)
      5 -> one_of(Enum.concat([?A..?Z, ?0..?9]))
      n when n in [6, 7] -> one_of(@specials)
      8 -> one_of(@bmp)
      9 -> one_of(@astral)
      10 -> int(0x20, 0x7E)
    end
  end

  @doc "A string of `min..max` characters (any XML character, incl. astral)."
  def text(min \\ 0, max \\ 12) do
    List.to_string(list_of(min, max, &char/0))
  end

  def nonempty_text(max \\ 12), do: text(1, max)

  @doc "A short token-like string (ids, languages, versions)."
  def token(min \\ 1, max \\ 10) do
    alphabet = Enum.concat([?a..?z, ?A..?Z, ?0..?9, ~c"-_.:"])
    List.to_string(list_of(min, max, fn -> one_of(alphabet) end))
  end

  def lang, do: one_of(["en", "fr", "de-CH", "zh-Hans", "x-klingon", "es-419"])

  ## JIDs

  @doc "A valid, normalised JID (node and resource optional)."
  def jid do
    node = maybe(&jid_node/0, 70)
    resource = maybe(&jid_resource/0, 50)

    candidate =
      IO.iodata_to_binary([
        if(node, do: [node, ?@], else: []),
        jid_domain(),
        if(resource, do: [?/, resource], else: [])
      ])

    case Jid.normalize(candidate) do
      {:ok, jid} -> jid
      {:error, _} -> jid()
    end
  end

  def bare_jid do
    case Jid.normalize("#{jid_node()}@#{jid_domain()}") do
      {:ok, jid} -> jid
      {:error, _} -> bare_jid()
    end
  end

  defp jid_node do
    one_of([
      fn -> token(1, 8) |> String.replace(~r/[:]/, "") |> ensure_nonempty() end,
      fn -> one_of(["Alice", "ÄLICE", "bob.smith", "jürgen", "δοκιμή", "名前", "o_o"]) end
    ]).()
  end

  defp jid_domain do
    one_of([
      "example.com",
      "Example.ORG",
      "muc.example.net",
      "xn--bcher-kva.example",
      "例え.jp",
      "localhost",
      "127.0.0.1",
      "[::1]",
      "d#{int(0, 999)}.test"
    ])
  end

  defp jid_resource do
    one_of([
      fn -> token(1, 8) end,
      fn -> "Phone " <> Integer.to_string(int(1, 99)) end,
      fn -> "a/b" end,
      fn -> one_of(["Ресурс", "電話", "res😀", "Work&Play", "it's \"quoted\""]) end
    ]).()
  end

  defp ensure_nonempty(""), do: "x"
  defp ensure_nonempty(s), do: s

  ## Generic XML

  @name_starts Enum.concat([?a..?z, ?A..?Z, [?_, ?é, ?名]])
  @name_chars Enum.concat([@name_starts, ?0..?9, [?-, ?.]])

  def xml_name do
    local = List.to_string([one_of(@name_starts) | list_of(0, 6, fn -> one_of(@name_chars) end)])
    if chance(20), do: "p#{int(0, 3)}:" <> local, else: local
  end

  @doc """
  A generic element tree at most `depth` levels deep: unique attribute
  names, children mixing elements and non-empty text, never two text nodes
  in a row.
  """
  def xmlel(depth \\ 4) do
    attrs =
      list_of(0, 4, fn -> {xml_name(), text(0, 8)} end)
      |> Enum.uniq_by(&elem(&1, 0))

    {:xmlel, xml_name(), attrs, children(depth - 1)}
  end

  defp children(depth) when depth <= 0 do
    if bool(), do: [{:xmlcdata, nonempty_text(20)}], else: []
  end

  defp children(depth) do
    list_of(0, 4, fn -> if bool(), do: {:xmlcdata, nonempty_text(16)}, else: xmlel(depth) end)
    |> merge_text()
  end

  @doc "Merges adjacent text nodes and drops empty ones, recursively."
  def merge_text(children) do
    children
    |> Enum.reduce([], fn
      {:xmlcdata, ""}, acc -> acc
      {:xmlcdata, b}, [{:xmlcdata, a} | acc] -> [{:xmlcdata, a <> b} | acc]
      {:xmlcdata, _} = text, acc -> [text | acc]
      {:xmlel, n, a, c}, acc -> [{:xmlel, n, a, merge_text(c)} | acc]
    end)
    |> Enum.reverse()
  end

  @doc "A generic payload that no typed decoder claims."
  def generic_payload(depth \\ 3) do
    {:xmlel, _name, attrs, children} = xmlel(depth)
    name = one_of(["x", "data", "ext", "q:item", "payload", "élément"])
    attrs = Enum.reject(attrs, fn {n, _} -> n == "xmlns" end)
    {:xmlel, name, [{"xmlns", "urn:xb:test:#{int(0, 9)}"} | attrs], children}
  end

  ## Terms

  @doc "An endless stream of random portable terms (what the bus carries)."
  def terms, do: Stream.repeatedly(fn -> term(3) end)

  @doc """
  A random portable term: what the term payload carries (no pids,
  references, ports or funs), with integers beyond 64 bits, floats,
  unicode text and atoms, binaries, improper lists.
  """
  def term(depth \\ 3) do
    leaves = [
      fn -> int(-1000, 1000) end,
      fn -> int(-(2 ** 80), 2 ** 80) end,
      fn -> one_of([2 ** 63, -(2 ** 63) - 1, 2 ** 64 + int(0, 99), -(2 ** 200), 2 ** 1024]) end,
      fn -> (:rand.uniform() - 0.5) * :math.pow(10, int(-300, 300)) end,
      fn -> text(0, 8) end,
      fn -> :crypto.strong_rand_bytes(int(0, 8)) end,
      fn -> one_of([:ok, :error, nil, true, false, :undefined, :xmlel, :ünï, :日本]) end
    ]

    if depth <= 0 or chance(40) do
      one_of(leaves).()
    else
      case :rand.uniform(4) do
        1 -> List.to_tuple(list_of(0, 3, fn -> term(depth - 1) end))
        2 -> list_of(0, 3, fn -> term(depth - 1) end)
        3 -> Map.new(list_of(0, 3, fn -> {term(depth - 1), term(depth - 1)} end))
        4 -> [term(depth - 1) | term(0)]
      end
    end
  end

  ## Typed payloads

  def payload do
    one_of([
      &delay/0,
      fn ->
        %Payload.ChatState{state: one_of([:active, :composing, :paused, :inactive, :gone])}
      end,
      fn -> %Payload.ReceiptRequest{} end,
      fn -> %Payload.ReceiptReceived{id: maybe(&text/0)} end,
      &muc_join/0,
      &muc_user/0,
      &roster/0,
      &disco_info/0,
      &disco_items/0,
      fn -> %Payload.Ping{} end,
      fn -> %Payload.StanzaId{id: text(), by: jid()} end,
      fn -> %Payload.OriginId{id: text()} end,
      fn -> %Payload.Json{json: text(0, 30)} end,
      fn -> %Payload.Term{value: term()} end,
      &generic_payload/0
    ]).()
  end

  def delay do
    %Payload.Delay{stamp: text(0, 20), from: maybe(&jid/0), reason: maybe(&nonempty_text/0)}
  end

  def muc_join do
    history =
      maybe(fn ->
        u32 = fn -> maybe(fn -> one_of([0, int(1, 1000), 4_294_967_295]) end) end

        %Payload.MucHistory{
          maxchars: u32.(),
          maxstanzas: u32.(),
          seconds: u32.(),
          since: maybe(&text/0)
        }
      end)

    %Payload.MucJoin{password: maybe(&text/0), history: history}
  end

  def muc_user do
    items =
      list_of(0, 3, fn ->
        actor? = bool()

        %Payload.MucItem{
          affiliation: maybe(fn -> one_of([:owner, :admin, :member, :outcast, :none]) end),
          role: maybe(fn -> one_of([:moderator, :participant, :visitor, :none]) end),
          jid: maybe(&jid/0),
          nick: maybe(&text/0),
          actor_jid: if(actor?, do: maybe(&jid/0)),
          actor_nick: if(actor?, do: text()),
          reason: maybe(&text/0)
        }
      end)

    %Payload.MucUser{items: items, status_codes: list_of(0, 3, fn -> int(100, 999) end)}
  end

  def roster do
    items =
      list_of(0, 4, fn ->
        %Payload.RosterItem{
          jid: jid(),
          name: maybe(&text/0),
          subscription: maybe(fn -> one_of([:none, :to, :from, :both, :remove]) end),
          ask: maybe(fn -> :subscribe end),
          approved: bool(),
          groups: list_of(0, 3, &text/0)
        }
      end)

    %Payload.Roster{ver: maybe(&token/0), items: items}
  end

  def disco_info do
    identities =
      list_of(0, 3, fn ->
        %Payload.DiscoIdentity{
          category: one_of(["client", "server", "conference", text()]),
          type: one_of(["pc", "im", "text", text()]),
          name: maybe(&text/0),
          lang: maybe(&lang/0)
        }
      end)

    form =
      {:xmlel, "x", [{"xmlns", "jabber:x:data"}, {"type", "result"}],
       [
         {:xmlel, "field", [{"var", "FORM_TYPE"}, {"type", "hidden"}],
          [{:xmlel, "value", [], [{:xmlcdata, "urn:xmpp:dataforms:softwareinfo"}]}]}
       ]}

    %Payload.DiscoInfo{
      node: maybe(&text/0),
      identities: identities,
      features: list_of(0, 4, fn -> one_of(["urn:xmpp:ping", "jabber:iq:roster", text()]) end),
      extensions: list_of(0, 2, fn -> one_of([form, generic_payload(2)]) end)
    }
  end

  def disco_items do
    items =
      list_of(0, 4, fn ->
        %Payload.DiscoItem{jid: jid(), node: maybe(&text/0), name: maybe(&text/0)}
      end)

    %Payload.DiscoItems{node: maybe(&text/0), items: items}
  end

  # The generator draws from the library's own list.
  @conditions XmppBridge.StanzaError.conditions()

  @doc "The 22 defined conditions of RFC 6120 §8.3.3, written out independently of the code."
  def conditions, do: @conditions

  def stanza_error do
    condition = one_of(@conditions)
    text = maybe(&text/0)

    %StanzaError{
      type: one_of([:auth, :cancel, :continue, :modify, :wait]),
      by: maybe(&jid/0),
      condition: condition,
      condition_text:
        if(condition in [:gone, :redirect], do: maybe(fn -> "xmpp:" <> nonempty_text() end)),
      text: text,
      text_lang: if(text, do: maybe(&lang/0)),
      app: maybe(fn -> generic_payload(2) end)
    }
  end

  ## Stanzas

  defp lang_texts(max), do: list_of(0, max, fn -> {maybe(&lang/0), text(0, 20)} end)

  defp extra_attrs do
    list_of(0, 2, fn -> {one_of(["x-a", "data-b", "foo:bar", "xmlns:foo", "z"]), text()} end)
    |> Enum.uniq_by(&elem(&1, 0))
    |> then(fn attrs ->
      if chance(15),
        do: [{"xmlns", one_of(["jabber:server", "jabber:component:accept"])} | attrs],
        else: attrs
    end)
  end

  def message do
    thread = maybe(&text/0, 30)
    type = one_of([:normal, :chat, :groupchat, :headline, :error])

    %Message{
      id: maybe(&text/0),
      type: type,
      from: maybe(&jid/0),
      to: maybe(&jid/0),
      lang: maybe(&lang/0, 30),
      bodies: lang_texts(3),
      subjects: lang_texts(2),
      thread: thread,
      thread_parent: if(thread, do: maybe(&text/0)),
      error: if(type == :error or chance(10), do: stanza_error()),
      payloads: list_of(0, 4, &payload/0),
      attrs: extra_attrs()
    }
  end

  def presence do
    type =
      one_of([
        :available,
        :unavailable,
        :subscribe,
        :subscribed,
        :unsubscribe,
        :unsubscribed,
        :probe,
        :error
      ])

    %Presence{
      id: maybe(&text/0),
      type: type,
      from: maybe(&jid/0),
      to: maybe(&jid/0),
      lang: maybe(&lang/0, 30),
      show: maybe(fn -> one_of([:away, :chat, :dnd, :xa]) end, 40),
      statuses: lang_texts(2),
      priority: maybe(fn -> int(-128, 127) end, 40),
      error: if(type == :error or chance(10), do: stanza_error()),
      payloads: list_of(0, 3, &payload/0),
      attrs: extra_attrs()
    }
  end

  def iq do
    type = one_of([:get, :set, :result, :error])

    {payload, error} =
      case type do
        t when t in [:get, :set] -> {payload(), nil}
        :result -> {maybe(&payload/0), nil}
        :error -> {maybe(&payload/0), stanza_error()}
      end

    %Iq{
      id: text(0, 10),
      type: type,
      from: maybe(&jid/0),
      to: maybe(&jid/0),
      lang: maybe(&lang/0, 30),
      payload: payload,
      error: error,
      attrs: extra_attrs()
    }
  end

  def stanza, do: one_of([&message/0, &presence/0, &iq/0]).()

  ## A hand-written corpus of varied stanzas

  @doc """
  About 30 stanzas as they may come off the wire: attributes in any order
  and either quote, entities and character references, CDATA, unicode
  (astral too), prefixed elements, pretty-printing whitespace, typed
  children out of the encoder's order, near misses of typed payloads, and
  nested unknown payloads.
  """
  def corpus do
    [
      {"chat, double quotes, attrs out of order",
       ~s(<message type="chat" to="Juliet@Example.COM/Balcony" id="m1" from="romeo@example.net/orchard" xmlns="jabber:client"><body>Wherefore art thou?</body></message>)},
      {"entities, char refs and CDATA",
       "<message xmlns='jabber:client' id='e&amp;1' to='a@b'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;q&quot; &apos;a&apos; &#233;&#x1F600; <![CDATA[<not> & a tag]]> end</body></message>"},
      {"languages, subjects, thread with parent",
       "<message xmlns='jabber:client' xml:lang='en' type='headline'><subject>News</subject><subject xml:lang='fr'>Nouvelles</subject><body>Hello</body><body xml:lang='de'>Grüß Gott 👋</body><body xml:lang='ja'>こんにちは 𠮷</body><thread parent='p-1'>t-42</thread></message>"},
      {"pretty printed, payload before body",
       "<message xmlns='jabber:client' to='bob@example.com'>\n  <active xmlns='http://jabber.org/protocol/chatstates'/>\n  <request xmlns='urn:xmpp:receipts'/>\n  <body>hi\n  there</body>\n</message>"},
      {"groupchat with archive ids and delay",
       "<message xmlns='jabber:client' type='groupchat' from='room@muc.example.com/Nick' to='me@example.com/r'><body>archived</body><stanza-id xmlns='urn:xmpp:sid:0' id='5f3dbc5e' by='ROOM@muc.example.com'/><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z' from='Capulet.COM'>Offline Storage</delay></message>"},
      {"nested unknown payload with prefixes and significant whitespace",
       "<message xmlns='jabber:client'><body>x</body><event xmlns='http://jabber.org/protocol/pubsub#event' xmlns:atom='http://www.w3.org/2005/Atom'>\n  <items node='princely_musings'>\n    <item id='ae890ac52d0df67ed7cfdf51b644e901'>\n      <atom:entry><atom:title type='text'>Soliloquy</atom:title><atom:summary>To be, or not to be: that is the question</atom:summary></atom:entry>\n    </item>\n  </items>\n</event></message>"},
      {"message error with text and application condition",
       "<message xmlns='jabber:client' type='error' from='example.com' id='err1'><body>original</body><error type='modify' by='example.com'>\n  <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\n  <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>Bad &amp; wrong</text>\n  <too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/>\n</error></message>"},
      {"json payload",
       ~s(<message xmlns='jabber:client' to='svc@example.com'><json xmlns='urn:xmpp:json:0'>{"job":42,"name":"a &amp; b","list":[1,2.5,null],"s":"&lt;x&gt;"}</json></message>)},
      {"term payload",
       "<message xmlns='jabber:client'><term xmlns='urn:xmpp-bridge:term:0'>g2gCZAACb2thAQ==</term></message>"},
      {"receipt received and chat state",
       "<message id='r2' xmlns='jabber:client' to='a@example.com'><received xmlns='urn:xmpp:receipts' id='r1'/><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"},
      {"jabber:server stanza",
       "<message xmlns='jabber:server' from='Alice@Example.com/Res' to='bob@example.org'><body>s2s</body></message>"},
      {"xml declaration and surrounding whitespace",
       "<?xml version='1.0' encoding='UTF-8'?>\n<message xmlns='jabber:client'><body>decl</body></message>\n"},
      {"body with markup is a payload; xhtml-im",
       "<message xmlns='jabber:client'><body>plain</body><body>rich <b>text</b></body><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p style='font-weight:bold'>hi <em>there</em></p></body></html></message>"},
      {"empty presence", "<presence/>"},
      {"presence show status priority",
       "<presence xml:lang='en' id='p1'>\n  <show>away</show>\n  <status>In a meeting</status>\n  <status xml:lang='cs'>Na schůzce</status>\n  <priority>-5</priority>\n</presence>"},
      {"presence MUC join, password before history",
       "<presence to='Coven@Chat.Shakespeare.lit/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'><password>cauldron&amp;burn</password><history maxstanzas='20' since='1970-01-01T00:00:00Z'/></x></presence>"},
      {"presence muc#user, status codes before items",
       "<presence from='coven@chat.shakespeare.lit/firstwitch' to='hag66@shakespeare.lit/pda' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/><item affiliation='none' role='none' nick='pistol'><actor nick='thirdwitch' jid='Crone1@Shakespeare.lit/desktop'/><reason>Avaunt, you cullion!</reason></item><item jid='hecate@shakespeare.lit' role='moderator' affiliation='owner'/><status code='307'/></x></presence>"},
      {"presence unavailable with status",
       "<presence type='unavailable'><status>Gone fishing 🎣</status></presence>"},
      {"presence subscribe to an unnormalised JID",
       "<presence type='subscribe' to='NURSE@EXAMPLE.COM' id='s1'/>"},
      {"presence error",
       "<presence type='error' from='example.com'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"},
      {"presence with caps and vcard update",
       "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/><x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x><priority>300</priority></presence>"},
      {"iq get ping",
       "<iq type='get' id='ping1' to='Example.com'><ping xmlns='urn:xmpp:ping'/></iq>"},
      {"iq result roster, pretty printed",
       "<iq id='r1' type='result' to='juliet@example.com/balcony'>\n  <query xmlns='jabber:iq:roster' ver='ver11'>\n    <item jid='romeo@example.net' name='Romeo' subscription='both'>\n      <group>Friends</group>\n      <group>Lovers 💘</group>\n    </item>\n    <item jid='Nurse@Example.com' subscription='none' ask='subscribe' approved='true' name='Nurse &amp; co'/>\n  </query>\n</iq>"},
      {"iq set roster push remove",
       "<iq type='set' id='push1'><query xmlns='jabber:iq:roster'><item jid='nurse@example.com' subscription='remove'/></query></iq>"},
      {"iq result disco#info with data form",
       "<iq type='result' id='d1' from='example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='http://example.org#ver'><identity category='server' type='im' name='ejabberd'/><identity category='pubsub' type='pep' xml:lang='en'/><feature var='urn:xmpp:ping'/><feature var='jabber:iq:roster'/><x xmlns='jabber:x:data' type='result'>\n  <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\n  <field var='os'><value>Linux</value></field>\n</x></query></iq>"},
      {"iq result disco#items",
       "<iq type='result' id='i1'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='Conference.example.com' name='Chat rooms'/><item jid='pubsub.example.com' node='news'/></query></iq>"},
      {"iq empty result", "<iq type='result' id='x1' from='example.com' to='a@example.com/r'/>"},
      {"iq error with payload and gone",
       "<iq type='error' id='g1'><query xmlns='jabber:iq:version'/><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:new@example.com</gone><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>moved</text></error></iq>"},
      {"iq with an unknown prefixed payload",
       "<iq type='set' id='ps1'><ps:pubsub xmlns:ps='http://jabber.org/protocol/pubsub'><ps:publish node='n'><ps:item><entry xmlns='urn:x'>a</entry></ps:item></ps:publish></ps:pubsub></iq>"},
      {"roster near miss stays generic (unknown attribute), whitespace kept",
       "<iq type='result' id='nm1'><query xmlns='jabber:iq:roster'>\n  <item jid='a@example.com' colour='red'/>\n</query></iq>"},
      {"unicode names, astral attribute values",
       "<message xmlns='jabber:client' data-x='𝄞&#x10FFFD;'><élément xmlns='urn:ü' 名前='値 &#9;tab'>texte\tà\r\nlignes</élément></message>"},
      {"muc history with every attribute, numbers as written",
       "<presence to='room@muc.example.com/n'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='65000' maxstanzas='0' seconds='180' since='2002-09-10T23:08:25Z'/></x></presence>"},
      {"near misses: leading zero, unknown enum value, prefixed typed name",
       "<presence><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='020'/></x><x xmlns='http://jabber.org/protocol/muc#user'><item role='janitor'/></x><cs:active xmlns:cs='http://jabber.org/protocol/chatstates'/></presence>"}
    ]
  end
end
