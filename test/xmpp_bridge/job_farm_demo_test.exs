defmodule XmppBridge.JobFarmDemoTest do
  # The job farm demo (demos/job_farm.exs, `make demo`, README "The job
  # farm demo") as users run it: `mix run` in an OS process of its own,
  # which starts its own ejabberd, coordinator and worker processes. It
  # must exit 0 within a minute, and its summary must say that no job was
  # lost or done twice, that the killed worker's jobs were dispatched
  # again and that the offline worker got what was stored for it.
  use ExUnit.Case, async: false

  @moduletag :integration
  @moduletag timeout: 300_000

  @root Path.expand("../..", __DIR__)

  test "make demo's job farm: 0 lost, 0 done twice, re-dispatch after kill -9, offline delivery" do
    # The Rust worker is built first, so the timing below is the run's.
    {_, 0} =
      System.cmd("cargo", ~w(build --release -q -p xmpp_bridge --example job_worker),
        cd: @root,
        stderr_to_stdout: true
      )

    t0 = System.monotonic_time(:millisecond)
    {output, status} = run_demo()
    elapsed = System.monotonic_time(:millisecond) - t0

    assert status == 0, "the demo exited with #{inspect(status)}:\n#{output}"
    assert output =~ ~r/^jobs: +\d+ \(\d+ answered\), 0 lost, 0 done twice, 0 wrong$/m, output
    assert output =~ "result:         OK, every job done exactly once", output

    [_, n] = Regex.run(~r/^re-dispatched: +(\d+); jobs .* from rs2 \(DOWN /m, output)
    assert String.to_integer(n) >= 1, output
    # Seen by the monitor (:heartbeat_timeout while the server keeps the
    # killed session for resumption), not from the OS.
    assert output =~ ~r/DOWN rs2: :\w+, \d+ ms after the kill; dispatching its jobs/, output
    assert output =~ ~r/^offline: +rs3 got 11 stored terms/m, output
    assert output =~ "rs3 sent back the results of the 10 jobs it found queued", output
    # Every worker did some of the jobs, in both languages.
    [_, per_lang] = Regex.run(~r/^per language: +(.*)$/m, output)
    assert [_, e, r] = Regex.run(~r/^elixir (\d+), rust (\d+)$/, per_lang)
    assert String.to_integer(e) > 0 and String.to_integer(r) > 0, output
    assert elapsed < 60_000, "the demo took #{elapsed} ms"

    summary = output |> String.split("== Summary\n") |> List.last()
    IO.puts("\n[job farm] #{elapsed} ms, summary:\n" <> summary)
  end

  # `mix run demos/job_farm.exs` in this environment (its build is this
  # test run's), plain output, under a Port so that a hung demo can be
  # killed by its OS pid.
  defp run_demo do
    mix = System.find_executable("mix") || flunk("mix not on PATH")

    port =
      Port.open({:spawn_executable, mix}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["run", "demos/job_farm.exs"],
        cd: @root,
        env: [
          {~c"MIX_ENV", ~c"test"},
          {~c"JOB_FARM_PLAIN", ~c"1"},
          {~c"ELIXIR_ERL_OPTIONS", ~c"+fnu +sbwt none +sbwtdcpu none +sbwtdio none"}
        ]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    collect(port, os_pid, [])
  end

  defp collect(port, os_pid, acc) do
    receive do
      {^port, {:data, data}} ->
        collect(port, os_pid, [data | acc])

      {^port, {:exit_status, status}} ->
        {acc |> Enum.reverse() |> IO.iodata_to_binary(), status}
    after
      240_000 ->
        System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
        {acc |> Enum.reverse() |> IO.iodata_to_binary(), :hung}
    end
  end
end
