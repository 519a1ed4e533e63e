defmodule XmppBridge.BusTermTest do
  # The bus's pieces that need no server: checked ETF, bodies, and how its
  # stanzas are read (docs/PROTOCOL.md §5).
  use ExUnit.Case, async: true

  alias XmppBridge.{Error, Iq, StanzaError}
  alias XmppBridge.Bus.{Term, UnknownAtom, Wire}

  doctest XmppBridge.Bus.Term
  doctest XmppBridge.Bus.UnknownAtom

  test "bodies are cut at 1024 bytes on a character boundary" do
    body = Term.body(String.duplicate("é", 2000))
    assert byte_size(body) <= 1024
    assert String.valid?(body)
    assert String.ends_with?(body, "…")
    assert Term.body(:short) == ":short"
  end

  test "encode refuses what cannot cross, decode refuses it from the wire" do
    for {value, what} <- [{self(), "pid"}, {make_ref(), "reference"}, {<<1::3>>, "bit string"}] do
      assert {:error, %Error{reason: {:not_portable, ^what}}} = Term.encode(value)

      assert {:error, %Error{reason: {:not_portable, ^what}}} =
               Term.decode(:erlang.term_to_binary(value))
    end

    deep = Enum.reduce(1..200, :x, fn _, acc -> [acc] end)
    assert {:error, %Error{reason: {:not_portable, _}}} = Term.encode(deep)
    assert {:error, %Error{reason: {:not_binary, 1}}} = Term.decode(1)
    assert {:error, %Error{reason: {:not_portable, _}}} = Term.decode(<<131, 1, 2>>)
  end

  test "a bare JID addresses the node's bus resource" do
    assert Wire.address("Bob@Example.com", "bus") == {:ok, "bob@example.com/bus"}
    assert Wire.address("bob@example.com/other", "bus") == {:ok, "bob@example.com/other"}
    assert {:error, %Error{reason: {:bad_jid, "@"}}} = Wire.address("@", "bus")
    assert {:error, %Error{reason: {:bad_jid, 42}}} = Wire.address(42, "bus")
  end

  test "call errors map to reasons; server answers mean the peer is not there" do
    req = %Iq{id: "c1", from: "a@x/bus", type: :set}

    for reason <- [{:no_method, "m"}, {:crashed, "boom"}, :busy, :timeout, {:bad_args, "why"}] do
      assert Wire.call_error(Wire.error_iq(req, reason)) == reason
    end

    for condition <- [:service_unavailable, :recipient_unavailable, :remote_server_not_found] do
      iq = %Iq{type: :error, error: %StanzaError{condition: condition}}
      assert {:peer_unavailable, _} = Wire.call_error(iq)
    end

    other = %Iq{type: :error, error: %StanzaError{condition: :forbidden}}
    assert {:iq_error, _} = Wire.call_error(other)
  end

  test "a call's timeout, method and arguments are read from the request" do
    {:ok, args} = Wire.value_element([1, "x"], :term)
    iq = Wire.call_iq("b@x/bus", "add", args, 1234)
    assert {:call, "add", 1234, {:ok, [1, "x"], :term}} = Wire.call_of(%{iq | from: "a@x/bus"})

    no_timeout = %Iq{
      iq
      | payload: put_elem(iq.payload, 2, [{"xmlns", Wire.ns()}, {"method", "m"}])
    }

    assert {:call, "m", 5000, _} = Wire.call_of(no_timeout)
    assert Wire.call_of(%Iq{type: :get, payload: %XmppBridge.Payload.Ping{}}) == nil
  end

  test "method names are strings of 1 to 256 bytes" do
    assert Wire.method_name(:add) == {:ok, "add"}
    assert {:error, %Error{reason: {:bad_argument, _}}} = Wire.method_name("")

    assert {:error, %Error{reason: {:bad_argument, _}}} =
             Wire.method_name(String.duplicate("a", 257))

    assert {:error, %Error{reason: {:bad_argument, _}}} = Wire.method_name(nil)
  end

  test "the unknown atom struct carries the name" do
    assert %UnknownAtom{name: "x"}.name == "x"
  end

  test "a broadcast's :body must be UTF-8 text; it is cut like a rendered body" do
    # Refused before the bus is asked: no node is needed.
    for bad <- [5, <<0xFF>>, :text] do
      assert {:error, %Error{reason: {:bad_option, _}}} =
               XmppBridge.Bus.broadcast(self(), "g", "x", body: bad)
    end

    long = String.duplicate("é", 600)
    cut = Term.readable(long)
    assert byte_size(cut) <= 1024 and String.valid?(cut) and String.ends_with?(cut, "…")
    assert Term.readable("progress: 10%") == "progress: 10%"
  end
end
