defmodule XmppBridge.Payload.StanzaId do
  @moduledoc """
  A stable id that an entity (typically the server's archive or a room)
  assigned to a stanza it handled.

  Maps to `<stanza-id/>` in the `urn:xmpp:sid:0` namespace (XEP-0359); `by` is
  the JID of the entity that assigned the id:

      <stanza-id xmlns="urn:xmpp:sid:0" id="5f3dbc5e-e1d3-4077-a492-693f3769c7ad" by="room@muc.example.com"/>

  is

      %XmppBridge.Payload.StanzaId{
        id: "5f3dbc5e-e1d3-4077-a492-693f3769c7ad",
        by: "room@muc.example.com"
      }
  """

  @type t :: %__MODULE__{id: String.t() | nil, by: String.t() | nil}

  defstruct id: nil, by: nil
end
