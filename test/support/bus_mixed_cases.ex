defmodule XmppBridge.Test.BusMixedCases do
  @moduledoc false
  # The bus across languages, shared by the ejabberd and Prosody modules:
  # BEAM nodes (XmppBridge.Bus in this VM) and Rust nodes (the bus_peer
  # example, each its own OS process), through a private server.
  #
  #     use XmppBridge.Test.BusMixedCases, server: :prosody

  defmacro __using__(opts) do
    quote location: :keep, bind_quoted: [opts: opts] do
      use ExUnit.Case, async: false

      import XmppBridge.Test.XmppCase

      alias XmppBridge.{Bus, Error}
      alias XmppBridge.Bus.UnknownAtom
      alias XmppBridge.Test.{Generators, RustPeer}
      alias XmppTestServer, as: TestServer

      @moduletag :integration
      @moduletag timeout: 300_000

      @server Keyword.fetch!(opts, :server)

      @users ~w(elixa elixb rusta rustb rustc rustd)

      setup_all do
        RustPeer.build!()
        server = TestServer.start!(@server, accounts: @users)
        on_exit(fn -> TestServer.stop(server) end)
        %{server: server}
      end

      defp start_bus(server, user, opts \\ []) do
        opts =
          session_opts(server, user)
          |> Keyword.merge(receiver: self(), heartbeat: 500, heartbeat_timeout: 1000)
          |> Keyword.merge(opts)

        {:ok, bus} = Bus.start_link(opts)
        :ok = Bus.await_online(bus)
        bus
      end

      defp stop_quietly(bus) do
        if Process.alive?(bus), do: Bus.stop(bus)
      catch
        :exit, _ -> :ok
      end

      defp send_until_queued(send) do
        case send.() do
          {:ok, _ref} ->
            :ok

          {:error, %Error{reason: :queue_full}} ->
            Process.sleep(10)
            send_until_queued(send)
        end
      end

      defp event?(name), do: &(&1["event"] == name)
      defp event?(name, id), do: &(&1["event"] == name and &1["id"] == id)

      describe "terms" do
        test "generated terms round-trip Elixir -> Rust -> Elixir unchanged", %{server: server} do
          bus = start_bus(server, "elixa")
          rust = RustPeer.start(server, "rusta", echo: true)

          terms =
            [
              %{"nested" => %{list: [1, [2, [3]]], tuple: {:a, {:b, "c"}}}},
              [2 ** 64, -(2 ** 64), 2 ** 300, -(2 ** 1000), 0, -1, 255, 256],
              [0.0, -0.5, 1.0e300, 3.141592653589793],
              "unicode: héllo ✓ 日本語 🎉",
              <<0, 1, 2, 255>>,
              {:ok, :error, true, false, nil},
              [1 | 2],
              %{1 => :one, "two" => 2, {3} => [3]}
            ] ++ Enum.take(Generators.terms(), 60)

          for t <- terms, do: {:ok, _} = Bus.send(bus, rust.jid, t)

          for t <- terms do
            %{"etf" => b64} = RustPeer.next(rust, event?("message"))
            assert RustPeer.term64(b64) == t, "Rust saw another term"
            assert_receive {:xmpp_bridge_bus, :message, from, echoed}, 5000
            assert from == rust.jid
            assert echoed == t
          end

          report(
            server,
            "bus terms",
            "#{length(terms)} terms Elixir -> Rust -> Elixir, all equal"
          )

          RustPeer.stop(rust)
          stop_quietly(bus)
        end

        test "an unknown atom from Rust arrives safe; the rest of the term arrives", %{
          server: server
        } do
          bus = start_bus(server, "elixa")
          rust = RustPeer.start(server, "rusta")
          name = "rust_made_atom_#{System.unique_integer([:positive])}"
          etf = <<131, 104, 3, 119, 2, "ok", 119, byte_size(name)>> <> name <> <<97, 7>>

          RustPeer.command(rust, %{
            "cmd" => "send",
            "id" => 1,
            "to" => Bus.jid(bus),
            "etf" => Base.encode64(etf),
            "delivery" => "confirmed"
          })

          assert_receive {:xmpp_bridge_bus, :message, _, {:ok, %UnknownAtom{name: ^name}, 7}},
                         5000

          assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
          %{"id" => 1} = RustPeer.next(rust, event?("delivered", 1))

          # A pid is refused at send on the BEAM side.
          assert {:error, %Error{reason: {:not_portable, "pid"}}} =
                   Bus.send(bus, rust.jid, [self()])

          RustPeer.stop(rust)
          stop_quietly(bus)
        end
      end

      describe "flow control" do
        test "a Rust node that does not take its events holds the stream back", %{server: server} do
          bus = start_bus(server, "elixa")
          rust = RustPeer.start(server, "rustc")
          RustPeer.command(rust, %{"cmd" => "hold"})
          RustPeer.command(rust, %{"cmd" => "rss"})
          %{"kb" => before} = RustPeer.next(rust, event?("rss"))

          blob = :binary.copy("x", 2048)
          count = 10_000

          for i <- 1..count do
            send_until_queued(fn -> Bus.send(bus, rust.jid, {:blob, i, blob}) end)
          end

          :ok = Bus.sync(bus, 60_000)
          Process.sleep(1000)
          RustPeer.command(rust, %{"cmd" => "rss"})
          %{"kb" => held} = RustPeer.next(rust, event?("rss"))
          grew = held - before

          RustPeer.command(rust, %{"cmd" => "release"})

          events =
            RustPeer.collect(
              rust,
              &(&1["event"] == "message" and
                  match?({:blob, ^count, _}, RustPeer.term64(&1["etf"]))),
              120_000
            )

          got = Enum.count(events, &(&1["event"] == "message"))

          report(
            server,
            "bus flow control",
            "#{count} x 2 KB (#{div(count * 2, 1024)} MB) to a Rust node taking no events: its RSS grew #{grew} KB; #{got} arrived once released"
          )

          assert got == count
          assert grew < 10_000, "the Rust node's memory grew by #{grew} KB"
          RustPeer.stop(rust)
          stop_quietly(bus)
        end
      end

      describe "JSON" do
        test "Elixir -> Rust as XEP-0335 JSON", %{server: server} do
          bus = start_bus(server, "elixa")
          rust = RustPeer.start(server, "rusta")
          {:ok, _} = Bus.send(bus, rust.jid, %{"n" => [1, 2.5, "x"], "ok" => true}, format: :json)
          event = RustPeer.next(rust, event?("message"))
          assert event["json"] == %{"n" => [1, 2.5, "x"], "ok" => true}
          assert event["from"] == Bus.jid(bus)
          RustPeer.stop(rust)
          stop_quietly(bus)
        end
      end

      describe "RPC" do
        test "Elixir -> Rust: results and every error", %{server: server} do
          bus = start_bus(server, "elixa")
          rust = RustPeer.start(server, "rusta", max_calls: 2)

          assert {:ok, 42} = Bus.call(bus, rust.jid, "add", [40, 2])
          assert Bus.call(bus, rust.jid, "add", [2 ** 64, 2 ** 64]) == {:ok, 2 ** 65}
          assert {:ok, %{"a" => [1, 2.5]}} = Bus.call(bus, rust.jid, "echo", [%{"a" => [1, 2.5]}])

          assert {:error, %Error{reason: {:no_method, "nope"}}} =
                   Bus.call(bus, rust.jid, "nope", [])

          assert {:error, %Error{reason: {:crashed, detail}}} =
                   Bus.call(bus, rust.jid, "crash", [])

          assert detail =~ "boom"
          assert {:ok, 3} = Bus.call(bus, rust.jid, "add", [1, 2]), "the Rust node keeps serving"

          assert {:error, %Error{reason: :timeout}} =
                   Bus.call(bus, rust.jid, "sleep", [5000], 300)

          # The timed-out call's slot is free once the peer's own deadline
          # (counted from when the request arrived) has passed too.
          Process.sleep(200)

          slow =
            for _ <- 1..2,
                do: Task.async(fn -> Bus.call(bus, rust.jid, "sleep", [2500], 5000) end)

          # Once both run (the peer tells no one when), a third is refused.
          busy =
            Enum.find_value(1..20, fn _ ->
              Process.sleep(100)
              match?({:error, %Error{reason: :busy}}, Bus.call(bus, rust.jid, "add", [1, 1]))
            end)

          assert busy, "no call was refused while two slow ones ran at max_calls 2"
          assert Enum.map(slow, &Task.await/1) == [{:ok, :ok}, {:ok, :ok}]

          t0 = System.monotonic_time(:millisecond)

          assert {:error, %Error{reason: {:peer_unavailable, _}}} =
                   Bus.call(bus, TestServer.jid(server, "rustd"), "add", [1, 2], 10_000)

          assert System.monotonic_time(:millisecond) - t0 < 3000

          times = rtts(fn i -> {:ok, _} = Bus.call(bus, rust.jid, "add", [i, 1]) end)
          report(server, "bus rpc", "Elixir->Rust 200 calls: #{pcts(times)}")
          RustPeer.stop(rust)
          stop_quietly(bus)
        end

        test "Rust -> Elixir and Rust -> Rust", %{server: server} do
          bus =
            start_bus(server, "elixa",
              handlers: %{"mul" => fn a, b -> a * b end, "boom" => fn -> exit(:oops) end}
            )

          ra = RustPeer.start(server, "rusta")
          rb = RustPeer.start(server, "rustb")
          me = Bus.jid(bus)

          call = fn peer, id, to, method, args, timeout ->
            RustPeer.command(peer, %{
              "cmd" => "call",
              "id" => id,
              "to" => to,
              "method" => method,
              "args_etf" => RustPeer.etf64(args),
              "timeout_ms" => timeout
            })

            RustPeer.next(peer, &(&1["id"] == id and &1["event"] in ["result", "error"]))
          end

          assert %{"event" => "result", "etf" => r} = call.(ra, 1, me, "mul", [6, 7], 5000)
          assert RustPeer.term64(r) == 42
          assert %{"reason" => "no_method"} = call.(ra, 2, me, "div", [], 5000)
          assert %{"reason" => "crashed"} = call.(ra, 3, me, "boom", [], 5000)

          assert %{"event" => "result", "etf" => r} = call.(ra, 4, rb.jid, "add", [1, 2, 3], 5000)
          assert RustPeer.term64(r) == 6
          assert %{"reason" => "crashed"} = call.(ra, 5, rb.jid, "crash", [], 5000)
          assert %{"reason" => "timeout"} = call.(ra, 6, rb.jid, "sleep", [3000], 300)

          assert %{"reason" => "peer_unavailable"} =
                   call.(ra, 7, TestServer.jid(server, "rustd") <> "/bus", "add", [1], 5000)

          Enum.each([ra, rb], &RustPeer.stop/1)
          stop_quietly(bus)
        end
      end

      describe "monitors" do
        test "a Rust node killed -9, stopped with SIGSTOP, stopped cleanly, restarted at once", %{
          server: server
        } do
          bus = start_bus(server, "elixa", heartbeat: 500, heartbeat_timeout: 1000)

          # kill -9: the server keeps the session for resumption; the heartbeat decides.
          rust = RustPeer.start(server, "rustc")
          ref = Bus.monitor(bus, rust.jid)
          Process.sleep(500)
          t0 = System.monotonic_time(:millisecond)
          RustPeer.kill(rust)
          assert_receive {:DOWN, ^ref, :bus_node, _, reason}, 5000
          killed_ms = System.monotonic_time(:millisecond) - t0
          assert reason in [:heartbeat_timeout, :noconnection]

          # SIGSTOP: the TCP connection stays up, nothing answers.
          rust = RustPeer.start(server, "rustc")
          ref = Bus.monitor(bus, rust.jid)
          Process.sleep(500)
          t0 = System.monotonic_time(:millisecond)
          RustPeer.signal(rust, "STOP")
          assert_receive {:DOWN, ^ref, :bus_node, _, :heartbeat_timeout}, 5000
          stopped_ms = System.monotonic_time(:millisecond) - t0
          RustPeer.signal(rust, "CONT")
          RustPeer.kill(rust)

          # A clean stop says goodbye.
          rust = RustPeer.start(server, "rustc")
          ref = Bus.monitor(bus, rust.jid)
          Process.sleep(500)
          RustPeer.stop(rust)
          assert_receive {:DOWN, ^ref, :bus_node, _, :shutdown}, 3000

          # Killed and restarted at once under the same JID.
          rust = RustPeer.start(server, "rustc")
          ref = Bus.monitor(bus, rust.jid)
          Process.sleep(500)
          RustPeer.kill(rust)
          rust2 = RustPeer.start(server, "rustc")
          assert rust2.incarnation != rust.incarnation
          assert_receive {:DOWN, ^ref, :bus_node, _, reason}, 5000
          assert reason in [:restarted, :noconnection, :heartbeat_timeout]

          report(
            server,
            "bus monitor",
            "heartbeat 500 ms + timeout 1000 ms: kill -9 seen in #{killed_ms} ms, SIGSTOP in #{stopped_ms} ms; restart: #{reason}"
          )

          RustPeer.stop(rust2)
          stop_quietly(bus)
        end

        test "a BEAM node watched from Rust, and demonitor", %{server: server} do
          bus = start_bus(server, "elixb")
          rust = RustPeer.start(server, "rusta")
          me = Bus.jid(bus)

          RustPeer.command(rust, %{"cmd" => "monitor", "id" => 1, "jid" => me})
          RustPeer.command(rust, %{"cmd" => "monitor", "id" => 2, "jid" => me})
          RustPeer.command(rust, %{"cmd" => "demonitor", "id" => 2})
          Process.sleep(500)
          stop_quietly(bus)
          assert %{"id" => 1, "reason" => "shutdown"} = RustPeer.next(rust, event?("down"), 5000)

          # Not online when monitored: at once.
          RustPeer.command(rust, %{
            "cmd" => "monitor",
            "id" => 3,
            "jid" => TestServer.jid(server, "rustd")
          })

          assert %{"id" => 3, "reason" => "noconnection"} =
                   RustPeer.next(rust, event?("down"), 5000)

          RustPeer.stop(rust)
        end
      end

      describe "offline queues" do
        test "1,000 terms to a stopped Rust node arrive in order, once, with 1,000 receipts", %{
          server: server
        } do
          bus = start_bus(server, "elixa")
          rust = RustPeer.start(server, "rustb")
          jid = rust.jid
          RustPeer.stop(rust)
          Process.sleep(300)

          refs =
            for i <- 1..1000,
                do:
                  elem(
                    Bus.send(bus, jid, {:queued, i}, delivery: :confirmed, deadline: 120_000),
                    1
                  )

          # All stored on the server before the node comes back.
          :ok = Bus.sync(bus, 30_000)
          refute_receive {:xmpp_bridge_bus, :delivered, _, _}, 500

          rust = RustPeer.start(server, "rustb")

          events =
            RustPeer.collect(
              rust,
              &(&1["event"] == "message" and RustPeer.term64(&1["etf"]) == {:queued, 1000}),
              60_000
            )

          got =
            for %{"event" => "message", "etf" => b64} <- events, do: elem(RustPeer.term64(b64), 1)

          assert got == Enum.to_list(1..1000)

          delivered =
            for ref <- refs,
                do:
                  (
                    assert_receive({:xmpp_bridge_bus, :delivered, ^ref, _}, 30_000)
                    ref
                  )

          report(
            server,
            "bus offline",
            "1000 terms queued offline: #{length(got)} arrived in order, #{length(delivered)} receipts"
          )

          refute_receive {:xmpp_bridge_bus, :failed, _, _}, 200
          RustPeer.stop(rust)
          stop_quietly(bus)
        end
      end

      describe "the blocking Rust API" do
        test "a plain threaded program sends and calls", %{server: server} do
          bus = start_bus(server, "elixa", handlers: %{"echo" => fn x -> x end})

          {out, status} =
            System.cmd(RustPeer.binary("bus_blocking"), [
              "--jid",
              TestServer.jid(server, "rustd"),
              "--password",
              "rustd-secret",
              "--host",
              server.host,
              "--port",
              Integer.to_string(server.ports.c2s_plain),
              "--to",
              Bus.jid(bus)
            ])

          assert status == 0, out
          assert_receive {:xmpp_bridge_bus, :message, _, {:hello, "from blocking rust"}}, 5000
          assert out =~ ~s("event":"result")
          stop_quietly(bus)
        end
      end

      defp rtts(fun) do
        for i <- 1..200 do
          t = System.monotonic_time(:microsecond)
          fun.(i)
          System.monotonic_time(:microsecond) - t
        end
        |> Enum.sort()
      end

      defp pcts(sorted), do: "p50 #{Enum.at(sorted, 100)} µs, p99 #{Enum.at(sorted, 198)} µs"
    end
  end
end
