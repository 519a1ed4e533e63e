defmodule XmppBridge.Payload.DiscoItem do
  @moduledoc """
  One entity listed in a service discovery items answer; part of
  `XmppBridge.Payload.DiscoItems`.

  Maps to `<item/>` inside `<query xmlns="http://jabber.org/protocol/disco#items"/>`
  (XEP-0030 §4.1):

      <item jid="pubsub.example.com" node="status" name="Status feed"/>

  is

      %XmppBridge.Payload.DiscoItem{jid: "pubsub.example.com", node: "status", name: "Status feed"}
  """

  @type t :: %__MODULE__{
          jid: String.t() | nil,
          node: String.t() | nil,
          name: String.t() | nil
        }

  defstruct jid: nil, node: nil, name: nil
end
