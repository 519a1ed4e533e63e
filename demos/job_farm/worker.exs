# A worker of the job farm demo (demos/job_farm.exs) in Elixir: an OS
# process of its own, a bus node that talks to the farm over XMPP alone
# (no Erlang distribution). The same contract as the Rust worker,
# native/xmpp_bridge/examples/job_worker.rs:
#
#   - serves `job(id, n, ms)`: counts the primes up to n, sleeps ms (the
#     rest of the job's work), answers {:done, id, primes, worker};
#   - a term {:job, id, n, ms} sent to it (e.g. stored by the server while
#     it was offline): the same work, answered with a message
#     {:result, id, primes, worker} to the sender; {:welcome, map} is printed;
#   - joins the group (default "jobs") with its status in its presence:
#     text "idle"/"busy", term %{lang: "elixir", slots:, load:, done:};
#   - a broadcast {:farm_done, total}, or the end of stdin: stops cleanly.
#
# Run with the xmpp_bridge application on the code path, e.g.
#   elixir -pa _build/dev/lib/xmpp_bridge/ebin demos/job_farm/worker.exs \
#     --jid ex1@localhost --port 5222 [--host 127.0.0.1] [--group jobs] [--slots 2]
# or, on a cluster, --servers 127.0.0.1:5222,127.0.0.1:6222 instead of --host/--port
# with the password in JOB_WORKER_PASSWORD. Prints a line per event (logs only).

defmodule JobFarm.Worker do
  alias XmppBridge.Bus

  # The server, or the servers of a cluster (tried in turn).
  defp where(opts) do
    case Keyword.fetch(opts, :servers) do
      {:ok, list} -> [servers: String.split(list, ",")]
      :error -> [host: Keyword.get(opts, :host, "127.0.0.1"), port: Keyword.fetch!(opts, :port)]
    end
  end

  def main(argv) do
    {opts, _, _} =
      OptionParser.parse(argv,
        strict: [
          jid: :string,
          host: :string,
          port: :integer,
          servers: :string,
          group: :string,
          slots: :integer
        ]
      )

    jid = Keyword.fetch!(opts, :jid)
    group = Keyword.get(opts, :group, "jobs")
    slots = Keyword.get(opts, :slots, 2)
    name = jid |> String.split("@") |> hd()
    {:ok, _} = Application.ensure_all_started(:xmpp_bridge)

    {:ok, bus} =
      Bus.start_link(
        [
          jid: jid,
          password: System.get_env("JOB_WORKER_PASSWORD", ""),
          tls: :plain,
          receiver: self(),
          heartbeat: 500,
          heartbeat_timeout: 1000,
          max_calls: slots,
          reconnect: [initial: 200, max: 2000]
        ] ++ where(opts)
      )

    :ok = Bus.await_online(bus)
    log("online #{Bus.jid(bus)}")

    # load and done, shared with the handler processes.
    counters = :counters.new(2, [:atomics])

    :ok =
      Bus.serve(bus, "job", fn id, n, ms ->
        {:done, id, run_job(counters, n, ms), name}
      end)

    published = snapshot(counters, slots)
    :ok = Bus.set_status(bus, status(published))
    :ok = Bus.join(bus, group)
    log("joined #{group}")

    me = self()

    spawn_link(fn ->
      # The end of stdin (the demo is gone) stops the worker too.
      _ = IO.read(:stdio, :eof)
      send(me, :stdin_closed)
    end)

    :timer.send_interval(200, :tick)
    loop(%{bus: bus, counters: counters, slots: slots, name: name, published: published})
  end

  defp loop(s) do
    receive do
      :tick ->
        now = snapshot(s.counters, s.slots)
        if now != s.published, do: Bus.set_status(s.bus, status(now))
        loop(%{s | published: now})

      {:xmpp_bridge_bus, :message, from, {:welcome, config}} ->
        log("welcome from #{from}: #{inspect(config)}")
        loop(s)

      {:xmpp_bridge_bus, :message, from, {:job, id, n, ms}} ->
        log("queued job #{id} from #{from}")
        %{bus: bus, counters: counters, name: name} = s

        spawn(fn ->
          primes = run_job(counters, n, ms)
          {:ok, _} = Bus.send(bus, from, {:result, id, primes, name})
        end)

        loop(s)

      {:xmpp_bridge_bus, :group, _group, _from, {:farm_done, total}} ->
        log("farm done (#{total} jobs)")
        stop(s)

      {:xmpp_bridge_bus, :group, _group, from, term} ->
        log("broadcast from #{from}: #{inspect(term)}")
        loop(s)

      :stdin_closed ->
        stop(s)

      other ->
        log("unexpected #{inspect(other)}")
        loop(s)
    end
  end

  defp stop(s) do
    Bus.stop(s.bus)
    log("stopped, #{:counters.get(s.counters, 2)} jobs done")
    System.halt(0)
  end

  defp run_job(counters, n, ms) do
    :counters.add(counters, 1, 1)

    try do
      primes = primes_up_to(n)
      Process.sleep(ms)
      :counters.add(counters, 2, 1)
      primes
    after
      :counters.sub(counters, 1, 1)
    end
  end

  defp snapshot(counters, slots),
    do: %{
      lang: "elixir",
      slots: slots,
      load: :counters.get(counters, 1),
      done: :counters.get(counters, 2)
    }

  defp status(%{load: load} = term),
    do: [text: if(load > 0, do: "busy", else: "idle"), term: term]

  # A sieve of Eratosthenes on an atomics array (1 = composite).
  def primes_up_to(n) when n < 2, do: 0

  def primes_up_to(n) do
    sieve = :atomics.new(n, [])

    Enum.reduce(2..n, 0, fn i, count ->
      if :atomics.get(sieve, i) == 0 do
        mark(sieve, i * i, i, n)
        count + 1
      else
        count
      end
    end)
  end

  defp mark(_sieve, j, _step, n) when j > n, do: :ok

  defp mark(sieve, j, step, n) do
    :atomics.put(sieve, j, 1)
    mark(sieve, j + step, step, n)
  end

  defp log(text), do: IO.puts(text)
end

JobFarm.Worker.main(System.argv())
