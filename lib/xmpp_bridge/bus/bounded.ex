defmodule XmppBridge.Bus.Bounded do
  @moduledoc false
  # A bounded map: the map, the queue of the keys put (oldest first) and
  # its length. Past `limit` puts, the oldest key is forgotten, whether or
  # not it was popped since: memory stays bounded by `limit`.

  @type t :: {map(), :queue.queue(), non_neg_integer()}

  @spec new() :: t()
  def new, do: {%{}, :queue.new(), 0}

  @spec seen?(t(), term()) :: boolean()
  def seen?({map, _, _}, key), do: Map.has_key?(map, key)

  @spec remember(t(), term(), term(), pos_integer()) :: t()
  def remember({map, queue, n}, key, value, limit) do
    {map, queue, n} = {Map.put(map, key, value), :queue.in(key, queue), n + 1}

    if n > limit do
      {{:value, old}, queue} = :queue.out(queue)
      {Map.delete(map, old), queue, n - 1}
    else
      {map, queue, n}
    end
  end

  @spec pop(t(), term()) :: {term(), t()}
  def pop({map, queue, n}, key) do
    {value, map} = Map.pop(map, key)
    {value, {map, queue, n}}
  end
end
