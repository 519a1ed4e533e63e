defmodule XmppBridge.JidRfc7622Test do
  # JIDs as RFC 7622 (PRECIS) reads them, and XML 1.0 attribute-value
  # normalisation: the same tables as the Rust unit tests, through the NIF.
  use ExUnit.Case, async: true

  alias XmppBridge.{Error, Jid, Message, Stanza, Xml}

  # RFC 7622 §3.5, the valid examples, each with its normalised form.
  @valid [
    {"juliet@example.com", "juliet@example.com"},
    {"juliet@example.com/foo", "juliet@example.com/foo"},
    {"juliet@example.com/foo bar", "juliet@example.com/foo bar"},
    {"juliet@example.com/foo@bar", "juliet@example.com/foo@bar"},
    {"foo\\20bar@example.com", "foo\\20bar@example.com"},
    {"fussball@example.com", "fussball@example.com"},
    {"fußball@example.com", "fußball@example.com"},
    {"π@example.com", "π@example.com"},
    {"Σ@example.com/foo", "σ@example.com/foo"},
    {"σ@example.com/foo", "σ@example.com/foo"},
    {"ς@example.com/foo", "ς@example.com/foo"},
    {"king@example.com/♚", "king@example.com/♚"},
    {"example.com", "example.com"},
    {"example.com/foobar", "example.com/foobar"},
    {"a.example.com/b@example.net", "a.example.com/b@example.net"}
  ]

  # RFC 7622 §3.5, the invalid examples, with the part at fault.
  @invalid [
    {~s("juliet"@example.com), :localpart},
    {"foo bar@example.com", :localpart},
    {"@example.com/", :resourcepart},
    {"henry\u2163@example.com", :localpart},
    {"♚@example.com", :localpart},
    {"juliet@", :domainpart},
    {"/foobar", :domainpart}
  ]

  describe "RFC 7622 §3.5" do
    test "the valid examples normalise as the RFC says, and normalising again changes nothing" do
      for {jid, want} <- @valid do
        assert Jid.normalize(jid) == {:ok, want}, inspect(jid)
        assert Jid.normalize(want) == {:ok, want}, inspect(want)
        assert {:ok, %Jid{} = parts} = Jid.parse(jid)
        assert Jid.to_string(parts) == want
      end
    end

    test "the invalid examples are refused, naming the part" do
      for {jid, part} <- @invalid do
        want = {:error, %Error{reason: {:invalid_jid, {jid, part}}}}
        assert Jid.normalize(jid) == want, inspect(jid)
        assert Jid.parse(jid) == want, inspect(jid)
      end
    end

    test "a leading space in a resource is taken: OpaqueString has no rule against it" do
      assert {:ok, %Jid{resource: " foo"}} = Jid.parse("juliet@example.com/ foo")
    end

    test "an invalid JID's message names the part" do
      {:error, error} = Jid.normalize("♚@example.com")
      assert Exception.message(error) == ~s(invalid JID "♚@example.com": bad localpart)
    end
  end

  describe "what today's clients send" do
    test "emoji, symbols and mixed scripts in resources and MUC nicknames" do
      for jid <- [
            "coven@chat.shakespeare.lit/Café ☕",
            "juliet@example.com/📱 Phone",
            "room@muc.example.com/Ωmega Лиса 狐",
            "room@muc.example.com/☃ ✈ ♫ ∑"
          ] do
        assert Jid.normalize(jid) == {:ok, jid}, inspect(jid)
      end

      assert Jid.parse!("coven@chat.shakespeare.lit/Café ☕").resource == "Café ☕"
    end

    test "localparts with non-ASCII letters are lowercased" do
      assert Jid.normalize("ÉLODIE@example.com") == {:ok, "élodie@example.com"}
      assert Jid.normalize("ДМИТРИЙ@Example.COM") == {:ok, "дмитрий@example.com"}
      assert Jid.normalize("ＡＢＣ@example.com") == {:ok, "abc@example.com"}
    end

    test "domains are mapped per UTS #46 and kept as U-labels" do
      assert Jid.normalize("user@BÜCHER.example") == {:ok, "user@bücher.example"}
      assert Jid.normalize("user@xn--bcher-kva.example") == {:ok, "user@bücher.example"}
      assert Jid.normalize("[::1]") == {:ok, "[::1]"}
    end

    test "what PRECIS refuses in emoji: variation selectors and joiners" do
      for jid <- ["room@muc.example.com/❤\uFE0F", "room@muc.example.com/🏳\uFE0F\u200D🌈"] do
        assert {:error, %Error{reason: {:invalid_jid, {^jid, :resourcepart}}}} =
                 Jid.normalize(jid)
      end
    end

    test "a stanza from an emoji resource decodes to a typed struct and back" do
      xml =
        "<message xmlns='jabber:client' from='coven@chat.shakespeare.lit/Café ☕' " <>
          "to='Juliet@Example.COM/📱 Phone' type='groupchat'><body>hi</body></message>"

      assert {:ok, %Message{} = msg} = Stanza.decode(xml)
      assert msg.from == "coven@chat.shakespeare.lit/Café ☕"
      assert msg.to == "juliet@example.com/📱 Phone"
      assert {:ok, out} = Stanza.encode(msg)
      assert Stanza.decode(out) == {:ok, msg}
    end

    test "a stanza from a resource PRECIS refuses is an error naming the resourcepart" do
      jid = "room@muc.example.com/❤\uFE0F"
      xml = "<message from='#{jid}'><body>x</body></message>"

      assert {:error, %Error{reason: {:invalid_jid, {^jid, :resourcepart}}}} = Stanza.decode(xml)
    end
  end

  describe "attribute values (XML 1.0 §3.3.3)" do
    test "a literal tab, LF or CR reads as a space; CR LF as one" do
      {:ok, {:xmlel, "a", attrs, []}} = Xml.parse("<a x='1\t2\n3\r\n4\r5'/>")
      assert attrs == [{"x", "1 2 3 4 5"}]
    end

    test "character references keep their characters, and are written back as such" do
      {:ok, el} = Xml.parse("<a x='&#9;&#10;&#13;|\t'/>")
      assert {:xmlel, "a", [{"x", "\t\n\r| "}], []} = el
      {:ok, out} = Xml.encode(el)
      assert Xml.parse(out) == {:ok, el}
    end

    test "a stanza's attribute values are normalised too" do
      {:ok, msg} =
        Stanza.decode("<message id='a\tb' to='juliet@example.com'><body>x</body></message>")

      assert msg.id == "a b"
    end
  end
end
