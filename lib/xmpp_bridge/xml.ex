defmodule XmppBridge.Xml do
  @moduledoc """
  Parses and writes generic XML elements in fast_xml's shape:
  `{:xmlel, name, attrs, children}` with `{:xmlcdata, text}` text nodes.

  The parser accepts the XML subset XMPP allows (RFC 6120 §11): DTDs,
  comments and processing instructions are refused; the XML declaration is
  skipped. `xmlns` declarations are ordinary attributes and prefixed names are
  kept as written. Parsing then writing keeps every element, attribute and
  character of text.

      iex> XmppBridge.Xml.parse("<x xmlns='urn:example'>a &amp; b</x>")
      {:ok, {:xmlel, "x", [{"xmlns", "urn:example"}], [{:xmlcdata, "a & b"}]}}
      iex> XmppBridge.Xml.encode({:xmlel, "x", [{"a", "1"}], [{:xmlel, "y", [], []}]})
      {:ok, "<x a='1'><y/></x>"}
  """

  alias XmppBridge.{Error, Limits, Native, Stanza}

  @typedoc "A generic XML element."
  @type xmlel :: Stanza.xmlel()

  @doc """
  Parses one element.

  ## Options

    * `:max_bytes` - largest input accepted, in bytes (default 262144).
    * `:max_depth` - deepest nesting accepted (default 64, at most 256).
  """
  @spec parse(binary(), Stanza.decode_opts()) :: {:ok, xmlel()} | {:error, Error.t()}
  def parse(xml, opts \\ [])

  def parse(xml, opts) when is_binary(xml) do
    with {:ok, {max_bytes, max_depth}} <- Limits.validate(opts) do
      xml
      |> Native.xml_parse(max_bytes, max_depth)
      |> Limits.retry_dirty(fn -> Native.xml_parse_dirty(xml, max_bytes, max_depth) end)
    end
    |> Stanza.wrap()
  end

  def parse(other, _opts), do: {:error, %Error{reason: {:not_binary, other}}}

  @doc "Like `parse/2`, but raises `XmppBridge.Error`."
  @spec parse!(binary(), Stanza.decode_opts()) :: xmlel()
  def parse!(xml, opts \\ []), do: Stanza.unwrap(parse(xml, opts))

  @doc """
  Writes an element as XML (attributes in single quotes, childless elements
  self-closed).
  """
  @spec encode(xmlel()) :: {:ok, binary()} | {:error, Error.t()}
  def encode({:xmlel, _, _, _} = el) do
    el
    |> Native.xml_encode()
    |> Limits.retry_dirty(fn -> Native.xml_encode_dirty(el) end)
    |> Stanza.wrap()
  end

  def encode(other), do: {:error, %Error{reason: {:not_an_element, other}}}

  @doc "Like `encode/1`, but raises `XmppBridge.Error`."
  @spec encode!(xmlel()) :: binary()
  def encode!(el), do: Stanza.unwrap(encode(el))
end
