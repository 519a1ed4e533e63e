defmodule XmppBridge.Payload.ReceiptRequest do
  @moduledoc """
  A delivery receipt request: asks the recipient of a message to confirm it
  got it, with an `XmppBridge.Payload.ReceiptReceived` naming the message's id.

  Maps to `<request/>` in the `urn:xmpp:receipts` namespace (XEP-0184); the
  message must have an id:

      <message id="m1" to="juliet@example.com/balcony">
        <body>ping</body>
        <request xmlns="urn:xmpp:receipts"/>
      </message>

  carries

      %XmppBridge.Payload.ReceiptRequest{}
  """

  @type t :: %__MODULE__{}

  defstruct []
end
