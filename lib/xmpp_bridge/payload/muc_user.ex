defmodule XmppBridge.Payload.MucUser do
  @moduledoc """
  Information about a room occupant, sent by a multi-user chat room in
  presence and message stanzas: the occupant's affiliation and role, and
  status codes (110 for one's own presence, 201 for a newly created room, ...).

  Maps to `<x/>` in the `http://jabber.org/protocol/muc#user` namespace
  (XEP-0045 §17.2), with `<item/>` and `<status code/>` children:

      <x xmlns="http://jabber.org/protocol/muc#user">
        <item affiliation="member" role="participant" jid="hag66@shakespeare.lit/pda"/>
        <status code="110"/>
      </x>

  is

      %XmppBridge.Payload.MucUser{
        items: [
          %XmppBridge.Payload.MucItem{
            affiliation: :member,
            role: :participant,
            jid: "hag66@shakespeare.lit/pda"
          }
        ],
        status_codes: [110]
      }
  """

  @type t :: %__MODULE__{
          items: [XmppBridge.Payload.MucItem.t()],
          status_codes: [100..999]
        }

  defstruct items: [], status_codes: []
end
