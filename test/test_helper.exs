# Tags excluded from a plain `mix test` (`make test` includes them all):
#
#   * :integration - needs the private XMPP server harness (ejabberd/Prosody
#     from Debian's packages) and runs against it
#   * :consumer    - builds a throwaway Mix app that uses :xmpp_bridge as a
#     path dependency (test/consumer_app_test.exs); slow, runs cargo and mix
#
# Run them with `mix test --include integration --include consumer`, or only
# them with `mix test --only consumer`.
ExUnit.start(exclude: [:integration, :consumer])
