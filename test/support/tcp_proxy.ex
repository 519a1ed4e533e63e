defmodule XmppBridge.Test.TcpProxy do
  @moduledoc false
  # A loopback TCP proxy whose connections a test can cut at once, to drop a
  # session's TCP connection while the server stays up.

  @doc "Listens on a free loopback port and forwards to `{host, port}`."
  def start(port_to) do
    {:ok, listen} =
      :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}, reuseaddr: true])

    {:ok, port} = :inet.port(listen)
    # Not linked: the test's on_exit runs after the test process is gone.
    {:ok, conns} = Agent.start(fn -> [] end)
    acceptor = spawn_link(fn -> accept(listen, port_to, conns) end)
    %{listen: listen, port: port, conns: conns, acceptor: acceptor}
  end

  @doc "Closes every connection made so far; new ones are still accepted."
  def cut(%{conns: conns}) do
    for socket <- Agent.get_and_update(conns, &{&1, []}), do: :gen_tcp.close(socket)
    :ok
  end

  def stop(%{listen: listen, conns: conns} = proxy) do
    cut(proxy)
    :gen_tcp.close(listen)
    Agent.stop(conns)
  end

  defp accept(listen, port_to, conns) do
    case :gen_tcp.accept(listen) do
      {:ok, client} ->
        {:ok, upstream} = :gen_tcp.connect({127, 0, 0, 1}, port_to, [:binary, active: false])
        Agent.update(conns, &[client, upstream | &1])
        pump(client, upstream)
        pump(upstream, client)
        accept(listen, port_to, conns)

      {:error, _} ->
        :ok
    end
  end

  defp pump(from, to) do
    pid =
      spawn(fn ->
        receive do
          :go -> loop(from, to)
        end
      end)

    :ok = :gen_tcp.controlling_process(from, pid)
    send(pid, :go)
  end

  defp loop(from, to) do
    case :gen_tcp.recv(from, 0) do
      {:ok, data} ->
        case :gen_tcp.send(to, data) do
          :ok -> loop(from, to)
          _ -> :gen_tcp.close(from)
        end

      {:error, _} ->
        :gen_tcp.close(to)
    end
  end
end
