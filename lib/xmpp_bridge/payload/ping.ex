defmodule XmppBridge.Payload.Ping do
  @moduledoc """
  An application-level ping, sent in an IQ get and answered by an empty IQ
  result; used as a heartbeat between peers or with the server.

  Maps to `<ping/>` in the `urn:xmpp:ping` namespace (XEP-0199):

      <iq type="get" id="p1" to="example.com">
        <ping xmlns="urn:xmpp:ping"/>
      </iq>

  is

      XmppBridge.Iq.get("example.com", %XmppBridge.Payload.Ping{}, id: "p1")
  """

  @type t :: %__MODULE__{}

  defstruct []
end
