defmodule XmppBridge.StanzaError do
  @moduledoc """
  A stanza error: why an entity could not process a stanza, carried in the
  `error` field of a message, presence or IQ of type `error`.

  Maps to the `<error/>` child of a stanza (RFC 6120 §8.3), whose defined
  condition element is in the `urn:ietf:params:xml:ns:xmpp-stanzas` namespace:

      <error type="cancel" by="example.net">
        <item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">No such node</text>
      </error>

  is

      %XmppBridge.StanzaError{
        type: :cancel,
        by: "example.net",
        condition: :item_not_found,
        text: "No such node",
        text_lang: "en"
      }

  Conditions are the 22 of RFC 6120 §8.3.3 as atoms, with `_` for `-`
  (`conditions/0`). `condition_text` is the XMPP URI carried by `<gone/>` and
  `<redirect/>`; `app` is an application-specific condition element, kept as a
  generic element.

  ## Examples

      iex> error = XmppBridge.StanzaError.new(:item_not_found)
      iex> {error.type, error.condition}
      {:cancel, :item_not_found}
  """

  @typedoc "The `type` attribute: what the sender should do next (RFC 6120 §8.3.2)."
  @type type :: :auth | :cancel | :continue | :modify | :wait

  @typedoc "A defined condition of RFC 6120 §8.3.3."
  @type condition ::
          :bad_request
          | :conflict
          | :feature_not_implemented
          | :forbidden
          | :gone
          | :internal_server_error
          | :item_not_found
          | :jid_malformed
          | :not_acceptable
          | :not_allowed
          | :not_authorized
          | :policy_violation
          | :recipient_unavailable
          | :redirect
          | :registration_required
          | :remote_server_not_found
          | :remote_server_timeout
          | :resource_constraint
          | :service_unavailable
          | :subscription_required
          | :undefined_condition
          | :unexpected_request

  @type t :: %__MODULE__{
          type: type(),
          by: String.t() | nil,
          condition: condition(),
          condition_text: String.t() | nil,
          text: String.t() | nil,
          text_lang: String.t() | nil,
          app: XmppBridge.Message.xmlel() | nil
        }

  defstruct type: :cancel,
            by: nil,
            condition: :undefined_condition,
            condition_text: nil,
            text: nil,
            text_lang: nil,
            app: nil

  @types [:auth, :cancel, :continue, :modify, :wait]

  # The type RFC 6120 §8.3.3 gives for each condition. Where it allows two
  # (feature-not-implemented, policy-violation, unexpected-request) this is
  # the one of its example; undefined-condition allows any type, and takes
  # :cancel like the struct's default.
  @default_types [
    bad_request: :modify,
    conflict: :cancel,
    feature_not_implemented: :cancel,
    forbidden: :auth,
    gone: :cancel,
    internal_server_error: :cancel,
    item_not_found: :cancel,
    jid_malformed: :modify,
    not_acceptable: :modify,
    not_allowed: :cancel,
    not_authorized: :auth,
    policy_violation: :modify,
    recipient_unavailable: :wait,
    redirect: :modify,
    registration_required: :auth,
    remote_server_not_found: :cancel,
    remote_server_timeout: :wait,
    resource_constraint: :wait,
    service_unavailable: :cancel,
    subscription_required: :auth,
    undefined_condition: :cancel,
    unexpected_request: :wait
  ]

  @conditions Keyword.keys(@default_types)

  # Only these two conditions carry an XMPP URI as their text (RFC 6120 §8.3.3.5, §8.3.3.14).
  @uri_conditions [:gone, :redirect]

  @doc """
  Lists the 22 defined conditions of RFC 6120 §8.3.3, in the RFC's order.

  ## Examples

      iex> conditions = XmppBridge.StanzaError.conditions()
      iex> length(conditions)
      22
      iex> hd(conditions)
      :bad_request
  """
  @spec conditions() :: [condition(), ...]
  def conditions, do: @conditions

  @doc """
  Returns the error type RFC 6120 §8.3.3 associates with `condition`.

  ## Examples

      iex> XmppBridge.StanzaError.default_type(:item_not_found)
      :cancel
      iex> XmppBridge.StanzaError.default_type(:not_authorized)
      :auth
      iex> XmppBridge.StanzaError.default_type(:bad_request)
      :modify
      iex> XmppBridge.StanzaError.default_type(:resource_constraint)
      :wait
  """
  @spec default_type(condition()) :: type()
  def default_type(condition) do
    case Keyword.fetch(@default_types, condition) do
      {:ok, type} -> type
      :error -> raise_unknown_condition(condition)
    end
  end

  @doc """
  Builds an error with `condition` and the type RFC 6120 gives it
  (`default_type/1`).

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) when `condition` is not one
  of `conditions/0`.

  ## Examples

      iex> XmppBridge.StanzaError.new(:service_unavailable)
      %XmppBridge.StanzaError{type: :cancel, condition: :service_unavailable}
  """
  @spec new(condition()) :: t()
  def new(condition), do: new(default_type(condition), condition)

  @doc """
  Builds an error of `type` with `condition`.

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) when `type` or `condition`
  is not one the RFC defines, when `:condition_text` is given with a condition
  other than `:gone` or `:redirect`, or when `:text_lang` is given without
  `:text`; raises `ArgumentError` on an unknown option.

  ## Options

    * `:text` - human-readable description (`<text/>`), a binary. Defaults to `nil`.
    * `:text_lang` - the `xml:lang` of `:text`. Defaults to `nil`.
    * `:by` - JID of the entity that returns the error. Defaults to `nil`.
    * `:condition_text` - the XMPP URI inside `<gone/>` or `<redirect/>`
      (the new address). Defaults to `nil`.
    * `:app` - an application-specific condition element,
      `{:xmlel, name, attrs, children}`. Defaults to `nil`.

  ## Examples

      iex> error = XmppBridge.StanzaError.new(:modify, :redirect, condition_text: "xmpp:room@conference.example.org")
      iex> {error.condition, error.condition_text}
      {:redirect, "xmpp:room@conference.example.org"}

      iex> error = XmppBridge.StanzaError.new(:wait, :resource_constraint, text: "queue full", text_lang: "en")
      iex> {error.type, error.text, error.text_lang}
      {:wait, "queue full", "en"}
  """
  @spec new(type(), condition(), keyword()) :: t()
  def new(type, condition, opts \\ []) do
    opts =
      Keyword.validate!(opts, text: nil, text_lang: nil, by: nil, condition_text: nil, app: nil)

    unless type in @types do
      bad_argument!("stanza error type must be one of #{inspect(@types)}, got: #{inspect(type)}")
    end

    unless condition in @conditions, do: raise_unknown_condition(condition)

    if opts[:condition_text] != nil and condition not in @uri_conditions do
      bad_argument!(
        ":condition_text is only carried by :gone and :redirect, not #{inspect(condition)}"
      )
    end

    if opts[:text_lang] != nil and opts[:text] == nil do
      bad_argument!(":text_lang given without :text")
    end

    check_app!(opts[:app])

    %__MODULE__{
      type: type,
      condition: condition,
      by: opts[:by],
      text: opts[:text],
      text_lang: opts[:text_lang],
      condition_text: opts[:condition_text],
      app: opts[:app]
    }
  end

  defp check_app!(nil), do: :ok

  defp check_app!({:xmlel, name, attrs, children})
       when is_binary(name) and is_list(attrs) and is_list(children),
       do: :ok

  defp check_app!(other),
    do:
      bad_argument!(
        ":app must be an element {:xmlel, name, attrs, children}, got: #{inspect(other)}"
      )

  @spec raise_unknown_condition(term()) :: no_return()
  defp raise_unknown_condition(condition) do
    bad_argument!(
      "unknown stanza error condition #{inspect(condition)}, expected one of XmppBridge.StanzaError.conditions()"
    )
  end

  @spec bad_argument!(String.t()) :: no_return()
  defp bad_argument!(detail), do: raise(XmppBridge.Error, reason: {:bad_argument, detail})
end
