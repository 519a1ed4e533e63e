defmodule XmppBridge.Application do
  @moduledoc false
  # The library's own processes: the registry where each XmppBridge.Client
  # publishes its connection, so that `XmppBridge.Client.send/2` finds it
  # with one ETS read instead of a call to a client that may be busy in a
  # callback.

  use Application

  @impl Application
  def start(_type, _args) do
    children = [{Registry, keys: :unique, name: XmppBridge.Client.Registry}]
    Supervisor.start_link(children, strategy: :one_for_one, name: XmppBridge.Supervisor)
  end
end
