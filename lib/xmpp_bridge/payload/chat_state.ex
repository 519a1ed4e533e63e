defmodule XmppBridge.Payload.ChatState do
  @moduledoc """
  A chat state notification: whether the sender is active in, typing in, or
  has left a conversation.

  Maps to one of `<active/>`, `<composing/>`, `<paused/>`, `<inactive/>` or
  `<gone/>` in the `http://jabber.org/protocol/chatstates` namespace (XEP-0085):

      <composing xmlns="http://jabber.org/protocol/chatstates"/>

  is

      %XmppBridge.Payload.ChatState{state: :composing}
  """

  @typedoc "The element's name, as an atom."
  @type state :: :active | :composing | :paused | :inactive | :gone

  @type t :: %__MODULE__{state: state()}

  defstruct state: :active

  @states [:active, :composing, :paused, :inactive, :gone]

  @doc """
  Builds a chat state notification.

  Raises `XmppBridge.Error` (`{:bad_argument, _}`) when `state` is not one of
  `t:state/0`.

  ## Examples

      iex> XmppBridge.Payload.ChatState.new(:composing)
      %XmppBridge.Payload.ChatState{state: :composing}
  """
  @spec new(state()) :: t()
  def new(state) when state in @states, do: %__MODULE__{state: state}

  def new(state) do
    raise XmppBridge.Error,
      reason:
        {:bad_argument, "chat state must be one of #{inspect(@states)}, got: #{inspect(state)}"}
  end
end
