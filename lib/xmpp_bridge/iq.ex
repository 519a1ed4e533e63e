defmodule XmppBridge.Iq do
  @moduledoc """
  An IQ (info/query) stanza: a request (`get` or `set`) that the recipient
  must answer with exactly one `result` or `error` carrying the same id.

  Maps to `<iq/>` in the `jabber:client` (or `jabber:server`) namespace,
  defined by RFC 6120 §8.2.3:

      <iq type="get" id="r1" to="example.com">
        <ping xmlns="urn:xmpp:ping"/>
      </iq>

  is

      %XmppBridge.Iq{
        type: :get,
        id: "r1",
        to: "example.com",
        payload: %XmppBridge.Payload.Ping{}
      }

  A `get` or `set` carries exactly one child element, `payload`: a typed
  struct from `XmppBridge.Payload.*` when the codec knows the element, a
  generic element otherwise. A `result` carries zero or one. An `error` carries
  an `XmppBridge.StanzaError` in `error`. The `id` is required on the wire;
  `get/3` and `set/3` generate one.

  ## Examples

      iex> request = XmppBridge.Iq.get("example.com", %XmppBridge.Payload.Ping{}, id: "r1", from: "bot@example.com/a")
      iex> response = XmppBridge.Iq.result(request)
      iex> {response.type, response.id, response.from, response.to}
      {:result, "r1", "example.com", "bot@example.com/a"}
  """

  alias XmppBridge.{Message, StanzaError}

  @typedoc "The `type` attribute (RFC 6120 §8.2.3)."
  @type type :: :get | :set | :result | :error

  @type t :: %__MODULE__{
          id: String.t() | nil,
          type: type(),
          from: Message.jid() | nil,
          to: Message.jid() | nil,
          lang: Message.lang(),
          payload: Message.payload() | nil,
          error: StanzaError.t() | nil,
          attrs: [{String.t(), String.t()}]
        }

  defstruct id: nil,
            type: :get,
            from: nil,
            to: nil,
            lang: nil,
            payload: nil,
            error: nil,
            attrs: []

  defguardp is_payload(payload)
            when is_struct(payload) or
                   (is_tuple(payload) and tuple_size(payload) == 4 and
                      elem(payload, 0) == :xmlel)

  @doc """
  Builds a `get` request to `to` (`nil` addresses one's own account) carrying
  `payload`, a payload struct or a generic element.

  ## Options

    * `:id` - the stanza id. Defaults to a fresh random URL-safe id, so
      the response can be matched to the request.
    * `:from` - the sender's JID. Defaults to `nil`.
    * `:lang` - the stanza's `xml:lang`. Defaults to `nil`.
    * `:attrs` - extra attributes `[{name, value}]`. Defaults to `[]`.

  Raises `ArgumentError` on an unknown option.

  ## Examples

      iex> iq = XmppBridge.Iq.get("example.com", %XmppBridge.Payload.DiscoInfo{})
      iex> {iq.type, iq.to, iq.payload}
      {:get, "example.com", %XmppBridge.Payload.DiscoInfo{}}
      iex> byte_size(iq.id)
      12
  """
  @spec get(Message.jid() | nil, Message.payload(), keyword()) :: t()
  def get(to, payload, opts \\ []) when (is_binary(to) or is_nil(to)) and is_payload(payload) do
    request(:get, to, payload, opts)
  end

  @doc """
  Builds a `set` request to `to` (`nil` addresses one's own account) carrying
  `payload`, a payload struct or a generic element.

  ## Options

    * `:id` - the stanza id. Defaults to a fresh random URL-safe id, so
      the response can be matched to the request.
    * `:from` - the sender's JID. Defaults to `nil`.
    * `:lang` - the stanza's `xml:lang`. Defaults to `nil`.
    * `:attrs` - extra attributes `[{name, value}]`. Defaults to `[]`.

  Raises `ArgumentError` on an unknown option.

  ## Examples

      iex> alias XmppBridge.Payload.{Roster, RosterItem}
      iex> iq = XmppBridge.Iq.set(nil, %Roster{items: [%RosterItem{jid: "nurse@example.com", subscription: :remove}]}, id: "push1")
      iex> {iq.type, iq.id, iq.to}
      {:set, "push1", nil}
  """
  @spec set(Message.jid() | nil, Message.payload(), keyword()) :: t()
  def set(to, payload, opts \\ []) when (is_binary(to) or is_nil(to)) and is_payload(payload) do
    request(:set, to, payload, opts)
  end

  @doc """
  Builds the `result` answering the request `iq`: same id, `from` and `to`
  swapped, carrying `payload` (a payload struct, a generic element, or `nil`
  for an empty result).

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) when `iq` is not a `get` or
  `set`: RFC 6120 §8.2.3 forbids answering a result or an error.

  ## Examples

      iex> request = %XmppBridge.Iq{type: :get, id: "v1", from: "a@example.com/x", to: "b@example.com/y"}
      iex> XmppBridge.Iq.result(request, {:xmlel, "query", [{"xmlns", "jabber:iq:version"}], []})
      %XmppBridge.Iq{
        type: :result,
        id: "v1",
        from: "b@example.com/y",
        to: "a@example.com/x",
        payload: {:xmlel, "query", [{"xmlns", "jabber:iq:version"}], []}
      }
  """
  @spec result(t(), Message.payload() | nil) :: t()
  def result(%__MODULE__{} = iq, payload \\ nil) when is_nil(payload) or is_payload(payload) do
    ensure_request!(iq, :result)
    %__MODULE__{type: :result, id: iq.id, from: iq.to, to: iq.from, payload: payload}
  end

  @doc """
  Builds the `error` answering the request `iq`: same id, `from` and `to`
  swapped, carrying `error`.

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) when `iq` is not a `get` or
  `set`: RFC 6120 §8.2.3 forbids answering a result or an error.

  ## Examples

      iex> request = %XmppBridge.Iq{type: :set, id: "s1", from: "a@example.com/x", to: "b@example.com"}
      iex> response = XmppBridge.Iq.error(request, XmppBridge.StanzaError.new(:feature_not_implemented))
      iex> {response.type, response.id, response.to, response.error.condition}
      {:error, "s1", "a@example.com/x", :feature_not_implemented}
  """
  @spec error(t(), StanzaError.t()) :: t()
  def error(%__MODULE__{} = iq, %StanzaError{} = error) do
    ensure_request!(iq, :error)
    %__MODULE__{type: :error, id: iq.id, from: iq.to, to: iq.from, error: error}
  end

  defp request(type, to, payload, opts) do
    opts = Keyword.validate!(opts, [:id, from: nil, lang: nil, attrs: []])

    %__MODULE__{
      type: type,
      id: opts[:id] || new_id(),
      to: to,
      from: opts[:from],
      lang: opts[:lang],
      payload: payload,
      attrs: opts[:attrs]
    }
  end

  # 72 random bits: unguessable, so a third party cannot forge the response
  # to a pending request, and short enough to cost little on the wire.
  @doc false
  def new_id, do: Base.url_encode64(:crypto.strong_rand_bytes(9), padding: false)

  defp ensure_request!(%__MODULE__{type: type}, _answer) when type in [:get, :set], do: :ok

  defp ensure_request!(%__MODULE__{type: type}, answer) do
    raise XmppBridge.Error,
      reason:
        {:bad_argument,
         "only an IQ of type :get or :set can be answered with #{inspect(answer)}, got one of type #{inspect(type)}"}
  end
end
