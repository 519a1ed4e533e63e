defmodule XmppBridge.Connection do
  @moduledoc """
  An XMPP session (client, or XEP-0114 external component) owned by a BEAM
  process and run by the Rust core on a shared tokio runtime, off the
  schedulers.

  The session connects, secures the stream (STARTTLS required by default,
  certificates verified), authenticates (SCRAM-SHA-256, SCRAM-SHA-1; PLAIN
  only over TLS or to a loopback address), binds a resource, enables stream
  management (XEP-0198), answers pings and disco#info by itself, probes a
  silent server with keepalives, and reconnects with exponential backoff and
  jitter, resuming the stream when the server allows it. Authentication
  failures are reported and not retried, nor are TLS failures and the
  stream errors `conflict` (another session took the resource) and
  `not-authorized`; other stream errors - e.g. ejabberd's `policy-violation`
  "Too many unacked stanzas" when a burst outruns its `max_ack_queue` - are
  followed by a reconnect.

  Incoming stanzas are decoded in Rust and arrive in the owner's mailbox as
  structs. When the owner exits, the session closes and its memory is freed.

  ## Runtime

  Every session of the VM runs on one tokio runtime of two OS threads,
  outside the schedulers. Those threads run at nice value 10 (lower CPU
  priority than the VM's schedulers): on a machine whose cores are all busy
  the schedulers then run before the sessions' I/O instead of being
  preempted by it, which keeps BEAM processes from stalling mid time-slice
  (long_schedule). Set `config :xmpp_bridge, io_thread_nice: n` (0 to 19;
  0 leaves the priority alone; another value falls back to 10) before the
  first session opens; it is read once, when the runtime starts.

  ## Messages to the owner

  Each is `{:xmpp_bridge, id, event}` where `id` is `conn.id`: the type
  `t:message/0`, with `t:event/0` listing every event and `t:reason/0`
  every disconnect reason. `is_connection_message/2` tells a session's
  messages from the rest of a mailbox, in a guard:

      receive do
        message when is_connection_message(conn, message) -> handle(message)
      end

  `{:closed, reason}` is always the last message of a session, also when
  the session task fails (`{:closed, {:internal_error, detail}}`).

  ## Flow control

  A session hands its owner at most `:active` incoming stanzas (default
  1000), then sends `{:xmpp_bridge, id, :passive}` and stops reading its
  socket, so that TCP pushes back on the server instead of the owner's
  mailbox growing without bound (as `gen_tcp`'s `{active, n}` does).
  `set_active/2` grants more: call it when `:passive` arrives, or earlier,
  as stanzas are handled, to keep the stream flowing (`XmppBridge.Client`
  does it for its callbacks). Stanzas, `{:element, _}` and
  `{:invalid_stanza, _, _}` count against the credit; the other events
  (acks, failures, `:online`, ...) do not, and answers to `iq/3` go to
  their callers. While passive the session still sends, and sends no
  keepalive probes (what it does not read, it cannot wait for); a lost
  connection shows (`{:disconnected, _}`, then a reconnect) once it reads
  again, as a passive `gen_tcp` socket reports `closed` only to `recv`. The
  mailbox holds at most `:active` stanzas then, each at most
  `:max_stanza_bytes` of XML (plus, once, those a server sent before the
  session was online: at most 1000, delivered with `{:online, _}`).

  ## Delivery

  With stream management (ejabberd, Prosody) every stanza is reported
  `:acked` or `:failed`: nothing is lost silently. Without it (a server
  without XEP-0198, or a component), stanzas still queued when the session
  ends are reported failed, but those already written cannot be confirmed.

      {:ok, conn} = XmppBridge.Connection.open(jid: "alice@example.com", password: "secret")
      receive do
        {:xmpp_bridge, id, {:online, %{jid: jid}}} when id == conn.id -> jid
      end
      {:ok, seq} = XmppBridge.Connection.send(conn, XmppBridge.Message.chat("bob@example.com", "hi"))
  """

  import Kernel, except: [send: 2]

  alias XmppBridge.{Error, Iq, Limits, Native, Stanza}

  @enforce_keys [:ref, :id]
  defstruct [:ref, :id]

  @typedoc "A session; `id` tags the messages sent to its owner."
  @type t :: %__MODULE__{ref: reference(), id: pos_integer()}

  @typedoc "The sequence number `send/2` returns, used by `:acked`/`:failed`."
  @type seq :: non_neg_integer()

  @typedoc """
  Why a connection was lost or a session ended:

    * `{:connect_failed, detail}` - TCP connect failed (every address tried)
    * `{:tls_failed, detail}` - TLS failed: an unknown CA, a server that
      does not offer STARTTLS, bytes that are not TLS after `<proceed/>`
    * `{:auth_failed, condition}` - the server refused the credentials, or
      sent a SCRAM challenge we refuse (e.g. more than 1,000,000
      iterations); not retried
    * `{:timeout, step}` - `"connect"` or `"stream negotiation"` took longer
      than `:connect_timeout`
    * `{:stream_error, {condition, text}}` - the server's `<stream:error/>`
    * `:closed_by_server` - the server ended the stream or the TCP connection
    * `:keepalive_timeout` - no answer to a keepalive probe in time
    * `{:protocol_error, detail}` - the server broke the protocol, e.g.
      `"forbidden XML construct: dtd"`
    * `{:io_error, detail}` - a socket error
    * `{:bad_config, detail}` - options the core refused (e.g. plaintext to
      a host that is not a loopback address)
    * `{:internal_error, detail}` - the session task failed (a bug)
  """
  @type reason ::
          {:connect_failed, String.t()}
          | {:tls_failed, String.t()}
          | {:auth_failed, String.t()}
          | {:timeout, String.t()}
          | {:stream_error, {String.t(), String.t() | nil}}
          | :closed_by_server
          | :keepalive_timeout
          | {:protocol_error, String.t()}
          | {:io_error, String.t()}
          | {:bad_config, String.t()}
          | {:internal_error, String.t()}

  @typedoc """
  What a session tells its owner:

    * `{:online, %{jid: jid, resumed: boolean}}` - authenticated and bound;
      `resumed` when XEP-0198 resumed the previous stream (nothing lost)
    * `{:stanza, stanza}` - an incoming `XmppBridge.Message`, `Presence` or
      `Iq` (answers to `iq/3` go to its caller instead)
    * `{:invalid_stanza, reason, xmlel}` - a stanza that could not be decoded
    * `{:element, xmlel}` - another top-level element
    * `:passive` - the `:active` credit is used up: nothing more is read
      until `set_active/2` grants more
    * `{:acked, [seq]}` - the server confirmed the stanzas `send/2` returned
      these numbers for (XEP-0198)
    * `{:failed, [seq], reason}` - these stanzas will never be confirmed
    * `{:disconnected, reason}` - the connection was lost
    * `{:reconnecting, %{attempt: n, delay_ms: ms}}` - the next attempt
    * `{:closed, :normal | reason}` - the session is over (`:normal` after
      `close/1`); always the last message
  """
  @type event ::
          {:online, %{jid: String.t(), resumed: boolean()}}
          | {:stanza, Stanza.t()}
          | {:invalid_stanza, term(), Stanza.xmlel()}
          | {:element, Stanza.xmlel()}
          | :passive
          | {:acked, [seq()]}
          | {:failed, [seq()], reason() | term()}
          | {:disconnected, reason()}
          | {:reconnecting, %{attempt: pos_integer(), delay_ms: non_neg_integer()}}
          | {:closed, :normal | reason()}

  @typedoc "A message of a session to its owner: `{:xmpp_bridge, conn.id, event}`."
  @type message :: {:xmpp_bridge, pos_integer(), event()}

  @typedoc "How many incoming stanzas the owner takes (see \"Flow control\")."
  @type active :: pos_integer() | :once | boolean()

  @doc """
  True, in a guard, when `message` is one of `conn`'s messages to its
  owner (`t:message/0`).

      iex> import XmppBridge.Connection, only: [is_connection_message: 2]
      iex> conn = %XmppBridge.Connection{ref: make_ref(), id: 7}
      iex> is_connection_message(conn, {:xmpp_bridge, 7, :passive})
      true
      iex> is_connection_message(conn, {:xmpp_bridge, 8, :passive})
      false
  """
  defguard is_connection_message(conn, message)
           when is_struct(conn, __MODULE__) and is_tuple(message) and
                  tuple_size(message) == 3 and elem(message, 0) == :xmpp_bridge and
                  elem(message, 1) == :erlang.map_get(:id, conn)

  @defaults [
    host: nil,
    servers: nil,
    dns_server: nil,
    port: nil,
    tls: nil,
    ca_file: nil,
    server_name: nil,
    resource: nil,
    connect_timeout: 10_000,
    keepalive: 30_000,
    keepalive_timeout: 10_000,
    reconnect: true,
    queue_limit: 10_000,
    stream_management: true,
    initial_presence: true,
    mode: :client,
    max_stanza_bytes: 262_144,
    batch_delay: 5,
    active: 1000,
    bus_incarnation: nil,
    owner: nil
  ]

  @doc """
  Opens a session owned by the calling process (or `:owner`).

  Returns at once; `{:online, _}` follows when the session is up.

  ## Options

    * `:jid` (required) - `user@domain[/resource]`, or the component domain.
    * `:password` (required) - the account's password, or the component secret.
    * `:mode` - `:client` (default) or `:component` (XEP-0114).
    * `:host`, `:port` - where to connect. Without `:host`, a client looks up
      the domain's DNS SRV records (`_xmpp-client._tcp`, `_xmpps-client._tcp`
      for direct TLS) and tries them in order, then the domain itself on
      `:port` (default 5222; 5347 for components, which do no SRV lookup).
    * `:servers` - several servers of one deployment (the nodes of a
      cluster) instead of `:host`/`:port`: a list of `{host, port}` or
      `"host:port"`. Each connection attempt tries them in turn, starting
      with the one the session was last online on (the first, at the
      start); a session whose server dies fails over to the next one at
      its first reconnect, and stays there. A server that accepts the
      connection but not the session (hung, overloaded) sends the next
      attempt to the next server. No DNS lookup is made. To spread many
      sessions over a cluster, give each its own order (`Enum.shuffle/1`,
      or a rotation).
    * `:dns_server` - `"ip:port"` (or `"[ipv6]:port"`) of the name server for
      that lookup; default the first of /etc/resolv.conf.
    * `:tls` - `:starttls` (the default for clients, required), `:direct`,
      or `:plain` (allowed only to a loopback address). A component
      (XEP-0114 has no STARTTLS) takes `:plain` (its default) or `:direct`;
      `:starttls` is refused for it.
    * `:ca_file` - PEM file of the CA to trust instead of the bundled roots.
    * `:server_name` - name the certificate must carry (default: the domain).
    * `:resource` - resource to ask for (default: the server's choice).
    * `:connect_timeout` - ms for TCP connect and for stream negotiation
      (default 10000).
    * `:keepalive` - ms of silence before the server is probed (default
      30000; `nil` for never); `:keepalive_timeout` - ms a probe may stay
      unanswered (default 10000).
    * `:reconnect` - `true` (default), `false`, or `[initial: ms, max: ms,
      max_attempts: n | nil]` (defaults 500, 30000, nil).
    * `:queue_limit` - stanzas that may wait to be sent (default 10000);
      `send/2` answers `:queue_full` beyond it.
    * `:stream_management` - ask for XEP-0198 (default true).
    * `:initial_presence` - send `<presence/>` once online (default true for
      clients).
    * `:max_stanza_bytes` - largest incoming stanza (default 262144).
    * `:batch_delay` - ms, 0 to 1000 (default 5; `0` turns it off). Under
      sustained incoming load - at least 8 stanzas within a millisecond, and
      reads that find more than one waiting - the session lets the next read
      wait, 1 ms at first and twice as long each time while the load lasts,
      up to `:batch_delay` (the runtime's timers tick in ms: up to 1 ms
      more), so that one read, one parse and one wake-up of the owner's
      scheduler carry many stanzas. A busy session then keeps up with the
      server at a fraction of the CPU, for at most that much added latency
      while the load lasts. Light traffic (a request and its answer, a
      chat) is read as soon as it arrives and never waits.
    * `:active` - incoming stanzas the session hands over before it waits
      for `set_active/2`: a positive integer (default 1000), `:once` (one),
      or `true` (no limit: the owner's mailbox may then grow as fast as the
      server sends). See "Flow control".
    * `:owner` - the owning pid (default `self()`).
    * `:bus_incarnation` - set by `XmppBridge.Bus`: a short ASCII token
      that ping results carry (`<node xmlns='urn:xmpp-bridge:bus:0'
      incarnation='...'/>`) and that adds the bus feature to disco#info
      (default `nil`: plain XEP-0199 and XEP-0030 answers).
  """
  @spec open(keyword()) :: {:ok, t()} | {:error, Error.t()}
  def open(opts) when is_list(opts) do
    with {:ok, config} <- config(opts) do
      id = System.unique_integer([:positive, :monotonic])

      case Native.conn_open(config, config.owner, id) do
        {:ok, ref} -> {:ok, %__MODULE__{ref: ref, id: id}}
        {:error, reason} -> {:error, %Error{reason: reason}}
      end
    end
  end

  def open(other), do: {:error, %Error{reason: {:bad_option, other}}}

  @doc "Like `open/1`, but raises `XmppBridge.Error`."
  @spec open!(keyword()) :: t()
  def open!(opts), do: Stanza.unwrap(open(opts))

  @doc """
  Queues a stanza (struct or `{:xmlel, ...}` element); never blocks.

  Returns its sequence number, which `{:acked, seqs}` / `{:failed, seqs,
  reason}` refer to; `{:error, %Error{reason: :queue_full}}` when
  `:queue_limit` stanzas are already waiting, `:closed` when the session is
  over, or the encoding error.
  """
  @spec send(t(), Stanza.t() | Stanza.xmlel()) :: {:ok, seq()} | {:error, Error.t()}
  def send(%__MODULE__{ref: ref}, stanza) when is_struct(stanza) or elem(stanza, 0) == :xmlel do
    ref
    |> Native.conn_send(stanza)
    |> Limits.retry_dirty(fn -> Native.conn_send_dirty(ref, stanza) end)
    |> case do
      {:ok, seq} -> {:ok, seq}
      {:error, reason} -> {:error, %Error{reason: reason}}
    end
  end

  def send(%__MODULE__{ref: _}, other), do: {:error, %Error{reason: {:not_a_stanza, other}}}

  @doc "Like `send/2`, but raises `XmppBridge.Error`."
  @spec send!(t(), Stanza.t() | Stanza.xmlel()) :: seq()
  def send!(conn, stanza), do: Stanza.unwrap(send(conn, stanza))

  @doc """
  Sends an IQ request (`get`/`set`) and waits for its answer.

  Returns `{:ok, %Iq{type: :result}}`, or `{:error, %Error{reason: r}}` with
  `r` one of `{:iq_error, %Iq{type: :error}}`, `:timeout` (after `timeout`
  ms, default 5000; the waiter is removed), `:closed`, or a disconnect
  reason. An IQ without id gets a fresh one.
  """
  @spec iq(t(), Iq.t(), timeout()) :: {:ok, Iq.t()} | {:error, Error.t()}
  def iq(conn, iq, timeout \\ 5000)

  def iq(%__MODULE__{}, %Iq{type: type}, _timeout) when type not in [:get, :set] do
    {:error,
     %Error{reason: {:bad_argument, "iq/3 sends requests: the IQ must be of type :get or :set"}}}
  end

  def iq(%__MODULE__{ref: ref}, %Iq{} = iq, timeout) do
    iq = if iq.id in [nil, ""], do: %Iq{iq | id: Iq.new_id()}, else: iq
    token = System.unique_integer([:positive])

    ref
    |> Native.conn_iq(iq, self(), token)
    |> Limits.retry_dirty(fn -> Native.conn_iq_dirty(ref, iq, self(), token) end)
    |> case do
      {:ok, _seq} ->
        receive do
          {:xmpp_bridge_iq, ^token, {:ok, %Iq{type: :result} = answer}} ->
            {:ok, answer}

          {:xmpp_bridge_iq, ^token, {:ok, %Iq{} = answer}} ->
            {:error, %Error{reason: {:iq_error, answer}}}

          {:xmpp_bridge_iq, ^token, {:error, reason}} ->
            {:error, %Error{reason: reason}}
        after
          timeout ->
            Native.conn_cancel_iq(ref, token, iq.id)
            # The answer may have crossed the cancellation.
            receive do
              {:xmpp_bridge_iq, ^token, _} -> :ok
            after
              0 -> :ok
            end

            {:error, %Error{reason: :timeout}}
        end

      {:error, reason} ->
        {:error, %Error{reason: reason}}
    end
  end

  @doc """
  Grants the session more incoming stanzas (see "Flow control"), as
  `:inet.setopts(socket, active: n)` does for a socket: a positive integer
  adds to what is left, `:once` leaves exactly one, `true` lifts the
  limit, `false` stops delivery at once (no `:passive` notice follows).
  A session that was passive starts reading again.

  `{:error, %Error{reason: {:bad_argument, detail}}}` for anything else.
  """
  @spec set_active(t(), active()) :: :ok | {:error, Error.t()}
  def set_active(%__MODULE__{ref: ref}, active)
      when (is_integer(active) and active in 1..4_294_967_295) or is_boolean(active) or
             active == :once do
    Native.conn_set_active(ref, active)
  end

  def set_active(%__MODULE__{}, other) do
    {:error,
     %Error{
       reason:
         {:bad_argument,
          "set_active/2 takes a positive integer, :once, true or false, got: #{inspect(other)}"}
     }}
  end

  @doc "Ends the session cleanly (`{:closed, :normal}` follows); idempotent."
  @spec close(t()) :: :ok
  def close(%__MODULE__{ref: ref}), do: Native.conn_close(ref)

  @doc "True until the session is over."
  @spec alive?(t()) :: boolean()
  def alive?(%__MODULE__{ref: ref}), do: Native.conn_alive(ref)

  @doc """
  Sessions whose memory is still held (open, or closed but not yet freed).
  Tests use it to check that nothing leaks.
  """
  @spec count() :: non_neg_integer()
  def count, do: Native.conn_count()

  @doc false
  # The map the NIF reads: the validated options (their keys are those of
  # @defaults), with the reconnect policy spread out and defaults that
  # depend on other options filled in.
  def config(opts) do
    with {:ok, opts} <- validate_keys(opts),
         {:ok, _jid} <- required_binary(opts, :jid),
         {:ok, _password} <- required_binary(opts, :password),
         {:ok, reconnect} <- reconnect(opts[:reconnect]),
         :ok <- check(opts),
         {:ok, servers} <- servers(opts[:servers], opts[:host]),
         {:ok, nice} <- io_thread_nice() do
      component? = opts[:mode] == :component

      config =
        opts
        |> Map.new()
        |> Map.merge(reconnect)
        |> Map.merge(%{
          servers: servers,
          # A component (XEP-0114) has no STARTTLS: plaintext (loopback
          # only) unless told :direct.
          tls: opts[:tls] || if(component?, do: :plain, else: :starttls),
          port: opts[:port] || if(component?, do: 5347, else: 5222),
          initial_presence: opts[:initial_presence] and not component?,
          io_thread_nice: nice,
          owner: opts[:owner] || self()
        })

      {:ok, config}
    end
  end

  # Read by the NIF when the first session starts the shared runtime.
  defp io_thread_nice do
    case Application.get_env(:xmpp_bridge, :io_thread_nice, 10) do
      n when is_integer(n) and n in 0..19 -> {:ok, n}
      other -> {:error, %Error{reason: {:bad_option, {:io_thread_nice, other}}}}
    end
  end

  defp validate_keys(opts) do
    if Keyword.keyword?(opts) do
      # As with Keyword.get/2, the first occurrence of a key wins.
      opts = Enum.uniq_by(opts, &elem(&1, 0))

      case Keyword.validate(opts, [:jid, :password | @defaults]) do
        {:ok, opts} -> {:ok, opts}
        {:error, unknown} -> {:error, %Error{reason: {:bad_option, {:unknown, unknown}}}}
      end
    else
      {:error, %Error{reason: {:bad_option, opts}}}
    end
  end

  defp required_binary(opts, key) do
    case opts[key] do
      value when is_binary(value) and value != "" -> {:ok, value}
      other -> {:error, %Error{reason: {:bad_option, {key, other}}}}
    end
  end

  defp reconnect(true), do: reconnect([])
  defp reconnect(false), do: reconnect_map(false, [])

  defp reconnect(opts) when is_list(opts) do
    if Keyword.keyword?(opts) and Keyword.keys(opts) -- [:initial, :max, :max_attempts] == [] do
      reconnect_map(true, opts)
    else
      {:error, %Error{reason: {:bad_option, {:reconnect, opts}}}}
    end
  end

  defp reconnect(other), do: {:error, %Error{reason: {:bad_option, {:reconnect, other}}}}

  defp reconnect_map(enabled, opts) do
    initial = Keyword.get(opts, :initial, 500)
    max = Keyword.get(opts, :max, 30_000)
    attempts = Keyword.get(opts, :max_attempts)

    if pos?(initial) and pos?(max) and
         (attempts == nil or (is_integer(attempts) and attempts >= 0)) do
      {:ok,
       %{reconnect: enabled, backoff_initial: initial, backoff_max: max, max_attempts: attempts}}
    else
      {:error, %Error{reason: {:bad_option, {:reconnect, opts}}}}
    end
  end

  defp pos?(n), do: is_integer(n) and n > 0

  # [{host, port} | "host:port"] -> [{host, port}]; no :host with them.
  defp servers(nil, _host), do: {:ok, []}

  defp servers(list, nil) when is_list(list) and list != [] do
    list
    |> Enum.map(&server/1)
    |> Enum.split_with(&match?({:ok, _}, &1))
    |> case do
      {ok, []} -> {:ok, Enum.map(ok, &elem(&1, 1))}
      {_, [{:error, bad} | _]} -> {:error, %Error{reason: {:bad_option, {:servers, bad}}}}
    end
  end

  defp servers(list, host) when is_list(list) and list != [],
    do: {:error, %Error{reason: {:bad_option, {:servers, {:host_given_too, host}}}}}

  defp servers(other, _host), do: {:error, %Error{reason: {:bad_option, {:servers, other}}}}

  defp server({host, port} = s) when is_binary(host) and host != "" and is_integer(port),
    do: if(port in 1..65_535, do: {:ok, s}, else: {:error, s})

  defp server(text) when is_binary(text) do
    with [_, host, port] <- Regex.run(~r/^\[?([^\[\]]+?)\]?:(\d{1,5})$/, text),
         {port, ""} when port in 1..65_535 <- Integer.parse(port) do
      {:ok, {host, port}}
    else
      _ -> {:error, text}
    end
  end

  defp server(other), do: {:error, other}

  # The NIF keeps the credit in 32 bits.
  defp active?(n) when is_integer(n), do: n in 1..4_294_967_295
  defp active?(mode), do: mode in [:once, true]

  # "1.2.3.4:53" or "[::1]:53", the forms Rust's SocketAddr reads.
  defp socket_address?(text) when is_binary(text) do
    case Regex.run(~r/^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d{1,5})$/, text) do
      [_, v6, v4, port] ->
        ip = if v6 != "", do: v6, else: v4
        ok_ip = match?({:ok, _}, :inet.parse_strict_address(String.to_charlist(ip)))
        ok_ip and String.to_integer(port) in 1..65_535

      _ ->
        false
    end
  end

  defp socket_address?(_), do: false

  defp check(opts) do
    checks = [
      mode: opts[:mode] in [:client, :component],
      tls: opts[:tls] in [nil, :starttls, :direct, :plain],
      host: opts[:host] == nil or is_binary(opts[:host]),
      dns_server: opts[:dns_server] == nil or socket_address?(opts[:dns_server]),
      port: opts[:port] == nil or (is_integer(opts[:port]) and opts[:port] in 1..65_535),
      ca_file: opts[:ca_file] == nil or is_binary(opts[:ca_file]),
      server_name: opts[:server_name] == nil or is_binary(opts[:server_name]),
      resource: opts[:resource] == nil or is_binary(opts[:resource]),
      connect_timeout: pos?(opts[:connect_timeout]),
      keepalive: opts[:keepalive] == nil or pos?(opts[:keepalive]),
      keepalive_timeout: pos?(opts[:keepalive_timeout]),
      queue_limit: pos?(opts[:queue_limit]),
      stream_management: is_boolean(opts[:stream_management]),
      initial_presence: is_boolean(opts[:initial_presence]),
      max_stanza_bytes: pos?(opts[:max_stanza_bytes]),
      batch_delay: is_integer(opts[:batch_delay]) and opts[:batch_delay] in 0..1000,
      active: active?(opts[:active]),
      bus_incarnation: opts[:bus_incarnation] == nil or token?(opts[:bus_incarnation]),
      owner: opts[:owner] == nil or is_pid(opts[:owner])
    ]

    case Enum.find(checks, fn {_key, ok} -> not ok end) do
      nil -> :ok
      {key, false} -> {:error, %Error{reason: {:bad_option, {key, opts[key]}}}}
    end
  end

  defp token?(t), do: is_binary(t) and byte_size(t) in 1..64 and t =~ ~r/^[A-Za-z0-9._-]+$/

  defimpl Inspect do
    def inspect(%{id: id}, _opts), do: "#XmppBridge.Connection<#{id}>"
  end
end
