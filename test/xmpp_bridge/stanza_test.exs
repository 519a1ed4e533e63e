defmodule XmppBridge.StanzaTest do
  use ExUnit.Case, async: true

  alias XmppBridge.{Iq, Jid, Message, Presence, Stanza, StanzaError, Xml}
  alias XmppBridge.Payload
  alias XmppBridge.Test.Generators, as: Gen

  doctest XmppBridge.Stanza

  @stanzas_ns "urn:ietf:params:xml:ns:xmpp-stanzas"

  defp msg(inner), do: "<message xmlns='jabber:client'>" <> inner <> "</message>"
  defp decode_payloads(inner), do: Stanza.decode!(msg(inner)).payloads
  defp encode_payloads(payloads), do: Stanza.encode!(%Message{payloads: payloads})

  # decode(encode(s)) == s and encode(decode(xml)) == xml for a canonical xml.
  defp assert_canonical(xml, struct) do
    assert Stanza.decode(xml) == {:ok, struct}
    assert Stanza.encode(struct) == {:ok, xml}
  end

  describe "message" do
    test "decodes every field" do
      xml = """
      <message xmlns='jabber:client' id='m1' type='chat' from='Romeo@Example.NET/Orchard'
               to='juliet@example.com' xml:lang='en' x-extra='kept'>
        <subject>Plans</subject>
        <body>Wherefore art thou?</body>
        <body xml:lang='fr'>Où es-tu ?</body>
        <thread parent='t0'>t1</thread>
        <request xmlns='urn:xmpp:receipts'/>
      </message>
      """

      assert {:ok, %Message{} = m} = Stanza.decode(xml)
      assert m.id == "m1"
      assert m.type == :chat
      assert m.from == "romeo@example.net/Orchard"
      assert m.to == "juliet@example.com"
      assert m.lang == "en"
      assert m.subjects == [{nil, "Plans"}]
      assert m.bodies == [{nil, "Wherefore art thou?"}, {"fr", "Où es-tu ?"}]
      assert m.thread == "t1"
      assert m.thread_parent == "t0"
      assert m.error == nil
      assert m.payloads == [%Payload.ReceiptRequest{}]
      assert m.attrs == [{"x-extra", "kept"}]
    end

    test "encodes in a fixed order: attrs, id, type, from, to, lang; subject, body, thread, error, payloads" do
      m = %Message{
        id: "m1",
        type: :chat,
        from: "romeo@example.net/orchard",
        to: "juliet@example.com",
        lang: "en",
        bodies: [{nil, "a & b < c"}, {"fr", "é"}],
        subjects: [{nil, "s"}],
        thread: "t1",
        thread_parent: "t0",
        error: %StanzaError{type: :cancel, condition: :gone},
        payloads: [%Payload.Ping{}],
        attrs: [{"x-extra", "it's"}]
      }

      assert_canonical(
        "<message xmlns='jabber:client' x-extra='it&apos;s' id='m1' type='chat' " <>
          "from='romeo@example.net/orchard' to='juliet@example.com' xml:lang='en'>" <>
          "<subject>s</subject><body>a &amp; b &lt; c</body><body xml:lang='fr'>é</body>" <>
          "<thread parent='t0'>t1</thread>" <>
          "<error type='cancel'><gone xmlns='#{@stanzas_ns}'/></error>" <>
          "<ping xmlns='urn:xmpp:ping'/></message>",
        m
      )
    end

    test "an empty message is self-closed and type normal is the default, not written" do
      assert_canonical("<message xmlns='jabber:client'/>", %Message{})
      assert Stanza.decode!("<message type='normal'/>") == %Message{type: :normal}
      assert Stanza.encode!(%Message{type: :normal}) == "<message xmlns='jabber:client'/>"
    end

    test "every message type" do
      for type <- [:chat, :groupchat, :headline, :error] do
        xml = "<message xmlns='jabber:client' type='#{type}'/>"
        assert Stanza.decode!(xml).type == type
        assert Stanza.encode!(%Message{type: type}) == xml
      end
    end

    test "empty body, subject and thread keep their (empty) text" do
      m = Stanza.decode!("<message><body/><subject></subject><thread/></message>")
      assert m.bodies == [{nil, ""}]
      assert m.subjects == [{nil, ""}]
      assert m.thread == ""
      assert Stanza.decode!(Stanza.encode!(m)) == m
    end

    test "a second thread, or a body with markup or a foreign attribute, stays a generic payload" do
      m =
        Stanza.decode!(
          "<message><thread>a</thread><thread>b</thread><body>x<b>y</b></body><body id='1'>z</body></message>"
        )

      assert m.thread == "a"
      assert m.bodies == []

      assert m.payloads == [
               {:xmlel, "thread", [], [{:xmlcdata, "b"}]},
               {:xmlel, "body", [], [{:xmlcdata, "x"}, {:xmlel, "b", [], [{:xmlcdata, "y"}]}]},
               {:xmlel, "body", [{"id", "1"}], [{:xmlcdata, "z"}]}
             ]

      assert Stanza.decode!(Stanza.encode!(m)) == m
    end

    test "a body in another namespace is a payload, not a body" do
      m = Stanza.decode!("<message><body xmlns='urn:other'>x</body></message>")
      assert m.bodies == []
      assert m.payloads == [{:xmlel, "body", [{"xmlns", "urn:other"}], [{:xmlcdata, "x"}]}]
    end
  end

  describe "presence" do
    test "decodes show, statuses, priority and payloads" do
      xml = """
      <presence id='p1' xml:lang='en' from='a@example.com/r'>
        <show>dnd</show>
        <status>Busy</status>
        <status xml:lang='de'>Beschäftigt</status>
        <priority>-128</priority>
        <x xmlns='http://jabber.org/protocol/muc'/>
      </presence>
      """

      assert Stanza.decode!(xml) == %Presence{
               id: "p1",
               lang: "en",
               from: "a@example.com/r",
               show: :dnd,
               statuses: [{nil, "Busy"}, {"de", "Beschäftigt"}],
               priority: -128,
               payloads: [%Payload.MucJoin{}]
             }
    end

    test "canonical encoding" do
      assert_canonical(
        "<presence xmlns='jabber:client' id='p1' to='room@muc.example.com/me'>" <>
          "<show>xa</show><status>gone</status><priority>127</priority>" <>
          "<x xmlns='http://jabber.org/protocol/muc'/></presence>",
        %Presence{
          id: "p1",
          to: "room@muc.example.com/me",
          show: :xa,
          statuses: [{nil, "gone"}],
          priority: 127,
          payloads: [%Payload.MucJoin{}]
        }
      )

      assert_canonical("<presence xmlns='jabber:client'/>", %Presence{})
    end

    test "every type; available is the absence of a type" do
      for type <- [:unavailable, :subscribe, :subscribed, :unsubscribe, :unsubscribed, :probe] do
        assert_canonical("<presence xmlns='jabber:client' type='#{type}'/>", %Presence{type: type})
      end

      assert Stanza.decode("<presence type='available'/>") ==
               {:error,
                %XmppBridge.Error{reason: {:invalid_value, {"presence", "type", "available"}}}}
    end

    test "every show value" do
      for show <- [:away, :chat, :dnd, :xa] do
        assert_canonical(
          "<presence xmlns='jabber:client'><show>#{show}</show></presence>",
          %Presence{show: show}
        )
      end
    end

    test "a priority or show the struct cannot represent exactly stays a generic payload" do
      for bad <- ["128", "-129", "+5", "05", " 5", "five", ""] do
        p = Stanza.decode!("<presence><priority>#{bad}</priority></presence>")
        assert p.priority == nil, "priority #{inspect(bad)}"
        assert [{:xmlel, "priority", [], _}] = p.payloads
        assert Stanza.decode!(Stanza.encode!(p)) == p
      end

      p = Stanza.decode!("<presence><show>busy</show><show>away</show></presence>")
      assert p.show == :away
      assert p.payloads == [{:xmlel, "show", [], [{:xmlcdata, "busy"}]}]
    end
  end

  describe "iq" do
    test "every type" do
      ping = "<ping xmlns='urn:xmpp:ping'/>"

      for type <- [:get, :set] do
        assert_canonical(
          "<iq xmlns='jabber:client' id='i1' type='#{type}' to='example.com'>#{ping}</iq>",
          %Iq{id: "i1", type: type, to: "example.com", payload: %Payload.Ping{}}
        )
      end

      assert_canonical("<iq xmlns='jabber:client' id='i1' type='result'/>", %Iq{
        id: "i1",
        type: :result
      })

      assert_canonical(
        "<iq xmlns='jabber:client' id='i1' type='error'>#{ping}" <>
          "<error type='cancel'><service-unavailable xmlns='#{@stanzas_ns}'/></error></iq>",
        %Iq{
          id: "i1",
          type: :error,
          payload: %Payload.Ping{},
          error: %StanzaError{type: :cancel, condition: :service_unavailable}
        }
      )
    end

    test "a generic payload" do
      xml = "<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>"

      assert Stanza.decode!(xml).payload ==
               {:xmlel, "query", [{"xmlns", "jabber:iq:version"}], []}
    end

    test "RFC 6120 §8.2.3 shape errors" do
      for {xml, reason} <- [
            {"<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
             {:missing_attribute, {"iq", "id"}}},
            {"<iq id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
             {:missing_attribute, {"iq", "type"}}},
            {"<iq id='1' type='fetch'><ping xmlns='urn:xmpp:ping'/></iq>",
             {:invalid_value, {"iq", "type", "fetch"}}}
          ] do
        assert Stanza.decode(xml) == {:error, %XmppBridge.Error{reason: reason}}
      end

      for xml <- [
            "<iq id='1' type='get'/>",
            "<iq id='1' type='set'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
            "<iq id='1' type='result'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
            "<iq id='1' type='error'><a xmlns='urn:a'/></iq>"
          ] do
        assert {:error, %XmppBridge.Error{reason: {:invalid_iq, detail}}} = Stanza.decode(xml)
        assert is_binary(detail) and detail != ""
      end

      assert {:error, %XmppBridge.Error{reason: {:invalid_iq, _}}} =
               Stanza.encode(%Iq{id: "1", type: :get})

      assert {:error, %XmppBridge.Error{reason: {:invalid_iq, _}}} =
               Stanza.encode(%Iq{id: "1", type: :error})

      assert Stanza.encode(%Iq{type: :result}) ==
               {:error, %XmppBridge.Error{reason: {:missing_attribute, {"iq", "id"}}}}
    end
  end

  # {label, wire as received, struct, wire as the encoder writes it}
  defp payload_cases do
    form =
      "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>" <>
        "<value>urn:xmpp:dataforms:softwareinfo</value></field></x>"

    form_el =
      {:xmlel, "x", [{"xmlns", "jabber:x:data"}, {"type", "result"}],
       [
         {:xmlel, "field", [{"var", "FORM_TYPE"}, {"type", "hidden"}],
          [{:xmlel, "value", [], [{:xmlcdata, "urn:xmpp:dataforms:softwareinfo"}]}]}
       ]}

    term = {:ok, %{"k" => [1.5, -0.25, 1.0e300]}, "日本", <<0, 255>>, 2 ** 100, -(2 ** 64)}
    b64 = Base.encode64(:erlang.term_to_binary(term))

    [
      {"delay",
       "<delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z' from='Capulet.com'>Offline Storage</delay>",
       %Payload.Delay{
         stamp: "2002-09-10T23:08:25Z",
         from: "capulet.com",
         reason: "Offline Storage"
       },
       "<delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='2002-09-10T23:08:25Z'>Offline Storage</delay>"},
      {"delay, stamp only", "<delay xmlns='urn:xmpp:delay' stamp='2002'/>",
       %Payload.Delay{stamp: "2002"}, "<delay xmlns='urn:xmpp:delay' stamp='2002'/>"},
      {"receipt request", "<request xmlns='urn:xmpp:receipts'/>", %Payload.ReceiptRequest{},
       "<request xmlns='urn:xmpp:receipts'/>"},
      {"receipt received", "<received id='r&amp;1' xmlns='urn:xmpp:receipts'/>",
       %Payload.ReceiptReceived{id: "r&1"}, "<received xmlns='urn:xmpp:receipts' id='r&amp;1'/>"},
      {"receipt received without id", "<received xmlns='urn:xmpp:receipts'></received>",
       %Payload.ReceiptReceived{}, "<received xmlns='urn:xmpp:receipts'/>"},
      {"muc join", "<x xmlns='http://jabber.org/protocol/muc'/>", %Payload.MucJoin{},
       "<x xmlns='http://jabber.org/protocol/muc'/>"},
      {"muc join with password and history",
       "<x xmlns='http://jabber.org/protocol/muc'>\n <password>cauldron</password>\n <history since='1970-01-01T00:00:00Z' seconds='180' maxstanzas='20' maxchars='0'/>\n</x>",
       %Payload.MucJoin{
         password: "cauldron",
         history: %Payload.MucHistory{
           maxchars: 0,
           maxstanzas: 20,
           seconds: 180,
           since: "1970-01-01T00:00:00Z"
         }
       },
       "<x xmlns='http://jabber.org/protocol/muc'><history maxchars='0' maxstanzas='20' seconds='180' since='1970-01-01T00:00:00Z'/><password>cauldron</password></x>"},
      {"muc join, empty history, u32 max",
       "<x xmlns='http://jabber.org/protocol/muc'><history maxchars='4294967295'/></x>",
       %Payload.MucJoin{history: %Payload.MucHistory{maxchars: 4_294_967_295}},
       "<x xmlns='http://jabber.org/protocol/muc'><history maxchars='4294967295'/></x>"},
      {"muc user with actor, reason and status codes",
       "<x xmlns='http://jabber.org/protocol/muc#user'>" <>
         "<item role='none' nick='pistol' affiliation='none'><reason>Avaunt, you cullion!</reason><actor nick='thirdwitch' jid='Crone1@shakespeare.lit/desktop'/></item>" <>
         "<status code='307'/><item affiliation='member' role='participant' jid='hag66@shakespeare.lit/pda'/><status code='110'/></x>",
       %Payload.MucUser{
         items: [
           %Payload.MucItem{
             affiliation: :none,
             role: :none,
             nick: "pistol",
             actor_jid: "crone1@shakespeare.lit/desktop",
             actor_nick: "thirdwitch",
             reason: "Avaunt, you cullion!"
           },
           %Payload.MucItem{
             affiliation: :member,
             role: :participant,
             jid: "hag66@shakespeare.lit/pda"
           }
         ],
         status_codes: [307, 110]
       },
       "<x xmlns='http://jabber.org/protocol/muc#user'>" <>
         "<item affiliation='none' nick='pistol' role='none'><actor jid='crone1@shakespeare.lit/desktop' nick='thirdwitch'/><reason>Avaunt, you cullion!</reason></item>" <>
         "<item affiliation='member' jid='hag66@shakespeare.lit/pda' role='participant'/>" <>
         "<status code='307'/><status code='110'/></x>"},
      {"muc user, actor with a nick only",
       "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='outcast'><actor nick='x'/></item></x>",
       %Payload.MucUser{items: [%Payload.MucItem{affiliation: :outcast, actor_nick: "x"}]},
       "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='outcast'><actor nick='x'/></item></x>"},
      {"roster with groups, ask and approved",
       "<query xmlns='jabber:iq:roster' ver='ver11'>" <>
         "<item name='Romeo' jid='romeo@example.net' subscription='both'><group>Friends</group><group>Lovers</group></item>" <>
         "<item approved='true' ask='subscribe' subscription='none' jid='NURSE@example.com'/></query>",
       %Payload.Roster{
         ver: "ver11",
         items: [
           %Payload.RosterItem{
             jid: "romeo@example.net",
             name: "Romeo",
             subscription: :both,
             groups: ["Friends", "Lovers"]
           },
           %Payload.RosterItem{
             jid: "nurse@example.com",
             subscription: :none,
             ask: :subscribe,
             approved: true
           }
         ]
       },
       "<query xmlns='jabber:iq:roster' ver='ver11'>" <>
         "<item jid='romeo@example.net' name='Romeo' subscription='both'><group>Friends</group><group>Lovers</group></item>" <>
         "<item jid='nurse@example.com' subscription='none' ask='subscribe' approved='true'/></query>"},
      {"empty roster", "<query xmlns='jabber:iq:roster'/>", %Payload.Roster{},
       "<query xmlns='jabber:iq:roster'/>"},
      {"disco#info with identities, features and a data form",
       "<query xmlns='http://jabber.org/protocol/disco#info' node='n'>" <>
         "<identity type='pc' category='client' name='Psi' xml:lang='en'/><identity category='pubsub' type='pep'/>" <>
         "<feature var='urn:xmpp:ping'/><feature var='jabber:iq:roster'/>" <> form <> "</query>",
       %Payload.DiscoInfo{
         node: "n",
         identities: [
           %Payload.DiscoIdentity{category: "client", type: "pc", name: "Psi", lang: "en"},
           %Payload.DiscoIdentity{category: "pubsub", type: "pep"}
         ],
         features: ["urn:xmpp:ping", "jabber:iq:roster"],
         extensions: [form_el]
       },
       "<query xmlns='http://jabber.org/protocol/disco#info' node='n'>" <>
         "<identity category='client' type='pc' name='Psi' xml:lang='en'/><identity category='pubsub' type='pep'/>" <>
         "<feature var='urn:xmpp:ping'/><feature var='jabber:iq:roster'/>" <> form <> "</query>"},
      {"empty disco#info", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
       %Payload.DiscoInfo{}, "<query xmlns='http://jabber.org/protocol/disco#info'/>"},
      {"disco#items",
       "<query node='rooms' xmlns='http://jabber.org/protocol/disco#items'><item name='Rooms' jid='Conference.example.com'/><item node='news' jid='pubsub.example.com'/></query>",
       %Payload.DiscoItems{
         node: "rooms",
         items: [
           %Payload.DiscoItem{jid: "conference.example.com", name: "Rooms"},
           %Payload.DiscoItem{jid: "pubsub.example.com", node: "news"}
         ]
       },
       "<query xmlns='http://jabber.org/protocol/disco#items' node='rooms'><item jid='conference.example.com' name='Rooms'/><item jid='pubsub.example.com' node='news'/></query>"},
      {"ping", "<ping xmlns='urn:xmpp:ping'></ping>", %Payload.Ping{},
       "<ping xmlns='urn:xmpp:ping'/>"},
      {"stanza-id", "<stanza-id by='Room@muc.example.com' id='5f3d' xmlns='urn:xmpp:sid:0'/>",
       %Payload.StanzaId{id: "5f3d", by: "room@muc.example.com"},
       "<stanza-id xmlns='urn:xmpp:sid:0' id='5f3d' by='room@muc.example.com'/>"},
      {"origin-id", "<origin-id xmlns='urn:xmpp:sid:0' id='o&lt;1'/>",
       %Payload.OriginId{id: "o<1"}, "<origin-id xmlns='urn:xmpp:sid:0' id='o&lt;1'/>"},
      {"json",
       ~s(<json xmlns='urn:xmpp:json:0'>{"a":[1,2.5],"b":"x &amp; &lt;y&gt; 'q' \\"d\\""}</json>),
       %Payload.Json{json: ~s({"a":[1,2.5],"b":"x & <y> 'q' \\"d\\""})},
       ~s(<json xmlns='urn:xmpp:json:0'>{"a":[1,2.5],"b":"x &amp; &lt;y&gt; 'q' \\"d\\""}</json>)},
      {"term with maps, floats, binaries, bignums",
       "<term xmlns='urn:xmpp-bridge:term:0'>#{b64}</term>", %Payload.Term{value: term},
       "<term xmlns='urn:xmpp-bridge:term:0'>#{b64}</term>"}
    ] ++
      for state <- [:active, :composing, :paused, :inactive, :gone] do
        wire = "<#{state} xmlns='http://jabber.org/protocol/chatstates'/>"
        {"chat state #{state}", wire, %Payload.ChatState{state: state}, wire}
      end
  end

  describe "typed payloads" do
    test "decode each kind from the wire and encode it canonically" do
      for {label, wire_in, struct, wire_out} <- payload_cases() do
        assert decode_payloads(wire_in) == [struct], label
        assert encode_payloads([struct]) == msg(wire_out), label
        assert decode_payloads(wire_out) == [struct], label
      end
    end

    test "every subscription value of a roster item" do
      for sub <- [:none, :to, :from, :both, :remove] do
        wire = "<query xmlns='jabber:iq:roster'><item jid='a@b' subscription='#{sub}'/></query>"
        roster = %Payload.Roster{items: [%Payload.RosterItem{jid: "a@b", subscription: sub}]}
        assert decode_payloads(wire) == [roster]
        assert encode_payloads([roster]) == msg(wire)
      end
    end

    test "every affiliation and role of a MUC item" do
      for aff <- [:owner, :admin, :member, :outcast, :none],
          role <- [:moderator, :participant, :visitor, :none] do
        wire =
          "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='#{aff}' role='#{role}'/></x>"

        user = %Payload.MucUser{items: [%Payload.MucItem{affiliation: aff, role: role}]}
        assert decode_payloads(wire) == [user]
        assert encode_payloads([user]) == msg(wire)
      end
    end

    test "the fallback rule: an unknown attribute or child keeps the element generic" do
      for {label, _wire_in, _struct, wire} <- payload_cases() do
        [_, name] = Regex.run(~r/^<([^\s\/>]+)/, wire)

        with_attr = String.replace(wire, "<#{name}", "<#{name} zz='1'", global: false)

        with_child =
          if String.ends_with?(wire, "/>") do
            String.replace_suffix(wire, "/>", "><zz/></#{name}>")
          else
            String.replace_suffix(wire, "</#{name}>", "<zz/></#{name}>")
          end

        for variant <- [with_attr, with_child] do
          generic = Xml.parse!(variant)
          assert decode_payloads(variant) == [generic], "#{label}: #{variant}"
          assert Xml.parse!(encode_payloads([generic])) == Xml.parse!(msg(variant)), label
        end
      end
    end

    test "near misses stay generic: bad numbers, enum values, JIDs, prefixes, foreign namespaces" do
      for wire <- [
            "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='-1'/></x>",
            "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='4294967296'/></x>",
            "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='07'/></x>",
            "<x xmlns='http://jabber.org/protocol/muc'><password>a</password><password>b</password></x>",
            "<x xmlns='http://jabber.org/protocol/muc#user'><item role='janitor'/></x>",
            "<x xmlns='http://jabber.org/protocol/muc#user'><item jid='a@b@c'/></x>",
            "<x xmlns='http://jabber.org/protocol/muc#user'><item><actor/></item></x>",
            "<x xmlns='http://jabber.org/protocol/muc#user'><status code='abc'/></x>",
            "<x xmlns='http://jabber.org/protocol/muc#user'>text</x>",
            "<query xmlns='jabber:iq:roster'><item jid='a@b' ask='unsubscribe'/></query>",
            "<query xmlns='jabber:iq:roster'><item jid='a@b' approved='false'/></query>",
            "<query xmlns='jabber:iq:roster'><item jid='a@b' subscription='all'/></query>",
            "<query xmlns='jabber:iq:roster'><item name='no jid'/></query>",
            "<query xmlns='jabber:iq:roster'><item jid='a@b'><group><b/></group></item></query>",
            "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><identity category='c' type='t'/></query>",
            "<query xmlns='http://jabber.org/protocol/disco#info'><identity type='t'/></query>",
            "<query xmlns='http://jabber.org/protocol/disco#items'><item/></query>",
            "<delay xmlns='urn:xmpp:delay'/>",
            "<delay xmlns='urn:xmpp:delay' stamp='s' from='@bad'/>",
            "<stanza-id xmlns='urn:xmpp:sid:0' id='x'/>",
            "<origin-id xmlns='urn:xmpp:sid:0'/>",
            "<term xmlns='urn:xmpp-bridge:term:0'>not base64!</term>",
            "<term xmlns='urn:xmpp-bridge:term:0'>#{Base.encode64("not etf")}</term>",
            "<term xmlns='urn:xmpp-bridge:term:0'>#{Base.encode64(:erlang.term_to_binary(1) <> "x")}</term>",
            "<typing xmlns='http://jabber.org/protocol/chatstates'/>",
            "<cs:active xmlns:cs='http://jabber.org/protocol/chatstates'/>",
            "<ping xmlns='urn:xmpp:ping:1'/>",
            "<ping xmlns='jabber:client'/>",
            "<ping/>"
          ] do
        generic = Xml.parse!(wire)
        assert decode_payloads(wire) == [generic], wire
        assert Xml.parse!(encode_payloads([generic])) == Xml.parse!(msg(wire)), wire
      end
    end

    test "unknown children survive as xmlel and xmlcdata, with text, attributes and order" do
      inner =
        "<foo xmlns='urn:foo' b='2' a='1'>text &amp; more<bar/> <baz xmlns='urn:baz'>z</baz>tail</foo>"

      assert decode_payloads("<body>b</body>" <> inner <> "<ping xmlns='urn:xmpp:ping'/>") == [
               {:xmlel, "foo", [{"xmlns", "urn:foo"}, {"b", "2"}, {"a", "1"}],
                [
                  {:xmlcdata, "text & more"},
                  {:xmlel, "bar", [], []},
                  {:xmlcdata, " "},
                  {:xmlel, "baz", [{"xmlns", "urn:baz"}], [{:xmlcdata, "z"}]},
                  {:xmlcdata, "tail"}
                ]},
               %Payload.Ping{}
             ]
    end
  end

  describe "Term payload safety" do
    defp term_xml(etf),
      do: msg("<term xmlns='urn:xmpp-bridge:term:0'>#{Base.encode64(etf)}</term>")

    # ETF written by hand (term_to_binary would create the atoms): an atom
    # (SMALL_ATOM_UTF8_EXT), a tuple holding it, and an external fun
    # fun Mod:fun/1 (EXPORT_EXT) whose module and function are unknown.
    defp unknown_atom_etfs(name) do
      atom = fn a -> <<119, byte_size(a)>> <> a end

      [
        <<131>> <> atom.(name),
        <<131, 104, 2, 97, 1>> <> atom.(name),
        <<131, 113>> <> atom.(name <> "M") <> atom.(name <> "F") <> <<97, 1>>
      ]
    end

    defp fresh_name,
      do: "xb_never_seen_#{System.unique_integer([:positive])}_#{:rand.uniform(1_000_000)}"

    test "an ETF atom unknown to this VM arrives as UnknownAtom and creates no atom" do
      # Warm up the paths with other names, so the count below sees only
      # these decodes.
      Enum.each(unknown_atom_etfs(fresh_name()), &Stanza.decode!(term_xml(&1)))

      # Other tests run concurrently and may create atoms (loading a module):
      # a change of the count is retried with fresh names; that the atoms do
      # not exist afterwards is checked by name every time.
      deltas =
        for _attempt <- 1..3 do
          name = fresh_name()
          [atom_etf, tuple_etf, fun_etf] = unknown_atom_etfs(name)

          before = :erlang.system_info(:atom_count)
          decoded = Enum.map([atom_etf, tuple_etf, fun_etf], &Stanza.decode!(term_xml(&1)))
          delta = :erlang.system_info(:atom_count) - before

          for suffix <- ["", "M", "F"] do
            assert_raise ArgumentError, fn -> String.to_existing_atom(name <> suffix) end
          end

          unknown = %XmppBridge.Bus.UnknownAtom{name: name}

          assert [
                   %Message{payloads: [%Payload.Term{value: ^unknown}]},
                   %Message{payloads: [%Payload.Term{value: {1, ^unknown}}]},
                   %Message{payloads: [fun_payload]} = fun_msg
                 ] = decoded

          # The fun is refused: it stays generic and re-encodes to the same bytes.
          assert fun_payload ==
                   {:xmlel, "term", [{"xmlns", "urn:xmpp-bridge:term:0"}],
                    [{:xmlcdata, Base.encode64(fun_etf)}]}

          assert Stanza.encode!(fun_msg) == term_xml(fun_etf)
          delta
        end

      assert 0 in deltas, "atom_count grew by #{inspect(deltas)} over the decodes"
    end

    test "an existing non-Latin-1 atom is found, not reported unknown" do
      etf = :erlang.term_to_binary({:日本語, :ok})

      assert [%Payload.Term{value: {:日本語, :ok}}] = Stanza.decode!(term_xml(etf)).payloads
    end

    test "funs, pids, references and ports stay generic" do
      refused = [
        :erlang.term_to_binary(fn x -> x end),
        :erlang.term_to_binary(&Enum.map/2),
        :erlang.term_to_binary({:ok, [1, %{f: fn -> :boom end}]}),
        :erlang.term_to_binary(self()),
        :erlang.term_to_binary(%{ref: make_ref()}),
        :erlang.term_to_binary([hd(Port.list())])
      ]

      for etf <- refused do
        assert [{:xmlel, "term", [{"xmlns", "urn:xmpp-bridge:term:0"}], [{:xmlcdata, b64}]}] =
                 Stanza.decode!(term_xml(etf)).payloads

        assert Base.decode64!(b64) == etf
      end
    end

    test "known atoms, big integers, maps, binaries and floats decode to the value" do
      value = %{
        floats: [0.1, -2.5e-300, 1.7976931348623157e308],
        tuple: {:a, "b", <<0, 255>>},
        big: [2 ** 64, -(2 ** 200), 12],
        improper: [1 | :tail],
        nested: %{{1, 2} => [%{}]}
      }

      assert [%Payload.Term{value: ^value}] =
               Stanza.decode!(term_xml(:erlang.term_to_binary(value))).payloads
    end

    test "a term that cannot cross the bus is refused at encode, naming what" do
      for {value, what} <- [
            {self(), "pid"},
            {[make_ref()], "reference"},
            {%{f: fn -> 1 end}, "fun"}
          ] do
        msg = %Message{to: "a@example.com", payloads: [Payload.Term.new(value)]}
        assert {:error, %XmppBridge.Error{reason: {:not_portable, ^what}}} = Stanza.encode(msg)
      end
    end
  end

  describe "stanza errors" do
    defp error_xml(inner, type \\ "cancel"),
      do: msg("<error type='#{type}'>#{inner}</error>")

    test "each of the 22 defined conditions" do
      assert length(Gen.conditions()) == 22

      for condition <- Gen.conditions() do
        wire = condition |> Atom.to_string() |> String.replace("_", "-")
        xml = error_xml("<#{wire} xmlns='#{@stanzas_ns}'/>")
        error = %StanzaError{type: :cancel, condition: condition}
        assert Stanza.decode!(xml) == %Message{error: error}, wire
        assert Stanza.encode!(%Message{error: error}) == xml, wire
      end
    end

    test "each error type" do
      for type <- [:auth, :cancel, :continue, :modify, :wait] do
        xml = error_xml("<conflict xmlns='#{@stanzas_ns}'/>", type)
        assert Stanza.decode!(xml).error == %StanzaError{type: type, condition: :conflict}
        assert Stanza.encode!(Stanza.decode!(xml)) == xml
      end
    end

    test "gone and redirect carry a URI" do
      for condition <- ["gone", "redirect"] do
        xml =
          error_xml(
            "<#{condition} xmlns='#{@stanzas_ns}'>xmpp:romeo@example.net?message</#{condition}>",
            "modify"
          )

        error = Stanza.decode!(xml).error
        assert error.condition == String.to_existing_atom(condition)
        assert error.condition_text == "xmpp:romeo@example.net?message"
        assert Stanza.encode!(%Message{error: error}) == xml
      end
    end

    test "text, language, by and an application-specific condition" do
      xml =
        msg(
          "<error by='Example.NET' type='modify'>" <>
            "<text xml:lang='en' xmlns='#{@stanzas_ns}'>No &amp; way</text>" <>
            "<too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/>" <>
            "<bad-request xmlns='#{@stanzas_ns}'/></error>"
        )

      error = %StanzaError{
        type: :modify,
        by: "example.net",
        condition: :bad_request,
        text: "No & way",
        text_lang: "en",
        app:
          {:xmlel, "too-many-subscriptions",
           [{"xmlns", "http://jabber.org/protocol/pubsub#errors"}], []}
      }

      assert Stanza.decode!(xml).error == error

      assert Stanza.encode!(%Message{error: error}) ==
               msg(
                 "<error type='modify' by='example.net'><bad-request xmlns='#{@stanzas_ns}'/>" <>
                   "<text xmlns='#{@stanzas_ns}' xml:lang='en'>No &amp; way</text>" <>
                   "<too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/></error>"
               )
    end

    test "an error the struct cannot represent stays a generic payload" do
      for inner <- [
            # text inside a condition other than gone/redirect
            "<bad-request xmlns='#{@stanzas_ns}'>why</bad-request>",
            # two conditions
            "<conflict xmlns='#{@stanzas_ns}'/><forbidden xmlns='#{@stanzas_ns}'/>",
            # no condition
            "<text xmlns='#{@stanzas_ns}'>t</text>",
            # an unknown condition in the stanzas namespace
            "<on-fire xmlns='#{@stanzas_ns}'/>",
            # a condition without namespace
            "<conflict/>"
          ] do
        xml = error_xml(inner)
        m = Stanza.decode!(xml)
        assert m.error == nil, inner
        assert m.payloads == [Xml.parse!("<error type='cancel'>#{inner}</error>")], inner
      end

      m = Stanza.decode!(error_xml("<conflict xmlns='#{@stanzas_ns}'/>", "fatal"))
      assert m.error == nil
      assert [{:xmlel, "error", [{"type", "fatal"}], _}] = m.payloads
    end
  end

  describe "namespaces" do
    test "a jabber:server stanza keeps its xmlns in attrs and re-encodes with it" do
      xml =
        "<message xmlns='jabber:server' from='a@example.com' to='b@example.org'><body>x</body></message>"

      m = Stanza.decode!(xml)
      assert m.attrs == [{"xmlns", "jabber:server"}]
      assert m.bodies == [{nil, "x"}]
      assert Stanza.encode!(m) == xml
    end

    test "jabber:component:accept too" do
      xml = "<iq xmlns='jabber:component:accept' id='1' type='result'/>"
      assert Stanza.decode!(xml).attrs == [{"xmlns", "jabber:component:accept"}]
      assert Stanza.encode!(Stanza.decode!(xml)) == xml
    end

    test "jabber:client, explicit or implied, is not kept in attrs and always written" do
      assert Stanza.decode!("<message xmlns='jabber:client'/>").attrs == []
      assert Stanza.decode!("<message/>").attrs == []
      assert Stanza.encode!(%Message{}) == "<message xmlns='jabber:client'/>"
    end

    test "a typed child must be in the stanza's namespace" do
      m =
        Stanza.decode!(
          "<message xmlns='jabber:server'><body xmlns='jabber:client'>x</body></message>"
        )

      assert m.bodies == []
      assert m.payloads == [{:xmlel, "body", [{"xmlns", "jabber:client"}], [{:xmlcdata, "x"}]}]
    end
  end

  describe "JIDs in stanzas" do
    test "from, to and JIDs inside typed payloads are normalised" do
      m =
        Stanza.decode!(
          "<message from='ALICE@Example.COM/Phone' to='Bob@EXAMPLE.org'>" <>
            "<stanza-id xmlns='urn:xmpp:sid:0' id='1' by='Room@MUC.example.com'/></message>"
        )

      assert m.from == "alice@example.com/Phone"
      assert m.to == "bob@example.org"
      assert m.payloads == [%Payload.StanzaId{id: "1", by: "room@muc.example.com"}]
    end

    test "encode checks from and to" do
      assert Stanza.encode(%Message{to: "a@b@c"}) ==
               {:error, %XmppBridge.Error{reason: {:invalid_jid, {"a@b@c", :domainpart}}}}
    end
  end

  describe "losslessness on a corpus" do
    # What is compared. Both the stanza as received and the stanza after
    # decode + encode are parsed with Xml.parse!/1 and brought to this
    # canonical form, which is exactly the three canonicalisations the
    # XmppBridge.Stanza moduledoc allows, plus what XML itself does not
    # distinguish:
    #
    #   1. Every element: attributes sorted by name; adjacent text merged
    #      (CDATA and escaped text are the same to XML); empty text dropped.
    #   2. The stanza element, and every typed child (typed body, subject,
    #      thread, show, status, priority, error and typed payloads, down
    #      to their sub-elements such as roster items and groups): text
    #      that is only whitespace between child elements is dropped, and
    #      child elements are stably sorted into the order the encoder
    #      writes them (message: subject, body, thread, error, payloads;
    #      presence: show, status, priority, error, payloads; iq: payload,
    #      error; muc: history, password; muc#user: items, status codes;
    #      muc item: actor, reason; disco#info: identities, features,
    #      extensions; error: condition, text, application condition).
    #      Payloads keep their relative order.
    #   3. JIDs normalised (stanza from/to; jid, from and by attributes of
    #      typed children); xmlns='jabber:client' added when absent (the
    #      encoder always writes it); type='normal' dropped from a message.
    #
    # Generic payloads, and the generic parts of typed ones (disco#info
    # extensions, an error's application condition), get step 1 only:
    # every character of their text, whitespace included, must survive.
    test "encode(decode(x)) equals x canonically, and decode is stable" do
      corpus = Gen.corpus()
      assert length(corpus) >= 30

      for {label, xml} <- corpus do
        decoded = Stanza.decode!(xml)
        encoded = Stanza.encode!(decoded)
        assert Stanza.decode!(encoded) == decoded, label
        assert Stanza.encode!(Stanza.decode!(encoded)) == encoded, label

        assert canon_stanza(Xml.parse!(encoded), decoded) ==
                 canon_stanza(Xml.parse!(xml), decoded),
               label
      end
    end

    test "the canonical form is not vacuous: a lost character is seen" do
      xml = "<message><body>x</body><e xmlns='urn:e'> a </e></message>"
      decoded = Stanza.decode!(xml)

      tampered =
        Xml.parse!(
          "<message xmlns='jabber:client'><body>x</body><e xmlns='urn:e'>a </e></message>"
        )

      refute canon_stanza(tampered, decoded) == canon_stanza(Xml.parse!(xml), decoded)
    end
  end

  describe "text directly inside a stanza" do
    # BUG (reported to the lead): non-whitespace text that is a direct child
    # of a stanza is silently dropped by decode. The Stanza moduledoc only
    # allows whitespace-only text between children to be dropped.
    # Input:    <message>hello<body>x</body></message>
    # Expected: either {:error, _} from decode, or "hello" kept so that
    #           encode(decode(x)) still carries it.
    # Got:      {:ok, %Message{bodies: [{nil, "x"}]}}, re-encoded as
    #           <message xmlns='jabber:client'><body>x</body></message>.
    test "non-whitespace text is not silently dropped" do
      xml = "<message>hello<body>x</body></message>"

      case Stanza.decode(xml) do
        {:error, %XmppBridge.Error{}} ->
          :ok

        {:ok, decoded} ->
          assert Stanza.encode!(decoded) =~ "hello",
                 "text 'hello' directly inside <message> was dropped: decoded to #{inspect(decoded)}"
      end
    end
  end

  ## Canonical form (see "losslessness on a corpus")

  @conditions_wire Enum.map(
                     Gen.conditions(),
                     &(&1 |> Atom.to_string() |> String.replace("_", "-"))
                   )

  defp canon_stanza({:xmlel, name, attrs, children}, decoded) do
    attrs =
      attrs
      |> Enum.map(fn
        {n, v} when n in ["from", "to"] -> {n, normalize!(v)}
        other -> other
      end)
      |> Enum.reject(&(name == "message" and &1 == {"type", "normal"}))
      |> then(fn a ->
        if List.keymember?(a, "xmlns", 0), do: a, else: [{"xmlns", "jabber:client"} | a]
      end)
      |> Enum.sort()

    children = children |> Gen.merge_text() |> drop_blank_text()

    {ranked, _seen} =
      Enum.map_reduce(children, MapSet.new(), fn child, seen ->
        kind = stanza_child_kind(name, child, seen, decoded)
        {{kind, child}, MapSet.put(seen, kind)}
      end)

    payload_els = for {:payload, el} <- ranked, do: el

    decoded_payloads =
      case decoded do
        %Iq{payload: nil} -> []
        %Iq{payload: p} -> [p]
        %{payloads: ps} -> ps
      end

    assert length(payload_els) == length(decoded_payloads),
           "payload children #{inspect(payload_els)} vs decoded #{inspect(decoded_payloads)}"

    payload_canon =
      Enum.zip_with(payload_els, decoded_payloads, fn
        el, {:xmlel, _, _, _} -> canon_generic(el)
        el, %_{} -> canon_typed(el)
      end)

    typed =
      for {kind, el} <- ranked, kind != :payload do
        {stanza_rank(name, kind), canon_typed(el)}
      end
      |> Enum.sort_by(&elem(&1, 0))
      |> Enum.map(&elem(&1, 1))

    children =
      case name do
        "iq" -> payload_canon ++ typed
        _ -> typed ++ payload_canon
      end

    {:xmlel, name, attrs, children}
  end

  # Which typed field of the struct a child of the stanza lands in, following
  # the rule "typed only when the typed form represents it exactly".
  defp stanza_child_kind(_stanza, {:xmlcdata, _}, _seen, _decoded), do: :text

  defp stanza_child_kind(stanza, {:xmlel, name, attrs, children}, seen, decoded) do
    plain_text? = match?([], children) or match?([{:xmlcdata, _}], children)
    names = Enum.map(attrs, &elem(&1, 0))

    cond do
      stanza == "message" and name in ["body", "subject"] and plain_text? and
          names -- ["xml:lang"] == [] ->
        String.to_atom(name)

      stanza == "message" and name == "thread" and plain_text? and names -- ["parent"] == [] and
          not MapSet.member?(seen, :thread) ->
        :thread

      stanza == "presence" and name == "show" and attrs == [] and
        not MapSet.member?(seen, :show) and
          children in Enum.map(~w(away chat dnd xa), &[{:xmlcdata, &1}]) ->
        :show

      stanza == "presence" and name == "status" and plain_text? and
          names -- ["xml:lang"] == [] ->
        :status

      stanza == "presence" and name == "priority" and attrs == [] and
        not MapSet.member?(seen, :priority) and priority?(children) ->
        :priority

      name == "error" and decoded.error != nil and not List.keymember?(attrs, "xmlns", 0) and
          not MapSet.member?(seen, :error) ->
        :error

      true ->
        :payload
    end
  end

  defp priority?([{:xmlcdata, text}]) do
    case Integer.parse(text) do
      {n, ""} -> n in -128..127 and Integer.to_string(n) == text
      _ -> false
    end
  end

  defp priority?(_), do: false

  defp stanza_rank("message", kind),
    do: Enum.find_index([:subject, :body, :thread, :error, :text], &(&1 == kind))

  defp stanza_rank("presence", kind),
    do: Enum.find_index([:show, :status, :priority, :error, :text], &(&1 == kind))

  defp stanza_rank("iq", kind), do: Enum.find_index([:error, :text], &(&1 == kind))

  defp canon_generic({:xmlcdata, _} = text), do: text

  defp canon_generic({:xmlel, name, attrs, children}) do
    {:xmlel, name, Enum.sort(attrs), children |> Gen.merge_text() |> Enum.map(&canon_generic/1)}
  end

  defp canon_typed({:xmlcdata, _} = text), do: text

  defp canon_typed({:xmlel, name, attrs, children}) do
    attrs =
      attrs
      |> Enum.map(fn
        {n, v} when n in ["jid", "from", "by"] -> {n, normalize!(v)}
        other -> other
      end)
      |> Enum.sort()

    children = Gen.merge_text(children)

    children =
      if Enum.any?(children, &match?({:xmlel, _, _, _}, &1)),
        do: drop_blank_text(children),
        else: children

    children =
      children
      |> Enum.sort_by(&typed_rank(name, &1))
      |> Enum.map(fn
        {:xmlel, _, child_attrs, _} = el ->
          if List.keymember?(child_attrs, "xmlns", 0) and not stanzas_ns?(child_attrs),
            do: canon_generic(el),
            else: canon_typed(el)

        text ->
          text
      end)

    {:xmlel, name, attrs, children}
  end

  defp stanzas_ns?(attrs), do: List.keyfind(attrs, "xmlns", 0) == {"xmlns", @stanzas_ns}

  defp typed_rank(_parent, {:xmlcdata, _}), do: 0

  defp typed_rank(_parent, {:xmlel, name, attrs, _}) do
    cond do
      stanzas_ns?(attrs) and name in @conditions_wire -> 0
      stanzas_ns?(attrs) and name == "text" -> 1
      List.keymember?(attrs, "xmlns", 0) -> 2
      name in ["history", "item", "identity", "actor", "group"] -> 0
      name in ["password", "status", "feature", "reason"] -> 1
      true -> 3
    end
  end

  defp drop_blank_text(children) do
    Enum.reject(children, fn
      {:xmlcdata, text} -> text =~ ~r/\A[ \t\r\n]*\z/
      _ -> false
    end)
  end

  defp normalize!(jid) do
    {:ok, normalized} = Jid.normalize(jid)
    normalized
  end
end
