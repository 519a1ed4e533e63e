defmodule XmppBridge.Payload.DiscoItems do
  @moduledoc """
  A service discovery items query or answer: the entities (services, rooms,
  nodes) associated with an entity.

  Maps to `<query/>` in the `http://jabber.org/protocol/disco#items` namespace
  (XEP-0030 §4):

      <query xmlns="http://jabber.org/protocol/disco#items">
        <item jid="conference.example.com" name="Chat rooms"/>
      </query>

  is

      %XmppBridge.Payload.DiscoItems{
        items: [%XmppBridge.Payload.DiscoItem{jid: "conference.example.com", name: "Chat rooms"}]
      }

  An empty `%XmppBridge.Payload.DiscoItems{}` in an IQ get is the query.
  """

  @type t :: %__MODULE__{
          node: String.t() | nil,
          items: [XmppBridge.Payload.DiscoItem.t()]
        }

  defstruct node: nil, items: []
end
