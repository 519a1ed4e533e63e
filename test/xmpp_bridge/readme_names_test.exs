defmodule XmppBridge.ReadmeNamesTest do
  # Runs the three name-host examples of README.md ("A JID for every
  # process: name hosts"), exactly as written there, against a private
  # ejabberd whose component secret is "secret": the Elixir block
  # evaluated here, the Erlang block compiled as the module it is, the Rust
  # block (which must be native/xmpp_bridge/examples/name_readme.rs,
  # character for character) run as its example binary.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias XmppBridge.Test.{Eunit, RustPeer}
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 180_000

  @readme Path.expand("../../README.md", __DIR__)
  @rust_example Path.expand("../../native/xmpp_bridge/examples/name_readme.rs", __DIR__)

  setup_all do
    RustPeer.build!()

    server =
      TestServer.start!(:ejabberd, accounts: [{"alice", "secret"}], component_secret: "secret")

    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  setup %{server: server} do
    env = [
      {"XMPP_PORT", Integer.to_string(server.ports.c2s_plain)},
      {"XMPP_COMPONENT_PORT", Integer.to_string(server.ports.component)}
    ]

    for {k, v} <- env, do: System.put_env(k, v)
    on_exit(fn -> for {k, _} <- env, do: System.delete_env(k) end)
    %{env: env}
  end

  defp block(lang) do
    readme = File.read!(@readme)
    marker = "<!-- name-example:#{lang} -->\n```#{lang}\n"
    [_, rest] = String.split(readme, marker, parts: 2)
    [code, _] = String.split(rest, "\n```\n", parts: 2)
    code <> "\n"
  end

  defp assert_story(out) do
    assert out =~ ~r/worker-7 got .*job.*1.* from alice@localhost\/bus/
    assert out =~ "1 + 2 = 3"
    assert out =~ ~r/DOWN worker-7@bridge.localhost\/bus: .*shutdown/
  end

  test "the Elixir example" do
    assert_story(capture_io(fn -> Code.eval_string(block("elixir")) end))
  end

  test "the Erlang example" do
    dir = Eunit.tmp_dir!()
    on_exit(fn -> File.rm_rf!(dir) end)
    source = Path.join(dir, "name_example.erl")
    File.write!(source, block("erlang"))
    module = Eunit.compile_and_load!(source, dir)
    assert_story(capture_io(fn -> assert module.main() == :ok end))
  end

  test "the Rust example", %{env: env} do
    assert block("rust") == File.read!(@rust_example),
           "README and examples/name_readme.rs differ"

    {out, status} = System.cmd(RustPeer.binary("name_readme"), [], env: env)
    assert status == 0, out
    assert_story(out)
  end
end
