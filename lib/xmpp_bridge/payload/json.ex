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

  @typedoc """
  A term with a JSON form: maps (binary or atom keys), lists, binaries,
  integers, floats, `true`, `false` and `nil` (JSON `null`).
  """
  @type json_term ::
          %{optional(binary() | atom()) => json_term()}
          | [json_term()]
          | binary()
          | number()
          | boolean()
          | nil

  @doc """
  Builds the payload from a term, written as JSON in Rust (serde_json).
  Other atoms are written as strings.

      iex> {:ok, payload} = XmppBridge.Payload.Json.from_term(%{"job" => 42, "tags" => ["a", nil]})
      iex> payload.json
      ~s({"job":42,"tags":["a",null]})
  """
  @spec from_term(json_term()) :: {:ok, t()} | {:error, XmppBridge.Error.t()}
  def from_term(term) do
    term
    |> XmppBridge.Native.json_encode()
    |> XmppBridge.Limits.retry_dirty(fn -> XmppBridge.Native.json_encode_dirty(term) end)
    |> case do
      {:ok, json} -> {:ok, %__MODULE__{json: json}}
      {:error, reason} -> {:error, %XmppBridge.Error{reason: reason}}
    end
  end

  @doc """
  Reads the JSON text of the payload into a term: objects become maps with
  binary keys, `null` becomes `nil`. No atom is created.

      iex> XmppBridge.Payload.Json.to_term(%XmppBridge.Payload.Json{json: ~s({"a":[1,2.5,true,null]})})
      {:ok, %{"a" => [1, 2.5, true, nil]}}
      iex> {:error, %XmppBridge.Error{reason: {:invalid_json, _}}} = XmppBridge.Payload.Json.to_term(%XmppBridge.Payload.Json{json: "{"})
  """
  @spec to_term(t()) :: {:ok, json_term()} | {:error, XmppBridge.Error.t()}
  def to_term(%__MODULE__{json: json}) when is_binary(json) do
    json
    |> XmppBridge.Native.json_decode()
    |> XmppBridge.Limits.retry_dirty(fn -> XmppBridge.Native.json_decode_dirty(json) end)
    |> case do
      {:ok, term} -> {:ok, term}
      {:error, reason} -> {:error, %XmppBridge.Error{reason: reason}}
    end
  end

  def to_term(%__MODULE__{json: _not_binary}),
    do: {:error, %XmppBridge.Error{reason: {:invalid_field, {__MODULE__, :json}}}}
end
