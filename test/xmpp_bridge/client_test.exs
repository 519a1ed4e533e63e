defmodule XmppBridge.ClientTest do
  # XmppBridge.Client and the connection functions of the Erlang facade,
  # against a private ejabberd. Not async: Connection.count/0 counts the
  # sessions of the whole VM, and sync modules run after all async ones.
  use ExUnit.Case, async: false

  alias XmppBridge.{Client, Connection, Error, Iq, Message}
  alias XmppTestServer, as: TestServer
  alias XmppBridge.Payload.Ping

  @moduletag :integration
  @moduletag timeout: 120_000

  defmodule EchoBot do
    # Answers every chat message with "echo: <body>" and tells the test
    # process about each callback.
    use XmppBridge.Client

    alias XmppBridge.Message

    def start_link(arg), do: XmppBridge.Client.start_link(__MODULE__, arg)

    @impl true
    def init(%{test: test, conn_opts: conn_opts}) do
      {:ok, %{test: test, echoed: 0}, conn_opts}
    end

    @impl true
    def handle_connect(online, state), do: tell(state, {:connected, online})

    @impl true
    def handle_stanza(%Message{type: :chat, from: from} = message, state) do
      case Message.body(message) do
        nil ->
          {:noreply, state}

        body ->
          Kernel.send(state.test, {:bot, :chat, message})
          {:reply, Message.chat(from, "echo: " <> body), %{state | echoed: state.echoed + 1}}
      end
    end

    def handle_stanza(stanza, state), do: super(stanza, state)

    @impl true
    def handle_delivery(delivery, state), do: tell(state, {:delivery, delivery})

    @impl true
    def handle_disconnect(reason, state), do: tell(state, {:disconnected, reason})

    @impl true
    def handle_info({:send_from_callback, to, body}, state) do
      tell(state, {:sent_from_callback, XmppBridge.Client.send(self(), Message.chat(to, body))})
    end

    def handle_info(msg, state), do: super(msg, state)

    @impl true
    def handle_call(:echoed, _from, state), do: {:reply, state.echoed, state}

    def handle_call({:busy, ms}, _from, state) do
      Process.sleep(ms)
      {:reply, :done, state}
    end

    @impl true
    def terminate(reason, state), do: Kernel.send(state.test, {:bot, :terminate, reason})

    defp tell(state, what) do
      Kernel.send(state.test, {:bot, what})
      {:noreply, state}
    end
  end

  setup_all do
    server = TestServer.start!(:ejabberd, accounts: ["alice", "bot", "carol", "dave"])
    on_exit(fn -> TestServer.stop(server) end)
    %{server: server}
  end

  ## Helpers, so that the tests read like stories

  defp conn_opts(server, user, extra \\ []) do
    Keyword.merge(
      [
        jid: TestServer.jid(server, user),
        password: server.accounts[user],
        host: server.host,
        port: server.ports.c2s_plain,
        tls: :plain
      ],
      extra
    )
  end

  defp start_bot(server, extra \\ []) do
    {:ok, bot} = EchoBot.start_link(%{test: self(), conn_opts: conn_opts(server, "bot", extra)})
    assert_receive {:bot, {:connected, %{jid: jid, resumed: false}}}, 10_000
    {bot, jid}
  end

  # A plain session owned by the test process, online.
  defp connect(server, user) do
    {:ok, conn} = Connection.open(conn_opts(server, user))
    assert_receive {:xmpp_bridge, id, {:online, _}} when id == conn.id, 10_000
    conn
  end

  defp chat_to(jid, body), do: Message.chat(jid, body)

  defp wait_for_chat(%Connection{id: id}) do
    receive do
      {:xmpp_bridge, ^id, {:stanza, %Message{type: :chat} = message}} -> message
    after
      5000 -> flunk("no chat message arrived")
    end
  end

  # Collects the bot's acks until `seq` is among them.
  defp wait_for_bot_ack(seq) do
    receive do
      {:bot, {:delivery, {:acked, seqs}}} ->
        if seq not in seqs, do: wait_for_bot_ack(seq)

      {:bot, {:delivery, {:failed, seqs, reason}}} ->
        if seq in seqs, do: flunk("stanza #{seq} failed: #{inspect(reason)}")
        wait_for_bot_ack(seq)
    after
      5000 -> flunk("stanza #{seq} was not acked")
    end
  end

  defp wait_until(fun, deadline \\ System.monotonic_time(:millisecond) + 5000) do
    cond do
      fun.() ->
        true

      System.monotonic_time(:millisecond) > deadline ->
        false

      true ->
        Process.sleep(20)
        wait_until(fun, deadline)
    end
  end

  # Sessions of earlier tests may still be closing (their owners have
  # exited; a clean close waits up to 2 s for the server's last ack).
  defp settled_count(last \\ nil) do
    case Connection.count() do
      ^last ->
        last

      count ->
        Process.sleep(300)
        settled_count(count)
    end
  end

  defp bare(jid), do: jid |> String.split("/") |> hd()

  ## The client behaviour

  test "an echo bot answers alice's message", %{server: server} do
    {bot, bot_jid} = start_bot(server)
    assert bare(bot_jid) == TestServer.jid(server, "bot")
    alice = connect(server, "alice")

    {:ok, _} = Connection.send(alice, chat_to(bare(bot_jid), "hello"))

    assert_receive {:bot, :chat, %Message{from: from}}, 5000
    assert bare(from) == TestServer.jid(server, "alice")

    echo = wait_for_chat(alice)
    assert Message.body(echo) == "echo: hello"
    assert echo.from == bot_jid
    assert GenServer.call(bot, :echoed) == 1

    Connection.close(alice)
    assert :ok = Client.close(bot)
  end

  test "handle_delivery sees the acks of what the client sent", %{server: server} do
    {bot, _jid} = start_bot(server)
    # dave is never online: the server acks, then stores the messages
    dave_jid = TestServer.jid(server, "dave")

    # from another process
    assert {:ok, seq} = Client.send(bot, chat_to(dave_jid, "one"))
    wait_for_bot_ack(seq)

    # from the client's own callback, with self()
    Kernel.send(bot, {:send_from_callback, dave_jid, "two"})
    assert_receive {:bot, {:sent_from_callback, {:ok, seq2}}}, 5000
    assert seq2 > seq
    wait_for_bot_ack(seq2)

    Client.close(bot)
  end

  test "iq/3 waits in the caller; IQ requests the bot does not handle get an error",
       %{server: server} do
    {bot, bot_jid} = start_bot(server)

    assert {:ok, %Iq{type: :result}} = Client.iq(bot, Iq.get(server.domain, %Ping{}))

    # many at once: the client process is not the one waiting
    results =
      1..10
      |> Task.async_stream(fn _ -> Client.iq(bot, Iq.get(server.domain, %Ping{})) end)
      |> Enum.map(fn {:ok, result} -> result end)

    assert Enum.all?(results, &match?({:ok, %Iq{type: :result}}, &1))

    # the default handle_stanza answers service-unavailable (RFC 6120 §8.4)
    alice = connect(server, "alice")
    request = Iq.get(bot_jid, {:xmlel, "query", [{"xmlns", "urn:example:unknown"}], []})

    assert {:error, %Error{reason: {:iq_error, %Iq{type: :error} = answer}}} =
             Connection.iq(alice, request)

    assert answer.error.condition == :service_unavailable

    assert {:error, %Error{reason: {:bad_argument, _}}} =
             Client.iq(bot, %{request | type: :result})

    Connection.close(alice)
    Client.close(bot)
  end

  test "send/2 does not wait for a client that is busy in a callback", %{server: server} do
    {bot, _jid} = start_bot(server)
    alice = connect(server, "alice")
    alice_jid = TestServer.jid(server, "alice")
    busy = Task.async(fn -> GenServer.call(bot, {:busy, 2_000}, 5_000) end)
    # The call is being handled (the bot is in its callback) ...
    Process.sleep(100)

    # ... and a send from here still goes out at once.
    assert {:ok, seq} = Client.send(bot, chat_to(alice_jid, "while busy"))
    assert is_integer(seq)
    assert Task.yield(busy, 0) == nil, "the busy callback ended before the send returned"
    assert Message.body(wait_for_chat(alice)) == "while busy"
    assert Task.await(busy, 5_000) == :done

    Connection.close(alice)
    Client.close(bot)
  end

  test "close/1 ends the session and the client with reason :normal", %{server: server} do
    {bot, _jid} = start_bot(server)
    {:ok, conn} = Client.connection(bot)
    ref = Process.monitor(bot)

    assert :ok = Client.close(bot)

    assert_received {:DOWN, ^ref, :process, ^bot, :normal}
    assert_received {:bot, :terminate, :normal}
    refute Connection.alive?(conn)
    assert {:error, %Error{reason: :noproc}} = Client.send(bot, chat_to("a@localhost", "x"))
    assert {:error, %Error{reason: :noproc}} = Client.connection(bot)
    assert :ok = Client.close(bot)
  end

  test "stopping the client closes its session", %{server: server} do
    before = settled_count()

    {bot, _jid} = start_bot(server)
    assert Connection.count() == before + 1
    # The caller of iq/3 holds a reference to the session until it is
    # garbage collected, as any holder of a %Connection{} does.
    assert {:ok, _} = Client.iq(bot, Iq.get(server.domain, %Ping{}))

    :ok = GenServer.stop(bot)
    assert_received {:bot, :terminate, :normal}
    :erlang.garbage_collect(self())

    assert wait_until(fn -> Connection.count() == before end),
           "#{Connection.count()} sessions, #{before} expected"
  end

  test "a killed client's session is closed by the owner monitor", %{server: server} do
    before = settled_count()

    {:ok, bot} = Client.start(EchoBot, %{test: self(), conn_opts: conn_opts(server, "bot")})
    assert_receive {:bot, {:connected, _}}, 10_000
    assert Connection.count() == before + 1

    Process.exit(bot, :kill)

    assert wait_until(fn -> Connection.count() == before end),
           "#{Connection.count()} sessions, #{before} expected"

    refute_received {:bot, :terminate, _}
  end

  test "a session that gives up stops the client with {:shutdown, reason}",
       %{server: server} do
    opts = conn_opts(server, "bot", password: "wrong")
    {:ok, bot} = Client.start(EchoBot, %{test: self(), conn_opts: opts})
    ref = Process.monitor(bot)

    assert_receive {:bot, {:disconnected, {:auth_failed, _}}}, 10_000
    assert_receive {:DOWN, ^ref, :process, ^bot, {:shutdown, {:auth_failed, _}}}, 5000
    assert_received {:bot, :terminate, {:shutdown, {:auth_failed, _}}}
    refute_received {:bot, {:connected, _}}
  end

  ## The Erlang facade

  test "the Erlang facade: connect, send, iq, close", %{server: server} do
    alice = connect(server, "alice")
    alice_jid = TestServer.jid(server, "alice")

    {:ok, carol} =
      :xmpp_bridge.connect(%{
        jid: TestServer.jid(server, "carol"),
        password: server.accounts["carol"],
        host: server.host,
        port: server.ports.c2s_plain,
        tls: :plain
      })

    %{id: id} = carol
    assert_receive {:xmpp_bridge, ^id, {:online, %{jid: _}}}, 10_000

    {:ok, seq} = :xmpp_bridge.send(carol, :xmpp_bridge.chat(alice_jid, "hi from Erlang"))
    assert Message.body(wait_for_chat(alice)) == "hi from Erlang"
    assert_receive {:xmpp_bridge, ^id, {:acked, [^seq]}}, 5000

    {:ok, ping} =
      :xmpp_bridge.decode(
        "<iq type='get' id='p1' to='#{server.domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
      )

    assert {:ok, %Iq{type: :result, id: "p1"}} = :xmpp_bridge.iq(carol, ping)

    {:ok, unknown} =
      :xmpp_bridge.decode(
        "<iq type='get' id='q1' to='#{server.domain}'><query xmlns='urn:example:none'/></iq>"
      )

    # bare reasons, not the Elixir exception
    assert {:error, {:iq_error, %Iq{type: :error, id: "q1"}}} =
             :xmpp_bridge.iq(carol, unknown, 2000)

    assert :ok = :xmpp_bridge.close(carol)
    assert_receive {:xmpp_bridge, ^id, {:closed, :normal}}, 5000
    assert {:error, :closed} = :xmpp_bridge.send(carol, :xmpp_bridge.chat(alice_jid, "late"))
    assert {:error, :closed} = :xmpp_bridge.iq(carol, ping)

    Connection.close(alice)
  end

  test "the Erlang facade over STARTTLS, options as a proplist", %{server: server} do
    {:ok, conn} =
      :xmpp_bridge.connect([
        {:jid, TestServer.jid(server, "carol")},
        {:password, server.accounts["carol"]},
        {:host, server.host},
        {:port, server.ports.c2s_starttls},
        {:server_name, server.domain},
        {:ca_file, server.ca_file},
        {:reconnect, %{max_attempts: 0}}
      ])

    %{id: id} = conn
    assert_receive {:xmpp_bridge, ^id, {:online, %{resumed: false}}}, 10_000
    assert :ok = :xmpp_bridge.close(conn)
    assert_receive {:xmpp_bridge, ^id, {:closed, :normal}}, 5000

    {:ok, wrong} =
      :xmpp_bridge.connect(%{
        jid: TestServer.jid(server, "carol"),
        password: "wrong",
        host: server.host,
        port: server.ports.c2s_plain,
        tls: :plain
      })

    %{id: id} = wrong
    assert_receive {:xmpp_bridge, ^id, {:closed, {:auth_failed, _}}}, 10_000
  end
