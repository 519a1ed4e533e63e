defmodule XmppBridge.JidTest do
  use ExUnit.Case, async: true

  alias XmppBridge.{Error, Jid, Stanza}
  alias XmppBridge.Test.Generators, as: Gen

  doctest XmppBridge.Jid

  describe "parse/1" do
    test "splits into parts" do
      assert Jid.parse("alice@example.com/phone") ==
               {:ok, %Jid{node: "alice", domain: "example.com", resource: "phone"}}

      assert Jid.parse("example.com") == {:ok, %Jid{node: nil, domain: "example.com"}}
      assert Jid.parse("example.com/r") == {:ok, %Jid{domain: "example.com", resource: "r"}}
      assert Jid.parse("a@example.com") == {:ok, %Jid{node: "a", domain: "example.com"}}
    end

    test "the resource is everything after the first slash, and may hold @ and /" do
      assert Jid.parse!("a@example.com/x@y/z") ==
               %Jid{node: "a", domain: "example.com", resource: "x@y/z"}
    end

    test "IP literals as domains" do
      assert Jid.parse!("a@127.0.0.1").domain == "127.0.0.1"
      assert Jid.parse!("a@[::1]/r").domain == "[::1]"
    end
  end

  describe "normalisation (RFC 7622)" do
    test "node and domain are case-folded, the resource keeps its case" do
      assert Jid.normalize("ALICE@Example.COM/Phone") == {:ok, "alice@example.com/Phone"}
    end

    test "non-ASCII parts are prepared" do
      assert Jid.normalize("ÄLICE@例え.JP/Ресурс") == {:ok, "älice@例え.jp/Ресурс"}
      # PRECIS (RFC 7622) lowercases and keeps the final sigma "ς"
      # (RFC 6122's nodeprep folded it to "σ").
      assert Jid.normalize("Σίσυφος@Example.com") == {:ok, "σίσυφος@example.com"}
      assert Jid.normalize("ＡＢＣ@example.com") == {:ok, "abc@example.com"}
    end

    test "normalisation is idempotent and agrees with parse + to_string" do
      Gen.check(:jid_normalize, 500, &Gen.jid/0, fn jid ->
        assert Jid.normalize(jid) == {:ok, jid}
        assert jid |> Jid.parse!() |> Jid.to_string() == jid
        assert to_string(Jid.parse!(jid)) == jid
      end)
    end

    test "decode normalises from and to" do
      m = Stanza.decode!("<message from='Juliet@Capulet.LIT/Balcony' to='ROMEO@montague.lit'/>")
      assert m.from == "juliet@capulet.lit/Balcony"
      assert m.to == "romeo@montague.lit"
    end
  end

  describe "invalid JIDs" do
    test "are refused with the text that was given" do
      for {bad, part} <- [
            {"", :domainpart},
            {"a@b@c", :domainpart},
            {"@example.com", :localpart},
            {"a@", :domainpart},
            {"example.com/", :resourcepart},
            {"a@example.com/", :resourcepart},
            {"a b@example.com", :localpart},
            {"a@exa mple.com", :domainpart},
            {"a\"b@example.com", :localpart},
            {"a@-example.com", :domainpart},
            {String.duplicate("n", 1024) <> "@example.com", :localpart},
            {"a@" <> String.duplicate("d", 1024), :domainpart},
            {"a@example.com/" <> String.duplicate("r", 1024), :resourcepart}
          ] do
        want = {:error, %Error{reason: {:invalid_jid, {bad, part}}}}
        assert Jid.normalize(bad) == want, inspect(bad)
        assert Jid.parse(bad) == want, inspect(bad)
      end
    end

    test "a JID that is not UTF-8" do
      assert {:error, %Error{reason: {:invalid_utf8, 1}}} = Jid.normalize("a\xFF@example.com")
    end

    test "non-binaries" do
      for bad <- [1, :atom, ~c"a@b", %{}, nil] do
        assert Jid.parse(bad) == {:error, %Error{reason: {:not_binary, bad}}}
        assert Jid.normalize(bad) == {:error, %Error{reason: {:not_binary, bad}}}
      end
    end

    test "parse! raises" do
      assert_raise Error, ~r/invalid JID "a@b@c"/, fn -> Jid.parse!("a@b@c") end
    end
  end

  describe "bare/1, full?/1, to_string/1" do
    test "on structs" do
      jid = Jid.parse!("a@example.com/r")
      assert Jid.bare(jid) == %Jid{node: "a", domain: "example.com"}
      assert Jid.full?(jid)
      refute Jid.full?(Jid.bare(jid))
      assert Jid.to_string(%Jid{domain: "example.com"}) == "example.com"
      assert "#{jid}" == "a@example.com/r"
    end

    test "on strings, normalising" do
      assert Jid.bare("A@Example.com/R") == "a@example.com"
      assert Jid.bare("example.com/r") == "example.com"
      assert Jid.full?("a@example.com/r")
      refute Jid.full?("a@example.com")
    end
  end
end
