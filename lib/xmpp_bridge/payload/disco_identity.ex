defmodule XmppBridge.Payload.DiscoIdentity do
  @moduledoc """
  One identity of an entity in a service discovery answer; part of
  `XmppBridge.Payload.DiscoInfo`.

  Maps to `<identity/>` inside `<query xmlns="http://jabber.org/protocol/disco#info"/>`
  (XEP-0030 §3.1); `category` and `type` come from the XMPP Registrar's
  registry (e.g. `"server"`/`"im"`, `"client"`/`"bot"`, `"conference"`/`"text"`),
  and `lang` is the `xml:lang` of `name`:

      <identity category="conference" type="text" name="Chat rooms" xml:lang="en"/>

  is

      %XmppBridge.Payload.DiscoIdentity{
        category: "conference",
        type: "text",
        name: "Chat rooms",
        lang: "en"
      }
  """

  @type t :: %__MODULE__{
          category: String.t() | nil,
          type: String.t() | nil,
          name: String.t() | nil,
          lang: String.t() | nil
        }

  defstruct category: nil, type: nil, name: nil, lang: nil
end
