defmodule XmppBridge.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :xmpp_bridge,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      # The Rust NIF is built first, by the compiler defined at the bottom of
      # this file, so that priv/native/libxmpp_bridge_nif.so is in place before
      # anything could load XmppBridge.Native.
      compilers: [:xmpp_bridge_native | Mix.compilers()],
      elixirc_paths: elixirc_paths(Mix.env()),
      erlc_paths: ["src"],
      deps: deps(),
      aliases: aliases(),

      # Docs and package metadata
      name: "XmppBridge",
      description:
        "XMPP as the message bus of mixed BEAM/Rust distributed applications: " <>
          "a Rust core (codec and connections today; the bus is next) loaded as a NIF.",
      docs: docs(),
      package: package()
    ]
  end

  def application do
    [mod: {XmppBridge.Application, []}, extra_applications: [:logger, :crypto]]
  end

  # No Hex dependencies (Hex is not reachable). The one dependency is the
  # private XMPP server harness of the tests, benchmarks and demos, a Mix
  # project in this repository (support/xmpp_test_server): a path dependency,
  # so nothing is fetched (no `mix deps.get`, no mix.lock entry), and only in
  # the environments that use it, so an application depending on xmpp_bridge
  # (built in :prod) never sees it. It does not depend on xmpp_bridge.
  defp deps do
    [
      {:xmpp_test_server, path: "support/xmpp_test_server", only: [:dev, :test, :bench]}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_env), do: ["lib"]

  defp aliases do
    []
  end

  defp docs do
    [
      main: "readme",
      source_ref: "v#{@version}",
      extras: Enum.filter(["README.md", "docs/PROTOCOL.md"], &File.exists?/1)
    ]
  end

  defp package do
    [
      licenses: ["Apache-2.0"],
      files: ~w(lib src native Cargo.toml Cargo.lock mix.exs .formatter.exs
                priv/native/.gitkeep README.md LICENSE* docs)
    ]
  end
end

