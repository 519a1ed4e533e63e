defmodule XmppBridge.Payload.MucHistory do
  @moduledoc """
  How much of a room's discussion history to receive on joining it; part of
  `XmppBridge.Payload.MucJoin`.

  Maps to `<history/>` inside `<x xmlns="http://jabber.org/protocol/muc"/>`
  (XEP-0045 §7.2.13); each attribute left `nil` is absent, and `since` is kept
  as written, an XEP-0082 UTC date-time:

      <history maxchars="65000" seconds="180" since="1970-01-01T00:00:00Z"/>

  is

      %XmppBridge.Payload.MucHistory{maxchars: 65000, seconds: 180, since: "1970-01-01T00:00:00Z"}

  `%XmppBridge.Payload.MucHistory{maxstanzas: 0}` asks for no history.
  """

  @type t :: %__MODULE__{
          maxchars: non_neg_integer() | nil,
          maxstanzas: non_neg_integer() | nil,
          seconds: non_neg_integer() | nil,
          since: String.t() | nil
        }

  defstruct maxchars: nil, maxstanzas: nil, seconds: nil, since: nil
end
