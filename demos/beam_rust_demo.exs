# The BEAM-Rust demo (`make demo`, after the codec demo): a BEAM process and a
# Rust program talk over XMPP through a private ejabberd on loopback.
#
#   - XmppTestServer starts ejabberd with a CA made for the run;
#   - the Rust node (native/xmpp_bridge/examples/echo.rs, the pure Rust
#     crate) logs in over STARTTLS and upper-cases every chat message;
#   - this script logs in as another account through the NIF, sends it a few
#     messages, prints the answers and the round-trip times, and says "bye".

alias XmppBridge.{Connection, Message}

defmodule BeamRustDemo do
  def await(conn, fun, what, timeout \\ 15_000) do
    receive do
      {:xmpp_bridge, id, event} when id == conn.id ->
        case fun.(event) do
          nil -> await(conn, fun, what, timeout)
          result -> result
        end
    after
      timeout -> raise "timed out waiting for #{what}"
    end
  end
end

IO.puts("== Starting a private ejabberd on loopback")
{:ok, srv} = XmppTestServer.start(:ejabberd, accounts: [{"beam", "beam-pw"}, {"rust", "rust-pw"}])
IO.puts("   c2s STARTTLS on 127.0.0.1:#{srv.ports.c2s_starttls}, CA #{srv.ca_file}")

IO.puts("== Starting the Rust node (cargo builds it the first time)")
cargo = System.find_executable("cargo") || raise "cargo not found"

rust =
  Port.open({:spawn_executable, cargo}, [
    :binary,
    :exit_status,
    {:line, 4096},
    args:
      ~w(run -q --release -p xmpp_bridge --example echo --) ++
        [
          "rust@#{srv.domain}/node",
          "rust-pw",
          "127.0.0.1",
          "#{srv.ports.c2s_starttls}",
          "starttls",
          srv.ca_file
        ]
  ])

wait_line = fn wait_line, pattern ->
  receive do
    {^rust, {:data, {:eol, line}}} ->
      IO.puts("   [rust] " <> line)
      if String.contains?(line, pattern), do: :ok, else: wait_line.(wait_line, pattern)

    {^rust, {:exit_status, status}} ->
      raise "the Rust node exited with status #{status}"
  after
    300_000 -> raise "the Rust node did not come online"
  end
end

wait_line.(wait_line, "online")

IO.puts("== The BEAM side logs in through the NIF (STARTTLS, the run's CA)")

{:ok, conn} =
  Connection.open(
    jid: "beam@#{srv.domain}/demo",
    password: "beam-pw",
    host: "127.0.0.1",
    port: srv.ports.c2s_starttls,
    ca_file: srv.ca_file
  )

%{jid: jid} =
  BeamRustDemo.await(
    conn,
    fn
      {:online, info} -> info
      _ -> nil
    end,
    "online"
  )

IO.puts("   online as #{jid}")

rust_jid = "rust@#{srv.domain}/node"

for text <- ["hello from the BEAM", "ünïcödé ✓", "erlang and rust, one server"] do
  t0 = System.monotonic_time(:microsecond)
  {:ok, _seq} = Connection.send(conn, Message.chat(rust_jid, text))

  answer =
    BeamRustDemo.await(
      conn,
      fn
        {:stanza, %Message{from: ^rust_jid} = m} -> Message.body(m)
        _ -> nil
      end,
      "the answer"
    )

  rtt = System.monotonic_time(:microsecond) - t0
  IO.puts("   sent #{inspect(text)}, got #{inspect(answer)} in #{rtt} µs")
end

{:ok, _} = Connection.send(conn, Message.chat(rust_jid, "bye"))
wait_line.(wait_line, "closed")
Connection.close(conn)

BeamRustDemo.await(
  conn,
  fn
    {:closed, reason} -> reason
    _ -> nil
  end,
  "close"
)

XmppTestServer.stop(srv)
IO.puts("== Done: both sessions closed, the server stopped")
