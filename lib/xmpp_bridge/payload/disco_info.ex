defmodule XmppBridge.Payload.DiscoInfo do
  @moduledoc """
  A service discovery information query or answer: what an entity is
  (identities) and which protocols it supports (features).

  Maps to `<query/>` in the `http://jabber.org/protocol/disco#info` namespace
  (XEP-0030 §3); `extensions` holds extended information such as `jabber:x:data`
  forms (XEP-0128) as generic elements:

      <query xmlns="http://jabber.org/protocol/disco#info">
        <identity category="client" type="bot" name="worker"/>
        <feature var="urn:xmpp:ping"/>
      </query>

  is

      %XmppBridge.Payload.DiscoInfo{
        identities: [
          %XmppBridge.Payload.DiscoIdentity{category: "client", type: "bot", name: "worker"}
        ],
        features: ["urn:xmpp:ping"]
      }

  An empty `%XmppBridge.Payload.DiscoInfo{}` in an IQ get is the query.
  """

  @type t :: %__MODULE__{
          node: String.t() | nil,
          identities: [XmppBridge.Payload.DiscoIdentity.t()],
          features: [String.t()],
          extensions: [XmppBridge.Message.xmlel()]
        }

  defstruct node: nil, identities: [], features: [], extensions: []
end
