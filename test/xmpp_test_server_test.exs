defmodule XmppTestServerTest do
  # Checks the private server harness with a real XMPP exchange against each
  # server. The client is a deliberately tiny hand-rolled one (regexes over
  # the byte stream), just enough to prove the servers are usable: the real
  # client is XmppBridge's connection layer.
  use ExUnit.Case, async: true

  alias XmppTestServer, as: TestServer
  alias XmppTestServer.TLS

  @moduletag :integration
  @moduletag timeout: 180_000

  @kinds [:ejabberd, :prosody]

  defmodule Wire do
    @moduledoc false
    # A tiny XMPP client over :gen_tcp or :ssl, for this test only.

    defstruct [:transport, :socket, buffer: ""]

    @ns_stream "http://etherx.jabber.org/streams"

    def connect(port) do
      {:ok, socket} =
        :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, nodelay: true], 5_000)

      %__MODULE__{transport: :gen_tcp, socket: socket}
    end

    def send!(%{transport: t, socket: s} = c, data) do
      :ok = t.send(s, data)
      c
    end

    # Reads until `regex` matches the buffer; returns the captures and
    # keeps what follows the match.
    def await(c, regex, timeout \\ 5_000) do
      deadline = System.monotonic_time(:millisecond) + timeout
      do_await(c, regex, deadline)
    end

    defp do_await(c, regex, deadline) do
      case Regex.run(regex, c.buffer, return: :index) do
        [{start, len} | _] = indexes ->
          captures =
            for {s, l} <- indexes, do: if(s < 0, do: nil, else: binary_part(c.buffer, s, l))

          rest = binary_part(c.buffer, start + len, byte_size(c.buffer) - start - len)
          {%{c | buffer: rest}, captures}

        nil ->
          left = deadline - System.monotonic_time(:millisecond)

          if left <= 0 do
            raise "timeout waiting for #{inspect(regex)}; have #{inspect(c.buffer)}"
          end

          case c.transport.recv(c.socket, 0, left) do
            {:ok, data} ->
              do_await(%{c | buffer: c.buffer <> data}, regex, deadline)

            {:error, reason} ->
              raise "recv failed (#{inspect(reason)}) waiting for #{inspect(regex)}; " <>
                      "have #{inspect(c.buffer)}"
          end
      end
    end

    # Opens a client stream; returns the features element.
    def open_stream(c, domain, ns \\ "jabber:client") do
      c =
        send!(
          c,
          "<?xml version='1.0'?><stream:stream to='#{domain}' version='1.0' " <>
            "xmlns='#{ns}' xmlns:stream='#{@ns_stream}'>"
        )

      {c, [header]} = await(c, ~r/<stream:stream\b[^>]*>/)

      {c, [features]} =
        await(c, ~r/<stream:features\b.*?<\/stream:features>|<stream:features\/>/s)

      {c, header, features}
    end

    def starttls(c, ssl_opts) do
      c = send!(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
      {c, _} = await(c, ~r/<proceed\b[^>]*\/>/)
      "" = c.buffer

      case :ssl.connect(c.socket, ssl_opts, 5_000) do
        {:ok, tls} -> {:ok, %{c | transport: :ssl, socket: tls}}
        {:error, reason} -> {:error, reason}
      end
    end

    def auth_plain(c, user, password) do
      payload = Base.encode64(<<0, user::binary, 0, password::binary>>)

      c =
        send!(
          c,
          "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>#{payload}</auth>"
        )

      {c, [result]} =
        await(c, ~r/<success\b[^>]*\/>|<success\b.*?<\/success>|<failure\b.*?<\/failure>/s)

      {c, result}
    end

    def bind(c, resource) do
      c =
        send!(
          c,
          "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" <>
            "<resource>#{resource}</resource></bind></iq>"
        )

      {c, [_, jid]} = await(c, ~r/<jid>([^<]+)<\/jid>/)
      {c, jid}
    end

    # Login over the plaintext listener: stream, SASL PLAIN, new stream, bind.
    def login(server, user, password, resource \\ "wire") do
      c = connect(server.ports.c2s_plain)
      {c, _, features} = open_stream(c, server.domain)
      true = features =~ "<mechanism>PLAIN</mechanism>"
      {c, "<success" <> _} = auth_plain(c, user, password)
      {c, _, features} = open_stream(c, server.domain)
      true = features =~ "urn:ietf:params:xml:ns:xmpp-bind"
      bind(c, resource)
    end

    # Round trip to the server: everything sent before is processed.
    def sync(c, domain) do
      id = "sync#{System.unique_integer([:positive])}"
      c = send!(c, "<iq type='get' id='#{id}' to='#{domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
      {c, _} = await(c, ~r/<iq\b[^>]*id=['"]#{id}['"][^>]*>/)
      c
    end

    def close(%{transport: t, socket: s} = c) do
      _ = t.send(s, "</stream:stream>")
      t.close(s)
      c
    end
  end

  setup_all do
    {:ok, _} = Application.ensure_all_started(:ssl)

    # Both servers start concurrently; the setup_all process owns them, so
    # they stop when this module's tests are done.
    owner = self()

    servers =
      @kinds
      |> Enum.map(fn kind ->
        Task.async(fn ->
          {kind,
           TestServer.start!(kind,
             owner: owner,
             accounts: [{"alice", "alice-pw"}, {"bob", "bob-pw"}]
           )}
        end)
      end)
      |> Task.await_many(60_000)
      |> Map.new()

    on_exit(fn -> Enum.each(servers, fn {_, s} -> TestServer.stop(s) end) end)
    %{servers: servers}
  end

  for kind <- @kinds do
    describe "#{kind}" do
      @describetag kind: kind

      test "starts with the documented shape", %{servers: servers, kind: kind} do
        server = servers[kind]
        assert %TestServer{kind: ^kind, domain: "localhost", host: "127.0.0.1"} = server
        assert server.muc_domain == "conference.localhost"
        assert server.component_domain == "bridge.localhost"
        assert server.accounts == %{"alice" => "alice-pw", "bob" => "bob-pw"}
        assert File.regular?(server.ca_file)
        assert TestServer.alive?(server)
        assert TestServer.jid(server, "alice") == "alice@localhost"

        ports = Map.values(server.ports)
        assert length(Enum.uniq(ports)) == 3

        IO.puts(
          "\n#{kind}: started in #{server.started_in_ms} ms, ports #{inspect(server.ports)}"
        )
      end

      test "plaintext listener: SASL PLAIN, bind, a message from alice to bob",
           %{servers: servers, kind: kind} do
        server = servers[kind]
        {bob, bob_jid} = Wire.login(server, "bob", "bob-pw", "phone")
        assert bob_jid == "bob@localhost/phone"
        bob = bob |> Wire.send!("<presence/>") |> Wire.sync(server.domain)

        {alice, alice_jid} = Wire.login(server, "alice", "alice-pw", "laptop")
        assert alice_jid == "alice@localhost/laptop"

        Wire.send!(
          alice,
          "<message to='bob@localhost' type='chat' id='m1'><body>hello from alice</body></message>"
        )

        {bob, [_, attrs]} =
          Wire.await(
            bob,
            ~r/<message\b([^>]*)>(?:(?!<\/message>).)*<body>hello from alice<\/body>/s
          )

        assert attrs =~ ~r/from=['"]alice@localhost\/laptop['"]/,
               "#{kind} message attrs: #{attrs}"

        Wire.close(alice)
        Wire.close(bob)
      end

      test "a wrong password fails SASL", %{servers: servers, kind: kind} do
        server = servers[kind]
        c = Wire.connect(server.ports.c2s_plain)
        {c, _, _} = Wire.open_stream(c, server.domain)
        {c, result} = Wire.auth_plain(c, "alice", "wrong")
        assert result =~ "not-authorized"
        Wire.close(c)
      end

      test "STARTTLS listener: TLS required, verified with the run's CA",
           %{servers: servers, kind: kind} do
        server = servers[kind]
        c = Wire.connect(server.ports.c2s_starttls)
        {c, _, features} = Wire.open_stream(c, server.domain)
        assert features =~ ~r/<starttls\b[^>]*>\s*<required\s*\/>/, features
        refute features =~ "<mechanism>PLAIN</mechanism>"

        ssl_opts = [
          verify: :verify_peer,
          cacertfile: String.to_charlist(server.ca_file),
          server_name_indication: String.to_charlist(server.domain),
          active: false,
          mode: :binary
        ]

        {:ok, c} = Wire.starttls(c, ssl_opts)
        {c, _, features} = Wire.open_stream(c, server.domain)
        assert features =~ "<mechanism>PLAIN</mechanism>"
        {c, result} = Wire.auth_plain(c, "alice", "alice-pw")
        assert result =~ "<success"
        {c, _, _} = Wire.open_stream(c, server.domain)
        {c, jid} = Wire.bind(c, "tls")
        assert jid == "alice@localhost/tls"
        Wire.close(c)
      end

      test "STARTTLS with another CA fails verification", %{servers: servers, kind: kind} do
        server = servers[kind]
        dir = Path.join(System.tmp_dir!(), "xb-other-ca-#{System.unique_integer([:positive])}")
        on_exit(fn -> File.rm_rf(dir) end)
        {:ok, other} = TLS.generate(dir, ["localhost"], "other")

        c = Wire.connect(server.ports.c2s_starttls)
        {c, _, _} = Wire.open_stream(c, server.domain)

        assert {:error, {:tls_alert, {:unknown_ca, _}}} =
                 Wire.starttls(c,
                   verify: :verify_peer,
                   cacertfile: String.to_charlist(other.ca_file),
                   server_name_indication: ~c"localhost",
                   log_level: :none
                 )
      end

      test "component listener: XEP-0114 handshake and routing both ways",
           %{servers: servers, kind: kind} do
        server = servers[kind]
        comp = Wire.connect(server.ports.component)

        comp =
          Wire.send!(
            comp,
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' " <>
              "xmlns:stream='http://etherx.jabber.org/streams' to='#{server.component_domain}'>"
          )

        {comp, [header]} = Wire.await(comp, ~r/<stream:stream\b[^>]*>/)
        [_, stream_id] = Regex.run(~r/\sid=['"]([^'"]+)['"]/, header)

        digest =
          :crypto.hash(:sha, stream_id <> server.component_secret)
          |> Base.encode16(case: :lower)

        comp = Wire.send!(comp, "<handshake>#{digest}</handshake>")
        {comp, _} = Wire.await(comp, ~r/<handshake\s*\/>|<handshake><\/handshake>/)

        {alice, _} = Wire.login(server, "alice", "alice-pw", "comp-test")

        Wire.send!(
          alice,
          "<message to='echo@bridge.localhost' type='chat'><body>to the component</body></message>"
        )

        {comp, [_, attrs]} =
          Wire.await(
            comp,
            ~r/<message\b([^>]*)>(?:(?!<\/message>).)*<body>to the component<\/body>/s
          )

        assert attrs =~ ~r/from=['"]alice@localhost\/comp-test['"]/

        Wire.send!(
          comp,
          "<message from='echo@bridge.localhost' to='alice@localhost/comp-test' type='chat'>" <>
            "<body>from the component</body></message>"
        )

        {alice, [_, attrs]} =
          Wire.await(
            alice,
            ~r/<message\b([^>]*)>(?:(?!<\/message>).)*<body>from the component<\/body>/s
          )

        assert attrs =~ ~r/from=['"]echo@bridge.localhost['"]/

        # a wrong secret is refused
        bad = Wire.connect(server.ports.component)

        bad =
          Wire.send!(
            bad,
            "<stream:stream xmlns='jabber:component:accept' " <>
              "xmlns:stream='http://etherx.jabber.org/streams' to='#{server.component_domain}'>"
          )

        {bad, _} = Wire.await(bad, ~r/<stream:stream\b[^>]*>/)
        bad = Wire.send!(bad, "<handshake>#{String.duplicate("0", 40)}</handshake>")
        {bad, _} = Wire.await(bad, ~r/not-authorized/)

        Enum.each([comp, alice, bad], &Wire.close/1)
      end

      test "register/3 adds an account usable at once, and resets a password",
           %{servers: servers, kind: kind} do
        server = servers[kind]
        user = "carol#{System.unique_integer([:positive])}"
        assert :ok = TestServer.register(server, user, "first")
        assert :ok = TestServer.register(server, user, "second")
        {c, jid} = Wire.login(server, user, "second")
        assert jid == "#{user}@localhost/wire"
        Wire.close(c)
      end

      test "kill -9, restart (accounts survive), stop: no OS process left",
           %{kind: kind} do
        {:ok, server} = TestServer.start(kind, accounts: [{"dave", "dave-pw"}])
        on_exit(fn -> TestServer.stop(server) end)
        os_pid = server.os_pid
        {c, _} = Wire.login(server, "dave", "dave-pw")

        assert :ok = TestServer.kill(server)
        refute TestServer.os_pid_alive?(os_pid)
        refute TestServer.alive?(server)
        assert {:error, reason} = c.transport.recv(c.socket, 0, 5_000)
        assert reason in [:closed, :econnreset]

        {:ok, server} = TestServer.restart(server)
        assert server.os_pid != os_pid
        assert TestServer.alive?(server)
        IO.puts("\n#{kind}: restarted in #{server.started_in_ms} ms")
        {c, jid} = Wire.login(server, "dave", "dave-pw")
        assert jid == "dave@localhost/wire"
        Wire.close(c)

        assert :ok = TestServer.stop(server)
        refute TestServer.os_pid_alive?(server.os_pid)
        refute File.exists?(server.dir)
        refute Process.alive?(server.pid)
        assert :ok = TestServer.stop(server)
        refute Enum.any?(Map.values(server.ports), &accepts?/1)
      end

      test "the server goes when its owner exits, and when its keeper is killed",
           %{kind: kind} do
        # owner exits: the keeper stops the server gracefully
        parent = self()

        owner =
          spawn(fn ->
            send(parent, {:started, TestServer.start!(kind)})
            receive do: (:exit -> :ok)
          end)

        assert_receive {:started, server}, 60_000
        ref = Process.monitor(server.pid)
        send(owner, :exit)
        assert_receive {:DOWN, ^ref, :process, _, _}, 30_000
        refute TestServer.os_pid_alive?(server.os_pid)
        refute File.exists?(server.dir)

        # keeper killed (as when the VM dies): the watchdog kills the server
        # by its OS pid and removes the dir
        server = TestServer.start!(kind, owner: nil)
        Process.exit(server.pid, :kill)
        assert wait_until(fn -> not TestServer.os_pid_alive?(server.os_pid) end, 10_000)
        assert wait_until(fn -> not File.exists?(server.dir) end, 10_000)
      end
    end
  end

  test "start/2 rejects bad options" do
    assert {:error, {:bad_option, _}} = TestServer.start(:ejabberd, bogus: 1)
    assert {:error, {:bad_option, _}} = TestServer.start(:prosody, domain: "not a domain")
    assert {:error, {:bad_option, _}} = TestServer.start(:prosody, accounts: [:alice])
  end

  defp accepts?(port) do
    case :gen_tcp.connect({127, 0, 0, 1}, port, [], 500) do
      {:ok, s} ->
        :gen_tcp.close(s)
        true

      {:error, _} ->
        false
    end
  end

  defp wait_until(fun, timeout) do
    cond do
      fun.() ->
        true

      timeout <= 0 ->
        false

      true ->
        Process.sleep(50)
        wait_until(fun, timeout - 50)
    end
  end
end
