# Used by "mix format" and by `make test` (mix format --check-formatted)
[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,bench,demos}/**/*.{ex,exs}"]
]
