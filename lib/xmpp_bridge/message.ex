defmodule XmppBridge.Message do
  @moduledoc """
  A message stanza: information pushed from one entity to another, answered by
  nothing.

  Maps to `<message/>` in the `jabber:client` (or `jabber:server`) namespace,
  defined by RFC 6120 §8.2.1 and RFC 6121 §5:

      <message to="juliet@example.com" type="chat" id="a1">
        <body>Wherefore art thou?</body>
        <request xmlns="urn:xmpp:receipts"/>
      </message>

  is

      %XmppBridge.Message{
        id: "a1",
        to: "juliet@example.com",
        type: :chat,
        bodies: [{nil, "Wherefore art thou?"}],
        payloads: [%XmppBridge.Payload.ReceiptRequest{}]
      }

  Each `<body/>` and `<subject/>` is a `{lang, text}` pair; `lang` is its
  `xml:lang`, `nil` when it has none (it then speaks the stanza's `lang`).
  `thread` and `thread_parent` are the text and the `parent` attribute of
  `<thread/>`. Every other child is in `payloads`: a typed struct from
  `XmppBridge.Payload.*` when the codec knows the element, a generic element
  (`t:xmlel/0`) otherwise. `attrs` keeps attributes the struct has no field
  for, so nothing is lost in a decode/encode round trip.

  ## Examples

      iex> msg = XmppBridge.Message.chat("juliet@example.com", "Wherefore art thou?")
      iex> {msg.type, msg.to, XmppBridge.Message.body(msg)}
      {:chat, "juliet@example.com", "Wherefore art thou?"}
  """

  alias XmppBridge.Payload

  @typedoc "The `type` attribute; `:normal` when absent (RFC 6121 §5.2.2)."
  @type type :: :normal | :chat | :groupchat | :headline | :error

  @typedoc "A JID as a binary, normalised by the codec (RFC 7622)."
  @type jid :: String.t()

  @typedoc "An `xml:lang` value, `nil` when absent."
  @type lang :: String.t() | nil

  @typedoc "Human-readable text and its language: a `<body/>`, `<subject/>` or `<status/>`."
  @type text :: {lang(), String.t()}

  @typedoc "A generic XML element, shaped like fast_xml's `#xmlel{}` (`t:XmppBridge.Stanza.xmlel/0`)."
  @type xmlel :: XmppBridge.Stanza.xmlel()

  @typedoc "A child element of a stanza: a typed payload struct, or a generic element."
  @type payload ::
          Payload.Delay.t()
          | Payload.ChatState.t()
          | Payload.ReceiptRequest.t()
          | Payload.ReceiptReceived.t()
          | Payload.MucJoin.t()
          | Payload.MucUser.t()
          | Payload.Roster.t()
          | Payload.DiscoInfo.t()
          | Payload.DiscoItems.t()
          | Payload.Ping.t()
          | Payload.StanzaId.t()
          | Payload.OriginId.t()
          | Payload.Json.t()
          | Payload.Term.t()
          | xmlel()

  @type t :: %__MODULE__{
          id: String.t() | nil,
          type: type(),
          from: jid() | nil,
          to: jid() | nil,
          lang: lang(),
          bodies: [text()],
          subjects: [text()],
          thread: String.t() | nil,
          thread_parent: String.t() | nil,
          error: XmppBridge.StanzaError.t() | nil,
          payloads: [payload()],
          attrs: [{String.t(), String.t()}]
        }

  defstruct id: nil,
            type: :normal,
            from: nil,
            to: nil,
            lang: nil,
            bodies: [],
            subjects: [],
            thread: nil,
            thread_parent: nil,
            error: nil,
            payloads: [],
            attrs: []

  @types [:normal, :chat, :groupchat, :headline, :error]

  @doc """
  Builds a one-to-one chat message (`type="chat"`) with one body.

  ## Options

    * `:id` - the stanza id. Defaults to `nil` (no id).
    * `:from` - the sender's JID; the server fills it in for a client.
      Defaults to `nil`.
    * `:lang` - the stanza's `xml:lang`. Defaults to `nil`.
    * `:thread` - the conversation thread id. Defaults to `nil`.
    * `:thread_parent` - the parent thread id; needs `:thread`. Defaults to `nil`.
    * `:payloads` - extra child elements (payload structs or generic
      elements). Defaults to `[]`.
    * `:attrs` - extra attributes `[{name, value}]`. Defaults to `[]`.

  ## Examples

      iex> alias XmppBridge.Payload.ReceiptRequest
      iex> msg = XmppBridge.Message.chat("juliet@example.com", "hi", id: "m1", payloads: [%ReceiptRequest{}])
      iex> {msg.id, msg.bodies, msg.payloads}
      {"m1", [{nil, "hi"}], [%ReceiptRequest{}]}
  """
  @spec chat(jid(), String.t(), keyword()) :: t()
  def chat(to, body, opts \\ []) when is_binary(to) and is_binary(body) do
    opts =
      Keyword.validate!(opts,
        id: nil,
        from: nil,
        lang: nil,
        thread: nil,
        thread_parent: nil,
        payloads: [],
        attrs: []
      )

    new([type: :chat, to: to, body: body] ++ opts)
  end

  @doc """
  Builds a message from options.

  Values are stored as given, except for the checks below; the encoder
  reports a field of the wrong type as `{:invalid_field, {XmppBridge.Message, field}}`.
  Raises `XmppBridge.Error` (`{:bad_argument, _}`) on an unknown `:type`, a
  non-binary `:body` or `:subject`, `:body` together with `:bodies` (or
  `:subject` with `:subjects`), or `:thread_parent` without `:thread`; raises
  `ArgumentError` on an unknown option.

  ## Options

    * `:type` - one of `t:type/0`. Defaults to `:normal`.
    * `:to` - the recipient's JID. Defaults to `nil`.
    * `:from` - the sender's JID. Defaults to `nil`.
    * `:id` - the stanza id. Defaults to `nil`.
    * `:lang` - the stanza's `xml:lang`. Defaults to `nil`.
    * `:body` - one body without `xml:lang`; shorthand for
      `bodies: [{nil, body}]`. Defaults to `nil`.
    * `:bodies` - bodies as `{lang, text}` pairs. Defaults to `[]`.
    * `:subject` - one subject without `xml:lang`; shorthand for
      `subjects: [{nil, subject}]`. Defaults to `nil`.
    * `:subjects` - subjects as `{lang, text}` pairs. Defaults to `[]`.
    * `:thread` - the conversation thread id. Defaults to `nil`.
    * `:thread_parent` - the parent thread id; needs `:thread`. Defaults to `nil`.
    * `:error` - an `XmppBridge.StanzaError` (for `type: :error`). Defaults to `nil`.
    * `:payloads` - child elements (payload structs or generic elements).
      Defaults to `[]`.
    * `:attrs` - extra attributes `[{name, value}]`. Defaults to `[]`.

  ## Examples

      iex> msg = XmppBridge.Message.new(type: :groupchat, to: "room@muc.example.com", body: "hello all")
      iex> {msg.type, msg.bodies}
      {:groupchat, [{nil, "hello all"}]}

      iex> msg = XmppBridge.Message.new(type: :headline, subjects: [{"en", "News"}, {"fr", "Nouvelles"}])
      iex> msg.subjects
      [{"en", "News"}, {"fr", "Nouvelles"}]
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    opts =
      Keyword.validate!(opts,
        id: nil,
        type: :normal,
        from: nil,
        to: nil,
        lang: nil,
        body: nil,
        bodies: [],
        subject: nil,
        subjects: [],
        thread: nil,
        thread_parent: nil,
        error: nil,
        payloads: [],
        attrs: []
      )

    unless opts[:type] in @types do
      bad_argument!(
        "message type must be one of #{inspect(@types)}, got: #{inspect(opts[:type])}"
      )
    end

    if opts[:thread_parent] != nil and opts[:thread] == nil do
      bad_argument!(":thread_parent given without :thread")
    end

    %__MODULE__{
      id: opts[:id],
      type: opts[:type],
      from: opts[:from],
      to: opts[:to],
      lang: opts[:lang],
      bodies: texts!(opts, :body, :bodies),
      subjects: texts!(opts, :subject, :subjects),
      thread: opts[:thread],
      thread_parent: opts[:thread_parent],
      error: opts[:error],
      payloads: opts[:payloads],
      attrs: opts[:attrs]
    }
  end

  @doc """
  Returns the message's body in its default language, or `nil` if it has none.

  That is the `<body/>` without `xml:lang`; failing that, the one whose
  `xml:lang` is the stanza's `lang`; failing that, the first.

  ## Examples

      iex> msg = %XmppBridge.Message{bodies: [{"de", "Hallo"}, {nil, "Hello"}]}
      iex> XmppBridge.Message.body(msg)
      "Hello"

      iex> XmppBridge.Message.body(%XmppBridge.Message{lang: "fr", bodies: [{"de", "Hallo"}, {"fr", "Salut"}]})
      "Salut"

      iex> XmppBridge.Message.body(%XmppBridge.Message{})
      nil
  """
  @spec body(t()) :: String.t() | nil
  def body(%__MODULE__{bodies: bodies, lang: lang}), do: default_text(bodies, lang)

  @doc """
  Returns the message's subject in its default language, or `nil` if it has
  none; chosen as `body/1` chooses.

  ## Examples

      iex> XmppBridge.Message.subject(%XmppBridge.Message{subjects: [{nil, "Status"}]})
      "Status"
  """
  @spec subject(t()) :: String.t() | nil
  def subject(%__MODULE__{subjects: subjects, lang: lang}), do: default_text(subjects, lang)

  defp texts!(opts, one, many) do
    case {opts[one], opts[many]} do
      {nil, texts} ->
        texts

      {text, []} when is_binary(text) ->
        [{nil, text}]

      {text, []} ->
        bad_argument!("#{inspect(one)} must be a binary, got: #{inspect(text)}")

      {_, _} ->
        bad_argument!("give either #{inspect(one)} or #{inspect(many)}, not both")
    end
  end

  # A text without xml:lang is in the stanza's language (RFC 6121 §5.2.3), so
  # one tagged with the stanza's own language is the next best match.
  defp default_text([], _lang), do: nil

  defp default_text([{_, first} | _] = texts, lang) do
    case List.keyfind(texts, nil, 0) || (lang && List.keyfind(texts, lang, 0)) do
      {_, text} -> text
      _ -> first
    end
  end

  @spec bad_argument!(String.t()) :: no_return()
  defp bad_argument!(detail), do: raise(XmppBridge.Error, reason: {:bad_argument, detail})
end
