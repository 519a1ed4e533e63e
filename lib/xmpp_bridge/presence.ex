defmodule XmppBridge.Presence do
  @moduledoc """
  A presence stanza: an entity's availability, broadcast to its subscribers or
  directed to one entity, or a subscription request and its answer.

  Maps to `<presence/>` in the `jabber:client` (or `jabber:server`) namespace,
  defined by RFC 6120 §8.2.2 and RFC 6121 §3–4:

      <presence xml:lang="en">
        <show>away</show>
        <status>In a meeting</status>
        <priority>5</priority>
      </presence>

  is

      %XmppBridge.Presence{
        type: :available,
        lang: "en",
        show: :away,
        statuses: [{nil, "In a meeting"}],
        priority: 5
      }

  A presence without a `type` attribute is `type: :available`. Each `<status/>`
  is a `{lang, text}` pair as in `XmppBridge.Message`. Every child other than
  show, status, priority and error is in `payloads` (e.g. an
  `XmppBridge.Payload.MucJoin` to enter a room); `attrs` keeps attributes the
  struct has no field for.

  ## Examples

      iex> presence = XmppBridge.Presence.available(show: :dnd, status: "busy")
      iex> {presence.type, presence.show, XmppBridge.Presence.status(presence)}
      {:available, :dnd, "busy"}
  """

  alias XmppBridge.Message

  @typedoc "The `type` attribute; `:available` when absent (RFC 6121 §4.7.1)."
  @type type ::
          :available
          | :unavailable
          | :subscribe
          | :subscribed
          | :unsubscribe
          | :unsubscribed
          | :probe
          | :error

  @typedoc "The `<show/>` value: a particular kind of availability (RFC 6121 §4.7.2.1)."
  @type show :: :away | :chat | :dnd | :xa

  @typedoc "The `<priority/>` value (RFC 6121 §4.7.2.3)."
  @type priority :: -128..127

  @type t :: %__MODULE__{
          id: String.t() | nil,
          type: type(),
          from: Message.jid() | nil,
          to: Message.jid() | nil,
          lang: Message.lang(),
          show: show() | nil,
          statuses: [Message.text()],
          priority: priority() | nil,
          error: XmppBridge.StanzaError.t() | nil,
          payloads: [Message.payload()],
          attrs: [{String.t(), String.t()}]
        }

  defstruct id: nil,
            type: :available,
            from: nil,
            to: nil,
            lang: nil,
            show: nil,
            statuses: [],
            priority: nil,
            error: nil,
            payloads: [],
            attrs: []

  @shows [:away, :chat, :dnd, :xa]

  @doc """
  Builds an available presence: broadcast when `:to` is `nil`, directed
  otherwise (e.g. to a room occupant JID, with an `XmppBridge.Payload.MucJoin`
  payload, to join a room).

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) on an unknown `:show`, a
  `:priority` that is not an integer in -128..127, a non-binary `:status`, or
  `:status` together with `:statuses`; raises `ArgumentError` on an unknown
  option.

  ## Options

    * `:show` - one of `t:show/0`, or `nil` for plain available. Defaults to `nil`.
    * `:status` - one status text without `xml:lang`; shorthand for
      `statuses: [{nil, status}]`. Defaults to `nil`.
    * `:statuses` - status texts as `{lang, text}` pairs. Defaults to `[]`.
    * `:priority` - the resource's priority, -128..127. Defaults to `nil`
      (which the server treats as 0).
    * `:to` - the recipient of a directed presence. Defaults to `nil`.
    * `:from` - the sender's JID. Defaults to `nil`.
    * `:id` - the stanza id. Defaults to `nil`.
    * `:lang` - the stanza's `xml:lang`. Defaults to `nil`.
    * `:payloads` - child elements (payload structs or generic elements).
      Defaults to `[]`.
    * `:attrs` - extra attributes `[{name, value}]`. Defaults to `[]`.

  ## Examples

      iex> XmppBridge.Presence.available()
      %XmppBridge.Presence{type: :available}

      iex> alias XmppBridge.Payload.{MucHistory, MucJoin}
      iex> join = %MucJoin{history: %MucHistory{maxstanzas: 0}}
      iex> presence = XmppBridge.Presence.available(to: "room@muc.example.com/bot", payloads: [join])
      iex> {presence.to, presence.payloads}
      {"room@muc.example.com/bot", [%MucJoin{history: %MucHistory{maxstanzas: 0}}]}
  """
  @spec available(keyword()) :: t()
  def available(opts \\ []) do
    opts =
      Keyword.validate!(opts,
        id: nil,
        from: nil,
        to: nil,
        lang: nil,
        show: nil,
        status: nil,
        statuses: [],
        priority: nil,
        payloads: [],
        attrs: []
      )

    show = opts[:show]

    unless show == nil or show in @shows do
      bad_argument!(
        "presence show must be nil or one of #{inspect(@shows)}, got: #{inspect(show)}"
      )
    end

    priority = opts[:priority]

    unless priority == nil or (is_integer(priority) and priority in -128..127) do
      bad_argument!(
        "presence priority must be an integer in -128..127, got: #{inspect(priority)}"
      )
    end

    %__MODULE__{
      type: :available,
      id: opts[:id],
      from: opts[:from],
      to: opts[:to],
      lang: opts[:lang],
      show: show,
      statuses: statuses!(opts),
      priority: priority,
      payloads: opts[:payloads],
      attrs: opts[:attrs]
    }
  end

  @doc """
  Builds an unavailable presence (`type="unavailable"`): going offline, or
  leaving a room when directed to it.

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) on a non-binary `:status`
  or `:status` together with `:statuses`; raises `ArgumentError` on an unknown
  option.

  ## Options

    * `:status` - one status text without `xml:lang`, e.g. why one leaves;
      shorthand for `statuses: [{nil, status}]`. Defaults to `nil`.
    * `:statuses` - status texts as `{lang, text}` pairs. Defaults to `[]`.
    * `:to` - the recipient of a directed presence. Defaults to `nil`.
    * `:from` - the sender's JID. Defaults to `nil`.
    * `:id` - the stanza id. Defaults to `nil`.
    * `:lang` - the stanza's `xml:lang`. Defaults to `nil`.
    * `:payloads` - child elements (payload structs or generic elements).
      Defaults to `[]`.
    * `:attrs` - extra attributes `[{name, value}]`. Defaults to `[]`.

  ## Examples

      iex> presence = XmppBridge.Presence.unavailable(to: "room@muc.example.com/bot", status: "bye")
      iex> {presence.type, presence.statuses}
      {:unavailable, [{nil, "bye"}]}
  """
  @spec unavailable(keyword()) :: t()
  def unavailable(opts \\ []) do
    opts =
      Keyword.validate!(opts,
        id: nil,
        from: nil,
        to: nil,
        lang: nil,
        status: nil,
        statuses: [],
        payloads: [],
        attrs: []
      )

    %__MODULE__{
      type: :unavailable,
      id: opts[:id],
      from: opts[:from],
      to: opts[:to],
      lang: opts[:lang],
      statuses: statuses!(opts),
      payloads: opts[:payloads],
      attrs: opts[:attrs]
    }
  end

  @doc """
  Returns the presence's status text in its default language, or `nil` if it
  has none.

  That is the `<status/>` without `xml:lang`; failing that, the one whose
  `xml:lang` is the stanza's `lang`; failing that, the first.

  ## Examples

      iex> XmppBridge.Presence.status(%XmppBridge.Presence{statuses: [{"en", "Out"}, {nil, "Dehors"}]})
      "Dehors"

      iex> XmppBridge.Presence.status(%XmppBridge.Presence{})
      nil
  """
  @spec status(t()) :: String.t() | nil
  def status(%__MODULE__{statuses: []}), do: nil

  def status(%__MODULE__{statuses: [{_, first} | _] = statuses, lang: lang}) do
    # A status without xml:lang is in the stanza's language (RFC 6121 §4.7.2.2).
    case List.keyfind(statuses, nil, 0) || (lang && List.keyfind(statuses, lang, 0)) do
      {_, text} -> text
      _ -> first
    end
  end

  defp statuses!(opts) do
    case {opts[:status], opts[:statuses]} do
      {nil, statuses} -> statuses
      {status, []} when is_binary(status) -> [{nil, status}]
      {status, []} -> bad_argument!(":status must be a binary, got: #{inspect(status)}")
      {_, _} -> bad_argument!("give either :status or :statuses, not both")
    end
  end

  @spec bad_argument!(String.t()) :: no_return()
  defp bad_argument!(detail), do: raise(XmppBridge.Error, reason: {:bad_argument, detail})
end
