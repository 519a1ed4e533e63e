defmodule XmppBridge.Payload.ReceiptReceived do
  @moduledoc """
  A delivery receipt: confirms that the message with id `id` reached its
  recipient.

  Maps to `<received/>` in the `urn:xmpp:receipts` namespace (XEP-0184), sent
  in a message back to the requester:

      <received xmlns="urn:xmpp:receipts" id="m1"/>

  is

      %XmppBridge.Payload.ReceiptReceived{id: "m1"}
  """

  @type t :: %__MODULE__{id: String.t() | nil}

  defstruct id: nil

  @doc """
  Builds the receipt for the message whose id is `id`.

  ## Examples

      iex> XmppBridge.Payload.ReceiptReceived.new("m1")
      %XmppBridge.Payload.ReceiptReceived{id: "m1"}
  """
  @spec new(String.t()) :: t()
  def new(id) when is_binary(id), do: %__MODULE__{id: id}
end
