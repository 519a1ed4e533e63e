defmodule XmppBridge.Test.Eunit do
  @moduledoc false
  # Compiles an EUnit module of test/eunit/ (kept out of the library) with
  # debug_info and warnings as errors into `outdir`, and loads it.

  import ExUnit.Assertions

  @eunit_dir Path.expand("../eunit", __DIR__)

  def source(name), do: Path.join(@eunit_dir, name)

  def compile_and_load!(source, outdir) do
    opts = [
      :debug_info,
      :return_errors,
      :return_warnings,
      :warnings_as_errors,
      outdir: ~c"#{outdir}"
    ]

    case :compile.file(~c"#{source}", opts) do
      {:ok, module, []} ->
        :code.purge(module)
        {:module, ^module} = :code.load_abs(~c"#{Path.join(outdir, Atom.to_string(module))}")
        module

      other ->
        flunk("compiling #{Path.relative_to_cwd(source)} failed: #{inspect(other, pretty: true)}")
    end
  end

  def tmp_dir! do
    dir = Path.join(System.tmp_dir!(), "xmpp_bridge_eunit_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    dir
  end
end
