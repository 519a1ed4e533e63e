defmodule XmppBridge.ReadmeGroupTest do
  # Runs the three group examples of README.md ("Groups, status and
  # discovery"), exactly as written there, against a private ejabberd: the
  # Elixir block evaluated here, the Erlang block compiled as the module it
  # is, the Rust block (which must be native/xmpp_bridge/examples/group_readme.rs,
  # character for character) run as its example binary.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias XmppBridge.Test.{Eunit, RustPeer}
  alias XmppTestServer, as: TestServer

  @moduletag :integration
  @moduletag timeout: 180_000

  @readme Path.expand("../../README.md", __DIR__)
  @rust_example Path.expand("../../native/xmpp_bridge/examples/group_readme.rs", __DIR__)

  setup_all do
    RustPeer.build!()
    server = TestServer.start!(:ejabberd, accounts: [{"alice", "secret"}, {"bob", "secret"}])
    System.put_env("XMPP_PORT", Integer.to_string(server.ports.c2s_plain))
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  defp block(lang) do
    readme = File.read!(@readme)
    marker = "<!-- group-example:#{lang} -->\n```#{lang}\n"
    [_, rest] = String.split(readme, marker, parts: 2)
    [code, _] = String.split(rest, "\n```\n", parts: 2)
    code <> "\n"
  end

  defp assert_story(out) do
    assert out =~ "bob@localhost/bus joined workers"
    assert out =~ ~r/member alice@localhost\/bus: /
    assert out =~ ~r/member bob@localhost\/bus: .*ready/
    assert out =~ ~r/bob got .*1.* from alice@localhost\/bus/
    assert out =~ ~r/bob@localhost\/bus left workers: :?left/
  end

  test "the Elixir example" do
    assert_story(capture_io(fn -> Code.eval_string(block("elixir")) end))
  end

  test "the Erlang example" do
    dir = Eunit.tmp_dir!()
    on_exit(fn -> File.rm_rf!(dir) end)
    source = Path.join(dir, "group_example.erl")
    File.write!(source, block("erlang"))
    module = Eunit.compile_and_load!(source, dir)
    assert_story(capture_io(fn -> assert module.main() == :ok end))
  end

  test "the Rust example" do
    assert block("rust") == File.read!(@rust_example),
           "README and examples/group_readme.rs differ"

    {out, status} =
      System.cmd(RustPeer.binary("group_readme"), [],
        env: [{"XMPP_PORT", System.get_env("XMPP_PORT")}]
      )

    assert status == 0, out
    assert_story(out)
  end
end
