defmodule XmppBridge.Test.HostileServer do
  @moduledoc false
  # A fake XMPP server on loopback that plays one hostile scenario against
  # one client connection: it floods, stalls or lies. The subject of the
  # tests that use it is how a session holds against such a peer, so here
  # (and only here) a server of the test's own is the real thing; the rest
  # of the suite talks to a real ejabberd or Prosody.
  #
  #     server = HostileServer.start(fn sock -> HostileServer.login(sock); flood(sock) end)
  #     conn = Connection.open!(HostileServer.client_opts(server))
  #
  # The scenario runs in the server's own process with the accepted socket
  # (passive, binary). `stop/1` kills it, which closes the socket.

  import ExUnit.Assertions

  @domain "hostile.test"
  @header "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " <>
            "xmlns:stream='http://etherx.jabber.org/streams' id='hostile-1' " <>
            "from='hostile.test' version='1.0' xml:lang='en'>"
  @sasl "urn:ietf:params:xml:ns:xmpp-sasl"

  defstruct [:port, :pid, :listen]

  def domain, do: @domain
  def jid, do: "victim@#{@domain}"
  def bound_jid, do: "victim@#{@domain}/r"

  @doc "Starts a server that plays `scenario.(socket)` with the first client that connects."
  def start(scenario) do
    parent = self()

    pid =
      spawn(fn ->
        {:ok, listen} =
          :gen_tcp.listen(0, [:binary, ip: {127, 0, 0, 1}, active: false, reuseaddr: true])

        {:ok, port} = :inet.port(listen)
        send(parent, {:hostile_listening, self(), listen, port})

        case :gen_tcp.accept(listen, 10_000) do
          {:ok, sock} ->
            scenario.(sock)
            # A scenario that returns keeps the connection as it is, open
            # and silent, until the test stops the server.
            Process.sleep(:infinity)

          {:error, reason} ->
            exit({:no_client, reason})
        end
      end)

    receive do
      {:hostile_listening, ^pid, listen, port} ->
        %__MODULE__{port: port, pid: pid, listen: listen}
    after
      5_000 -> flunk("the hostile server did not start")
    end
  end

  @doc "Kills the server process: its sockets close with it."
  def stop(%__MODULE__{pid: pid}) do
    ref = Process.monitor(pid)
    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    end
  end

  @doc "Connection options for a client of `server`: plaintext to loopback, no reconnect."
  def client_opts(%__MODULE__{port: port}, opts \\ []) do
    Keyword.merge(
      [
        jid: jid(),
        password: "secret",
        host: "127.0.0.1",
        port: port,
        tls: :plain,
        reconnect: false,
        connect_timeout: 4_000,
        keepalive: nil,
        initial_presence: false,
        stream_management: false
      ],
      opts
    )
  end

  ## Pieces of a scenario

  @doc "The server's stream header."
  def header, do: @header

  @doc "Reads until `pattern` has arrived; returns what came after it."
  def expect(sock, pattern, buffer \\ "") do
    case :binary.split(buffer, pattern) do
      [_before, rest] ->
        rest

      [_] ->
        case :gen_tcp.recv(sock, 0, 5_000) do
          {:ok, data} -> expect(sock, pattern, buffer <> data)
          {:error, reason} -> exit({:client_gone, pattern, reason})
        end
    end
  end

  @doc "Waits for the client's stream header (it ends with `>` after `<stream:stream`)."
  def expect_header(sock), do: sock |> expect("<stream:stream") |> then(&expect(sock, ">", &1))

  @doc "Sends `data`; the scenario ends quietly if the client went away."
  def push(sock, data) do
    case :gen_tcp.send(sock, data) do
      :ok -> :ok
      {:error, _} -> exit(:normal)
    end
  end

  @doc """
  Plays an honest negotiation up to the point where the client is online:
  SASL PLAIN (which the client uses to a loopback address), the stream
  restart, resource binding. Stream management is not offered.
  """
  def login(sock) do
    expect_header(sock)
    push(sock, @header <> features(mechanisms(["PLAIN"])))
    expect(sock, "</auth>")
    push(sock, "<success xmlns='#{@sasl}'/>")
    bind(sock)
  end

  @doc "The stream restart after SASL and the bind exchange."
  def bind(sock) do
    rest = expect_header(sock)
    push(sock, @header <> features("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"))
    request = read_until(sock, "</iq>", rest)
    [_, id] = Regex.run(~r/id='([^']+)'/, request)

    push(
      sock,
      "<iq type='result' id='#{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" <>
        "<jid>#{bound_jid()}</jid></bind></iq>"
    )
  end

  @doc "Reads until `pattern` has arrived; returns everything read, the pattern included."
  def read_until(sock, pattern, buffer \\ "") do
    if String.contains?(buffer, pattern) do
      buffer
    else
      case :gen_tcp.recv(sock, 0, 5_000) do
        {:ok, data} -> read_until(sock, pattern, buffer <> data)
        {:error, reason} -> exit({:client_gone, pattern, reason})
      end
    end
  end

  def features(inner), do: "<stream:features>#{inner}</stream:features>"

  def mechanisms(names) do
    "<mechanisms xmlns='#{@sasl}'>" <>
      Enum.map_join(names, &"<mechanism>#{&1}</mechanism>") <> "</mechanisms>"
  end

  @doc "A small chat message numbered `n` (its id and body)."
  def numbered_message(n) do
    "<message from='flood@#{@domain}/x' to='#{bound_jid()}' type='chat' id='#{n}'>" <>
      "<body>#{n}</body></message>"
  end

  @doc """
  Sends numbered messages, `batch` per write, as fast as the socket takes
  them, for ever; `sent` (a :counters ref) counts them.
  """
  def flood(sock, sent, batch \\ 200) do
    flood(sock, sent, batch, 1)
  end

  defp flood(sock, sent, batch, n) do
    push(sock, Enum.map(n..(n + batch - 1), &numbered_message/1))
    :counters.add(sent, 1, batch)
    flood(sock, sent, batch, n + batch)
  end

  @doc "Sends whitespace (keepalives) for ever, as fast as the socket takes it."
  def whitespace_flood(sock) do
    spaces = :binary.copy(" ", 4096)
    push(sock, spaces)
    whitespace_flood(sock)
  end
end