end

defmodule XmppBridge.ClientOptionsTest do
  # Option errors of XmppBridge.Client: no server needed (each is caught
  # before a connection is attempted).
  use ExUnit.Case, async: true

  alias XmppBridge.{Client, Error}
  alias XmppBridge.ClientTest.EchoBot

  @conn_opts [jid: "bot@localhost", password: "pw", host: "127.0.0.1", tls: :plain]

  defp arg(conn_opts), do: %{test: self(), conn_opts: conn_opts}

  test "invalid connection options stop the client with an XmppBridge.Error" do
    Process.flag(:trap_exit, true)

    assert {:error, %Error{reason: {:bad_option, {:password, nil}}}} =
             EchoBot.start_link(arg(jid: "bot@localhost"))

    assert_receive {:EXIT, _, %Error{reason: {:bad_option, {:password, nil}}}}

    assert {:error, %Error{reason: {:bad_option, {:tls, :none}}}} =
             Client.start(EchoBot, arg(Keyword.put(@conn_opts, :tls, :none)))

    assert {:error, %Error{reason: {:bad_option, :oops}}} = Client.start(EchoBot, arg(:oops))
  end

  test "the client owns its session: :owner is refused" do
    assert {:error, %Error{reason: {:bad_option, {:unknown, [:owner]}} = reason}} =
             Client.start(EchoBot, arg(@conn_opts ++ [owner: self()]))

    assert Error.format(reason) == "unknown options: [:owner]"
  end

  test "unknown start options and modules that are not clients raise ArgumentError" do
    assert_raise ArgumentError, ~r/unknown options \[:colour\]/, fn ->
      Client.start_link(EchoBot, arg(@conn_opts), colour: :blue)
    end

    assert_raise ArgumentError, ~r/expected GenServer options as a keyword list/, fn ->
      Client.start(EchoBot, arg(@conn_opts), :name)
    end

    assert_raise ArgumentError, ~r/implements XmppBridge.Client/, fn ->
      Client.start_link(String, arg(@conn_opts))
    end

    assert_raise ArgumentError, ~r/implements XmppBridge.Client/, fn ->
      Client.start_link(NoSuchModule, arg(@conn_opts))
    end
  end

  test "calls to a client that is not running answer :noproc" do
    name = :"no_such_client_#{System.unique_integer([:positive])}"
    message = XmppBridge.Message.chat("alice@localhost", "hi")
    ping = XmppBridge.Iq.get("localhost", %XmppBridge.Payload.Ping{})

    assert {:error, %Error{reason: :noproc}} = Client.send(name, message)
    assert {:error, %Error{reason: :noproc}} = Client.iq(name, ping)
    assert {:error, %Error{reason: :noproc}} = Client.connection(name)
    assert :ok = Client.close(name)
  end

  test "iq/3 takes requests only, with a valid timeout" do
    ping = XmppBridge.Iq.get("localhost", %XmppBridge.Payload.Ping{})

    assert {:error, %Error{reason: {:bad_argument, "only an IQ of type :get or :set" <> _}}} =
             Client.iq(:any, %{ping | type: :result})

    assert {:error, %Error{reason: {:bad_argument, "the timeout" <> _}}} =
             Client.iq(:any, ping, -1)

    assert {:error, %Error{reason: {:bad_argument, "expected an XmppBridge.Iq" <> _}}} =
             Client.iq(:any, XmppBridge.Message.chat("a@localhost", "x"))
  end
end
