defmodule XmppBridge.Payload.Delay do
  @moduledoc """
  A delayed-delivery mark: when a stanza was originally sent, added by a server
  that stored it (offline storage, MUC history) or a client that resends it.

  Maps to `<delay/>` in the `urn:xmpp:delay` namespace (XEP-0203); `stamp` is
  kept as written on the wire, an XEP-0082 UTC date-time:

      <delay xmlns="urn:xmpp:delay" from="example.com" stamp="2002-09-10T23:08:25Z">Offline Storage</delay>

  is

      %XmppBridge.Payload.Delay{
        stamp: "2002-09-10T23:08:25Z",
        from: "example.com",
        reason: "Offline Storage"
      }

  `DateTime.from_iso8601/1` reads the stamp; `DateTime.to_iso8601/1` of a UTC
  date-time writes one.
  """

  @type t :: %__MODULE__{
          stamp: String.t() | nil,
          from: String.t() | nil,
          reason: String.t() | nil
        }

  defstruct stamp: nil, from: nil, reason: nil
end
