defmodule XmppBridge.BusMixedProsodyTest do
  # The mixed-language bus suite (test/support/bus_mixed_cases.ex) against
  # Prosody, the second server.
  use XmppBridge.Test.BusMixedCases, server: :prosody
end
