defmodule XmppBridge.Payload.Term do
  @moduledoc """
  Any Erlang term carried in a stanza, for exchanges between BEAM nodes (and
  Rust nodes, which read the external term format).

  Maps to `<term/>` in the project's `urn:xmpp-bridge:term:0` namespace, whose
  text is the Base64 (RFC 4648 §4) of `:erlang.term_to_binary/1`:

      <term xmlns="urn:xmpp-bridge:term:0">g2gCZAACb2thAQ==</term>

  is

      %XmppBridge.Payload.Term{value: {:ok, 1}}

  The receiver decodes with `:erlang.binary_to_term(bin, [:safe])`, so a remote
  peer can never create atoms or functions in the receiving VM: a term holding
  an atom the receiver does not know, or an external fun, does not decode to
  this struct and stays a generic element. Pids, ports, references and local
  funs only mean something on the node that made them.
  """

  @type t :: %__MODULE__{value: term()}

  defstruct value: nil

  @doc """
  Wraps `value` to be sent as a term payload.

  ## Examples

      iex> XmppBridge.Payload.Term.new(%{job: 42, state: :done})
      %XmppBridge.Payload.Term{value: %{job: 42, state: :done}}
  """
  @spec new(term()) :: t()
  def new(value), do: %__MODULE__{value: value}
end
