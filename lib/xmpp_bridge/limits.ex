defmodule XmppBridge.Limits do
  @moduledoc false
  # Options shared by everything that parses XML, and the move of big work
  # to a dirty scheduler.

  @default_max_bytes 262_144
  @default_max_depth 64
  @max_depth_ceiling 256

  def default_max_bytes, do: @default_max_bytes
  def default_max_depth, do: @default_max_depth

  @doc false
  # The NIFs estimate the cost of their input and answer `:dirty` when it
  # would hold a normal scheduler too long (see native/xmpp_bridge_nif); the
  # same work then runs on a dirty CPU scheduler.
  def run(:dirty, dirty_fun), do: dirty_fun.()
  def run(result, _dirty_fun), do: result

  @doc false
  def validate([]), do: {:ok, {@default_max_bytes, @default_max_depth}}

  def validate(opts) when is_list(opts) do
    with {:ok, opts} <- keyword(opts),
         {:ok, max_bytes} <- pos_int(opts, :max_bytes, @default_max_bytes, 4_294_967_296),
         {:ok, max_depth} <- pos_int(opts, :max_depth, @default_max_depth, @max_depth_ceiling) do
      {:ok, {max_bytes, max_depth}}
    end
  end

  def validate(opts), do: {:error, {:bad_option, opts}}

  defp keyword(opts) do
    case Keyword.validate(opts, max_bytes: @default_max_bytes, max_depth: @default_max_depth) do
      {:ok, opts} -> {:ok, opts}
      {:error, unknown} -> {:error, {:bad_option, {:unknown, unknown}}}
    end
  rescue
    ArgumentError -> {:error, {:bad_option, opts}}
  end

  defp pos_int(opts, key, _default, max) do
    case Keyword.fetch!(opts, key) do
      n when is_integer(n) and n > 0 and n <= max -> {:ok, n}
      other -> {:error, {:bad_option, {key, other}}}
    end
  end
end
