# Included by the root .formatter.exs (subdirectories), so the root's
# `mix format` / `mix format --check-formatted` cover these files.
[
  inputs: ["{mix,.formatter}.exs", "{lib,test}/**/*.{ex,exs}"]
]
