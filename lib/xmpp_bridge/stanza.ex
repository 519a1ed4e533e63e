defmodule XmppBridge.Stanza do
  @moduledoc """
  Decodes XMPP stanzas from XML into typed structs, and encodes them back.

  Parsing and term building happen in Rust: `decode/2` returns an
  `XmppBridge.Message`, `XmppBridge.Presence` or `XmppBridge.Iq` whose
  payloads are typed structs (`XmppBridge.Payload.*`) where the project knows
  the element, and generic `{:xmlel, name, attrs, children}` tuples (the shape
  of fast_xml's `#xmlel{}`) everywhere else.

  Nothing is dropped: a child becomes a typed payload only when the typed form
  represents it exactly, so `encode(decode(xml))` keeps every element,
  attribute, namespace and character of text, with four documented
  exceptions (docs/PROTOCOL.md §1): JIDs in `from`/`to` (and in typed
  payloads) are normalised (RFC 7622); whitespace-only text between the
  children of a stanza or of a typed payload is not kept; default attribute
  values (`type='normal'` on a message) are not written back; and a stanza's
  own children (subject, body, thread, show, status, priority, error) are
  written in one order, before the payloads, which keep theirs.

  No call holds a normal scheduler for long: the NIF estimates the cost of
  its input (bytes and tags) and big inputs are decoded on a dirty CPU
  scheduler.

      iex> {:ok, msg} = XmppBridge.Stanza.decode("<message xmlns='jabber:client' to='bob@example.com' type='chat'><body>hi</body></message>")
      iex> {msg.type, msg.to, msg.bodies}
      {:chat, "bob@example.com", [{nil, "hi"}]}
      iex> XmppBridge.Stanza.encode!(msg)
      "<message xmlns='jabber:client' type='chat' to='bob@example.com'><body>hi</body></message>"

  Errors name the problem (see `XmppBridge.Error` for every reason):

      iex> XmppBridge.Stanza.decode("<message><body>hi</message>")
      {:error, %XmppBridge.Error{reason: {:malformed_xml, "end tag </message> does not match <body>"}}}
  """

  alias XmppBridge.{Error, Iq, Limits, Message, Native, Presence}

  @typedoc "A decoded stanza."
  @type t :: Message.t() | Presence.t() | Iq.t()

  @typedoc "A generic XML element, as in fast_xml."
  @type xmlel :: {:xmlel, binary(), [{binary(), binary()}], [xmlel() | {:xmlcdata, binary()}]}

  @typedoc """
  Options of `decode/2`:

    * `:max_bytes` - largest stanza accepted, in bytes (default 262144).
    * `:max_depth` - deepest element nesting accepted, the stanza being
      depth 1 (default 64, at most 256).
  """
  @type decode_opts :: [max_bytes: pos_integer(), max_depth: pos_integer()]

  @doc """
  Decodes one stanza.

  ## Options

    * `:max_bytes` - largest stanza accepted, in bytes (default 262144).
    * `:max_depth` - deepest element nesting accepted (default 64, at most 256).
  """
  @spec decode(binary(), decode_opts()) :: {:ok, t()} | {:error, Error.t()}
  def decode(xml, opts \\ [])

  def decode(xml, opts) when is_binary(xml) do
    with {:ok, {max_bytes, max_depth}} <- Limits.validate(opts) do
      xml
      |> Native.stanza_decode(max_bytes, max_depth)
      |> Limits.retry_dirty(fn -> Native.stanza_decode_dirty(xml, max_bytes, max_depth) end)
    end
    |> wrap()
  end

  def decode(other, _opts), do: {:error, %Error{reason: {:not_binary, other}}}

  @doc "Like `decode/2`, but raises `XmppBridge.Error`."
  @spec decode!(binary(), decode_opts()) :: t()
  def decode!(xml, opts \\ []), do: unwrap(decode(xml, opts))

  @doc """
  Encodes a stanza struct into XML.

  `from`/`to` must be valid JIDs; an `Iq` needs an `id`, and a payload unless
  it is a result.
  """
  @spec encode(t()) :: {:ok, binary()} | {:error, Error.t()}
  def encode(%mod{} = stanza) when mod in [Message, Presence, Iq] do
    stanza
    |> Native.stanza_encode()
    |> Limits.retry_dirty(fn -> Native.stanza_encode_dirty(stanza) end)
    |> wrap()
  end

  def encode(other), do: {:error, %Error{reason: {:not_a_stanza, other}}}

  @doc "Like `encode/1`, but raises `XmppBridge.Error`."
  @spec encode!(t()) :: binary()
  def encode!(stanza), do: unwrap(encode(stanza))

  @doc false
  def wrap({:ok, _} = ok), do: ok
  def wrap({:error, %Error{}} = error), do: error
  def wrap({:error, reason}), do: {:error, %Error{reason: reason}}

  @doc false
  def unwrap({:ok, value}), do: value
  def unwrap({:error, %Error{} = e}), do: raise(e)
end
