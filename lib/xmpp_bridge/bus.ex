defmodule XmppBridge.Bus do
  @moduledoc """
  A bus node: one XMPP session that gives BEAM processes what Erlang
  distribution gives them between nodes - `send`, `monitor` and
  `:erpc.call` - with peers in Elixir, Erlang or Rust that only need to
  reach an XMPP server. The wire protocol is docs/PROTOCOL.md §5.

      {:ok, bus} = XmppBridge.Bus.start_link(jid: "alice@example.com", password: "secret",
                                             receiver: self())
      :ok = XmppBridge.Bus.await_online(bus)

      # terms to a JID
      {:ok, ref} = XmppBridge.Bus.send(bus, "bob@example.com", {:job, 42, %{"input" => [1, 2]}})
      receive do
        {:xmpp_bridge_bus, :message, from, term} -> {from, term}
      end

      # RPC over IQ
      :ok = XmppBridge.Bus.serve(bus, "add", fn a, b -> a + b end)
      {:ok, 3} = XmppBridge.Bus.call(bus, "bob@example.com", "add", [1, 2], 5_000)

      # monitors
      mon = XmppBridge.Bus.monitor(bus, "bob@example.com")
      receive do
        {:DOWN, ^mon, :bus_node, jid, reason} -> {jid, reason}
      end

  A node is a supervised process (`child_spec/1` comes from `use
  GenServer`): its session reconnects and resumes by itself, and the bus
  keeps its monitors, served methods and unconfirmed sends across that.

  ## Addresses

  A node binds the resource `"bus"` (option `:resource`), so its address is
  `user@domain/bus`. Where a function takes a JID, a bare JID means that
  address (IQs to a bare JID are answered by the server, not by a node).

  ## Messages to processes

    * `{:xmpp_bridge_bus, :message, from, term}` - a term sent to this node,
      to the `:receiver`. `from` is the sender's full JID (a binary). A
      remote peer controls only `term`, which cannot hold pids, references,
      ports or funs, and whose unknown atoms arrive as
      `XmppBridge.Bus.UnknownAtom` structs: no peer can produce a message
      of another shape (a GenServer call, a `:DOWN`, an `:EXIT`).
    * `{:xmpp_bridge_bus, :delivered, ref, jid}` - a `delivery: :confirmed`
      send reached the receiving process (XEP-0184 receipt).
    * `{:xmpp_bridge_bus, :failed, ref, reason}` - a send will not arrive:
      the session could not get it to the server, the server bounced it
      (`{:bounced, condition}`), or (`:confirmed`) no receipt came by its
      deadline (`:timeout`).
    * `{:DOWN, ref, :bus_node, jid, reason}` - a monitored node went down:
      `:noconnection`, `:shutdown`, `:heartbeat_timeout` or `:restarted`;
      for a process JID on a name host (docs/PROTOCOL.md §7) also `:noproc`
      (nobody holds the name) or `{:exit, :normal | :shutdown | :killed |
      :error}` (how its holder ended).

  Delivery messages go to the process that called `send/4`, DOWN messages
  to the one that called `monitor/2`.

  ## Name hosts: a JID for every process

  A node started with `mode: :component` (and the component's domain and
  secret as `:jid` and `:password`) is a name host (docs/PROTOCOL.md §7):
  any process registers a name with `register/3` and is then
  `name@<domain>/bus`.

      {:ok, host} = XmppBridge.Bus.start_link(mode: :component, jid: "bridge.example.com",
                                              password: "component secret")
      :ok = XmppBridge.Bus.register(host, "worker-7")
      receive do
        {:xmpp_bridge_bus, :message, from, term} -> {from, term}
        {:xmpp_bridge_bus, :call, call, _from, "add", [a, b]} -> XmppBridge.Bus.reply(call, a + b)
      end

  The host answers pings, watch presences and disco#info for each name
  with the name's own incarnation, bounces what comes for a name nobody
  holds (`noproc`), and tells a name's watchers how its process ended.
  It joins no groups and stores nothing for absent names.

  ## Flow control

  The session hands the bus at most `:window` stanzas (default 100) before
  it waits; the bus grants more only while the receiver's mailbox, the
  mailbox of every process in a group, and on a name host the mailbox of
  every registered process given a term or call since the last grant,
  hold fewer than `:max_mailbox` messages (default 10,000) and the
  receiver exists. What they cannot take
  yet waits in the socket and on the server, not in memory here.

  A node has one stream: one slow process holds back everything the node
  receives, heartbeats included. A node held back for longer than its
  peers' `:heartbeat_timeout` looks down to them (they get `:DOWN` and
  `:left`); give slow work its own process and keep receivers draining.
  """

  use GenServer

  require Logger

  alias XmppBridge.{Connection, Error, Iq, Message, Presence}
  alias XmppBridge.Payload.DiscoItems
  alias XmppBridge.Bus.{Bounded, Call, Group, Names, Wire}
  alias XmppBridge.Bus.Term, as: BusTerm

  @registry XmppBridge.Client.Registry

  @bus_defaults [
    name: nil,
    receiver: nil,
    heartbeat: 5_000,
    heartbeat_timeout: 5_000,
    max_calls: 64,
    handlers: %{},
    retry_interval: 5_000,
    max_mailbox: 10_000,
    window: 100,
    peer_resource: "bus",
    muc_service: nil,
    discovery: nil
  ]

  @dedupe_size 65_536
  @bounce_window 65_536

  @typedoc "A bus node: its pid or registered name."
  @type bus :: GenServer.server()

  @typedoc "An address: a bare or full JID (a bare JID means `jid/bus`)."
  @type jid :: String.t()

  @typedoc "A method handler: a fun taking the call's arguments, or `{module, function}`."
  @type handler :: function() | {module(), atom()}

  @typedoc "Why a monitored node is reported down."
  @type down_reason ::
          :noconnection
          | :shutdown
          | :heartbeat_timeout
          | :restarted
          | :noproc
          | {:exit, :normal | :shutdown | :killed | :error}

  @typedoc """
  Options of `send/4`:

    * `:delivery` - `:server` (default: only failures are reported),
      `:confirmed` (the receiving node confirms; every ref ends with
      `:delivered` or `:failed`) or `:none` (nothing is reported)
    * `:deadline` - ms a `:confirmed` send may take to be confirmed before
      it fails with `:timeout` (default 60,000)
    * `:retry` - with `:confirmed`, also send again (same id) when no
      receipt came within `:retry_interval`, doubling the wait each time,
      until the deadline (default `false`: only what the server did not
      take is sent again)
    * `:format` - `:term` (default) or `:json` (XEP-0335, for peers that
      speak neither Erlang nor Rust)
  """
  @type send_option ::
          {:delivery, :server | :confirmed | :none}
          | {:deadline, pos_integer()}
          | {:retry, boolean()}
          | {:format, :term | :json}

  ## API

  @doc """
  Starts a bus node linked to the caller.

  Takes the options of `XmppBridge.Connection.open/1` (`:jid`, `:password`,
  `:host`, ...; `:resource` defaults to `"bus"`) and:

    * `:name` - register the node under this name
    * `:receiver` - pid or registered name of the process that gets the
      terms sent to this node (default none: terms wait, on the server,
      until `set_receiver/2`)
    * `:handlers` - methods to serve from the start: `%{name => handler}`
    * `:heartbeat` - ms between the pings of monitored nodes (default 5000)
    * `:heartbeat_timeout` - ms a ping may stay unanswered (default 5000)
    * `:max_calls` - calls this node runs at once; more are answered
      `:busy` (default 64)
    * `:retry_interval` - ms before a `retry: true` send is sent again
      (default 5000)
    * `:max_mailbox`, `:window` - see "Flow control"
    * `:peer_resource` - the resource a bare JID is completed with
      (default `"bus"`)
    * `:muc_service` - the MUC service groups live on (default
      `"conference.<domain>"`)
    * `:discovery` - a group the node joins at start and stays in, whose
      members are `nodes/1` (default none; not on a name host)

  With `mode: :component` the node is a name host (see "Name hosts").
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) when is_list(opts) do
    case Keyword.get(opts, :name) do
      nil -> GenServer.start_link(__MODULE__, opts)
      name -> GenServer.start_link(__MODULE__, opts, name: name)
    end
  end

  @doc """
  Waits until the node's session is online and, for a node started with
  `:discovery`, the node is in its discovery group (so that `nodes/1`
  answers): `:ok`, or `{:error, %Error{reason: :timeout}}`.
  """
  @spec await_online(bus(), timeout()) :: :ok | {:error, Error.t()}
  def await_online(bus, timeout \\ 10_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    wait_online(bus, deadline)
  end

  defp wait_online(bus, deadline) do
    cond do
      jid(bus) != nil and GenServer.call(bus, :discovery_joined?) ->
        :ok

      System.monotonic_time(:millisecond) >= deadline ->
        {:error, %Error{reason: :timeout}}

      true ->
        Process.sleep(20)
        wait_online(bus, deadline)
    end
  end

  @doc "The full JID the node's session is bound to (`nil` before it first came online)."
  @spec jid(bus()) :: String.t() | nil
  def jid(bus), do: info(bus, :jid)

  @doc "The node's incarnation: 16 hex digits drawn when it started (docs/PROTOCOL.md §5.1)."
  @spec incarnation(bus()) :: String.t()
  def incarnation(bus), do: GenServer.call(bus, :incarnation)

  @doc "Sets the process (pid or registered name) that receives the terms sent to this node."
  @spec set_receiver(bus(), pid() | atom() | nil) :: :ok
  def set_receiver(bus, receiver) when is_pid(receiver) or is_atom(receiver),
    do: GenServer.call(bus, {:set_receiver, receiver})

  @doc """
  Sends `term` to the node at `jid`; returns `{:ok, ref}` at once.

  The receiver there gets `{:xmpp_bridge_bus, :message, our_jid, term}`,
  once. What is reported back to the caller depends on `:delivery` (see
  `t:send_option/0`). A term holding a pid, reference, port or fun is
  refused here with `{:error, %Error{reason: {:not_portable, what}}}`;
  `{:error, %Error{reason: :queue_full}}` when the session's outbound queue
  is full.
  """
  @spec send(bus(), jid(), term(), [send_option()]) :: {:ok, reference()} | {:error, Error.t()}
  def send(bus, jid, term, opts \\ []) do
    with {:ok, opts} <- send_options(opts),
         {:ok, value_el, body} <- Wire.value_and_body(term, opts.format) do
      case opts.delivery do
        # Sent again until confirmed: the bus process keeps it.
        :confirmed -> GenServer.call(bus, {:send, jid, value_el, body, opts})
        _ -> send_direct(bus, jid, value_el, body, opts.delivery)
      end
    end
  end

  # `:server` and `:none` sends go out from the caller (encoded in the
  # caller, in parallel with other senders); the bus is only told the
  # sequence number, to report a failure or a bounce.
  defp send_direct(bus, jid, value_el, body, delivery) do
    with {:ok, info} <- lookup(bus),
         {:ok, to} <- caller_address(jid, info.peer_resource) do
      id = info.incarnation <> Integer.to_string(:atomics.add_get(info.ids, 1, 1), 36)

      msg = %{Wire.term_message(to, id, value_el, body, false) | from: name_jid(info, self())}

      case Connection.send(info.conn, msg) do
        {:ok, seq} ->
          ref = make_ref()
          if delivery == :server, do: Kernel.send(info.bus, {:track, seq, id, ref, self()})
          {:ok, ref}

        {:error, _} = error ->
          error
      end
    end
  end

  # The caller's cache of parsed addresses (a JID is parsed by a NIF call).
  defp caller_address(jid, resource) do
    cache = Process.get(:xmpp_bridge_bus_addresses, %{})

    case cache do
      %{{^jid, ^resource} => to} ->
        {:ok, to}

      _ ->
        with {:ok, to} <- Wire.address(jid, resource) do
          cache = if map_size(cache) >= 1000, do: %{}, else: cache
          Process.put(:xmpp_bridge_bus_addresses, Map.put(cache, {jid, resource}, to))
          {:ok, to}
        end
    end
  end

  @doc """
  Calls `method` on the node at `jid` with `args` (a list) and waits up to
  `timeout` ms for the result.

  Runs in the calling process (the bus process is not in the way). Errors,
  as `{:error, %XmppBridge.Error{reason: reason}}`: `:timeout` (the serving
  node is told to give up, and a late answer is dropped),
  `{:no_method, method}`, `{:crashed, detail}`, `:busy`,
  `{:peer_unavailable, condition}` (at once, when the server answers for a
  node that is not online), `{:bad_args, detail}`, `{:not_portable, what}`
  (the arguments), or why our own session is down.
  """
  @spec call(bus(), jid(), String.t() | atom(), list(), pos_integer()) ::
          {:ok, term()} | {:error, Error.t()}
  def call(bus, jid, method, args, timeout \\ 5_000)

  def call(bus, jid, method, args, timeout)
      when is_list(args) and is_integer(timeout) and timeout > 0 do
    with {:ok, method} <- Wire.method_name(method),
         {:ok, %{conn: conn, peer_resource: res} = info} <- lookup(bus),
         {:ok, to} <- Wire.address(jid, res),
         {:ok, args_el} <- Wire.value_element(args, :term) do
      from = name_jid(info, self())
      iq = %{Wire.call_iq(to, method, args_el, timeout) | from: from}

      case Connection.iq(conn, iq, timeout) do
        {:ok, answer} ->
          Wire.result_value(answer)

        {:error, %Error{reason: :timeout}} ->
          _ = Connection.send(conn, %{Wire.cancel(to, iq.id) | from: from})
          {:error, %Error{reason: :timeout}}

        {:error, %Error{reason: {:iq_error, answer}}} ->
          {:error, %Error{reason: Wire.call_error(answer)}}

        {:error, _} = error ->
          error
      end
    end
  end

  def call(_bus, _jid, _method, args, timeout) do
    {:error,
     %Error{
       reason:
         {:bad_argument,
          "call/5 takes a list of arguments and a positive timeout, got: #{inspect(args)}, #{inspect(timeout)}"}
     }}
  end

  @doc """
  Waits until the server has handled everything this node sent before:
  pings the node's own server through the same session (servers handle a
  session's stanzas in order). `:ok`, or the `XmppBridge.Connection.iq/3`
  error. Handy before telling another party that terms were sent (e.g.
  that they are stored offline).
  """
  @spec sync(bus(), pos_integer()) :: :ok | {:error, Error.t()}
  def sync(bus, timeout \\ 5_000) do
    # A name host (a component) pings its own domain: the server routes
    # that back to it, after what it sent before.
    with {:ok, %{conn: conn, jid: jid}} when is_binary(jid) <- lookup(bus),
         [_, domain] <- Regex.run(~r/@([^\/]+)/, jid) || [jid, jid],
         {:ok, _} <- Connection.iq(conn, Wire.ping(domain), timeout) do
      :ok
    else
      {:ok, _} -> {:error, %Error{reason: :closed}}
      nil -> {:error, %Error{reason: :closed}}
      {:error, _} = error -> error
    end
  end

  @doc """
  Serves `method` (a string; an atom is taken by name): a call runs
  `handler` with the call's arguments (`apply(fun, args)`, or
  `apply(module, function, args)`) in a process of its own, and its return
  value is the result. A handler that raises, throws or exits answers
  `{:crashed, detail}`; one that runs past the caller's deadline is killed
  and answers `:timeout`. Replaces an earlier handler of the same name.
  """
  @spec serve(bus(), String.t() | atom(), handler()) :: :ok | {:error, Error.t()}
  def serve(bus, method, handler) do
    with {:ok, method} <- Wire.method_name(method),
         :ok <- check_handler(handler) do
      GenServer.call(bus, {:serve, method, handler})
    end
  end

  @doc "Stops serving `method`; calls then answer `{:no_method, method}`."
  @spec unserve(bus(), String.t() | atom()) :: :ok | {:error, Error.t()}
  def unserve(bus, method) do
    with {:ok, method} <- Wire.method_name(method) do
      GenServer.call(bus, {:unserve, method})
    end
  end

  @doc """
  Monitors the node at `jid`; returns a reference.

  `{:DOWN, ref, :bus_node, jid, reason}` arrives once (`jid` as given,
  completed to a full JID): `:noconnection` when the node is not online
  when monitored or its session ended, `:shutdown` when it stopped
  cleanly, `:heartbeat_timeout` when it missed a heartbeat (a killed or
  stopped node whose server still keeps its session), `:restarted` when
  another incarnation answers under the same JID. A raise for a JID that
  is not valid.
  """
  @spec monitor(bus(), jid()) :: reference()
  def monitor(bus, jid) do
    case GenServer.call(bus, {:monitor, jid}) do
      {:ok, ref} -> ref
      {:error, error} -> raise error
    end
  end

  @doc "Removes a monitor; no DOWN for it arrives after this returns (`:flush` option as in `Process.demonitor/2`)."
  @spec demonitor(bus(), reference(), [:flush]) :: :ok
  def demonitor(bus, ref, opts \\ []) when is_reference(ref) do
    :ok = GenServer.call(bus, {:demonitor, ref})

    if :flush in opts do
      receive do
        {:DOWN, ^ref, :bus_node, _, _} -> :ok
      after
        0 -> :ok
      end
    end

    :ok
  end

  @typedoc """
  A node's status (docs/PROTOCOL.md §6.2): presence `show`, a `text` for
  humans, and a `term` such as its load (`nil` when not given).
  """
  @type status :: %{
          show: nil | :chat | :away | :xa | :dnd,
          text: String.t() | nil,
          term: term()
        }

  @typedoc "A group member: its full JID, whether it is a bus node, its status."
  @type member :: %{jid: jid(), bus: boolean(), status: status()}

  @doc """
  Joins `group` (a MUC room on the node's MUC service, docs/PROTOCOL.md
  §6.1) for the calling process, which from then on receives
  `{:xmpp_bridge_bus, :group, group, from, term}` for every broadcast of
  another member, in the order each member sent them. Returns once the
  node is in the room (the first joiner creates and configures it).

  Options:

    * `:events` - also send the caller `{:xmpp_bridge_bus, :joined, group,
      jid}`, `{:xmpp_bridge_bus, :left, group, jid, reason}` (`:left`, or
      a `t:down_reason/0` when the member's heartbeat failed) and
      `{:xmpp_bridge_bus, :status, group, jid, status}` (default `false`)
    * `:history` - replay the last n messages of the room (default 0)
    * `:timeout` - ms to wait for the join (default 10,000)
    * `:member_heartbeat` - watch every bus member with the node's
      heartbeat, so that a member whose session died without a word
      (kill -9, a dead server node: the room keeps a ghost) leaves the
      list after `:heartbeat` + `:heartbeat_timeout` (default `true`).
      With `false` members leave the list only when the room says so (a
      clean leave or stop, a kick, the room's own timeout), and the group
      costs no pings: in a group of n where every node watches every
      other, that is n(n-1) pings per heartbeat (docs/SCALING.md). Watch
      the members that matter with `monitor/3` instead. The first join of
      the group on this node decides.

  The node stays in the room until the last process that joined leaves or
  exits, and joins again by itself after a reconnect that was not a
  resumption. Errors: `{:bad_group, detail}`, `{:join_failed, condition}`,
  `:timeout`.
  """
  @spec join(bus(), String.t(), keyword()) :: :ok | {:error, Error.t()}
  def join(bus, group, opts \\ []) do
    with :ok <- Group.check_name(group),
         {:ok, opts} <- join_options(opts) do
      GenServer.call(bus, {:join, group, opts}, opts.timeout + 1_000)
    end
  end

  defp join_options(opts) do
    case Keyword.validate(opts, events: false, history: 0, timeout: 10_000, member_heartbeat: true) do
      {:ok, kw} ->
        o = Map.new(kw)

        if is_boolean(o.events) and is_integer(o.history) and o.history >= 0 and pos?(o.timeout) and
             is_boolean(o.member_heartbeat),
           do: {:ok, o},
           else: {:error, %Error{reason: {:bad_option, opts}}}

      {:error, unknown} ->
        {:error, %Error{reason: {:bad_option, {:unknown, unknown}}}}
    end
  end

  @doc "The calling process leaves `group`; the node leaves the room when no process is left in it."
  @spec leave(bus(), String.t()) :: :ok
  def leave(bus, group), do: GenServer.call(bus, {:leave, group})

  @doc """
  Sends `term` to every member of `group` (a `groupchat` message through
  the room). The node must be in the group (`{:not_joined, group}`
  otherwise); the sender's own subscribers do not get it back. Confirmed by
  the server, not by the members; never stored for members that are away.
  Options: `:format` (`:term` or `:json`, as in `send/4`), and `:body`:
  the text ordinary clients in the room show (UTF-8, cut to 1024 bytes),
  instead of the term as Elixir would print it - a string term otherwise
  shows in quotes. Bus members get the term either way.
  """
  @spec broadcast(bus(), String.t(), term(), keyword()) :: :ok | {:error, Error.t()}
  def broadcast(bus, group, term, opts \\ []) do
    format = Keyword.get(opts, :format, :term)
    text = Keyword.get(opts, :body)

    with true <-
           (format in [:term, :json] and (text == nil or is_binary(text))) ||
             {:error, %Error{reason: {:bad_option, opts}}},
         true <-
           text == nil or String.valid?(text) ||
             {:error, %Error{reason: {:bad_option, {:body, text}}}},
         {:ok, value_el, body} <- Wire.value_and_body(term, format) do
      body = if text, do: BusTerm.readable(text), else: body
      GenServer.call(bus, {:broadcast, group, value_el, body})
    end
  end

  @doc "The members of a group the node is in, this node included, sorted by JID."
  @spec members(bus(), String.t()) :: {:ok, [member()]} | {:error, Error.t()}
  def members(bus, group), do: GenServer.call(bus, {:members, group})

  @doc """
  The nodes online: the members of the discovery group (option
  `:discovery`), with their status. `{:error, %Error{reason:
  :no_discovery_group}}` when the node has none.
  """
  @spec nodes(bus()) :: {:ok, [member()]} | {:error, Error.t()}
  def nodes(bus), do: GenServer.call(bus, :discovery)

  @doc """
  Publishes this node's status: `:show` (`nil`, `:chat`, `:away`, `:xa`,
  `:dnd`), `:text` and `:term` (any portable term, e.g. its load). It goes
  to the node's rooms and watchers; members see it in `members/2` and as
  `:status` events.
  """
  @spec set_status(bus(), keyword()) :: :ok | {:error, Error.t()}
  def set_status(bus, status) do
    with {:ok, status, status_el} <- Group.check_status(status) do
      GenServer.call(bus, {:set_status, status, status_el})
    end
  end

  @doc "The status of `jid` (a full JID) as seen in a group both nodes are in, or `:error`."
  @spec status(bus(), jid()) :: {:ok, status()} | :error
  def status(bus, jid), do: GenServer.call(bus, {:status_of, jid})

  @doc """
  The RPC methods the node at `jid` serves, sorted (a disco#items query,
  docs/PROTOCOL.md §6.3).
  """
  @spec methods(bus(), jid(), pos_integer()) :: {:ok, [String.t()]} | {:error, Error.t()}
  def methods(bus, jid, timeout \\ 5_000) do
    with {:ok, %{conn: conn, peer_resource: res}} <- lookup(bus),
         {:ok, to} <- Wire.address(jid, res),
         {:ok, answer} <- Connection.iq(conn, Wire.methods_query(to), timeout) do
      {:ok, Wire.methods_of(answer)}
    else
      {:error, %Error{reason: {:iq_error, answer}}} ->
        {:error, %Error{reason: Wire.call_error(answer)}}

      error ->
        error
    end
  end

  ## A JID for every process (name hosts)

  @doc """
  Registers `name` for `pid` (default: the caller) on a name host: a bus
  node started with `mode: :component` (docs/PROTOCOL.md §7). The process
  is then reachable at `name@<component domain>/bus` (`jid/2`): terms sent
  there arrive as `{:xmpp_bridge_bus, :message, from, term}`, calls as
  `{:xmpp_bridge_bus, :call, call, from, method, args}` (answer with
  `reply/2` or `reply_error/2`), and other nodes can `monitor/2` it. What
  the process sends through this bus (`send/4`, `call/5`) goes from that
  address.

  As `Process.register/2`: a name belongs to one process, a process holds
  one name, and the name is released when the process exits (its watchers
  get DOWN `{:exit, :normal | :shutdown | :killed | :error}`). Each
  registration is a new incarnation of the name.

  Errors: `{:bad_name, why}` (a name is 1 to 64 bytes of `a-z 0-9 . _ -`,
  starting with a letter or a digit), `{:name_taken, name}`,
  `{:already_named, name}` (the process holds `name`), `:noproc` (the
  process is not alive), `:not_a_name_host` (a client node).
  """
  @spec register(bus(), String.t(), pid()) :: :ok | {:error, Error.t()}
  def register(bus, name, pid \\ self()) when is_pid(pid),
    do: GenServer.call(bus, {:register, name, pid})

  @doc """
  Releases `name`: its watchers get DOWN `{:exit, :normal}`, and calls it
  had not answered are answered `{:crashed, "exited: normal"}`.
  `{:error, %Error{reason: {:not_registered, name}}}` when nobody holds it.
  """
  @spec unregister(bus(), String.t()) :: :ok | {:error, Error.t()}
  def unregister(bus, name), do: GenServer.call(bus, {:unregister, name})

  @doc "The process holding `name` on this name host, or nil (one ETS read, no call)."
  @spec whereis(bus(), String.t()) :: pid() | nil
  def whereis(bus, name) when is_binary(name) do
    case lookup(bus) do
      {:ok, %{names_tab: tab}} when tab != nil ->
        case :ets.lookup(tab, name) do
          [{^name, pid}] -> pid
          [] -> nil
        end

      _ ->
        nil
    end
  end

  @doc "The names registered on this name host, sorted (`[]` on a client node)."
  @spec registered(bus()) :: [String.t()]
  def registered(bus), do: GenServer.call(bus, :registered)

  @doc """
  The address of `name` on this name host: `name@<component domain>/bus`;
  nil on a client node or before the first connection.
  """
  @spec jid(bus(), String.t()) :: String.t() | nil
  def jid(bus, name) when is_binary(name) do
    case info(bus, :jid) do
      domain when is_binary(domain) ->
        if String.contains?(domain, "@"), do: nil, else: "#{name}@#{domain}/bus"

      nil ->
        nil
    end
  end

  @doc """
  Answers a call to a registered name with `value` (from any process).
  `:ok` once handed to the host (a call that no longer waits - timed out,
  cancelled, answered - drops it); `{:error, %Error{reason: {:not_portable,
  what}}}` when `value` cannot cross the bus, and the call still waits for
  an answer.
  """
  @spec reply(Call.t(), term()) :: :ok | {:error, Error.t()}
  def reply(%Call{bus: bus, ref: ref, format: format}, value) do
    with {:ok, el} <- Wire.value_element(value, format) do
      Kernel.send(bus, {:name_answer, ref, {:result, el}})
      :ok
    end
  end

  @doc """
  Answers a call to a registered name with an error, which the caller's
  `call/5` returns: `:no_method`, `{:bad_args, text}`, `:busy` or
  `{:crashed, text}`.
  """
  @spec reply_error(Call.t(), :no_method | :busy | {:bad_args | :crashed, String.t()}) ::
          :ok | {:error, Error.t()}
  def reply_error(%Call{bus: bus, ref: ref} = call, reason) do
    reason =
      case reason do
        :no_method -> {:no_method, call.method}
        :busy -> :busy
        {kind, text} when kind in [:bad_args, :crashed] and is_binary(text) -> reason
        _ -> nil
      end

    if reason do
      Kernel.send(bus, {:name_answer, ref, {:error, reason}})
      :ok
    else
      {:error,
       %Error{
         reason:
           {:bad_argument,
            "reply_error/2 takes :no_method, :busy, {:bad_args, text} or {:crashed, text}"}
       }}
    end
  end

  @doc "Stops the node cleanly: watchers get a goodbye (DOWN `:shutdown`), the session closes."
  @spec stop(bus(), timeout()) :: :ok
  def stop(bus, timeout \\ 5_000), do: GenServer.stop(bus, :normal, timeout)

  ## Options

  @default_send_options %{delivery: :server, deadline: 60_000, retry: false, format: :term}

  defp send_options([]), do: {:ok, @default_send_options}

  defp send_options(opts) when is_list(opts) do
    defaults = Map.to_list(@default_send_options)

    with true <- Keyword.keyword?(opts),
         {:ok, opts} <- Keyword.validate(opts, defaults),
         true <- opts[:delivery] in [:server, :confirmed, :none],
         true <- is_integer(opts[:deadline]) and opts[:deadline] > 0,
         true <- is_boolean(opts[:retry]),
         true <- opts[:format] in [:term, :json] do
      {:ok, Map.new(opts)}
    else
      _ -> {:error, %Error{reason: {:bad_option, opts}}}
    end
  end

  defp send_options(opts), do: {:error, %Error{reason: {:bad_option, opts}}}

  defp check_handler(fun) when is_function(fun), do: :ok
  defp check_handler({m, f}) when is_atom(m) and is_atom(f), do: :ok

  defp check_handler(other),
    do:
      {:error,
       %Error{
         reason:
           {:bad_argument, "a handler is a fun or {module, function}, got: #{inspect(other)}"}
       }}

  defp split_options(opts) do
    {bus, conn} = Keyword.split(opts, Keyword.keys(@bus_defaults))

    with {:ok, bus} <- Keyword.validate(bus, @bus_defaults),
         :ok <- check_bus_options(bus) do
      {:ok, Map.new(bus), conn}
    else
      {:error, %Error{}} = e -> e
      {:error, unknown} -> {:error, %Error{reason: {:bad_option, {:unknown, unknown}}}}
    end
  end

  defp check_bus_options(bus) do
    checks = [
      heartbeat: pos?(bus[:heartbeat]),
      heartbeat_timeout: pos?(bus[:heartbeat_timeout]),
      max_calls: pos?(bus[:max_calls]),
      retry_interval: pos?(bus[:retry_interval]),
      max_mailbox: pos?(bus[:max_mailbox]),
      window: pos?(bus[:window]),
      receiver: bus[:receiver] == nil or is_pid(bus[:receiver]) or is_atom(bus[:receiver]),
      handlers: is_map(bus[:handlers]) or is_list(bus[:handlers]),
      peer_resource: is_binary(bus[:peer_resource]) and bus[:peer_resource] != "",
      muc_service: bus[:muc_service] == nil or is_binary(bus[:muc_service]),
      discovery: bus[:discovery] == nil or Group.check_name(bus[:discovery]) == :ok
    ]

    case Enum.find(checks, fn {_k, ok} -> not ok end) do
      nil -> :ok
      {key, false} -> {:error, %Error{reason: {:bad_option, {key, bus[key]}}}}
    end
  end

  defp pos?(n), do: is_integer(n) and n > 0

  # A name host is a component: it has no groups (docs/PROTOCOL.md §7.4).
  defp check_mode(:component, %{discovery: d}) when d != nil,
    do: {:error, %Error{reason: :name_host_has_no_groups}}

  defp check_mode(_mode, _bus), do: :ok

  defp handlers(list) do
    Enum.reduce_while(list, {:ok, %{}}, fn {name, handler}, {:ok, acc} ->
      with {:ok, name} <- Wire.method_name(name),
           :ok <- check_handler(handler) do
        {:cont, {:ok, Map.put(acc, name, handler)}}
      else
        error -> {:halt, error}
      end
    end)
  end

  ## Lookup

  defp info(bus, key) do
    case lookup(bus) do
      {:ok, info} -> Map.get(info, key)
      {:error, _} -> nil
    end
  end

  # As XmppBridge.Client finds its connection: one ETS read, no call.
  defp lookup(bus) do
    with pid when is_pid(pid) <- XmppBridge.Client.local_pid(bus),
         [{^pid, info}] <- Registry.lookup(@registry, {__MODULE__, pid}) do
      {:ok, info}
    else
      _ -> {:error, %Error{reason: :noproc}}
    end
  end

  ## Server

  @impl GenServer
  def init(opts) do
    Process.flag(:trap_exit, true)

    with {:ok, bus, conn_opts} <- split_options(opts),
         :ok <- check_mode(conn_opts[:mode], bus),
         {:ok, handlers} <- handlers(bus.handlers) do
      incarnation = Base.encode16(:crypto.strong_rand_bytes(8), case: :lower)
      mode = if conn_opts[:mode] == :component, do: :component, else: :client

      conn_opts =
        Keyword.merge(
          if(mode == :client, do: [resource: "bus", initial_presence: false], else: []),
          conn_opts
        )
        |> Keyword.merge(
          owner: self(),
          active: bus.window,
          bus_incarnation: incarnation
        )

      case Connection.open(conn_opts) do
        {:ok, conn} ->
          state =
            bus
            |> Map.drop([:handlers, :name, :muc_service])
            |> Map.merge(%{
              conn: conn,
              jid: nil,
              online: false,
              epoch: 0,
              incarnation: incarnation,
              ids: :atomics.new(1, signed: false),
              addresses: %{},
              # acks and failures of sequence numbers not tracked (yet)
              early: Bounded.new(),
              handlers: handlers,
              # outgoing sends
              by_seq: %{},
              pending: %{},
              recent: Bounded.new(),
              # incoming terms
              seen: Bounded.new(),
              inbox: :queue.new(),
              credit_wait: false,
              credit_timer: false,
              # served calls
              running: %{},
              # monitors
              monitors: %{},
              watched: %{},
              owners: %{},
              watchers: MapSet.new(),
              announced: MapSet.new(),
              # groups and status
              muc_service: bus.muc_service || Group.default_service(conn_opts[:jid]),
              status: Group.empty_status(),
              status_el: nil,
              mode: mode
            })
            |> Map.merge(Group.new_state())
            |> Map.merge(Names.new_state(mode, to_string(conn_opts[:jid])))
            |> then(fn st ->
              if bus.discovery, do: Group.pin(st, bus.discovery, 10_000), else: st
            end)

          {:ok, _} = Registry.register(@registry, {__MODULE__, self()}, registry_info(state))
          Process.send_after(self(), :heartbeat, state.heartbeat)
          Process.send_after(self(), :retry_tick, min(state.retry_interval, 1000))
          {:ok, state}

        {:error, %Error{} = error} ->
          {:stop, error}
      end
    else
      {:error, %Error{} = error} -> {:stop, error}
    end
  end

  defp registry_info(state),
    do: %{
      conn: state.conn,
      jid: state.jid,
      peer_resource: state.peer_resource,
      bus: self(),
      ids: state.ids,
      incarnation: state.incarnation,
      names_tab: state.names_tab
    }

  @impl GenServer
  def handle_call(:incarnation, _from, state), do: {:reply, state.incarnation, state}

  def handle_call({:set_receiver, receiver}, _from, state) do
    state = flush_inbox(%{state | receiver: receiver})
    {:reply, :ok, maybe_grant(state)}
  end

  def handle_call({:serve, method, handler}, _from, state),
    do: {:reply, :ok, put_in(state.handlers[method], handler)}

  def handle_call({:unserve, method}, _from, state),
    do: {:reply, :ok, %{state | handlers: Map.delete(state.handlers, method)}}

  def handle_call({:send, jid, value_el, body, opts}, {pid, _}, state) do
    with {:ok, to, state} <- cached_address(state, jid) do
      {id, state} = next_id(state)
      ref = make_ref()
      confirmed? = opts.delivery == :confirmed
      msg = %{Wire.term_message(to, id, value_el, body, confirmed?) | from: name_jid(state, pid)}

      case Connection.send(state.conn, msg) do
        {:ok, seq} ->
          entry = %{
            ref: ref,
            pid: pid,
            to: to,
            id: id,
            # Only a confirmed send is ever sent again.
            msg: if(confirmed?, do: msg),
            delivery: opts.delivery,
            retry: opts.retry,
            deadline: now() + opts.deadline,
            interval: state.retry_interval,
            next_retry: now() + state.retry_interval
          }

          {:reply, {:ok, ref}, track_send(state, seq, entry)}

        {:error, _} = error ->
          {:reply, error, state}
      end
    else
      error -> {:reply, error, state}
    end
  end

  def handle_call({:monitor, jid}, {pid, _}, state) do
    case Wire.address(jid, state.peer_resource) do
      {:ok, to} ->
        ref = make_ref()
        state = watch(state, to, ref, pid)
        {:reply, {:ok, ref}, state}

      error ->
        {:reply, error, state}
    end
  end

  def handle_call({:demonitor, ref}, _from, state), do: {:reply, :ok, drop_monitor(state, ref)}

  def handle_call({:join, _group, _opts}, _from, %{mode: :component} = state),
    do: {:reply, {:error, %Error{reason: :name_host_has_no_groups}}, state}

  def handle_call({:join, group, opts}, {pid, _} = from, state) do
    case Group.join(state, group, pid, from, opts) do
      {:reply, reply, state, effects} -> {:reply, reply, effects({state, effects})}
      {:noreply, state, effects} -> {:noreply, effects({state, effects})}
    end
  end

  def handle_call({:register, name, pid}, _from, state) do
    case Names.register(state, name, pid) do
      {:ok, state} -> {:reply, :ok, state}
      error -> {:reply, error, state}
    end
  end

  def handle_call({:unregister, name}, _from, state) do
    case Names.unregister(state, name) do
      {:ok, state} -> {:reply, :ok, state}
      error -> {:reply, error, state}
    end
  end

  def handle_call(:registered, _from, state), do: {:reply, Names.registered(state), state}

  def handle_call({:leave, group}, {pid, _}, state),
    do: {:reply, :ok, effects(Group.leave(state, group, pid))}

  def handle_call({:members, group}, _from, state),
    do: {:reply, Group.members(state, group), state}

  def handle_call({:status_of, jid}, _from, state),
    do: {:reply, Group.status_of(state, jid), state}

  def handle_call(:discovery_joined?, _from, state) do
    joined? = Enum.all?(state.groups, fn {_, g} -> not g.pinned or g.phase == :joined end)
    {:reply, joined?, state}
  end

  def handle_call(:discovery, _from, state) do
    case Enum.find(state.groups, fn {_, g} -> g.pinned end) do
      {group, _} -> {:reply, Group.members(state, group), state}
      nil -> {:reply, {:error, %Error{reason: :no_discovery_group}}, state}
    end
  end

  def handle_call({:broadcast, group, value_el, body}, _from, state) do
    {id, state} = next_id(state)

    with {:ok, msg} <- Group.broadcast_message(state, group, value_el, body, id),
         {:ok, _seq} <- Connection.send(state.conn, msg) do
      {:reply, :ok, state}
    else
      error -> {:reply, error, state}
    end
  end

  def handle_call({:set_status, status, status_el}, _from, state) do
    state = %{state | status: status, status_el: status_el}

    if state.online do
      _ = Connection.send(state.conn, Group.status_presence(state, nil))

      for to <- state.watchers,
          do: _ = Connection.send(state.conn, Group.status_presence(state, to))
    end

    {:reply, :ok, Group.announce_status(state)}
  end

  # Applies what Group asks the bus to do: heartbeats on group members.
  defp effects({state, effects}) do
    Enum.reduce(effects, state, fn
      {:watch, jid, ref}, acc ->
        case Wire.address(jid, acc.peer_resource) do
          {:ok, to} -> watch(acc, to, ref, self())
          _ -> acc
        end

      {:unwatch, ref}, acc ->
        drop_monitor(acc, ref)
    end)
  end

  # The address of the name `pid` holds on this host, or nil.
  defp name_jid(%{names_tab: nil}, _pid), do: nil

  defp name_jid(%{names_tab: tab}, pid) do
    case :ets.lookup(tab, pid) do
      [{^pid, jid}] -> jid
      [] -> nil
    end
  end

  # Ids unique per sender: the incarnation (random per start) and a counter.
  defp next_id(state),
    do: {state.incarnation <> Integer.to_string(:atomics.add_get(state.ids, 1, 1), 36), state}

  # Parsing a JID is a NIF call: the addresses a node sends to are kept
  # (up to 10,000; then the cache starts over).
  defp cached_address(state, jid) do
    case state.addresses do
      %{^jid => to} ->
        {:ok, to, state}

      cache ->
        with {:ok, to} <- Wire.address(jid, state.peer_resource) do
          cache = if map_size(cache) >= 10_000, do: %{}, else: cache
          {:ok, to, %{state | addresses: Map.put(cache, jid, to)}}
        end
    end
  end

  @impl GenServer
  def handle_info({:xmpp_bridge, id, event}, %{conn: %Connection{id: id}} = state),
    do: session_event(event, state)

  def handle_info({:track, seq, id, ref, pid}, state) do
    entry = %{ref: ref, pid: pid, id: id, delivery: :server}

    case Bounded.pop(state.early, seq) do
      {nil, _} ->
        {:noreply, track_send(state, seq, entry)}

      {outcome, early} ->
        state = track_send(%{state | early: early}, seq, entry)

        case outcome do
          :acked -> {:noreply, acked(state, [seq])}
          {:failed, reason} -> {:noreply, failed(state, [seq], reason)}
        end
    end
  end

  def handle_info({:call_result, pid, result}, state),
    do: {:noreply, call_finished(state, pid, result)}

  def handle_info({:call_deadline, pid}, state),
    do: {:noreply, call_stopped(state, pid, :timeout)}

  def handle_info({:DOWN, mref, :process, pid, reason}, state) do
    case Names.down(state, pid, mref, reason) do
      {true, state} -> {:noreply, state}
      {false, state} -> process_down(state, pid, mref, reason)
    end
  end

  def handle_info({:name_answer, ref, outcome}, state),
    do: {:noreply, Names.answer(state, ref, outcome)}

  def handle_info({:name_call_deadline, ref}, state),
    do: {:noreply, Names.deadline(state, ref)}

  # A group member's heartbeat (the bus watches members for itself).
  def handle_info({:DOWN, ref, :bus_node, _jid, reason}, state),
    do: {:noreply, effects(Group.member_down(state, ref, reason))}

  def handle_info({:group_retry, group, ref}, state),
    do: {:noreply, Group.retry(state, group, ref)}

  def handle_info({:group_timeout, group}, state),
    do: {:noreply, effects(Group.join_timeout(state, group))}

  def handle_info({:group_configured, group, result}, state),
    do: {:noreply, effects(Group.configured(state, group, result))}

  def handle_info({:ping_result, jid, token, result}, state),
    do: {:noreply, ping_result(state, jid, token, result)}

  def handle_info({:ping_again, jid}, state), do: {:noreply, ping_now(state, jid)}

  def handle_info(:heartbeat, state) do
    Process.send_after(self(), :heartbeat, state.heartbeat)

    state =
      Enum.reduce(Map.keys(state.watched), state, fn jid, acc ->
        if acc.watched[jid].ping == nil, do: ping_now(acc, jid), else: acc
      end)

    {:noreply, Group.self_ping(state, state.heartbeat_timeout)}
  end

  def handle_info({:room_ping, group, token, epoch, result}, state),
    do: {:noreply, effects(Group.room_ping(state, group, token, epoch, result))}

  def handle_info(:retry_tick, state) do
    Process.send_after(self(), :retry_tick, min(state.retry_interval, 1000))
    {:noreply, retry_pending(state)}
  end

  def handle_info(:check_credit, state),
    do: {:noreply, maybe_grant(flush_inbox(%{state | credit_timer: false}))}

  def handle_info({:EXIT, _pid, _reason}, state), do: {:noreply, state}

  def handle_info(msg, state) do
    Logger.debug("XmppBridge.Bus: unexpected message #{inspect(msg)}")
    {:noreply, state}
  end

  defp process_down(state, pid, mref, reason) do
    cond do
      Map.has_key?(state.running, pid) ->
        {:noreply, call_stopped(state, pid, {:crashed, Exception.format_exit(reason)})}

      Map.get(state.owners, pid) == mref ->
        {:noreply, owner_down(state, pid)}

      Map.get(state.group_subs, pid) == mref ->
        {:noreply, effects(Group.subscriber_down(state, pid))}

      true ->
        {:noreply, state}
    end
  end

  @impl GenServer
  def terminate(_reason, state) do
    if state.online do
      seqs =
        for to <- state.watchers,
            {:ok, seq} <- [
              Connection.send(state.conn, Wire.goodbye_presence(to, state.incarnation))
            ],
            do: seq

      seqs = Names.goodbyes(state) ++ seqs

      seqs =
        with :client <- state.mode,
             {:ok, last} <- Connection.send(state.conn, %Presence{type: :unavailable}) do
          [last | seqs]
        else
          _ -> seqs
        end

      await_acked(state.conn, MapSet.new(seqs), now() + 1000)
    end

    Connection.close(state.conn)
    await_closed(state.conn, now() + 2000)
    :ok
  end

  defp await_acked(conn, seqs, deadline) do
    id = conn.id

    if MapSet.size(seqs) > 0 do
      receive do
        {:xmpp_bridge, ^id, {:acked, acked}} ->
          await_acked(conn, MapSet.difference(seqs, MapSet.new(acked)), deadline)

        {:xmpp_bridge, ^id, {:closed, _}} ->
          :ok
      after
        max(deadline - now(), 0) -> :ok
      end
    end
  end

  defp await_closed(conn, deadline) do
    id = conn.id

    receive do
      {:xmpp_bridge, ^id, {:closed, _}} -> :ok
      {:xmpp_bridge, ^id, _} -> await_closed(conn, deadline)
    after
      max(deadline - now(), 0) -> :ok
    end
  end

  ## Session events

  defp session_event({:online, %{jid: jid, resumed: resumed}}, state) do
    state = %{state | jid: jid, online: true}
    Registry.update_value(@registry, {__MODULE__, self()}, fn _ -> registry_info(state) end)

    state =
      if resumed do
        state
      else
        if state.mode == :client,
          do: _ = Connection.send(state.conn, Group.status_presence(state, nil))

        state = %{state | announced: MapSet.new()}

        for to <- state.watchers,
            do: _ = Connection.send(state.conn, Group.status_presence(state, to))

        for {to, _} <- state.watched,
            do: _ = Connection.send(state.conn, watch_presence(state, to))

        state = %{state | announced: MapSet.new(state.watchers)}
        if state.mode == :client, do: Group.rejoin(state), else: Names.online(state)
      end

    # Whatever a ping decided while we were away does not count: ask again.
    state =
      Enum.reduce(Map.keys(state.watched), state, fn to, acc ->
        ping_now(put_in(acc.watched[to].ping, nil), to)
      end)

    {:noreply, state}
  end

  defp session_event({:stanza, stanza}, state), do: {:noreply, stanza(stanza, state)}

  defp session_event({:invalid_stanza, _reason, _xml}, state), do: {:noreply, state}
  defp session_event({:element, _xml}, state), do: {:noreply, state}

  defp session_event(:passive, state), do: {:noreply, maybe_grant(%{state | credit_wait: true})}

  defp session_event({:acked, seqs}, state), do: {:noreply, acked(state, seqs)}

  defp session_event({:failed, seqs, reason}, state), do: {:noreply, failed(state, seqs, reason)}

  defp session_event({:disconnected, _reason}, state),
    do: {:noreply, %{state | online: false, epoch: state.epoch + 1}}

  defp session_event({:reconnecting, _}, state), do: {:noreply, state}

  defp session_event({:closed, :normal}, state), do: {:stop, :normal, %{state | online: false}}

  defp session_event({:closed, reason}, state),
    do: {:stop, {:shutdown, reason}, %{state | online: false}}

  ## Flow control

  # Grants the session more stanzas when it waits for them and the
  # receiver can take more; else looks again in a few ms.
  defp maybe_grant(%{credit_wait: false} = state), do: state

  defp maybe_grant(state) do
    cond do
      :queue.is_empty(state.inbox) and receiver_ready?(state) and subscribers_ready?(state) and
          Names.ready?(state, state.max_mailbox) ->
        :ok = Connection.set_active(state.conn, state.window)
        Names.granted(%{state | credit_wait: false})

      state.credit_timer ->
        state

      true ->
        Process.send_after(self(), :check_credit, 5)
        %{state | credit_timer: true}
    end
  end

  defp receiver_pid(%{receiver: pid}) when is_pid(pid), do: if(Process.alive?(pid), do: pid)
  defp receiver_pid(%{receiver: nil}), do: nil
  defp receiver_pid(%{receiver: name}), do: Process.whereis(name)

  # Without a receiver, stanzas are taken until a term arrives for it: the
  # term waits in the inbox, and the rest on the server.
  defp receiver_ready?(%{receiver: nil}), do: true

  defp receiver_ready?(state) do
    case receiver_pid(state) do
      nil ->
        false

      pid ->
        case Process.info(pid, :message_queue_len) do
          {:message_queue_len, n} -> n < state.max_mailbox
          nil -> false
        end
    end
  end

  # Processes in groups get broadcasts straight away: none may be flooded.
  defp subscribers_ready?(state) do
    Enum.all?(Map.keys(state.group_subs), fn pid ->
      case Process.info(pid, :message_queue_len) do
        {:message_queue_len, n} -> n < state.max_mailbox
        nil -> true
      end
    end)
  end

  ## Incoming stanzas

  defp stanza(stanza, %{names: nil} = state), do: host_stanza(stanza, state)

  defp stanza(stanza, state) do
    case Names.name_of(state, stanza.to) do
      nil -> host_stanza(stanza, state)
      name -> name_stanza(stanza, name, state)
    end
  end

  # A stanza to a name on this host (docs/PROTOCOL.md §7): bounces and
  # receipts of what the name sent are the bus's, as for any sender.
  defp name_stanza(%Message{type: :error, id: id} = msg, _name, state) when is_binary(id),
    do: host_stanza(msg, state)

  defp name_stanza(%Message{} = msg, name, state) do
    case Wire.receipt_for(msg) do
      nil -> Names.message(state, name, msg)
      id -> receipt(state, id, msg.from)
    end
  end

  defp name_stanza(%Iq{type: type} = iq, name, state) when type in [:get, :set],
    do: Names.iq(state, name, iq)

  defp name_stanza(%Presence{} = p, name, state), do: Names.presence(state, name, p)
  defp name_stanza(_other, _name, state), do: state

  defp host_stanza(%Message{type: :error, id: id} = msg, state) when is_binary(id) do
    condition =
      case msg.error do
        %{condition: c} -> Wire.condition_name(c)
        _ -> "undefined-condition"
      end

    bounced(state, id, {:bounced, condition})
  end

  defp host_stanza(%Message{type: :groupchat} = msg, state) do
    case Group.room_of(state, msg.from) do
      {group, nick} -> Group.message(state, group, nick, msg)
      nil -> state
    end
  end

  defp host_stanza(%Message{} = msg, state) do
    cond do
      room = Group.room_of(state, msg.from) ->
        # The room's own notices (configuration changes, invitations).
        Group.room_notice(state, elem(room, 0), msg)

      id = Wire.receipt_for(msg) ->
        receipt(state, id, msg.from)

      id = Wire.cancel_of(msg) ->
        cancel_call(state, msg.from, id)

      true ->
        incoming_term(state, msg)
    end
  end

  defp host_stanza(%Iq{type: :get, payload: %DiscoItems{}} = iq, state),
    do: answer(state, Wire.methods_answer(iq, state.jid, Map.keys(state.handlers)))

  defp host_stanza(%Iq{type: type} = iq, state) when type in [:get, :set] do
    case Wire.call_of(iq) do
      {:call, method, timeout, args} -> serve_call(state, iq, method, timeout, args)
      nil -> answer(state, Wire.error_iq(iq, :not_a_call))
    end
  end

  defp host_stanza(%Presence{} = p, state), do: presence(state, p)
  defp host_stanza(_other, state), do: state

  defp answer(state, stanza) do
    _ = Connection.send(state.conn, stanza)
    state
  end

  ## Incoming terms

  defp incoming_term(state, %Message{from: from} = msg) when is_binary(from) do
    case Wire.message_value(msg.payloads) do
      {:ok, value, _format} ->
        key = {Wire.bare(from), Wire.origin_id(msg)}

        if elem(key, 1) != nil and Bounded.seen?(state.seen, key) do
          maybe_receipt(state, msg)
        else
          seen =
            if elem(key, 1) != nil,
              do: Bounded.remember(state.seen, key, true, @dedupe_size),
              else: state.seen

          state = %{state | seen: seen}

          # Straight to the receiver when nothing waits before it.
          with true <- :queue.is_empty(state.inbox),
               pid when is_pid(pid) <- receiver_pid(state) do
            Kernel.send(pid, {:xmpp_bridge_bus, :message, from, value})
            maybe_receipt(state, msg)
          else
            _ -> flush_inbox(%{state | inbox: :queue.in({from, value, msg}, state.inbox)})
          end
        end

      {:refused, reason} ->
        Logger.warning("XmppBridge.Bus: refused a term from #{from}: #{Error.format(reason)}")

        answer(state, Wire.not_acceptable(msg, Error.format(reason)))

      :none ->
        state
    end
  end

  defp incoming_term(state, _msg), do: state

  defp flush_inbox(state) do
    case :queue.out(state.inbox) do
      {:empty, _} ->
        state

      {{:value, {from, value, msg}}, rest} ->
        case receiver_pid(state) do
          nil ->
            state

          pid ->
            Kernel.send(pid, {:xmpp_bridge_bus, :message, from, value})
            flush_inbox(maybe_receipt(%{state | inbox: rest}, msg))
        end
    end
  end

  defp maybe_receipt(state, msg) do
    if Wire.receipt_requested?(msg) and is_binary(msg.id) do
      answer(state, Wire.receipt(msg.from, Wire.origin_id(msg)))
    else
      state
    end
  end

  ## Outgoing terms

  defp track_send(state, _seq, %{delivery: :none}), do: state

  defp track_send(state, seq, entry) do
    %{
      state
      | by_seq: Map.put(state.by_seq, seq, entry.id),
        pending: Map.put(state.pending, entry.id, entry)
    }
  end

  defp acked(state, seqs) do
    Enum.reduce(seqs, state, fn seq, acc ->
      case Map.pop(acc.by_seq, seq) do
        {nil, _} ->
          early(acc, seq, :acked)

        {id, by_seq} ->
          acc = %{acc | by_seq: by_seq}

          case acc.pending[id] do
            %{delivery: :server} = entry ->
              # Kept a while by id (only whom to tell): a bounce may
              # still follow the ack.
              recent =
                Bounded.remember(
                  acc.recent,
                  id,
                  %{ref: entry.ref, pid: entry.pid},
                  @bounce_window
                )

              %{acc | pending: Map.delete(acc.pending, id), recent: recent}

            _ ->
              acc
          end
      end
    end)
  end

  defp failed(state, seqs, reason) do
    Enum.reduce(seqs, state, fn seq, acc ->
      case Map.pop(acc.by_seq, seq) do
        {nil, _} ->
          early(acc, seq, {:failed, reason})

        {id, by_seq} ->
          acc = %{acc | by_seq: by_seq}

          case acc.pending[id] do
            %{delivery: :confirmed} = entry ->
              # Not taken by the server: send it again (same id) at once.
              resend(acc, entry)

            %{} = entry ->
              notify_failed(entry, reason)
              %{acc | pending: Map.delete(acc.pending, id)}

            nil ->
              acc
          end
      end
    end)
  end

  # The outcome of a sequence number the bus does not know: a send of a
  # caller whose {:track, ...} is still on its way, or a stanza of the bus's
  # own (presence, receipt, answer). Kept for the last 65,536.
  defp early(state, seq, outcome),
    do: %{state | early: Bounded.remember(state.early, seq, outcome, @bounce_window)}

  defp resend(state, entry) do
    if now() >= entry.deadline do
      notify_failed(entry, :timeout)
      %{state | pending: Map.delete(state.pending, entry.id)}
    else
      case Connection.send(state.conn, entry.msg) do
        {:ok, seq} ->
          track_send(state, seq, entry)

        {:error, _} ->
          # Queue full: the retry tick tries again.
          put_in(state.pending[entry.id], %{entry | next_retry: now() + 100, retry: true})
      end
    end
  end

  defp retry_pending(state) do
    t = now()

    Enum.reduce(state.pending, state, fn
      {id, %{delivery: :confirmed} = e}, acc ->
        cond do
          t >= e.deadline ->
            notify_failed(e, :timeout)
            %{acc | pending: Map.delete(acc.pending, id)}

          e.retry and t >= e.next_retry and acc.online ->
            interval = min(e.interval * 2, 60_000)
            resend(acc, %{e | interval: interval, next_retry: t + interval})

          true ->
            acc
        end

      _, acc ->
        acc
    end)
  end

  defp receipt(state, id, from) do
    case state.pending[id] do
      %{delivery: :confirmed} = e when is_binary(from) ->
        if Wire.bare(from) == Wire.bare(e.to) do
          Kernel.send(e.pid, {:xmpp_bridge_bus, :delivered, e.ref, from})
          %{state | pending: Map.delete(state.pending, id)}
        else
          state
        end

      _ ->
        state
    end
  end

  defp bounced(state, id, reason) do
    case state.pending[id] do
      %{} = entry ->
        notify_failed(entry, reason)
        %{state | pending: Map.delete(state.pending, id)}

      nil ->
        case Bounded.pop(state.recent, id) do
          {nil, _} ->
            state

          {entry, recent} ->
            notify_failed(entry, reason)
            %{state | recent: recent}
        end
    end
  end

  defp notify_failed(entry, reason),
    do: Kernel.send(entry.pid, {:xmpp_bridge_bus, :failed, entry.ref, reason})

  ## Served calls

  defp serve_call(state, iq, method, timeout, args) do
    handler = is_binary(method) && state.handlers[method]

    cond do
      not is_binary(method) or method == "" ->
        answer(state, Wire.error_iq(iq, {:bad_args, "a call names its method"}))

      handler in [nil, false] ->
        answer(state, Wire.error_iq(iq, {:no_method, method}))

      map_size(state.running) >= state.max_calls ->
        answer(state, Wire.error_iq(iq, :busy))

      true ->
        case args do
          {:ok, list, format} when is_list(list) ->
            start_call(state, iq, handler, list, format, timeout)

          {:ok, _other, _} ->
            answer(state, Wire.error_iq(iq, {:bad_args, "the arguments are not a list"}))

          {:refused, reason} ->
            answer(state, Wire.error_iq(iq, {:bad_args, Error.format(reason)}))
        end
    end
  end

  defp start_call(state, iq, handler, args, format, timeout) do
    bus = self()
    pid = spawn(fn -> Kernel.send(bus, {:call_result, self(), run_handler(handler, args)}) end)
    mref = Process.monitor(pid)
    timer = Process.send_after(self(), {:call_deadline, pid}, timeout)
    entry = %{iq: iq, mref: mref, timer: timer, format: format}
    put_in(state.running[pid], entry)
  end

  defp run_handler(handler, args) do
    {:ok, apply_handler(handler, args)}
  rescue
    e -> {:crashed, Exception.format(:error, e, __STACKTRACE__)}
  catch
    kind, reason -> {:crashed, Exception.format(kind, reason, __STACKTRACE__)}
  end

  defp apply_handler({m, f}, args), do: apply(m, f, args)
  defp apply_handler(fun, args), do: apply(fun, args)

  defp call_finished(state, pid, result) do
    case take_call(state, pid) do
      nil ->
        state

      {entry, state} ->
        reply =
          case result do
            {:ok, value} ->
              case Wire.value_element(value, entry.format) do
                {:ok, el} ->
                  Wire.result_iq(entry.iq, el)

                {:error, e} ->
                  Wire.error_iq(
                    entry.iq,
                    {:crashed, "the result cannot cross the bus: " <> Exception.message(e)}
                  )
              end

            {:crashed, detail} ->
              Wire.error_iq(entry.iq, {:crashed, detail})
          end

        answer(state, reply)
    end
  end

  # The call ends without a result: its deadline passed, it was cancelled,
  # or its process died. The process is killed if still running.
  defp call_stopped(state, pid, reason) do
    case take_call(state, pid) do
      nil ->
        state

      {entry, state} ->
        Process.exit(pid, :kill)
        answer(state, Wire.error_iq(entry.iq, reason))
    end
  end

  # The running call of process `pid`, taken out of the state with its
  # monitor and deadline timer gone; nil when it already ended.
  defp take_call(state, pid) do
    case Map.pop(state.running, pid) do
      {nil, _} ->
        nil

      {entry, running} ->
        Process.demonitor(entry.mref, [:flush])
        Process.cancel_timer(entry.timer)
        {entry, %{state | running: running}}
    end
  end

  defp cancel_call(state, from, id) do
    case Enum.find(state.running, fn {_pid, e} -> e.iq.id == id and e.iq.from == from end) do
      {pid, _} -> call_stopped(state, pid, :timeout)
      nil -> state
    end
  end

  ## Monitors

  defp watch(state, to, ref, pid) do
    state = put_in(state.monitors[ref], {to, pid})

    state =
      if pid == self() or Map.has_key?(state.owners, pid),
        do: state,
        else: put_in(state.owners[pid], Process.monitor(pid))

    case state.watched[to] do
      nil ->
        entry = %{
          refs: MapSet.new([ref]),
          incarnation: nil,
          state: :checking,
          suspect_until: nil,
          ping: nil
        }

        state = put_in(state.watched[to], entry)

        if state.online,
          do: _ = Connection.send(state.conn, watch_presence(state, to))

        ping_now(state, to)

      entry ->
        put_in(state.watched[to], %{entry | refs: MapSet.put(entry.refs, ref)})
    end
  end

  defp drop_monitor(state, ref) do
    case Map.pop(state.monitors, ref) do
      {nil, _} ->
        state

      {{to, _pid}, monitors} ->
        state = %{state | monitors: monitors}

        case state.watched[to] do
          nil ->
            state

          entry ->
            refs = MapSet.delete(entry.refs, ref)

            if MapSet.size(refs) == 0,
              do: %{state | watched: Map.delete(state.watched, to)},
              else: put_in(state.watched[to].refs, refs)
        end
    end
  end

  defp owner_down(state, pid) do
    state = %{state | owners: Map.delete(state.owners, pid)}

    state.monitors
    |> Enum.filter(fn {_ref, {_to, owner}} -> owner == pid end)
    |> Enum.reduce(state, fn {ref, _}, acc -> drop_monitor(acc, ref) end)
  end

  defp ping_now(%{online: false} = state, _to), do: state

  defp ping_now(state, to) do
    case state.watched[to] do
      nil ->
        state

      entry ->
        token = make_ref()
        bus = self()
        conn = state.conn
        epoch = state.epoch
        timeout = state.heartbeat_timeout

        spawn(fn ->
          Kernel.send(
            bus,
            {:ping_result, to, token, {epoch, Connection.iq(conn, Wire.ping(to), timeout)}}
          )
        end)

        put_in(state.watched[to], %{entry | ping: token})
    end
  end

  defp ping_result(state, to, token, {epoch, result}) do
    case state.watched[to] do
      %{ping: ^token} = entry ->
        entry = %{entry | ping: nil}
        state = put_in(state.watched[to], entry)

        if epoch != state.epoch or not state.online do
          # Our own session went away meanwhile: this decides nothing.
          state
        else
          judge(state, to, entry, classify(result))
        end

      _ ->
        state
    end
  end

  defp classify({:ok, %Iq{} = answer}), do: {:alive, Wire.ping_incarnation(answer)}
  defp classify({:error, %Error{reason: :timeout}}), do: :timeout

  defp classify({:error, %Error{reason: {:iq_error, %Iq{error: %{condition: c} = e}}}}) do
    cond do
      Wire.noproc?(e) -> :noproc
      Wire.unavailable_condition?(c) -> :bounced
      true -> {:alive, nil}
    end
  end

  defp classify({:error, _}), do: :ours

  defp judge(state, _to, _entry, :ours), do: state

  defp judge(state, to, _entry, :timeout), do: down(state, to, :heartbeat_timeout)

  # A name host says nobody holds that name (§7.3).
  defp judge(state, to, _entry, :noproc), do: down(state, to, :noproc)

  defp judge(state, to, entry, {:alive, inc}) do
    cond do
      inc != nil and entry.incarnation != nil and inc != entry.incarnation ->
        down(state, to, :restarted)

      true ->
        put_in(state.watched[to], %{
          entry
          | state: :up,
            suspect_until: nil,
            incarnation: entry.incarnation || inc
        })
    end
  end

  defp judge(state, to, entry, :bounced) do
    case entry.state do
      :checking ->
        down(state, to, :noconnection)

      :up ->
        Process.send_after(self(), {:ping_again, to}, 250)

        put_in(state.watched[to], %{
          entry
          | state: :suspect,
            suspect_until: now() + state.heartbeat_timeout
        })

      :suspect ->
        if now() >= entry.suspect_until do
          down(state, to, :noconnection)
        else
          Process.send_after(self(), {:ping_again, to}, 250)
          state
        end
    end
  end

  defp watch_presence(state, to), do: Group.status_presence(state, to, [{"watch", "true"}])

  defp down(state, to, reason) do
    case Map.pop(state.watched, to) do
      {nil, _} ->
        state

      {entry, watched} ->
        monitors =
          Enum.reduce(entry.refs, state.monitors, fn ref, acc ->
            case Map.pop(acc, ref) do
              {{^to, pid}, acc} ->
                Kernel.send(pid, {:DOWN, ref, :bus_node, to, reason})
                acc

              {_, acc} ->
                acc
            end
          end)

        %{state | watched: watched, monitors: monitors}
    end
  end

  defp presence(state, %Presence{from: from, type: type, payloads: payloads} = p)
       when is_binary(from) do
    case Group.room_of(state, from) do
      {group, nick} -> effects(Group.presence(state, group, nick, p))
      nil -> node_presence(state, from, type, payloads, p.error)
    end
  end

  defp presence(state, _p), do: state

  defp node_presence(state, from, type, payloads, p_error) do
    node = Wire.node_info(payloads)
    state = watcher_presence(state, from, type, node)

    case state.watched[from] do
      nil ->
        state

      entry ->
        cond do
          type == :unavailable and node.goodbye ->
            down(state, from, Wire.goodbye_reason(node.exit))

          type == :error and Wire.noproc?(p_error) ->
            down(state, from, :noproc)

          type == :unavailable ->
            entry = %{entry | state: :suspect, suspect_until: now() + state.heartbeat_timeout}
            ping_now(put_in(state.watched[from], entry), from)

          type == :available and node.incarnation != nil ->
            judge(state, from, entry, {:alive, node.incarnation})

          true ->
            state
        end
    end
  end

  # A node that watches us: answer its presence with ours (once per session).
  defp watcher_presence(state, from, :available, %{watch: true}) do
    state = %{state | watchers: MapSet.put(state.watchers, from)}

    if MapSet.member?(state.announced, from) do
      state
    else
      _ = Connection.send(state.conn, Group.status_presence(state, from))
      %{state | announced: MapSet.put(state.announced, from)}
    end
  end

  defp watcher_presence(state, from, :unavailable, _node) do
    %{
      state
      | watchers: MapSet.delete(state.watchers, from),
        announced: MapSet.delete(state.announced, from)
    }
  end

  defp watcher_presence(state, _from, _type, _node), do: state

  defp now, do: System.monotonic_time(:millisecond)
end
