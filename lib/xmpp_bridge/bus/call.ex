defmodule XmppBridge.Bus.Call do
  @moduledoc """
  A call to a registered name (docs/PROTOCOL.md §7.2), as its process
  receives it:

      {:xmpp_bridge_bus, :call, %XmppBridge.Bus.Call{} = call, from, method, args}

  Answer it once with `XmppBridge.Bus.reply/2` or
  `XmppBridge.Bus.reply_error/2`, from any process. The name host answers
  for the process when it cannot: at the caller's deadline (`:timeout`),
  when the caller gives up, when the process exits or unregisters first
  (`{:crashed, "exited: ..."}`), or when the name already has 1000 calls
  unanswered (`:busy`). A reply after that is dropped.

  The struct holds a pid and a reference, so no remote peer can make one:
  a term from the bus never contains either.
  """

  @enforce_keys [:bus, :ref, :name, :caller, :method, :format]
  defstruct [:bus, :ref, :name, :caller, :method, :format]

  @typedoc """
  A call waiting for its answer: the name host (`bus`), the call's
  reference, the `name` called, the `caller`'s full JID, the `method`, and
  the `format` the answer goes back in (`:term`, or `:json` for a XEP-0335
  caller).
  """
  @type t :: %__MODULE__{
          bus: pid(),
          ref: reference(),
          name: String.t(),
          caller: String.t(),
          method: String.t(),
          format: :term | :json
        }
end
