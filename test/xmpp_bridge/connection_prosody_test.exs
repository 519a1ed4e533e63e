defmodule XmppBridge.ConnectionProsodyTest do
  # The client suite of XmppBridge.Connection (test/support/connection_cases.ex)
  # against Prosody, the second server.
  use XmppBridge.Test.ConnectionCases, server: :prosody
end
