defmodule XmppBridge.ConsumerAppTest do
  # Builds a throwaway application with `mix new` that depends on this
  # checkout as a path dependency, the way a user of the library would, and
  # checks that the NIF is built, found through the dependency's priv dir and
  # used. Tagged :consumer (excluded by a plain `mix test`; `make test`
  # includes it).
  use ExUnit.Case, async: false

  @moduletag :consumer
  @moduletag timeout: 600_000

  @root File.cwd!()

  @stanza "<message xmlns='jabber:client' to='bob@example.com' type='chat'><body>hi</body></message>"

  setup do
    dir =
      Path.join(
        System.tmp_dir!(),
        "xmpp_bridge_consumer_#{System.unique_integer([:positive])}"
      )

    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    {out, status} = mix(["new", "consumer"], dir, base_env())
    assert status == 0, "mix new failed:\n" <> out

    app = Path.join(dir, "consumer")
    add_dependency!(app)

    File.write!(Path.join([app, "lib", "consumer.ex"]), """
    defmodule Consumer do
      def run do
        %XmppBridge.Message{} = msg = XmppBridge.Stanza.decode!(#{inspect(@stanza)})
        [{_lang, body}] = msg.bodies
        "BODY=\#{body} TO=\#{msg.to} TYPE=\#{msg.type}"
      end
    end
    """)

    %{app: app}
  end

  test "a Mix app using xmpp_bridge as a path dependency builds and decodes a stanza",
       %{app: app} do
    {out, status} = mix(["compile"], app, base_env())
    assert status == 0, "mix compile in the consumer failed:\n" <> out

    # Mix links the dependency's priv into the consumer's _build.
    assert File.regular?(
             Path.join(app, "_build/dev/lib/xmpp_bridge/priv/native/libxmpp_bridge_nif.so")
           ),
           "the NIF is not visible in the consumer's _build:\n" <> out

    # xmpp_bridge's test-server harness is a dependency of its :dev/:test/:bench
    # only: a user's build neither compiles nor loads it.
    refute File.exists?(Path.join(app, "_build/dev/lib/xmpp_test_server")),
           "the consumer built xmpp_bridge's test server:\n" <> out

    run = "IO.puts(Consumer.run()); IO.puts(\"HARNESS=\#{Code.ensure_loaded?(XmppTestServer)}\")"
    {out, status} = mix(["run", "-e", run], app, base_env())
    assert status == 0, "mix run in the consumer failed:\n" <> out
    assert out =~ "BODY=hi TO=bob@example.com TYPE=chat"
    assert out =~ "HARNESS=false"
  end

  test "without cargo, building the dependency fails and says how to get cargo",
       %{app: app} do
    env =
      base_env(
        PATH: path_without_cargo(),
        CARGO: nil,
        XMPP_BRIDGE_FORCE_BUILD: "1"
      )

    {out, status} = mix(["compile"], app, env)
    assert status != 0, "mix compile succeeded without cargo:\n" <> out
    assert out =~ "cargo was not found"
    assert out =~ "rustup"
    assert out =~ "CARGO="
  end

  defp add_dependency!(app) do
    mix_exs = Path.join(app, "mix.exs")
    source = File.read!(mix_exs)
    deps = "defp deps do\n    [{:xmpp_bridge, path: #{inspect(@root)}}]\n  end"
    updated = Regex.replace(~r/defp deps do\n.*?\n  end/s, source, deps, global: false)
    assert updated != source, "could not find deps/0 in the generated mix.exs:\n" <> source
    File.write!(mix_exs, updated)
  end

  # Same environment as this test run (so the same cargo, CARGO_TARGET_DIR and
  # XMPP_BRIDGE_BUILD profile, hence no rebuild), minus anything that would
  # point Mix at this project instead of the consumer.
  defp base_env(overrides \\ []) do
    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(@root, "target")

    base = [
      {"MIX_ENV", "dev"},
      {"MIX_EXS", nil},
      {"MIX_BUILD_ROOT", nil},
      {"MIX_BUILD_PATH", nil},
      {"MIX_DEPS_PATH", nil},
      {"MIX_TARGET", nil},
      {"HEX_OFFLINE", "1"},
      {"CARGO_TARGET_DIR", target_dir},
      {"XMPP_BRIDGE_FORCE_BUILD", nil}
    ]

    Enum.reduce(overrides, base, fn {name, value}, env ->
      List.keystore(env, Atom.to_string(name), 0, {Atom.to_string(name), value})
    end)
  end

  defp mix(args, cd, env) do
    mix = System.find_executable("mix") || flunk("mix not found on PATH")
    System.cmd(mix, args, cd: cd, env: env, stderr_to_stdout: true)
  end

  defp path_without_cargo do
    System.get_env("PATH", "")
    |> String.split(":", trim: true)
    |> Enum.reject(&File.exists?(Path.join(&1, "cargo")))
    |> Enum.join(":")
  end
end
