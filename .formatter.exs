# Used by "mix format" and by `make test` (mix format --check-formatted)
[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,bench,demos}/**/*.{ex,exs}"],
  # the test-server harness (its own Mix project) has its own .formatter.exs
  subdirectories: ["support/xmpp_test_server"]
]