defmodule Mix.Tasks.Compile.XmppBridgeNative do
  @moduledoc """
  Builds the Rust NIF (`cargo build -p xmpp_bridge_nif`) and copies the
  library to `priv/native/libxmpp_bridge_nif.so`.

  Defined in mix.exs because Hex (and so the rustler/elixir_make Mix packages)
  is not available; it is listed first in `:compilers`, so it also runs when
  xmpp_bridge is a path or git dependency of another application (Mix then
  runs it with the dependency's directory as the project).

  ## Environment

    * `CARGO` - cargo executable to use (default: `cargo` on `PATH`)
    * `CARGO_TARGET_DIR` - cargo's target directory (default: `<root>/target`)
    * `XMPP_BRIDGE_BUILD=debug` - debug build (`target/debug`) instead of
      the default release build (`target/release`)
    * `XMPP_BRIDGE_FORCE_BUILD=1` - run cargo even when the library is fresh

  ## Staleness

  cargo is skipped entirely when the library in `priv/native` was built by
  this compiler from exactly the current inputs: every file under `native/`
  (except `target` and hidden directories), the workspace `Cargo.toml` and
  `Cargo.lock`, `rust-toolchain(.toml)` and `.cargo/config(.toml)`. Paths,
  sizes, modification times and contents of the inputs are fingerprinted,
  together with the build profile, in
  `priv/native/libxmpp_bridge_nif.manifest`. So editing, touching, adding or
  deleting a file under `native/`, or switching profile, makes the next
  `mix compile` run cargo (which then does its own fine-grained staleness).

  `mix compile --force` does NOT force cargo (it is meant to recompile the
  Elixir and Erlang sources, e.g. to see their warnings again); use
  `XMPP_BRIDGE_FORCE_BUILD=1` or `mix xmpp_bridge.native` for that.
  """

  use Mix.Task.Compiler

  @nif "xmpp_bridge_nif"
  @manifest_version 1
  @root_inputs ~w(Cargo.toml Cargo.lock rust-toolchain rust-toolchain.toml
                  .cargo/config .cargo/config.toml)

  @impl Mix.Task.Compiler
  def run(args) do
    {opts, _, _} = OptionParser.parse(args, switches: [native_force: :boolean])
    force? = opts[:native_force] == true or env_true?("XMPP_BRIDGE_FORCE_BUILD")

    root = root()
    ensure_workspace!(root)
    profile = profile()
    so = so_path(root)
    manifest = manifest_path(root)
    fingerprint = fingerprint(root, profile)

    status =
      if not force? and fresh?(so, manifest, profile, fingerprint) do
        :noop
      else
        build!(root, profile)
        install!(root, profile, so)
        write_manifest!(manifest, profile, fingerprint, so)
        :ok
      end

    ensure_visible_in_build!(so)
    {status, []}
  end

  @impl Mix.Task.Compiler
  def manifests, do: [manifest_path(root())]

  @impl Mix.Task.Compiler
  def clean do
    root = root()
    File.rm(so_path(root))
    File.rm(manifest_path(root))
    :ok
  end

  ## Paths

  @doc false
  def root do
    # Mix.Project.project_file/0 is the mix.exs of the project being compiled:
    # this one, also when it is a dependency (cwd is then the dependency's
    # directory). __DIR__ is the fallback (e.g. called outside a project).
    case Mix.Project.project_file() do
      nil -> __DIR__
      file -> Path.dirname(file)
    end
  end

  # The name :erlang.load_nif/2 looks for: "<path>.so", or "<path>.dll" on Windows
  # (also on macOS, where cargo's .dylib is copied under the .so name).
  defp so_path(root) do
    ext = if match?({:win32, _}, :os.type()), do: "dll", else: "so"
    Path.join([root, "priv", "native", "lib#{@nif}.#{ext}"])
  end

  defp manifest_path(root), do: Path.join([root, "priv", "native", "lib#{@nif}.manifest"])

  defp target_dir(root) do
    case System.get_env("CARGO_TARGET_DIR") do
      dir when dir in [nil, ""] -> Path.join(root, "target")
      dir -> Path.expand(dir, root)
    end
  end

  defp built_library(root, profile) do
    dir = Path.join(target_dir(root), profile_dir(profile))

    case :os.type() do
      {:unix, :darwin} -> Path.join(dir, "lib#{@nif}.dylib")
      {:win32, _} -> Path.join(dir, "#{@nif}.dll")
      _ -> Path.join(dir, "lib#{@nif}.so")
    end
  end

  defp profile do
    case System.get_env("XMPP_BRIDGE_BUILD") do
      value when value in [nil, "", "release"] ->
        "release"

      "debug" ->
        "debug"

      other ->
        Mix.raise(
          "XMPP_BRIDGE_BUILD=#{inspect(other)} is not supported: " <>
            "use XMPP_BRIDGE_BUILD=debug for a debug build, or unset it for a release build"
        )
    end
  end

  defp profile_dir("release"), do: "release"
  defp profile_dir("debug"), do: "debug"

  defp env_true?(name), do: System.get_env(name) in ~w(1 true yes)

  defp ensure_workspace!(root) do
    unless File.regular?(Path.join(root, "Cargo.toml")) do
      Mix.raise(
        "xmpp_bridge: no Cargo.toml in #{root}; the Rust workspace " <>
          "(Cargo.toml, Cargo.lock, native/) must ship with the Elixir sources"
      )
    end
  end

  ## Staleness

  defp fingerprint(root, profile) do
    native = Path.join(root, "native")

    files =
      @root_inputs
      |> Enum.map(&Path.join(root, &1))
      |> Enum.filter(&File.regular?/1)
      |> Kernel.++(walk(native))
      |> Enum.sort()

    ctx = :erlang.md5_init()
    ctx = :erlang.md5_update(ctx, ["profile=", profile, ?\n])

    ctx =
      Enum.reduce(files, ctx, fn file, ctx ->
        # A file removed since the walk (an editor's temp file) just drops out.
        with {:ok, %File.Stat{size: size, mtime: mtime}} <- File.stat(file, time: :posix),
             {:ok, content} <- File.read(file) do
          rel = Path.relative_to(file, root)
          header = [rel, 0, Integer.to_string(size), 0, Integer.to_string(mtime), 0]
          :erlang.md5_update(:erlang.md5_update(ctx, header), content)
        else
          _ -> ctx
        end
      end)

    Base.encode16(:erlang.md5_final(ctx), case: :lower)
  end

  defp walk(dir) do
    case File.ls(dir) do
      {:ok, names} ->
        Enum.flat_map(names, fn name ->
          path = Path.join(dir, name)

          case File.lstat(path) do
            # cargo's output, and the fuzz crate (its own workspace, with a
            # corpus that changes while a fuzzer runs), do not go into the NIF.
            _ when name in ["target", "fuzz"] -> []
            _ when binary_part(name, 0, 1) == "." -> []
            {:ok, %File.Stat{type: :directory}} -> walk(path)
            {:ok, %File.Stat{type: :regular}} -> [path]
            # symlinks: follow to regular files only (no directory loops)
            {:ok, %File.Stat{type: :symlink}} -> if File.regular?(path), do: [path], else: []
            _ -> []
          end
        end)

      {:error, _} ->
        []
    end
  end

  defp fresh?(so, manifest, profile, fingerprint) do
    with {:ok, %File.Stat{size: size, mtime: mtime}} <- File.stat(so, time: :posix),
         {:ok, text} <- File.read(manifest) do
      read_manifest(text) == %{
        "version" => Integer.to_string(@manifest_version),
        "profile" => profile,
        "inputs" => fingerprint,
        "library" => "#{size}:#{mtime}"
      }
    else
      _ -> false
    end
  end

  defp read_manifest(text) do
    for line <- String.split(text, "\n", trim: true),
        [key, value] <- [String.split(line, "=", parts: 2)],
        into: %{},
        do: {key, value}
  end

  defp write_manifest!(manifest, profile, fingerprint, so) do
    %File.Stat{size: size, mtime: mtime} = File.stat!(so, time: :posix)

    File.write!(manifest, """
    version=#{@manifest_version}
    profile=#{profile}
    inputs=#{fingerprint}
    library=#{size}:#{mtime}
    """)
  end

  ## Build and install

  defp cargo! do
    case System.get_env("CARGO") do
      value when value in [nil, ""] ->
        System.find_executable("cargo") || cargo_missing!(nil)

      value ->
        (File.regular?(value) && Path.expand(value)) || System.find_executable(value) ||
          cargo_missing!(value)
    end
  end

  defp cargo_missing!(value) do
    rustup_hint =
      case System.user_home() do
        nil ->
          ""

        home ->
          if File.regular?(Path.join([home, ".cargo", "bin", "cargo"])) do
            "\n\n#{home}/.cargo/bin/cargo exists but is not on PATH: " <>
              "run `source #{home}/.cargo/env` or add #{home}/.cargo/bin to PATH."
          else
            ""
          end
      end

    what =
      if value,
        do: "CARGO=#{value} does not name an executable",
        else: "cargo was not found on PATH"

    Mix.raise("""
    xmpp_bridge: #{what}. The Rust toolchain is needed to build the NIF \
    (native/xmpp_bridge_nif).

    Fix it in one of these ways:
      * install Rust with rustup (https://rustup.rs), then open a new shell or \
    run `source $HOME/.cargo/env`
      * or `apt-get install cargo` (Debian/Ubuntu; the Rust it brings must be recent \
    enough for Cargo.toml's rust-version)
      * or set CARGO=/path/to/cargo\
    #{rustup_hint}
    """)
  end

  defp build!(root, profile) do
    cargo = cargo!()
    args = ["build", "-p", @nif] ++ if(profile == "release", do: ["--release"], else: [])
    target_dir = target_dir(root)

    Mix.shell().info(
      "==> xmpp_bridge: cargo #{Enum.join(args, " ")} (target dir #{Path.relative_to_cwd(target_dir)})"
    )

    {_, status} =
      System.cmd(cargo, args,
        cd: root,
        env: [{"CARGO_TARGET_DIR", target_dir}],
        into: IO.stream(:stdio, :line),
        stderr_to_stdout: true
      )

    if status != 0 do
      Mix.raise(
        "xmpp_bridge: `cargo #{Enum.join(args, " ")}` failed with exit status #{status} " <>
          "(see its output above)"
      )
    end
  end

  defp install!(root, profile, so) do
    built = built_library(root, profile)

    unless File.regular?(built) do
      Mix.raise("xmpp_bridge: cargo succeeded but #{built} does not exist")
    end

    copy_atomically!(built, so)
  end

  # Copy next to the destination then rename over it: a VM that has the old
  # library loaded (e.g. the one running `mix test` while a consumer project
  # builds) keeps its mapping intact instead of seeing the file rewritten.
  defp copy_atomically!(from, to) do
    File.mkdir_p!(Path.dirname(to))
    tmp = "#{to}.tmp#{System.unique_integer([:positive])}"

    try do
      File.cp!(from, tmp)
      File.rename!(tmp, to)
    after
      File.rm(tmp)
    end
  end

  # Mix makes _build/<env>/lib/xmpp_bridge/priv a symlink to priv/ (also for
  # path deps), so the library is visible there as soon as it is copied. When
  # priv is copied instead (build_embedded, or no symlink support) or was
  # missing when Mix built the structure, bring the build priv up to date.
  defp ensure_visible_in_build!(so) do
    config = Mix.Project.config()
    build_priv = Path.join(Mix.Project.app_path(config), "priv")

    cond do
      match?({:ok, _}, File.read_link(build_priv)) ->
        :ok

      File.dir?(build_priv) ->
        dest = Path.join([build_priv, "native", Path.basename(so)])

        unless File.read(dest) == File.read(so) do
          copy_atomically!(so, dest)
        end

        :ok

      true ->
        Mix.Project.build_structure(config)
    end
  end
end

defmodule Mix.Tasks.XmppBridge.Native do
  @shortdoc "Builds the Rust NIF with cargo, even when it looks fresh"
  @moduledoc """
  Runs `cargo build -p xmpp_bridge_nif` (release, or debug with
  `XMPP_BRIDGE_BUILD=debug`) and copies the library to `priv/native`, whether
  or not the staleness check of `mix compile` would have skipped it.
  """

  use Mix.Task

  @impl Mix.Task
  def run(_args) do
    Mix.Project.get!()
    Mix.Task.run("loadpaths", [])
    Mix.Project.build_structure()
    Mix.Tasks.Compile.XmppBridgeNative.run(["--native-force"])
    :ok
  end
end
