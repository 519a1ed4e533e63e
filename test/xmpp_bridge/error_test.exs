defmodule XmppBridge.ErrorTest do
  use ExUnit.Case, async: true

  alias XmppBridge.Error

  doctest XmppBridge.Error

  defp message(reason), do: Exception.message(%Error{reason: reason})

  describe "message/1" do
    test "malformed XML carries the parser's detail" do
      assert message({:malformed_xml, "unexpected end of input"}) ==
               "malformed XML: unexpected end of input"
    end

    test "invalid UTF-8 names the byte offset" do
      assert message({:invalid_utf8, 17}) == "invalid UTF-8 at byte offset 17"
    end

    test "forbidden XML names the construct and the rule" do
      assert message({:forbidden_xml, :dtd}) ==
               "a document type declaration (DTD) is not allowed in XMPP (RFC 6120 section 11.1)"

      assert message({:forbidden_xml, :comment}) ==
               "an XML comment is not allowed in XMPP (RFC 6120 section 11.1)"

      assert message({:forbidden_xml, :processing_instruction}) ==
               "an XML processing instruction is not allowed in XMPP (RFC 6120 section 11.1)"
    end

    test "undefined entity shows the reference as written" do
      assert message({:undefined_entity, "lol9"}) =~ ~r/^undefined entity &lol9; /
      assert message({:undefined_entity, "lol9"}) =~ "&amp; &lt; &gt; &quot; &apos;"
    end

    test "limits are stated with their unit" do
      assert message({:too_deep, 64}) == "elements nested deeper than the limit of 64 levels"
      assert message({:too_large, 262_144}) == "stanza larger than the limit of 262144 bytes"
    end

    test "unknown element says what was expected" do
      assert message({:unknown_element, "stream:features"}) ==
               "unknown top-level element <stream:features> (expected message, presence or iq)"
    end

    test "namespace and JID are quoted so empty or odd text stays visible" do
      assert message({:bad_namespace, "jabber:x:nope"}) ==
               ~s(unexpected namespace "jabber:x:nope")

      assert message({:invalid_jid, {"", :domainpart}}) == ~s(invalid JID "": bad domainpart)

      assert message({:invalid_jid, {"a@b@c", :domainpart}}) ==
               ~s(invalid JID "a@b@c": bad domainpart)
    end

    test "invalid value names element, attribute and value" do
      assert message({:invalid_value, {"message", "type", "shout"}}) ==
               ~s(invalid value "shout" for attribute "type" of <message>)
    end

    test "invalid value without an attribute is about the element's text" do
      assert message({:invalid_value, {"show", nil, "sleeping"}}) ==
               ~s(invalid value "sleeping" in the text of <show>)
    end

    test "missing attribute names element and attribute" do
      assert message({:missing_attribute, {"iq", "id"}}) ==
               ~s(element <iq> lacks the required attribute "id")
    end

    test "invalid IQ carries the detail" do
      assert message({:invalid_iq, "a get must have exactly one child"}) ==
               "invalid IQ: a get must have exactly one child"
    end

    test "invalid field names the struct and the field" do
      assert message({:invalid_field, {XmppBridge.Message, :to}}) ==
               "field :to of XmppBridge.Message holds a value of the wrong type for encoding"
    end

    test "invalid XML char is shown as a Unicode code point" do
      assert message({:invalid_xml_char, 0}) == "character U+0000 cannot be carried by XML 1.0"

      assert message({:invalid_xml_char, 0xFFFE}) ==
               "character U+FFFE cannot be carried by XML 1.0"

      assert message({:invalid_xml_char, 0x1B}) == "character U+001B cannot be carried by XML 1.0"
    end

    test "not binary shows the term received" do
      assert message({:not_binary, [1, 2]}) == "expected a binary, got: [1, 2]"
      assert message({:not_binary, nil}) == "expected a binary, got: nil"
    end

    test "bad argument carries the detail" do
      assert message({:bad_argument, "max_depth must be a positive integer"}) ==
               "bad argument: max_depth must be a positive integer"
    end

    test "parser failed explains the original error" do
      assert message({:parser_failed, {:too_large, 1024}}) ==
               "stream parser already failed, create a new one: stanza larger than the limit of 1024 bytes"
    end
  end

  describe "format/1" do
    test "is what message/1 returns" do
      reason = {:invalid_jid, {"@example.com", :localpart}}
      assert Error.format(reason) == Exception.message(%Error{reason: reason})
    end

    test "inspects reasons it does not know" do
      assert Error.format(:nif_not_loaded) == ":nif_not_loaded"
      assert Error.format({:weird, 1, 2}) == "{:weird, 1, 2}"
      assert Error.format({:forbidden_xml, :cdata}) == "{:forbidden_xml, :cdata}"
    end

    test "inspects details that are not binaries instead of crashing" do
      assert Error.format({:malformed_xml, :eof}) == "malformed XML: :eof"
      assert Error.format({:unknown_element, ~c"foo"}) =~ "unknown top-level element <"
    end

    test "always returns a binary" do
      for reason <- [
            {:malformed_xml, "x"},
            {:invalid_utf8, 0},
            {:forbidden_xml, :dtd},
            {:undefined_entity, "x"},
            {:too_deep, 1},
            {:too_large, 1},
            {:unknown_element, "x"},
            {:bad_namespace, "x"},
            {:invalid_jid, {"x", :localpart}},
            {:invalid_value, {"a", "b", "c"}},
            {:missing_attribute, {"a", "b"}},
            {:invalid_iq, "x"},
            {:invalid_field, {XmppBridge.Iq, :id}},
            {:invalid_xml_char, 1},
            {:not_binary, 1},
            {:bad_argument, "x"},
            {:parser_failed, {:invalid_utf8, 3}},
            make_ref()
          ] do
        assert is_binary(Error.format(reason))
      end
    end
  end

  test "can be raised with a reason and rescued by it" do
    assert_raise Error, "invalid JID \"\": bad domainpart", fn ->
      raise Error, reason: {:invalid_jid, {"", :domainpart}}
    end

    try do
      raise Error, reason: {:too_deep, 3}
    rescue
      e in Error -> assert e.reason == {:too_deep, 3}
    end
  end
end
