defmodule XmppBridge.Client do
  @moduledoc """
  A behaviour for a process of one's own that owns an XMPP session: the
  session's messages become callbacks, like `GenServer` callbacks.

  `use XmppBridge.Client` in a module brings the process plumbing, default
  callbacks and a `child_spec/1`; the module implements `c:init/1` (which
  returns the `XmppBridge.Connection.open/1` options) and the callbacks it
  cares about. The client process is the owner of its
  `XmppBridge.Connection`: one session, kept (with its reconnects and
  resumptions) for the life of the process.

  ## Example

      defmodule EchoBot do
        use XmppBridge.Client, restart: :transient

        alias XmppBridge.Message

        require Logger

        def start_link(opts) do
          XmppBridge.Client.start_link(__MODULE__, opts, name: __MODULE__)
        end

        @impl true
        def init(opts) do
          {:ok, %{echoed: 0}, jid: opts[:jid], password: opts[:password]}
        end

        @impl true
        def handle_connect(%{jid: jid, resumed: resumed}, state) do
          Logger.info("online as \#{jid} (resumed: \#{resumed})")
          {:noreply, state}
        end

        @impl true
        def handle_stanza(%Message{type: :chat, from: from} = message, state) do
          case Message.body(message) do
            nil -> {:noreply, state}
            body -> {:reply, Message.chat(from, body), %{state | echoed: state.echoed + 1}}
          end
        end

        # Anything else gets the default: IQ requests are answered with
        # service-unavailable, the rest is ignored.
        def handle_stanza(stanza, state), do: super(stanza, state)

        @impl true
        def handle_delivery({:failed, seqs, reason}, state) do
          Logger.warning("stanzas \#{inspect(seqs)} not delivered: \#{inspect(reason)}")
          {:noreply, state}
        end

        def handle_delivery({:acked, _seqs}, state), do: {:noreply, state}
      end

      {:ok, _pid} = EchoBot.start_link(jid: "echo@example.com", password: "secret")
      {:ok, _seq} = XmppBridge.Client.send(EchoBot, XmppBridge.Message.chat("alice@example.com", "hi"))

  ## Callbacks and the session's messages

  Each message of the session (`t:XmppBridge.Connection.event/0`) becomes a
  callback:

    * `{:online, info}` - `c:handle_connect/2`
    * `{:stanza, stanza}` - `c:handle_stanza/2`; a `{:reply, stanzas, state}`
      answer sends `stanzas` on the session
    * `{:acked, seqs}`, `{:failed, seqs, reason}` - `c:handle_delivery/2`
    * `{:disconnected, reason}` - `c:handle_disconnect/2` (a reconnection
      follows unless the reason is fatal)
    * `{:closed, reason}` - the process stops: with reason `:normal` after
      `close/2`, else with `{:shutdown, reason}` (the session gave up, e.g.
      `{:shutdown, {:auth_failed, "not-authorized"}}`); `c:terminate/2` is
      called
    * the other session messages (`{:reconnecting, _}`, `{:invalid_stanza, _,
      _}`, `{:element, _}`), unchanged as `{:xmpp_bridge, id, event}`, and
      every other message - `c:handle_info/2`
    * `:passive` - handled by the client itself (see "Flow control")

  Every `handle_*` callback may also answer `{:stop, reason, state}`.
  Callbacks run in the client process, one at a time; while one runs, the
  session keeps going in the Rust core and its messages wait in the mailbox.

  ## Flow control

  The client grants its session credit for incoming stanzas as its
  callbacks handle them: at most `:active` stanzas (a connection option
  returned by `c:init/1`, default 1000) wait in its mailbox at any time,
  and the session stops reading its socket when a slow callback lets that
  many pile up, so a server that sends faster than the client handles
  cannot make the mailbox grow without bound. Credit goes back in halves
  (after `:active / 2` stanzas handled), so a client that keeps up never
  waits. `active: true` turns this off.

  ## Sending

  `send/2` and `iq/3` may be called from any process on the client's node,
  including the client's own callbacks (with `self()`). They do not call the
  client process: the session of a client never changes, and is found in
  a registry (one ETS read), so a client busy in a long callback does not
  hold up its senders. `iq/3` waits in its caller, so many requests can be
  outstanding at once (called from a callback, it does hold up the client
  until the answer comes). `connection/1` returns the session, for callers
  that want to use `XmppBridge.Connection` directly.

  ## Delivery

  `c:handle_delivery/2` receives the confirmations of every stanza sent on
  the session, by sequence number: those of `send/2` (which returns the
  number), of `c:handle_stanza/2` replies and of `iq/3` requests alike.
  With stream management every stanza is eventually reported `:acked` or
  `:failed`. A reply that cannot even be queued (`:queue_full`, or a
  stanza that does not encode) has no number: it is logged as an error.

  ## Lifetime and supervision

  `close/2` ends the session cleanly; the client handles the session's last
  messages (the final acks and failures) and then stops normally. If the
  client process exits any other way, its session is closed too (the
  session monitors its owner). Under a supervisor, `restart: :transient`
  (as in the example) restarts a client whose process crashed, but not one
  that was closed, or whose session gave up (`{:shutdown, reason}`, e.g.
  after an authentication failure, which another attempt would only
  repeat).
  """

  use GenServer

  import Kernel, except: [send: 2]

  require Logger

  alias XmppBridge.{Connection, Error, Iq, Stanza}

  @typedoc "A client: its pid, or a name it is registered under (as for `GenServer`)."
  @type client :: GenServer.server()

  @typedoc "The state of the callback module."
  @type state :: term()

  @typedoc "What `c:handle_connect/2` receives: the bound JID, and whether the stream was resumed."
  @type online :: %{jid: String.t(), resumed: boolean()}

  @typedoc """
  What `c:handle_delivery/2` receives: the server confirmed the stanzas with
  these sequence numbers, or they will never be confirmed (and why).
  """
  @type delivery :: {:acked, [Connection.seq()]} | {:failed, [Connection.seq()], term()}

  @typedoc "What `c:handle_stanza/2` may answer with: stanzas (or elements) to send."
  @type reply :: Stanza.t() | Stanza.xmlel() | [Stanza.t() | Stanza.xmlel()]

  @typedoc "The answer of the `handle_*` callbacks other than `c:handle_stanza/2`."
  @type noreply :: {:noreply, state()} | {:stop, reason :: term(), state()}

  @doc """
  Sets up the state and says how to connect.

  Returns `{:ok, state, conn_opts}`, where `conn_opts` are the options of
  `XmppBridge.Connection.open/1` except `:owner` (the client process owns
  its session); the session is opened right after, and `start_link/3`
  returns then, before the session is online. `{:stop, reason}` makes
  `start_link/3` return `{:error, reason}`; `:ignore` makes it return
  `:ignore`. Invalid options stop the client the same way, with an
  `XmppBridge.Error` as the reason.
  """
  @callback init(arg :: term()) ::
              {:ok, state(), conn_opts :: keyword()} | {:stop, reason :: term()} | :ignore

  @doc """
  The session is online: authenticated and bound to `jid`. Called again after
  every reconnection; `resumed` is true when stream management resumed the
  previous stream (nothing was lost, the server kept the session's state),
  false for a fresh session (presence must be sent again, rooms rejoined).

  Default: does nothing.
  """
  @callback handle_connect(online(), state()) :: noreply()

  @doc """
  A stanza arrived (`XmppBridge.Message`, `XmppBridge.Presence` or
  `XmppBridge.Iq`). `{:reply, stanzas, state}` sends a stanza, or a list of
  them, on the session (in order, before any later callback runs).

  IQ requests (`get`/`set`) addressed to the client must be answered
  (RFC 6120 §8.2.3); answers to the client's own `iq/3` requests go to their
  callers instead and do not come here. Pings (XEP-0199) and disco#info
  requests are answered by the session itself.

  Default: answers an IQ request with a `service-unavailable` error and
  ignores everything else; call it with `super/2` from a clause of one's own.
  """
  @callback handle_stanza(Stanza.t(), state()) ::
              {:noreply, state()}
              | {:reply, reply(), state()}
              | {:stop, reason :: term(), state()}

  @doc """
  The connection was lost (the reasons are those of `XmppBridge.Connection`).
  A reconnection follows unless the reason is fatal (an authentication
  failure, a TLS failure, a stream conflict) or `:reconnect` is off; then the
  session is closed and the client stops with `{:shutdown, reason}`.

  Default: does nothing.
  """
  @callback handle_disconnect(reason :: term(), state()) :: noreply()

  @doc """
  The server confirmed stanzas (`{:acked, seqs}`), or stanzas will never be
  confirmed (`{:failed, seqs, reason}`); `seqs` are the numbers `send/2` and
  `XmppBridge.Connection.send/2` returned. See "Delivery" above.

  Default: does nothing.
  """
  @callback handle_delivery(delivery(), state()) :: noreply()

  @doc """
  Any other message: the session's `{:xmpp_bridge, id, {:reconnecting,
  info}}`, `{:invalid_stanza, reason, xmlel}` and `{:element, xmlel}`, and
  whatever else the process receives.

  Default: ignores the session's messages and logs any other one, as
  `GenServer` does.
  """
  @callback handle_info(msg :: term(), state()) :: noreply()

  @doc """
  A `GenServer.call/3` to the client, as in `c:GenServer.handle_call/3`.
  Optional: without it, a call makes the client exit.
  """
  @callback handle_call(request :: term(), GenServer.from(), state()) ::
              {:reply, reply :: term(), state()}
              | {:noreply, state()}
              | {:stop, reason :: term(), reply :: term(), state()}
              | {:stop, reason :: term(), state()}

  @doc """
  A `GenServer.cast/2` to the client, as in `c:GenServer.handle_cast/2`.
  Optional: without it, a cast makes the client exit.
  """
  @callback handle_cast(request :: term(), state()) :: noreply()

  @doc """
  The client is about to exit with `reason` (`:normal` after `close/2`,
  `{:shutdown, reason}` when the session gave up), as in
  `c:GenServer.terminate/2`: not called when the process is killed or exits
  because of a link without trapping exits. Stanzas sent from here are still
  written before the session closes. The session is closed right after,
  whatever this returns.

  Default: does nothing.
  """
  @callback terminate(reason :: term(), state()) :: term()

  @optional_callbacks handle_call: 3, handle_cast: 2

  @doc false
  defmacro __using__(opts) do
    quote location: :keep, bind_quoted: [opts: opts] do
      @behaviour XmppBridge.Client

      @doc """
      A child specification that starts this client with
      `start_link(init_arg)` (to be defined by the module), as for a
      `GenServer`.
      """
      def child_spec(init_arg) do
        Supervisor.child_spec(
          %{id: __MODULE__, start: {__MODULE__, :start_link, [init_arg]}},
          unquote(Macro.escape(opts))
        )
      end

      @doc false
      def handle_connect(_online, state), do: {:noreply, state}

      @doc false
      def handle_stanza(stanza, state), do: XmppBridge.Client.default_stanza(stanza, state)

      @doc false
      def handle_disconnect(_reason, state), do: {:noreply, state}

      @doc false
      def handle_delivery(_delivery, state), do: {:noreply, state}

      @doc false
      def handle_info(msg, state) do
        XmppBridge.Client.default_info(__MODULE__, msg)
        {:noreply, state}
      end

      @doc false
      def terminate(_reason, _state), do: :ok

      defoverridable child_spec: 1,
                     handle_connect: 2,
                     handle_stanza: 2,
                     handle_disconnect: 2,
                     handle_delivery: 2,
                     handle_info: 2,
                     terminate: 2
    end
  end

  @gen_server_opts [:name, :timeout, :debug, :spawn_opt, :hibernate_after]

  # Where each client publishes its session (key: the client's pid), so
  # that senders find it without calling the client (XmppBridge.Application
  # starts it). The registry drops the entry when the client exits.
  @registry XmppBridge.Client.Registry

  # Credit granted when the connection options do not say.
  @default_active 1000

  @doc """
  Starts a client process running `module`, linked to the caller, as
  `GenServer.start_link/3` does; `module.init(arg)` runs in it.

  Returns `{:ok, pid}` once the session is opened (not yet online:
  `c:handle_connect/2` follows), or `{:error, reason}` when `c:init/1`
  stopped or its connection options are invalid (`{:error,
  %XmppBridge.Error{reason: {:bad_option, detail}}}`); like any
  `GenServer`, the linked caller then receives an exit signal with that
  reason. Raises `ArgumentError` when `module` does not implement the
  behaviour or an option is unknown.

  ## Options

  Those of `GenServer.start_link/3`:

    * `:name` - register the client under this name
    * `:timeout` - ms `c:init/1` may take (default 5000)
    * `:debug`, `:spawn_opt`, `:hibernate_after` - as for `GenServer`
  """
  @spec start_link(module(), term(), GenServer.options()) :: GenServer.on_start()
  def start_link(module, arg, opts \\ []) do
    GenServer.start_link(__MODULE__, {check_module!(module), arg}, check_opts!(opts))
  end

  @doc """
  Like `start_link/3`, without a link to the caller (a client outside a
  supervision tree, or one whose exit the caller wants to observe).
  """
  @spec start(module(), term(), GenServer.options()) :: GenServer.on_start()
  def start(module, arg, opts \\ []) do
    GenServer.start(__MODULE__, {check_module!(module), arg}, check_opts!(opts))
  end

  @doc """
  Queues a stanza (struct or `{:xmlel, ...}` element) on the client's
  session; never waits for the network.

  Returns its sequence number, which `c:handle_delivery/2` will report
  `:acked` or `:failed`, or the errors of `XmppBridge.Connection.send/2`
  (`:queue_full`, `:closed`, an encoding error); `{:error,
  %XmppBridge.Error{reason: :noproc}}` when the client is not running. It
  does not wait for the client process, even when that is busy in a
  callback.
  """
  @spec send(client(), Stanza.t() | Stanza.xmlel()) ::
          {:ok, Connection.seq()} | {:error, Error.t()}
  def send(client, stanza) do
    with {:ok, conn} <- lookup(client) do
      Connection.send(conn, stanza)
    end
  end

  @doc """
  Sends an IQ request (`get` or `set`) on the client's session and waits, in
  the caller, for its answer, as `XmppBridge.Connection.iq/3` does.

  Returns `{:ok, %XmppBridge.Iq{type: :result}}`, or `{:error,
  %XmppBridge.Error{reason: reason}}` with `reason` one of `{:iq_error,
  %XmppBridge.Iq{type: :error}}`, `:timeout`, `:closed`, a disconnect
  reason, `:noproc` (the client is not running), or `{:bad_argument, _}`
  (not a `get`/`set` IQ, or a bad timeout). `timeout` is in ms (default
  5000), or `:infinity`.
  """
  @spec iq(client(), Iq.t(), timeout()) :: {:ok, Iq.t()} | {:error, Error.t()}
  def iq(client, iq, timeout \\ 5000)

  def iq(client, %Iq{type: type} = iq, timeout)
      when type in [:get, :set] and
             (timeout == :infinity or (is_integer(timeout) and timeout >= 0)) do
    with {:ok, conn} <- lookup(client) do
      Connection.iq(conn, iq, timeout)
    end
  end

  def iq(_client, %Iq{type: type}, _timeout) when type not in [:get, :set] do
    bad_argument("only an IQ of type :get or :set is a request, got one of type #{inspect(type)}")
  end

  def iq(_client, %Iq{}, timeout) do
    bad_argument(
      "the timeout must be a non-negative integer or :infinity, got: #{inspect(timeout)}"
    )
  end

  def iq(_client, other, _timeout) do
    bad_argument("expected an XmppBridge.Iq struct, got: #{inspect(other)}")
  end

  @doc """
  Closes the client's session cleanly and returns once the client process
  has exited.

  The client goes on handling the session's last messages (acks and
  failures of what was still pending) and stops with reason `:normal` when
  the session reports `{:closed, :normal}`; if that takes longer than
  `timeout` ms (default 5000), it stops with `{:shutdown, :close_timeout}`,
  and the session is closed by its owner's exit. `:ok` also for a client
  that is not running. Called by the client on itself (`close(self())` in a
  callback), it returns at once and the client stops later, the same way.
  """
  @spec close(client(), timeout()) :: :ok
  def close(client, timeout \\ 5000) do
    case GenServer.whereis(client) do
      nil ->
        :ok

      pid when pid == self() ->
        Kernel.send(self(), {__MODULE__, :close, timeout})
        :ok

      server ->
        ref = Process.monitor(server)

        try do
          GenServer.call(server, {__MODULE__, :close, timeout}, :infinity)
        catch
          # It exited meanwhile: the :DOWN below is there already.
          :exit, _ -> :ok
        end

        receive do
          {:DOWN, ^ref, _, _, _} -> :ok
        end
    end
  end

  @doc """
  The client's `XmppBridge.Connection`: the same for the life of the client,
  across reconnections. Its messages go to the client process.

  `{:error, %XmppBridge.Error{reason: :noproc}}` when the client is not
  running.
  """
  @spec connection(client()) :: {:ok, Connection.t()} | {:error, Error.t()}
  def connection(client), do: lookup(client)

  ## Defaults used by `use XmppBridge.Client`

  @doc false
  def default_stanza(%Iq{type: type} = iq, state) when type in [:get, :set] do
    {:reply, Iq.error(iq, XmppBridge.StanzaError.new(:service_unavailable)), state}
  end

  def default_stanza(_stanza, state), do: {:noreply, state}

  @doc false
  def default_info(_module, {:xmpp_bridge, _id, _event}), do: :ok

  def default_info(module, msg) do
    Logger.error(
      "#{inspect(module)} (XmppBridge.Client) #{inspect(self())} received an unexpected " <>
        "message in handle_info/2: #{inspect(msg)}"
    )
  end

  ## GenServer

  @impl GenServer
  def init({module, arg}) do
    case module.init(arg) do
      {:ok, state, conn_opts} ->
        case open(conn_opts) do
          {:ok, conn} ->
            {:ok, _owner} = Registry.register(@registry, self(), conn)

            {:ok,
             %{
               module: module,
               state: state,
               conn: conn,
               closing: false,
               window: window(conn_opts),
               handled: 0
             }}

          {:error, error} ->
            {:stop, error}
        end

      {:stop, reason} ->
        {:stop, reason}

      :ignore ->
        :ignore

      other ->
        {:stop, {:bad_return_value, other}}
    end
  end

  @impl GenServer
  def handle_info({:xmpp_bridge, id, event} = msg, %{conn: %Connection{id: id}} = s) do
    case event do
      {:online, info} -> callback(s, :handle_connect, [info])
      {:stanza, stanza} -> s |> handled() |> callback(:handle_stanza, [stanza])
      {:element, _} -> s |> handled() |> callback(:handle_info, [msg])
      {:invalid_stanza, _, _} -> s |> handled() |> callback(:handle_info, [msg])
      :passive -> {:noreply, s}
      {:acked, seqs} -> callback(s, :handle_delivery, [{:acked, seqs}])
      {:failed, seqs, reason} -> callback(s, :handle_delivery, [{:failed, seqs, reason}])
      {:disconnected, reason} -> callback(s, :handle_disconnect, [reason])
      {:closed, :normal} -> {:stop, :normal, s}
      {:closed, reason} -> {:stop, {:shutdown, reason}, s}
      _other -> callback(s, :handle_info, [msg])
    end
  end

  def handle_info({__MODULE__, :close, timeout}, s), do: {:noreply, request_close(s, timeout)}

  def handle_info({__MODULE__, :close_timeout}, s), do: {:stop, {:shutdown, :close_timeout}, s}

  def handle_info(msg, s), do: callback(s, :handle_info, [msg])

  @impl GenServer
  def handle_call({__MODULE__, :close, timeout}, _from, s),
    do: {:reply, :ok, request_close(s, timeout)}

  def handle_call(request, from, %{module: module} = s) do
    if function_exported?(module, :handle_call, 3) do
      case module.handle_call(request, from, s.state) do
        {:reply, reply, state} -> {:reply, reply, %{s | state: state}}
        {:noreply, state} -> {:noreply, %{s | state: state}}
        {:stop, reason, reply, state} -> {:stop, reason, reply, %{s | state: state}}
        {:stop, reason, state} -> {:stop, reason, %{s | state: state}}
        other -> {:stop, {:bad_return_value, other}, s}
      end
    else
      {:stop, {:bad_call, request}, s}
    end
  end

  @impl GenServer
  def handle_cast(request, %{module: module} = s) do
    if function_exported?(module, :handle_cast, 2) do
      callback(s, :handle_cast, [request])
    else
      {:stop, {:bad_cast, request}, s}
    end
  end

  @impl GenServer
  def terminate(reason, %{module: module, state: state, conn: conn}) do
    try do
      module.terminate(reason, state)
    after
      # Stanzas the callback sent are queued before this, so they are written.
      Connection.close(conn)
    end
  end

  ## Internals

  defp open(conn_opts) do
    if Keyword.keyword?(conn_opts) and Keyword.has_key?(conn_opts, :owner) do
      {:error, %Error{reason: {:bad_option, {:unknown, [:owner]}}}}
    else
      Connection.open(conn_opts)
    end
  end

  # What the client grants its session at a time: see "Flow control".
  defp window(conn_opts) do
    case Keyword.get(conn_opts, :active, @default_active) do
      true -> :unlimited
      :once -> 1
      n -> n
    end
  end

  # One more of the session's stanzas taken from the mailbox: once half the
  # window is handled, it goes back to the session as credit, so the
  # mailbox never holds more than the window and a client that keeps up
  # never finds its session passive.
  defp handled(%{window: :unlimited} = s), do: s

  defp handled(%{window: window, handled: handled} = s) when handled + 1 >= div(window + 1, 2) do
    :ok = Connection.set_active(s.conn, handled + 1)
    %{s | handled: 0}
  end

  defp handled(s), do: %{s | handled: s.handled + 1}

  defp request_close(%{closing: true} = s, _timeout), do: s

  defp request_close(s, timeout) do
    Connection.close(s.conn)

    if timeout != :infinity do
      Process.send_after(self(), {__MODULE__, :close_timeout}, timeout)
    end

    %{s | closing: true}
  end

  defp callback(%{module: module} = s, fun, args) do
    case apply(module, fun, args ++ [s.state]) do
      {:noreply, state} ->
        {:noreply, %{s | state: state}}

      {:reply, stanzas, state} when fun == :handle_stanza ->
        send_replies(s, List.wrap(stanzas))
        {:noreply, %{s | state: state}}

      {:stop, reason, state} ->
        {:stop, reason, %{s | state: state}}

      other ->
        {:stop, {:bad_return_value, other}, s}
    end
  end

  defp send_replies(%{conn: conn, module: module}, stanzas) do
    Enum.each(stanzas, fn stanza ->
      case Connection.send(conn, stanza) do
        {:ok, _seq} ->
          :ok

        {:error, error} ->
          Logger.error(
            "#{inspect(module)} (XmppBridge.Client): reply not sent (#{Exception.message(error)}): " <>
              inspect(stanza)
          )
      end
    end)
  end

  defp lookup(client) do
    # The registry forgets a client shortly after it exits: a dead pid
    # whose entry is still there is not running either.
    with pid when is_pid(pid) <- local_pid(client),
         [{^pid, conn}] <- Registry.lookup(@registry, pid),
         true <- Process.alive?(pid) do
      {:ok, conn}
    else
      _ -> {:error, %Error{reason: :noproc}}
    end
  end

  @doc false
  # GenServer.whereis/1 without its exits: a name of another node, or a
  # registry that is not running, is simply not a local process (also used
  # by XmppBridge.Bus).
  @spec local_pid(GenServer.server()) :: pid() | nil
  def local_pid(server) do
    case GenServer.whereis(server) do
      pid when is_pid(pid) and node(pid) == node() -> pid
      _ -> nil
    end
  catch
    :exit, _ -> nil
  end

  defp bad_argument(detail), do: {:error, %Error{reason: {:bad_argument, detail}}}

  defp check_module!(module) do
    unless is_atom(module) and Code.ensure_loaded?(module) and
             function_exported?(module, :init, 1) do
      raise ArgumentError,
            "expected a module that implements XmppBridge.Client (with init/1), got: " <>
              inspect(module)
    end

    module
  end

  defp check_opts!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError,
            "expected GenServer options as a keyword list, got: #{inspect(opts)}"
    end

    case Keyword.keys(opts) -- @gen_server_opts do
      [] ->
        opts

      unknown ->
        raise ArgumentError,
              "unknown options #{inspect(unknown)} for XmppBridge.Client.start_link/3; " <>
                "the known ones are #{inspect(@gen_server_opts)} (connection options " <>
                "are returned by init/1)"
    end
  end
end
