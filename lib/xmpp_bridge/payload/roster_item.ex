defmodule XmppBridge.Payload.RosterItem do
  @moduledoc """
  One contact of a roster; part of `XmppBridge.Payload.Roster`.

  Maps to `<item/>` inside `<query xmlns="jabber:iq:roster"/>` (RFC 6121
  §2.1.2), with one `<group/>` child per group; `subscription` and `ask` are
  `nil` when the attribute is absent, and `approved` is the pre-approval flag
  (RFC 6121 §3.4):

      <item jid="nurse@example.com" name="Nurse" subscription="none" ask="subscribe" approved="true">
        <group>Servants</group>
      </item>

  is

      %XmppBridge.Payload.RosterItem{
        jid: "nurse@example.com",
        name: "Nurse",
        subscription: :none,
        ask: :subscribe,
        approved: true,
        groups: ["Servants"]
      }

  `subscription: :remove` in a roster set deletes the contact.
  """

  @typedoc "The presence subscription state (RFC 6121 §2.1.2.5); `:remove` only in a roster set."
  @type subscription :: :none | :to | :from | :both | :remove

  @typedoc "A pending outbound subscription request (RFC 6121 §2.1.2.2)."
  @type ask :: :subscribe

  @type t :: %__MODULE__{
          jid: String.t() | nil,
          name: String.t() | nil,
          subscription: subscription() | nil,
          ask: ask() | nil,
          approved: boolean(),
          groups: [String.t()]
        }

  defstruct jid: nil, name: nil, subscription: nil, ask: nil, approved: false, groups: []
end
