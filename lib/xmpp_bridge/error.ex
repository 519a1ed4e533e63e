defmodule XmppBridge.Error do
  @moduledoc """
  The error returned (as `{:error, %XmppBridge.Error{}}`) or raised by every
  function of xmpp_bridge.

  The `reason` field is an atom-tagged tuple that callers can match on; see
  `t:reason/0` for the full list. `Exception.message/1` (and `format/1`, which
  the Erlang facade's `xmpp_bridge:format_error/1` also uses) turns a reason
  into one readable sentence.

  ## Examples

      iex> error = %XmppBridge.Error{reason: {:too_large, 262_144}}
      iex> Exception.message(error)
      "stanza larger than the limit of 262144 bytes"

      iex> XmppBridge.Error.format({:missing_attribute, {"iq", "id"}})
      "element <iq> lacks the required attribute \\"id\\""
  """

  defexception [:reason]

  @typedoc """
  Why an operation failed.

    * `{:malformed_xml, detail}` - the input is not well-formed XML; `detail`
      says what the parser found.
    * `{:invalid_utf8, byte_offset}` - the input is not valid UTF-8 from that
      byte on.
    * `{:forbidden_xml, construct}` - the input holds a DTD, a comment or a
      processing instruction, which RFC 6120 §11.1 forbids in XMPP (refusing
      DTDs is also what keeps entity expansion attacks out).
    * `{:undefined_entity, name}` - an entity reference other than the five
      predefined by XML.
    * `{:too_deep, limit}` - elements nested deeper than the `:max_depth` limit.
    * `{:too_large, limit}` - input longer than the `:max_bytes` limit.
    * `{:unknown_element, name}` - a top-level element that is not `message`,
      `presence` or `iq`.
    * `{:bad_namespace, ns}` - an element in a namespace not allowed where it
      stands (e.g. a stanza outside `jabber:client` and `jabber:server`).
    * `{:invalid_jid, {text, part}}` - an address that is not a valid JID
      (RFC 7622); `part` (`:localpart`, `:domainpart` or `:resourcepart`)
      says which part is empty, too long, or holds what its profile refuses.
    * `{:invalid_value, {element, attribute, value}}` - an attribute value
      outside what the specification allows.
    * `{:missing_attribute, {element, attribute}}` - a required attribute is
      absent.
    * `{:invalid_iq, detail}` - an IQ that breaks RFC 6120 §8.2.3 (e.g. a `get`
      without exactly one child).
    * `{:invalid_field, {module, field}}` - `encode` was given a struct whose
      field holds a value of the wrong type.
    * `{:invalid_xml_char, codepoint}` - text that contains a character XML 1.0
      cannot carry (most control characters).
    * `{:not_binary, term}` - a binary was expected.
    * `{:bad_argument, detail}` - an argument of the wrong type or value.
    * `{:parser_failed, reason}` - a stream parser was fed again after a fatal
      error; `reason` is that error.
    * `{:not_a_stanza, term}` - `encode` was given something other than a
      `Message`, `Presence` or `Iq` struct.
    * `{:not_an_element, term}` - a generic element `{:xmlel, name, attrs,
      children}` was expected.
    * `{:bad_option, detail}` - an option is unknown or has a value out of
      range (`max_bytes` must be a positive integer, `max_depth` 1..256).
    * `{:invalid_json, detail}` - text that is not JSON, or a term without a
      JSON form.

  Connections (`XmppBridge.Connection`):

    * `:queue_full` - `:queue_limit` stanzas already wait to be sent.
    * `:closed` - the session is over.
    * `:timeout` - no answer to an IQ in time.
    * `:noproc` - the owner (or the client process) is not alive.
    * `{:iq_error, iq}` - the IQ was answered with an error (`iq.error`).
    * `{:connect_failed, detail}`, `{:tls_failed, detail}`,
      `{:auth_failed, condition}`, `{:timeout, step}`,
      `{:stream_error, {condition, text}}`, `:closed_by_server`,
      `:keepalive_timeout`, `{:protocol_error, detail}`, `{:io_error, detail}`,
      `{:bad_config, detail}` - why a session was lost or could not start.

  The bus (`XmppBridge.Bus`):

    * `{:not_portable, what}` - the term holds something that means nothing
      on another node (`"pid"`, `"reference"`, `"port"`, `"fun"`) or that
      the bus's readers refuse (`"bit string"`, too deep).
    * `:timeout` - the call was not answered within its timeout (the
      serving side was told to give up), or the serving side's deadline
      passed first.
    * `{:no_method, method}` - the peer serves no method of that name.
    * `{:crashed, detail}` - the handler raised, threw or exited; `detail`
      is printable text from the serving side.
    * `:busy` - the peer was running as many calls as its `:max_calls`.
    * `{:peer_unavailable, condition}` - the server answered for the peer:
      it is not online (`"service-unavailable"`, ...).
    * `{:bad_args, detail}` - the peer could not read the arguments.
    * `{:bounced, condition}` - the server returned a message (e.g.
      `"resource-constraint"`: the peer's offline queue is full).
    * `{:bad_jid, jid}` - not an address a bus node can use.

  Name hosts (`XmppBridge.Bus.register/3`, docs/PROTOCOL.md §7):

    * `{:bad_name, detail}` - not a name (1 to 64 bytes of `a-z 0-9 . _ -`,
      starting with a letter or a digit).
    * `{:name_taken, name}` - another process holds the name.
    * `{:already_named, name}` - the process holds `name` already.
    * `{:not_registered, name}` - nobody holds the name.
    * `:not_a_name_host` - the bus node is a client, not a component.
    * `:name_host_has_no_groups` - a name host (a component) joins no groups.
  """
  @type reason ::
          {:malformed_xml, String.t()}
          | {:invalid_utf8, non_neg_integer()}
          | {:forbidden_xml, :dtd | :comment | :processing_instruction}
          | {:undefined_entity, String.t()}
          | {:too_deep, pos_integer()}
          | {:too_large, pos_integer()}
          | {:unknown_element, String.t()}
          | {:bad_namespace, String.t()}
          | {:invalid_jid, {String.t(), :localpart | :domainpart | :resourcepart}}
          | {:invalid_value,
             {element :: String.t(), attribute :: String.t(), value :: String.t()}}
          | {:missing_attribute, {element :: String.t(), attribute :: String.t()}}
          | {:invalid_iq, String.t()}
          | {:invalid_field, {module(), atom()}}
          | {:invalid_xml_char, non_neg_integer()}
          | {:not_binary, term()}
          | {:bad_argument, String.t()}
          | {:parser_failed, reason()}
          | {:not_a_stanza, term()}
          | {:not_an_element, term()}
          | {:bad_option, term()}
          | {:invalid_json, String.t()}
          | :queue_full
          | :closed
          | :timeout
          | :noproc
          | {:iq_error, struct()}
          | {:connect_failed, String.t()}
          | {:tls_failed, String.t()}
          | {:auth_failed, String.t()}
          | {:timeout, String.t()}
          | {:stream_error, {String.t(), String.t() | nil}}
          | :closed_by_server
          | :keepalive_timeout
          | {:protocol_error, String.t()}
          | {:io_error, String.t()}
          | {:bad_config, String.t()}
          | {:not_portable, String.t()}
          | {:no_method, String.t()}
          | {:crashed, String.t()}
          | :busy
          | {:peer_unavailable, String.t()}
          | {:bad_args, String.t()}
          | {:bounced, String.t()}
          | {:bad_jid, term()}
          | {:bad_name, String.t()}
          | {:name_taken, String.t()}
          | {:already_named, String.t()}
          | {:not_registered, String.t()}
          | :not_a_name_host
          | :name_host_has_no_groups

  @type t :: %__MODULE__{reason: reason()}

  @impl true
  def message(%__MODULE__{reason: reason}), do: format(reason)

  @doc """
  Turns an error reason into one readable sentence.

  Reasons that are not in `t:reason/0` are rendered with `inspect/1`, so any
  term gives a binary.

  ## Examples

      iex> XmppBridge.Error.format({:invalid_xml_char, 0})
      "character U+0000 cannot be carried by XML 1.0"

      iex> XmppBridge.Error.format(:something_else)
      ":something_else"
  """
  @spec format(reason() | term()) :: String.t()
  def format(reason)

  def format({:malformed_xml, detail}), do: "malformed XML: " <> text(detail)

  def format({:invalid_utf8, offset}) when is_integer(offset),
    do: "invalid UTF-8 at byte offset #{offset}"

  def format({:forbidden_xml, :dtd}),
    do: "a document type declaration (DTD) is not allowed in XMPP (RFC 6120 section 11.1)"

  def format({:forbidden_xml, :comment}),
    do: "an XML comment is not allowed in XMPP (RFC 6120 section 11.1)"

  def format({:forbidden_xml, :processing_instruction}),
    do: "an XML processing instruction is not allowed in XMPP (RFC 6120 section 11.1)"

  def format({:undefined_entity, name}),
    do:
      "undefined entity &#{text(name)}; (only &amp; &lt; &gt; &quot; &apos; and character references are allowed)"

  def format({:too_deep, limit}) when is_integer(limit),
    do: "elements nested deeper than the limit of #{limit} levels"

  def format({:too_large, limit}) when is_integer(limit),
    do: "stanza larger than the limit of #{limit} bytes"

  def format({:unknown_element, name}),
    do: "unknown top-level element <#{text(name)}> (expected message, presence or iq)"

  def format({:bad_namespace, ns}), do: "unexpected namespace #{inspect(ns)}"

  def format({:invalid_jid, {jid, part}}) when is_atom(part),
    do: "invalid JID #{inspect(jid)}: bad #{part}"

  def format({:invalid_value, {element, attribute, value}}) when attribute in [nil, ""],
    do: "invalid value #{inspect(value)} in the text of <#{text(element)}>"

  def format({:invalid_value, {element, attribute, value}}),
    do:
      "invalid value #{inspect(value)} for attribute #{inspect(attribute)} of <#{text(element)}>"

  def format({:missing_attribute, {element, attribute}}),
    do: "element <#{text(element)}> lacks the required attribute #{inspect(attribute)}"

  def format({:invalid_iq, detail}), do: "invalid IQ: " <> text(detail)

  def format({:invalid_field, {module, field}}) when is_atom(module),
    do:
      "field #{inspect(field)} of #{inspect(module)} holds a value of the wrong type for encoding"

  def format({:invalid_xml_char, codepoint}) when is_integer(codepoint) and codepoint >= 0,
    do: "character #{codepoint_name(codepoint)} cannot be carried by XML 1.0"

  def format({:not_binary, term}), do: "expected a binary, got: " <> inspect(term)

  def format({:bad_argument, detail}), do: "bad argument: " <> text(detail)

  def format({:parser_failed, reason}),
    do: "stream parser already failed, create a new one: " <> format(reason)

  def format({:not_a_stanza, term}),
    do: "expected a Message, Presence or Iq struct, got: " <> inspect(term)

  def format({:not_an_element, term}),
    do: "expected an {:xmlel, name, attrs, children} element, got: " <> inspect(term)

  def format({:bad_option, {:unknown, keys}}), do: "unknown options: " <> inspect(keys)

  def format({:bad_option, {key, value}}) when is_atom(key),
    do: "bad value for option #{inspect(key)}: #{inspect(value)}"

  def format({:bad_option, other}), do: "bad options: " <> inspect(other)

  def format({:invalid_json, detail}), do: "invalid JSON: " <> text(detail)

  def format(:queue_full), do: "the outbound queue is full (see the :queue_limit option)"
  def format(:closed), do: "the session is closed"
  def format(:timeout), do: "no answer in time"
  def format(:noproc), do: "the process is not alive"

  def format({:iq_error, %{error: %{condition: condition}}}),
    do: "the IQ was answered with the error #{inspect(condition)}"

  def format({:iq_error, other}), do: "the IQ was answered with an error: " <> inspect(other)
  def format({:connect_failed, detail}), do: "could not connect: " <> text(detail)
  def format({:tls_failed, detail}), do: "TLS failed: " <> text(detail)
  def format({:auth_failed, condition}), do: "authentication failed: " <> text(condition)
  def format({:timeout, step}), do: "timed out during " <> text(step)

  def format({:stream_error, {condition, nil}}),
    do: "the server ended the stream with the error " <> text(condition)

  def format({:stream_error, {condition, detail}}),
    do: "the server ended the stream with the error #{text(condition)}: #{text(detail)}"

  def format(:closed_by_server), do: "the server closed the connection"
  def format(:keepalive_timeout), do: "the server did not answer a keepalive probe in time"
  def format({:protocol_error, detail}), do: "the server broke the protocol: " <> text(detail)
  def format({:io_error, detail}), do: "socket error: " <> text(detail)
  def format({:bad_config, detail}), do: "bad connection options: " <> text(detail)

  def format({:not_portable, what}), do: "a #{text(what)} cannot cross the bus"
  def format({:no_method, method}), do: "the peer serves no method #{inspect(method)}"
  def format({:crashed, detail}), do: "the handler crashed: " <> text(detail)
  def format(:busy), do: "the peer is at its limit of concurrent calls"

  def format({:peer_unavailable, condition}),
    do: "the peer is not available (the server answered #{text(condition)})"

  def format({:bad_args, detail}), do: "the peer could not read the arguments: " <> text(detail)

  def format({:bounced, condition}),
    do: "the server returned the message with the error " <> text(condition)

  def format({:bad_jid, jid}), do: "not a JID a bus node can address: " <> inspect(jid)

  def format({:bad_name, detail}), do: "not a name: " <> text(detail)
  def format({:name_taken, name}), do: "the name #{inspect(name)} is held by another process"
  def format({:already_named, name}), do: "the process holds the name #{inspect(name)} already"
  def format({:not_registered, name}), do: "nobody holds the name #{inspect(name)}"

  def format(:not_a_name_host),
    do: "names are registered on a name host (a bus node started with mode: :component)"

  def format(:name_host_has_no_groups),
    do: "a name host (a component) joins no groups: use a client node for groups"

  def format(reason), do: inspect(reason)

  # Details normally arrive as binaries from the NIF; anything else is shown
  # with inspect so a surprising term still yields readable text.
  defp text(value) when is_binary(value), do: value
  defp text(value), do: inspect(value)

  defp codepoint_name(codepoint) do
    hex = codepoint |> Integer.to_string(16) |> String.pad_leading(4, "0")
    "U+" <> hex
  end
end
