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
  def retry_dirty(:dirty, dirty_fun), do: dirty_fun.()
  def retry_dirty(result, _dirty_fun), do: result

  @doc false
  def validate([]), do: {:ok, {@default_max_bytes, @default_max_depth}}

  def validate(opts) when is_list(opts) do
    if Keyword.keyword?(opts) do
      case Enum.reject(Keyword.keys(opts), &(&1 in [:max_bytes, :max_depth])) do
        [] ->
          # As with Keyword.get/3, the first occurrence of a key wins.
          with {:ok, max_bytes} <- pos_int(opts, :max_bytes, @default_max_bytes, 4_294_967_296),
               {:ok, max_depth} <-
                 pos_int(opts, :max_depth, @default_max_depth, @max_depth_ceiling) do
            {:ok, {max_bytes, max_depth}}
          end

        unknown ->
          {:error, {:bad_option, {:unknown, Enum.uniq(unknown)}}}
      end
    else
      {:error, {:bad_option, opts}}
    end
  end

  def validate(opts), do: {:error, {:bad_option, opts}}

  defp pos_int(opts, key, default, max) do
    case Keyword.get(opts, key, default) do
      n when is_integer(n) and n > 0 and n <= max -> {:ok, n}
      other -> {:error, {:bad_option, {key, other}}}
    end
  end
end
