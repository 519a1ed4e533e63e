defmodule XmppTestServer.MixProject do
  use Mix.Project

  # xmpp_bridge's private XMPP test-server harness (ejabberd or Prosody from
  # Debian's packages, on loopback). A project of its own so that the
  # library's users never build it: the root mix.exs depends on it by path,
  # only in :dev, :test and :bench. It uses nothing from xmpp_bridge (it talks
  # to the servers over plain TCP and their command-line tools), so there is
  # no dependency back on the library.
  def project do
    [
      app: :xmpp_test_server,
      version: "0.1.0",
      elixir: "~> 1.14",
      deps: []
    ]
  end

  def application do
    [extra_applications: [:crypto]]
  end
end
