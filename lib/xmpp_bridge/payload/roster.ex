defmodule XmppBridge.Payload.Roster do
  @moduledoc """
  A roster (contact list) query, result or push, exchanged in IQs between a
  client and its server.

  Maps to `<query/>` in the `jabber:iq:roster` namespace (RFC 6121 §2); `ver`
  is the roster version for versioned retrieval:

      <query xmlns="jabber:iq:roster" ver="ver11">
        <item jid="romeo@example.net" name="Romeo" subscription="both">
          <group>Friends</group>
        </item>
      </query>

  is

      %XmppBridge.Payload.Roster{
        ver: "ver11",
        items: [
          %XmppBridge.Payload.RosterItem{
            jid: "romeo@example.net",
            name: "Romeo",
            subscription: :both,
            groups: ["Friends"]
          }
        ]
      }

  `XmppBridge.Iq.get(nil, %XmppBridge.Payload.Roster{})` asks for the roster.
  """

  @type t :: %__MODULE__{
          ver: String.t() | nil,
          items: [XmppBridge.Payload.RosterItem.t()]
        }

  defstruct ver: nil, items: []
end
