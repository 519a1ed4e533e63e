defmodule XmppBridge.Payload.MucJoin do
  @moduledoc """
  A request to join a multi-user chat room, sent in the presence directed to
  `room@service/nick`.

  Maps to `<x/>` in the `http://jabber.org/protocol/muc` namespace (XEP-0045
  §7.2), with an optional `<password/>` and `<history/>`:

      <x xmlns="http://jabber.org/protocol/muc">
        <password>cauldronburn</password>
        <history maxstanzas="20"/>
      </x>

  is

      %XmppBridge.Payload.MucJoin{
        password: "cauldronburn",
        history: %XmppBridge.Payload.MucHistory{maxstanzas: 20}
      }
  """

  @type t :: %__MODULE__{
          password: String.t() | nil,
          history: XmppBridge.Payload.MucHistory.t() | nil
        }

  defstruct password: nil, history: nil
end
