defmodule XmppBridge.JobFarmSlixmppTest do
  # An ordinary XMPP client in the job farm demo (README "The job farm
  # demo"): demos/job_farm.exs runs as users run it (`mix run`, an OS
  # process with its own ejabberd, coordinator and workers) with
  # JOB_FARM_GUEST, which adds an account for a guest. slixmpp
  # (test/support/slixmpp_peer.py, which knows nothing of xmpp_bridge but
  # docs/PROTOCOL.md) logs in with it, joins the group's room, reads what
  # the coordinator posts there as plain text, and submits jobs by RPC with
  # JSON arguments (§5.3); the test counts the primes itself. Every wait is
  # on a line of the demo or an event of slixmpp, none on the clock.
  use ExUnit.Case, async: false

  alias XmppBridge.Payload.Json

  @moduletag :integration
  @moduletag timeout: 300_000

  @root Path.expand("../..", __DIR__)
  @venv System.get_env("XMPP_BRIDGE_VENV", "/var/tmp/xmpp_bridge-venv")
  @script Path.expand("../support/slixmpp_peer.py", __DIR__)
  @guest {"guest", "guest-pw"}

  test "slixmpp joins the job farm's group, reads its progress and submits jobs with JSON" do
    python = Path.join([@venv, "bin", "python"])

    unless File.exists?(python),
      do: raise("no slixmpp venv at #{@venv}: run scripts/install-deps.sh")

    {_, 0} =
      System.cmd("cargo", ~w(build --release -q -p xmpp_bridge --example job_worker),
        cd: @root,
        stderr_to_stdout: true
      )

    farm = start_farm()

    # The farm says where to go and waits for the guest.
    [_, jid, pw, host, port, room, coord] =
      farm_line(
        farm,
        ~r/guest: log in as (\S+) \(password (\S+)\) on ([\d.]+):(\d+) \(plaintext\), join the room (\S+), call submit on (\S+); waiting/
      )

    assert room == "jobs@conference.localhost"
    assert jid == "guest@localhost"
    slix = start_slix(python, jid, pw, host, port)

    # An ordinary nickname: bus nodes use their JIDs, a client any name.
    command(slix, %{"cmd" => "join", "id" => 1, "room" => room, "nick" => "guest (slixmpp)"})
    assert %{"event" => "joined", "created" => false} = next(slix, &(&1["id"] == 1))
    farm_line(farm, ~r/guest guest@localhost\/\S+ joined jobs$/)

    # What the coordinator posts, as any client shows it: its <body/>
    # (a string term's body is the text in quotes), no JSON payload.
    {before, progress} = posts_until(slix, coord, ~r/^progress: /)
    assert [first | _] = before
    assert first =~ ~r/^batch 1: jobs 11\.\.60 queued, \d workers? online \(\d+ slots\)$/

    assert [_, done, total, pct] =
             Regex.run(
               ~r/^progress: (\d+)\/(\d+) jobs done \((\d+)%\), \d workers? online, [\d.]+ s$/,
               progress
             )

    assert total == "400" and String.to_integer(pct) >= 10 and String.to_integer(done) >= 40

    # Bad arguments: a clear answer, no job.
    command(slix, call(2, coord, [%{"n" => "many"}]))

    assert %{
             "event" => "result",
             "json" => %{"error" => "n must be an integer from 2 to 1000000, got \"many\""}
           } = next(slix, &(&1["id"] == 2))

    command(slix, call(3, coord, [1, 2]))
    assert %{"event" => "error", "bus" => "crashed"} = next(slix, &(&1["id"] == 3))

    # Two jobs, queued like the others; each answer is checked here.
    command(slix, call(4, coord, [%{"n" => 5000, "ms" => 100}]))
    command(slix, call(5, coord, [%{"n" => 123_457}]))
    a = next(slix, &(&1["id"] == 4), 40_000)
    b = next(slix, &(&1["id"] == 5), 40_000)

    for {answer, n, ms} <- [{a, 5000, 100}, {b, 123_457, 0}] do
      assert %{"event" => "result", "json" => %{"id" => id, "n" => ^n, "ms" => ^ms} = json} =
               answer

      assert id in [401, 402]
      assert json["primes"] == primes_up_to(n)
      assert json["worker"] =~ ~r/^(ex|rs)\d@localhost\/\S+$/
    end

    assert a["json"]["primes"] == 669
    assert Enum.sort([a["json"]["id"], b["json"]["id"]]) == [401, 402]

    # The rest of the run as the room shows it, to the end.
    {rest, farm_done} = posts_until(slix, coord, ~r/^workers: stop now/)
    assert farm_done == "workers: stop now (farm_done, 402 jobs)"

    assert Enum.any?(
             rest,
             &(&1 =~
                 ~r/^job 40[12] submitted by RPC: count the primes up to 5000, then 100 ms; queued$/)
           )

    assert Enum.count(
             rest,
             &(&1 =~
                 ~r/^job 40[12] \(submitted\) done by (ex|rs)\d@localhost\/\S+: \d+ primes up to \d+$/)
           ) == 2

    assert Enum.any?(rest, &(&1 =~ ~r/^progress: 402\/402 jobs done \(100%\)/))
    assert Enum.any?(rest, &(&1 =~ ~r/^rs2 is down \(\w+\): its jobs .+ go to the others$/))

    assert List.last(rest) ==
             "the farm is done: 402 of 402 jobs answered, 0 done twice, 0 wrong; the workers stop now"

    # Every post is one line of bare text (no quotes, no Elixir syntax).
    for body <- before ++ [progress | rest] ++ [farm_done],
        do: assert(body =~ ~r/^[^"{}\n]+$/, body)

    {output, status} = farm_exit(farm)
    assert status == 0, "the demo exited with #{inspect(status)}:\n#{output}"
    assert output =~ ~r/^jobs: +402 \(402 answered\), 0 lost, 0 done twice, 0 wrong$/m, output

    assert output =~
             ~r/^submitted: +2 by RPC: job 401 \(n \d+\) by \w+, answered in \d+ ms; job 402/m,
           output

    assert output =~ "result:         OK, every job done exactly once", output

    command(slix, %{"cmd" => "stop"})
    assert %{"event" => "stopped"} = next(slix, &(&1["event"] == "stopped"))

    summary = output |> String.split("== Summary\n") |> List.last()

    IO.puts(
      "\n[job farm + slixmpp] seen in the room: #{length(before) + length(rest) + 2} posts; summary:\n" <>
        summary
    )
  end

  # ------------------------------------------------------------ the farm

  defp start_farm do
    mix = System.find_executable("mix") || flunk("mix not on PATH")
    {user, pw} = @guest

    port =
      Port.open({:spawn_executable, mix}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 65_536},
        args: ["run", "demos/job_farm.exs"],
        cd: @root,
        env: [
          {~c"MIX_ENV", ~c"test"},
          {~c"JOB_FARM_PLAIN", ~c"1"},
          {~c"JOB_FARM_GUEST", String.to_charlist("#{user}:#{pw}")},
          {~c"ELIXIR_ERL_OPTIONS", ~c"+fnu +sbwt none +sbwtdcpu none +sbwtdio none"}
        ]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    on_exit(fn ->
      System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end)

    Process.put(:farm_lines, [])
    Process.put(:farm_port, port)
    port
  end

  # The next line of the demo matching `re` (its captures); the lines read
  # are kept for farm_exit/1.
  defp farm_line(port, re, timeout \\ 120_000) do
    case read_farm(port, timeout) do
      {:line, line} ->
        case Regex.run(re, line) do
          nil -> farm_line(port, re, timeout)
          captures -> captures
        end

      {:exit, status} ->
        flunk("the demo exited (#{inspect(status)}) before #{inspect(re)}:\n#{farm_output()}")
    end
  end

  defp farm_exit(port) do
    case read_farm(port, 120_000) do
      {:line, _} -> farm_exit(port)
      {:exit, status} -> {farm_output(), status}
    end
  end

  defp read_farm(port, timeout, flunk? \\ true) do
    receive do
      {^port, {:data, {:eol, chunk}}} ->
        line = IO.iodata_to_binary([Process.get(:farm_partial, "") | chunk])
        Process.put(:farm_partial, "")
        Process.put(:farm_lines, [line | Process.get(:farm_lines)])
        {:line, line}

      {^port, {:data, {:noeol, chunk}}} ->
        Process.put(:farm_partial, Process.get(:farm_partial, "") <> chunk)
        read_farm(port, timeout, flunk?)

      {^port, {:exit_status, status}} ->
        {:exit, status}
    after
      timeout ->
        if flunk?,
          do: flunk("nothing from the demo within #{timeout} ms:\n#{farm_output()}"),
          else: :nothing
    end
  end

  # What the demo printed, also the lines nobody waited for yet.
  defp unread_farm do
    case read_farm(Process.get(:farm_port), 0, false) do
      {:line, _} -> unread_farm()
      _ -> farm_output()
    end
  end

  defp farm_output, do: Process.get(:farm_lines) |> Enum.reverse() |> Enum.join("\n")

  # ------------------------------------------------------------ slixmpp

  defp start_slix(python, jid, pw, host, port) do
    args = [
      @script,
      "--jid",
      jid,
      "--password",
      pw,
      "--host",
      host,
      "--port",
      port,
      "--tls",
      "plain"
    ]

    slix =
      Port.open({:spawn_executable, python}, [
        :binary,
        :exit_status,
        {:line, 1_048_576},
        args: args
      ])

    {:os_pid, os_pid} = Port.info(slix, :os_pid)

    on_exit(fn ->
      System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end)

    %{"jid" => _} = next(slix, &(&1["event"] == "online"), 20_000)
    slix
  end

  defp call(id, to, args),
    do: %{
      "cmd" => "call",
      "id" => id,
      "to" => to,
      "method" => "submit",
      "args" => args,
      "timeout" => 30_000
    }

  defp command(slix, cmd) do
    {:ok, %Json{json: json}} = Json.from_term(cmd)
    true = Port.command(slix, json <> "\n")
  end

  # The next event of slixmpp matching `match?`, the events passed over
  # kept for later calls (answers come in any order); groupchat messages
  # are kept apart, in order, for posts_until/3.
  defp next(slix, match?, timeout \\ 20_000) do
    kept = Process.get(:kept, [])

    case Enum.split_while(kept, &(not match?.(&1))) do
      {before, [event | after_]} ->
        Process.put(:kept, before ++ after_)
        event

      {_, []} ->
        receive do
          {^slix, {:data, {:eol, line}}} ->
            {:ok, event} = Json.to_term(%Json{json: line})

            cond do
              event["event"] == "groupchat" ->
                Process.put(:posts, [event | Process.get(:posts, [])])
                if match?.(event), do: event, else: next(slix, match?, timeout)

              match?.(event) ->
                event

              true ->
                Process.put(:kept, kept ++ [event])
                next(slix, match?, timeout)
            end

          {^slix, {:exit_status, status}} ->
            flunk("slixmpp_peer exited with status #{status}")
        after
          timeout ->
            flunk(
              "no matching event from slixmpp_peer within #{timeout} ms; the demo said:\n" <>
                unread_farm()
            )
        end
    end
  end

  # The bodies the coordinator (nickname: its JID) posted since the last
  # call, up to the first matching `re`: {bodies before it, it}. None has
  # a <json/> payload.
  defp posts_until(slix, coord, re) do
    case take_post(coord) do
      nil ->
        next(slix, &(&1["event"] == "groupchat"), 60_000)
        posts_until(slix, coord, re)

      body ->
        if body =~ re do
          {[], body}
        else
          {before, hit} = posts_until(slix, coord, re)
          {[body | before], hit}
        end
    end
  end

  defp take_post(coord) do
    case Enum.reverse(Process.get(:posts, [])) do
      [] ->
        nil

      [post | rest] ->
        Process.put(:posts, Enum.reverse(rest))

        if post["nick"] == coord do
          assert %{"room" => "jobs@conference.localhost", "json" => nil, "body" => body} = post
          assert is_binary(body)
          body
        else
          take_post(coord)
        end
    end
  end

  defp primes_up_to(n), do: Enum.count(2..n//1, &prime?/1)

  defp prime?(k) when k < 4, do: true
  defp prime?(k), do: rem(k, 2) != 0 and Enum.all?(3..trunc(:math.sqrt(k))//2, &(rem(k, &1) != 0))
end
