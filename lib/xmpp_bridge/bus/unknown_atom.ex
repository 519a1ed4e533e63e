defmodule XmppBridge.Bus.UnknownAtom do
  @moduledoc """
  An atom a remote peer sent that this VM does not know.

  Atoms are never garbage collected and their table is bounded, so a term
  read from the network must not create them: where the sender put an atom
  that does not exist here, the receiver gets this struct with the atom's
  name, and the rest of the term as it was sent.

      iex> XmppBridge.Bus.Term.decode(<<131, 119, 6, "zq_xyz">>)
      {:ok, %XmppBridge.Bus.UnknownAtom{name: "zq_xyz"}}

  Sending the struct back sends a map, not the atom. To turn known names
  into atoms, compare names (`name == "ok"`) or use
  `String.to_existing_atom/1`.
  """

  @enforce_keys [:name]
  defstruct [:name]

  @type t :: %__MODULE__{name: String.t()}
end
