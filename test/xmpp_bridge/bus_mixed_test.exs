defmodule XmppBridge.BusMixedTest do
  # The mixed-language bus suite (test/support/bus_mixed_cases.ex) against
  # ejabberd.
  use XmppBridge.Test.BusMixedCases, server: :ejabberd
end
