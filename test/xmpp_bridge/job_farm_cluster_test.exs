defmodule XmppBridge.JobFarmClusterTest do
  # `make demo-cluster`: the job farm on a 2-node ejabberd cluster, run as
  # users run it (`mix run demos/job_farm.exs --cluster`, an OS process of
  # its own). BEAM nodes start on server node A, Rust nodes on B; the demo
  # kills A with kill -9 after a worker crash, restarts it, and starts one
  # more worker, which must land on A. No job may be lost or done twice,
  # and the only DOWN is that of the worker that was killed.
  use ExUnit.Case, async: false

  @moduletag :integration
  @moduletag timeout: 300_000

  @root Path.expand("../..", __DIR__)

  test "the job farm survives kill -9 of a server node: 0 lost, 0 done twice, no false DOWN" do
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

    # Both BEAM workers and the coordinator were on A, and came back on B.
    assert output =~ ~r/kill -9 of server node A: coord, ex1, ex2 were on it/, output
    assert output =~ ~r/every session that was on A is on B \d+ ms after the kill/, output
    # The heartbeat, not the ghost presence, decided: one DOWN, the worker killed.
    assert output =~ ~r/^DOWN: +rs2 \(:\w+\)$/m, output
    assert output =~ ~r/^restart of A: +\d+ ms, rejoined the cluster$/m, output
    # A new session after the restart is on A again; the old ones stay on B.
    assert output =~ ~r/^now: .*ex1 on B, ex2 on B, ex3 on A; rs1 on B, rs3 on B$/m, output
    [_, ex3] = Regex.run(~r/ex3 \(elixir\) (\d+)/, output)
    assert String.to_integer(ex3) > 0, output
    assert elapsed < 90_000, "the demo took #{elapsed} ms"

    summary = output |> String.split("== Summary\n") |> List.last()
    IO.puts("\n[job farm, cluster] #{elapsed} ms, summary:\n" <> summary)
  end

  defp run_demo do
    mix = System.find_executable("mix") || flunk("mix not on PATH")

    port =
      Port.open({:spawn_executable, mix}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["run", "demos/job_farm.exs", "--cluster"],
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
