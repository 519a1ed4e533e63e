defmodule XmppBridge.Payload.MucItem do
  @moduledoc """
  One occupant's affiliation and role in a room; part of
  `XmppBridge.Payload.MucUser`.

  Maps to `<item/>` inside `<x xmlns="http://jabber.org/protocol/muc#user"/>`
  (XEP-0045 §5), where `actor_jid`/`actor_nick` are the attributes of its
  `<actor/>` child and `reason` the text of its `<reason/>` child:

      <item affiliation="none" role="none" nick="pistol">
        <actor nick="thirdwitch"/>
        <reason>Avaunt, you cullion!</reason>
      </item>

  is

      %XmppBridge.Payload.MucItem{
        affiliation: :none,
        role: :none,
        nick: "pistol",
        actor_nick: "thirdwitch",
        reason: "Avaunt, you cullion!"
      }
  """

  @typedoc "A long-lived relation to the room (XEP-0045 §5.2)."
  @type affiliation :: :owner | :admin | :member | :outcast | :none

  @typedoc "A role in the room for the current visit (XEP-0045 §5.1)."
  @type role :: :moderator | :participant | :visitor | :none

  @type t :: %__MODULE__{
          affiliation: affiliation() | nil,
          role: role() | nil,
          jid: String.t() | nil,
          nick: String.t() | nil,
          actor_jid: String.t() | nil,
          actor_nick: String.t() | nil,
          reason: String.t() | nil
        }

  defstruct affiliation: nil,
            role: nil,
            jid: nil,
            nick: nil,
            actor_jid: nil,
            actor_nick: nil,
            reason: nil
end
