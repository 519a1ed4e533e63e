defmodule XmppBridge.StreamParser do
  @moduledoc """
  An incremental parser for an XMPP stream: feed it byte chunks as they come
  off a socket, split anywhere (inside a tag, an attribute or a UTF-8
  character), and get back complete, decoded events.

  Scanning is linear in the bytes fed, however small the chunks; a feed that
  would hold a normal scheduler too long runs on a dirty CPU scheduler.

  ## Events

  `feed/2` returns `{:ok, events}`, each event one of:

    * `{:stream_start, attrs}` - the `<stream:stream>` header, attributes as
      `[{name, value}]`.
    * a stanza struct - `XmppBridge.Message`, `XmppBridge.Presence` or
      `XmppBridge.Iq`, decoded in the namespace the header declared.
    * `{:xmlel, name, attrs, children}` - any other top-level element, such as
      `<stream:features/>` or a SASL or stream-management element.
    * `{:invalid_stanza, reason, xmlel}` - a well-formed stanza that could not
      be decoded (say, an invalid JID); the element is handed over intact and
      the stream goes on.
    * `:stream_end` - `</stream:stream>`.
    * `{:parse_error, reason}` - fatal: the stream is not well-formed XML (or
      breaks a limit). It is the last event; later calls to `feed/2` return
      `{:error, %XmppBridge.Error{reason: {:parser_failed, reason}}}`.

      iex> parser = XmppBridge.StreamParser.new()
      iex> {:ok, [{:stream_start, _attrs}]} = XmppBridge.StreamParser.feed(parser, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><mess")
      iex> {:ok, [%XmppBridge.Message{bodies: [{nil, "hi"}]}]} = XmppBridge.StreamParser.feed(parser, "age><body>hi</body></message>")
      iex> XmppBridge.StreamParser.feed(parser, "</stream:stream>")
      {:ok, [:stream_end]}
  """

  alias XmppBridge.{Error, Limits, Native, Stanza}

  defstruct [:ref]

  @typedoc "A parser; its state lives in Rust and is freed with the struct."
  @opaque t :: %__MODULE__{ref: reference()}

  @typedoc "What `feed/2` returns, in order."
  @type event ::
          {:stream_start, [{binary(), binary()}]}
          | Stanza.t()
          | Stanza.xmlel()
          | {:invalid_stanza, Error.reason(), Stanza.xmlel()}
          | :stream_end
          | {:parse_error, Error.reason()}

  @doc """
  Creates a parser.

  ## Options

    * `:max_bytes` - largest top-level element (and stream header) accepted,
      in bytes (default 262144).
    * `:max_depth` - deepest nesting inside a stanza (default 64, at most 256).
  """
  @spec new(Stanza.decode_opts()) :: t()
  def new(opts \\ []) do
    case Limits.validate(opts) do
      {:ok, {max_bytes, max_depth}} -> %__MODULE__{ref: Native.stream_new(max_bytes, max_depth)}
      {:error, reason} -> raise Error, reason: reason
    end
  end

  @doc "Feeds a chunk of the stream; returns the events it completed."
  @spec feed(t(), binary()) :: {:ok, [event()]} | {:error, Error.t()}
  def feed(%__MODULE__{ref: ref}, chunk) when is_binary(chunk) do
    ref
    |> Native.stream_feed(chunk)
    |> Limits.retry_dirty(fn -> Native.stream_feed_dirty(ref, chunk) end)
    |> Stanza.wrap()
  end

  def feed(%__MODULE__{}, other), do: {:error, %Error{reason: {:not_binary, other}}}

  @doc """
  Forgets all state, for a stream restart (after STARTTLS or SASL success).
  """
  @spec reset(t()) :: :ok
  def reset(%__MODULE__{ref: ref}), do: Native.stream_reset(ref)

  @doc "Bytes held while waiting for the end of an element."
  @spec buffered(t()) :: non_neg_integer()
  def buffered(%__MODULE__{ref: ref}), do: Native.stream_buffered(ref)

  defimpl Inspect do
    def inspect(%{ref: ref}, _opts), do: "#XmppBridge.StreamParser<#{inspect(ref)}>"
  end
end
