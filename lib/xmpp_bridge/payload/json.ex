defmodule XmppBridge.Payload.Json do
  @moduledoc """
  A JSON document carried in a stanza, readable by any XMPP peer (the
  language-neutral way to send data between BEAM and non-BEAM nodes).

  Maps to `<json/>` in the `urn:xmpp:json:0` namespace (XEP-0335), whose text
  is the JSON document; `json` holds that text as it is, not a decoded term:

      <json xmlns="urn:xmpp:json:0">{"job":42,"state":"done"}</json>

  is

      %XmppBridge.Payload.Json{json: ~s({"job":42,"state":"done"})}
  """

  @type t :: %__MODULE__{json: String.t() | nil}

  defstruct json: nil

  @doc """
  Wraps the JSON text `json` (a UTF-8 binary, not checked to be valid JSON).

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) when `json` is not valid
  UTF-8, which JSON (RFC 8259) and XML both require.

  ## Examples

      iex> XmppBridge.Payload.Json.new(~s({"n":1}))
      %XmppBridge.Payload.Json{json: ~s({"n":1})}
  """
  @spec new(String.t()) :: t()
  def new(json) when is_binary(json) do
    if String.valid?(json) do
      %__MODULE__{json: json}
    else
      raise XmppBridge.Error, reason: {:bad_argument, "JSON text must be valid UTF-8"}
    end
  end
end
