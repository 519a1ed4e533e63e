defmodule XmppBridge.Bus.Term do
  @moduledoc """
  Terms as the bus carries them (docs/PROTOCOL.md §2 and §5.2): the
  External Term Format, checked on the way out and read defensively on the
  way in, and the readable text that goes in a message's `<body/>`.

      iex> {:ok, etf} = XmppBridge.Bus.Term.encode({:job, 42, %{"state" => :done}})
      iex> XmppBridge.Bus.Term.decode(etf)
      {:ok, {:job, 42, %{"state" => :done}}}

      iex> XmppBridge.Bus.Term.encode({:reply_to, self()})
      {:error, %XmppBridge.Error{reason: {:not_portable, "pid"}}}

      iex> XmppBridge.Bus.Term.body({:job, 42, %{"state" => :done}})
      ~s({:job, 42, %{"state" => :done}})
  """

  alias XmppBridge.{Error, Limits, Native}

  @body_limit 1024

  @doc """
  `:erlang.term_to_binary/1` of `term`, refused with
  `{:not_portable, what}` when it holds a pid, port, reference or fun (they
  mean nothing on another node) or a bit string, or is nested deeper than
  the readers accept (128 levels).
  """
  @spec encode(term()) :: {:ok, binary()} | {:error, Error.t()}
  def encode(term) do
    with {:ok, etf, _body} <- encode_with_body(term), do: {:ok, etf}
  end

  @doc """
  Like `encode/1`, with the text for a message's `<body/>` as well: the
  term in Elixir syntax, at most 1024 bytes, rendered in Rust from the
  same read that checks the term (much cheaper than `body/1`, whose
  output it follows closely).

      iex> XmppBridge.Bus.Term.encode_with_body({:job, 42, "x"}) |> elem(2)
      ~s({:job, 42, "x"})
  """
  @spec encode_with_body(term()) :: {:ok, binary(), String.t()} | {:error, Error.t()}
  def encode_with_body(term) do
    etf = :erlang.term_to_binary(term)

    etf
    |> Native.term_check()
    |> Limits.retry_dirty(fn -> Native.term_check_dirty(etf) end)
    |> case do
      {:ok, body} -> {:ok, etf, body}
      {:error, reason} -> {:error, %Error{reason: reason}}
    end
  end

  @doc false
  # As encode_with_body/1, with the ETF already in Base64 (for <term/>).
  @spec pack(term()) :: {:ok, String.t(), String.t()} | {:error, Error.t()}
  def pack(term) do
    etf = :erlang.term_to_binary(term)

    etf
    |> Native.term_pack()
    |> Limits.retry_dirty(fn -> Native.term_pack_dirty(etf) end)
    |> case do
      {:ok, body, b64} -> {:ok, b64, body}
      {:error, reason} -> {:error, %Error{reason: reason}}
    end
  end

  @doc """
  Reads ETF that came from a peer: pids, ports, references, funs and bit
  strings are refused (`{:not_portable, what}`), and an atom this VM does
  not know becomes `%XmppBridge.Bus.UnknownAtom{name: name}`: no atom is
  created.
  """
  @spec decode(binary()) :: {:ok, term()} | {:error, Error.t()}
  def decode(etf) when is_binary(etf) do
    etf
    |> Native.term_decode()
    |> Limits.retry_dirty(fn -> Native.term_decode_dirty(etf) end)
    |> case do
      {:ok, term} -> {:ok, term}
      {:error, reason} -> {:error, %Error{reason: reason}}
    end
  end

  def decode(other), do: {:error, %Error{reason: {:not_binary, other}}}

  @doc """
  The term in Elixir syntax for a message's `<body/>`: at most 1024 bytes,
  cut at a character boundary and ending with `…` when longer.
  """
  @spec body(term()) :: String.t()
  def body(term) do
    text = inspect(term, limit: 200, printable_limit: @body_limit, width: :infinity)
    cut(text, @body_limit)
  end

  @doc false
  # A caller's own body text, cut like a rendered one.
  def readable(text) when is_binary(text), do: cut(text, @body_limit)

  defp cut(text, limit) when byte_size(text) <= limit, do: text

  defp cut(text, limit) do
    # Room for the 3-byte ellipsis, then back to a character boundary.
    prefix = binary_part(text, 0, limit - 3)
    valid(prefix) <> "…"
  end

  defp valid(bin) do
    if String.valid?(bin), do: bin, else: valid(binary_part(bin, 0, byte_size(bin) - 1))
  end
end
