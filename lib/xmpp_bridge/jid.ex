defmodule XmppBridge.Jid do
  @moduledoc """
  JIDs as RFC 7622 defines them, parsed, validated and normalised in Rust
  with the PRECIS profiles the RFC names: UsernameCaseMapped (RFC 8265) for
  the localpart (lower case, width mapping, NFC; not `"&'/:<>@`), UTS #46
  (IDNA2008) for the domainpart (lower case, U-labels, one trailing dot
  dropped; or an IP literal), OpaqueString (RFC 8265) for the resourcepart
  (case and spaces kept, NFC). Each part is 1 to 1023 bytes. Emoji and
  other characters assigned after Unicode 3.2 are fine in resources and MUC
  nicknames (`coven@chat.shakespeare.lit/Café ☕`); docs/PROTOCOL.md §1 says
  where this differs from RFC 6122's stringprep.

  Stanza fields hold JIDs as normalised binaries; this module turns them into
  parts and back. An invalid JID is `{:invalid_jid, {jid, part}}`, naming the
  part at fault.

      iex> {:ok, jid} = XmppBridge.Jid.parse("Alice@Example.COM/Phone")
      iex> jid
      %XmppBridge.Jid{node: "alice", domain: "example.com", resource: "Phone"}
      iex> XmppBridge.Jid.to_string(XmppBridge.Jid.bare(jid))
      "alice@example.com"
      iex> XmppBridge.Jid.normalize("ΣΟΦΙΑ@example.com/📱 Phone")
      {:ok, "σοφια@example.com/📱 Phone"}
      iex> XmppBridge.Jid.normalize("a@b@c")
      {:error, %XmppBridge.Error{reason: {:invalid_jid, {"a@b@c", :domainpart}}}}
  """

  alias XmppBridge.{Error, Native, Stanza}

  @enforce_keys [:domain]
  defstruct node: nil, domain: nil, resource: nil

  @typedoc "A JID in parts, each normalised."
  @type t :: %__MODULE__{node: binary() | nil, domain: binary(), resource: binary() | nil}

  @doc "Parses and normalises a JID."
  @spec parse(binary()) :: {:ok, t()} | {:error, Error.t()}
  def parse(jid) when is_binary(jid) do
    case Native.jid_parse(jid) do
      {:ok, {node, domain, resource}} ->
        {:ok, %__MODULE__{node: node, domain: domain, resource: resource}}

      error ->
        Stanza.wrap(error)
    end
  end

  def parse(other), do: {:error, %Error{reason: {:not_binary, other}}}

  @doc "Like `parse/1`, but raises `XmppBridge.Error`."
  @spec parse!(binary()) :: t()
  def parse!(jid), do: Stanza.unwrap(parse(jid))

  @doc "Validates a JID and returns its normalised string form."
  @spec normalize(binary()) :: {:ok, binary()} | {:error, Error.t()}
  def normalize(jid) when is_binary(jid), do: Stanza.wrap(Native.jid_normalize(jid))
  def normalize(other), do: {:error, %Error{reason: {:not_binary, other}}}

  @doc "The bare JID (without resource), from a struct or a normalised string."
  @spec bare(t() | binary()) :: t() | binary()
  def bare(%__MODULE__{} = jid), do: %__MODULE__{jid | resource: nil}

  def bare(jid) when is_binary(jid) do
    jid |> parse!() |> bare() |> __MODULE__.to_string()
  end

  @doc "True when the JID has a resource."
  @spec full?(t() | binary()) :: boolean()
  def full?(%__MODULE__{resource: resource}), do: resource != nil
  def full?(jid) when is_binary(jid), do: full?(parse!(jid))

  @doc "The string form of a JID struct."
  @spec to_string(t()) :: binary()
  def to_string(%__MODULE__{node: node, domain: domain, resource: resource}) do
    IO.iodata_to_binary([
      if(node, do: [node, ?@], else: []),
      domain,
      if(resource, do: [?/, resource], else: [])
    ])
  end

  defimpl String.Chars do
    def to_string(jid), do: XmppBridge.Jid.to_string(jid)
  end
end
