defmodule XmppBridge.ErlangFacadeTest do
  # Runs the EUnit suite of the Erlang facade (src/xmpp_bridge.erl), kept in
  # test/eunit/ so that it is not compiled into the library: it is compiled
  # here, with debug_info, into a temporary directory, loaded and run. Any
  # failing EUnit test (or any compiler warning in it) fails this test.
  use ExUnit.Case, async: false

  import XmppBridge.Test.Eunit, only: [compile_and_load!: 2, source: 1, tmp_dir!: 0]

  setup do
    dir = tmp_dir!()
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  test "the EUnit suite of the xmpp_bridge Erlang module passes", %{dir: dir} do
    module = compile_and_load!(source("xmpp_bridge_tests.erl"), dir)
    assert module == :xmpp_bridge_tests
    assert :eunit.test(module, [:verbose]) == :ok
  end

  test "a failing EUnit test is reported as a failure", %{dir: dir} do
    source = Path.join(dir, "xmpp_bridge_eunit_canary_tests.erl")

    File.write!(source, """
    -module(xmpp_bridge_eunit_canary_tests).
    -include_lib("eunit/include/eunit.hrl").
    passes_test() -> ?assertEqual({ok, <<"a.b">>}, xmpp_bridge:jid_normalize(<<"A.B">>)).
    fails_test() -> ?assertEqual(ok, xmpp_bridge:decode(<<"<foo/>">>)).
    """)

    module = compile_and_load!(source, dir)

    output =
      ExUnit.CaptureIO.capture_io(fn ->
        send(self(), {:result, :eunit.test(module, [])})
      end)

    assert_received {:result, :error}
    assert output =~ "Failed: 1."
    assert output =~ "Passed: 1."
  after
    :code.purge(:xmpp_bridge_eunit_canary_tests)
    :code.delete(:xmpp_bridge_eunit_canary_tests)
  end
end
