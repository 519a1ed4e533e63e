defmodule XmppBridge.Payload.OriginId do
  @moduledoc """
  A unique id set by the stanza's originating entity, kept by servers and
  rooms that may rewrite the stanza's `id` attribute.

  Maps to `<origin-id/>` in the `urn:xmpp:sid:0` namespace (XEP-0359):

      <origin-id xmlns="urn:xmpp:sid:0" id="de305d54-75b4-431b-adb2-eb6b9e546013"/>

  is

      %XmppBridge.Payload.OriginId{id: "de305d54-75b4-431b-adb2-eb6b9e546013"}
  """

  @type t :: %__MODULE__{id: String.t() | nil}

  defstruct id: nil
end
