%%% @doc The xmpp_bridge codec for Erlang applications.
%%%
%%% A thin layer over the Elixir modules of xmpp_bridge (`XmppBridge.Stanza',
%%% `XmppBridge.Xml', `XmppBridge.Jid', `XmppBridge.StreamParser'), which
%%% choose between normal and dirty schedulers and validate options; parsing
%%% and term building happen in the Rust NIF.
%%%
%%% == Results ==
%%% Every codec function returns `{ok, Value}' or `{error, Reason}', where
%%% `Reason' is the bare reason term (an atom-tagged tuple such as
%%% `{malformed_xml, Detail}' or `{too_large, Limit}'), never the Elixir
%%% exception struct. Arguments of the wrong type give an error too
%%% (`{not_binary, X}', `{bad_option, Opts}', ...), not an exception.
%%% {@link format_error/1} turns any reason into a readable binary.
%%%
%%% == Terms ==
%%% Stanzas are the Elixir structs `XmppBridge.Message', `XmppBridge.Presence'
%%% and `XmppBridge.Iq': maps with a `` '__struct__' '' key, read with
%%% `maps:get/2' or map patterns. JIDs and texts in them are binaries; an
%%% absent field holds the atom `nil' (the Elixir convention), while the
%%% helpers of this module ({@link message_body/1}, {@link jid_parse/1})
%%% answer `undefined'. Unknown elements are generic
%%% `{xmlel, Name, Attrs, Children}' tuples with `{xmlcdata, Text}' text
%%% nodes, as in fast_xml. Build messages with {@link chat/2}; change a field
%%% with a map update of an existing key, e.g. `Msg#{id := <<"m1">>}'.
%%%
%%% ```
%%% {ok, Msg} = xmpp_bridge:decode(<<"<message to='a@example.com' type='chat'>"
%%%                                  "<body>hi</body></message>">>),
%%% message = xmpp_bridge:stanza_type(Msg),
%%% <<"hi">> = xmpp_bridge:message_body(Msg),
%%% {ok, Xml} = xmpp_bridge:encode(xmpp_bridge:chat(<<"b@example.com">>, <<"yo">>)).
%%% '''
%%%
%%% == Connections ==
%%% {@link connect/1} opens an XMPP session (`XmppBridge.Connection') owned
%%% by the calling process: the Rust core runs it off the schedulers, and
%%% the session's events arrive in the owner's mailbox as
%%% `{xmpp_bridge, Id, Event}', where `Id' is the `id' field of the
%%% connection (`#{id := Id} = Conn'). {@link conn_event()} is the type of
%%% `Event' (`XmppBridge.Connection''s `event()', whose documentation
%%% describes each one); `{closed, Reason}' is always the last.
%%%
%%% A session hands its owner at most `active' incoming stanzas (default
%%% 1000), then sends `{xmpp_bridge, Id, passive}' and stops reading until
%%% {@link set_active/2} grants more, as `gen_tcp''s `{active, N}' does.
%%% When the owner exits, the session is closed. {@link iq/3} waits in its
%%% caller for the answer, which does not go to the owner's mailbox.
%%%
%%% ```
%%% {ok, Conn} = xmpp_bridge:connect(#{jid => <<"bot@example.com">>,
%%%                                    password => <<"secret">>}),
%%% #{id := Id} = Conn,
%%% receive {xmpp_bridge, Id, {online, #{jid := _FullJid}}} -> ok end,
%%% {ok, Seq} = xmpp_bridge:send(Conn, xmpp_bridge:chat(<<"alice@example.com">>, <<"hi">>)),
%%% receive {xmpp_bridge, Id, {acked, Seqs}} -> true = lists:member(Seq, Seqs) end,
%%% ok = xmpp_bridge:set_active(Conn, 500),
%%% {ok, Ping} = xmpp_bridge:decode(<<"<iq type='get' id='p1' to='example.com'>"
%%%                                   "<ping xmlns='urn:xmpp:ping'/></iq>">>),
%%% {ok, #{type := result}} = xmpp_bridge:iq(Conn, Ping),
%%% {ok, Unknown} = xmpp_bridge:decode(<<"<iq type='get' id='q1' to='example.com'>"
%%%                                      "<query xmlns='urn:example:none'/></iq>">>),
%%% {error, {iq_error, #{type := error}}} = xmpp_bridge:iq(Conn, Unknown, 2000),
%%% ok = xmpp_bridge:close(Conn),
%%% receive {xmpp_bridge, Id, {closed, normal}} -> ok end.
%%% '''
%%% @end
-module(xmpp_bridge).

-export([decode/1, decode/2, encode/1]).
-export([parse_xml/1, parse_xml/2, encode_xml/1]).
-export([jid_parse/1, jid_normalize/1]).
-export([stream_new/0, stream_new/1, stream_feed/2, stream_reset/1]).
-export([format_error/1]).
-export([message_body/1, stanza_type/1, chat/2]).
-export([connect/1, send/2, iq/2, iq/3, set_active/2, close/1]).
-export([bus_start_link/1, bus_await_online/1, bus_send/3, bus_send/4, bus_call/4, bus_call/5,
         bus_serve/3, bus_monitor/2, bus_demonitor/2, bus_jid/1, bus_stop/1,
         bus_join/2, bus_join/3, bus_leave/2, bus_broadcast/3, bus_members/2, bus_nodes/1,
         bus_set_status/2, bus_status/2, bus_methods/2]).
-export([bus_register/2, bus_register/3, bus_unregister/2, bus_whereis/2, bus_registered/1,
         bus_name_jid/2, bus_reply/2, bus_reply_error/2]).

-export_type([stanza/0, xmlel/0, cdata/0, opts/0, jid/0, parser/0, event/0, reason/0]).
-export_type([conn/0, conn_opts/0, seq/0, conn_reason/0, conn_event/0]).
-export_type([bus/0, bus_send_opts/0]).

%% send/2 is ours; messages are sent with the `!' operator here.
-compile({no_auto_import, [send/2]}).

-define(ERROR, 'Elixir.XmppBridge.Error').
-define(PARSER, 'Elixir.XmppBridge.StreamParser').
-define(CONN, 'Elixir.XmppBridge.Connection').
-define(IQ, 'Elixir.XmppBridge.Iq').
-define(BUS, 'Elixir.XmppBridge.Bus').

-type bus() :: pid() | atom().
%% A bus node (`XmppBridge.Bus'): its pid or registered name.
-type bus_send_opts() :: [{delivery, server | confirmed | none} | {deadline, pos_integer()}
                          | {retry, boolean()} | {format, term | json}]
                         | #{atom() => term()}.

-type stanza() :: #{'__struct__' := atom(), atom() => term()}.
%% An `XmppBridge.Message', `XmppBridge.Presence' or `XmppBridge.Iq' struct.
-type xmlel() :: {xmlel, binary(), [{binary(), binary()}], [xmlel() | cdata()]}.
-type cdata() :: {xmlcdata, binary()}.
-type opts() ::
    [{max_bytes, pos_integer()} | {max_depth, pos_integer()}]
    | #{max_bytes => pos_integer(), max_depth => pos_integer()}.
%% `max_bytes' (default 262144) and `max_depth' (default 64, at most 256).
%% In a list the first occurrence of a key wins, as with `proplists'.
-type jid() :: #{
    node := binary() | undefined,
    domain := binary(),
    resource := binary() | undefined
}.
-type parser() :: 'Elixir.XmppBridge.StreamParser':t().
%% Opaque: an `XmppBridge.StreamParser' struct holding a NIF resource.
-type event() ::
    {stream_start, [{binary(), binary()}]}
    | stanza()
    | xmlel()
    | {invalid_stanza, reason(), xmlel()}
    | stream_end
    | {parse_error, reason()}.
-type reason() ::
    {malformed_xml, binary()}
    | {invalid_utf8, non_neg_integer()}
    | {forbidden_xml, dtd | comment | processing_instruction}
    | {undefined_entity, binary()}
    | {too_deep, pos_integer()}
    | {too_large, pos_integer()}
    | {unknown_element, binary()}
    | {bad_namespace, binary()}
    | {invalid_jid, {binary(), localpart | domainpart | resourcepart}}
    | {invalid_value, {binary(), binary(), binary()}}
    | {missing_attribute, {binary(), binary()}}
    | {invalid_iq, binary()}
    | {invalid_field, {atom(), atom()}}
    | {invalid_xml_char, non_neg_integer()}
    | {not_binary, term()}
    | {not_a_stanza, term()}
    | {not_an_element, term()}
    | {bad_option, term()}
    | {bad_argument, binary()}
    | {invalid_json, binary()}
    | {parser_failed, reason()}.
-type conn() :: 'Elixir.XmppBridge.Connection':t().
%% A session: an `XmppBridge.Connection' struct, `#{id := Id, ref := Ref}';
%% `Id' tags the messages sent to its owner.
-type conn_opts() :: [{atom(), term()}] | #{atom() => term()}.
%% The options of `XmppBridge.Connection.open/1', as a map or a proplist
%% (the first occurrence of a key wins): `jid' and `password' (binaries,
%% required), `mode' (`client' | `component'), `host' (binary), `port',
%% `tls' (`starttls' | `direct' | `plain', the last only to a loopback
%% address), `ca_file', `server_name', `resource' (binaries),
%% `connect_timeout', `keepalive' (ms or `nil'), `keepalive_timeout',
%% `reconnect' (`true' | `false' | a map or proplist of `initial', `max',
%% `max_attempts'), `queue_limit', `stream_management', `initial_presence',
%% `max_stanza_bytes', `batch_delay' (ms, 0 to 1000: the longest the next
%% read of a session under sustained incoming load waits so that it carries
%% many stanzas; default 5; 0 reads at once), `active' (incoming stanzas
%% handed over before the session waits for {@link set_active/2}: a
%% positive integer, default 1000, `once' or `true'), `owner' (a pid; default the
%% caller). The sessions' I/O threads run at nice 10, below the schedulers
%% (application env `io_thread_nice', 0 to 19, read when the first session
%% opens).
-type conn_event() :: 'Elixir.XmppBridge.Connection':event().
%% What a session tells its owner, as `{xmpp_bridge, Id, Event}'.
-type seq() :: non_neg_integer().
%% The number {@link send/2} returns, used by the `acked'/`failed' messages.
-type conn_reason() ::
    {bad_option, term()}
    | {bad_argument, binary()}
    | queue_full
    | closed
    | timeout
    | noproc
    | {iq_error, stanza()}
    | {invalid_stanza, reason(), xmlel()}
    | {connect_failed, binary()}
    | {tls_failed, binary()}
    | {auth_failed, binary()}
    | {timeout, binary()}
    | {stream_error, {binary(), binary() | nil}}
    | closed_by_server
    | keepalive_timeout
    | {protocol_error, binary()}
    | {io_error, binary()}
    | {bad_config, binary()}
    | reason().
%% Why a connection function failed: an invalid option or argument, a full
%% outbound queue, a session that is over, an IQ answered with an error or
%% not answered in time, a disconnect reason, or an encoding error of the
%% stanza (see {@link reason()}).

%%====================================================================
%% Stanzas
%%====================================================================

%% @equiv decode(Xml, [])
-spec decode(Xml :: binary()) -> {ok, stanza()} | {error, reason()}.
decode(Xml) ->
    decode(Xml, []).

%% @doc Decodes one stanza (`<message/>', `<presence/>' or `<iq/>') into its
%% struct. A stanza without `xmlns' is read as `jabber:client'.
%% Example: `{error, {unknown_element, <<"foo">>}} = decode(<<"<foo/>">>)'.
-spec decode(Xml :: binary(), opts()) -> {ok, stanza()} | {error, reason()}.
decode(Xml, Opts) ->
    result(with_opts(Opts, fun(O) -> 'Elixir.XmppBridge.Stanza':decode(Xml, O) end)).

%% @doc Encodes a stanza struct into XML. `from'/`to' must be valid JIDs; an
%% IQ needs an `id'. A field of the wrong type gives
%% `{error, {invalid_field, {Module, Field}}}'.
-spec encode(stanza()) -> {ok, binary()} | {error, reason()}.
encode(Stanza) ->
    result('Elixir.XmppBridge.Stanza':encode(Stanza)).

%%====================================================================
%% Generic XML
%%====================================================================

%% @equiv parse_xml(Xml, [])
-spec parse_xml(Xml :: binary()) -> {ok, xmlel()} | {error, reason()}.
parse_xml(Xml) ->
    parse_xml(Xml, []).

%% @doc Parses one element into an `{xmlel, Name, Attrs, Children}' tuple.
%% DTDs, comments and processing instructions are refused (RFC 6120 11.1).
-spec parse_xml(Xml :: binary(), opts()) -> {ok, xmlel()} | {error, reason()}.
parse_xml(Xml, Opts) ->
    result(with_opts(Opts, fun(O) -> 'Elixir.XmppBridge.Xml':parse(Xml, O) end)).

%% @doc Writes an `{xmlel, Name, Attrs, Children}' tuple as XML.
-spec encode_xml(xmlel()) -> {ok, binary()} | {error, reason()}.
encode_xml(El) ->
    result('Elixir.XmppBridge.Xml':encode(El)).

%%====================================================================
%% JIDs
%%====================================================================

%% @doc Parses and normalises a JID (RFC 7622) into a map of its parts;
%% an absent node or resource is `undefined'. Example:
%% `{ok, #{node := <<"alice">>, domain := <<"example.com">>,
%% resource := <<"Phone">>}} = jid_parse(<<"Alice@Example.COM/Phone">>)'.
-spec jid_parse(Jid :: binary()) -> {ok, jid()} | {error, reason()}.
jid_parse(Jid) ->
    case result('Elixir.XmppBridge.Jid':parse(Jid)) of
        {ok, #{node := Node, domain := Domain, resource := Resource}} ->
            {ok, #{node => undef(Node), domain => Domain, resource => undef(Resource)}};
        Error ->
            Error
    end.

%% @doc Validates a JID and returns its normalised string form, e.g.
%% `{ok, <<"alice@example.com/Phone">>}' for `<<"Alice@Example.COM/Phone">>'.
-spec jid_normalize(Jid :: binary()) -> {ok, binary()} | {error, reason()}.
jid_normalize(Jid) ->
    result('Elixir.XmppBridge.Jid':normalize(Jid)).

%%====================================================================
%% Stream parser
%%====================================================================

%% @equiv stream_new([])
-spec stream_new() -> {ok, parser()}.
stream_new() ->
    {ok, _} = stream_new([]).

%% @doc Creates an incremental parser for an XMPP stream. `max_bytes' limits
%% each top-level element, `max_depth' the nesting inside a stanza. The
%% parser's state lives in the NIF and is freed when the term is garbage.
-spec stream_new(opts()) -> {ok, parser()} | {error, reason()}.
stream_new(Opts) ->
    with_opts(Opts, fun(O) ->
        try
            {ok, ?PARSER:new(O)}
        catch
            error:#{'__struct__' := ?ERROR, reason := Reason} -> {error, Reason}
        end
    end).

%% @doc Feeds a chunk of the stream (split anywhere, even inside a UTF-8
%% character) and returns the events it completed, in order:
%% `{stream_start, Attrs}', a stanza struct, an `xmlel' (any other top-level
%% element, e.g. `stream:features'), `{invalid_stanza, Reason, El}' (the
%% stream goes on), `stream_end', or `{parse_error, Reason}', which is fatal
%% and last: later calls return `{error, {parser_failed, Reason}}' until
%% {@link stream_reset/1}.
-spec stream_feed(parser(), Chunk :: binary()) -> {ok, [event()]} | {error, reason()}.
stream_feed(Parser, Chunk) ->
    try ?PARSER:feed(Parser, Chunk) of
        Result -> result(Result)
    catch
        error:Error:Stack -> not_a_parser(Error, Stack, feed)
    end.

%% @doc Forgets all state of a parser, for a stream restart (after STARTTLS
%% or SASL success); it then expects a new stream header.
-spec stream_reset(parser()) -> ok | {error, reason()}.
stream_reset(Parser) ->
    try
        ?PARSER:reset(Parser)
    catch
        error:Error:Stack -> not_a_parser(Error, Stack, reset)
    end.

%%====================================================================
%% Errors
%%====================================================================

%% @doc Turns an error reason into one readable sentence (any term gives a
%% binary), e.g. `<<"stanza larger than the limit of 100 bytes">>' for
%% `{too_large, 100}'. An `XmppBridge.Error' exception struct is accepted too.
-spec format_error(reason() | term()) -> binary().
format_error(#{'__struct__' := ?ERROR, reason := Reason}) ->
    ?ERROR:format(Reason);
format_error(Reason) ->
    ?ERROR:format(Reason).

%%====================================================================
%% Helpers on structs
%%====================================================================

%% @doc The body of a message in its default language: the `<body/>' without
%% `xml:lang', else the one in the stanza's language, else the first;
%% `undefined' when there is none or the term is not a message.
-spec message_body(stanza() | term()) -> binary() | undefined.
message_body(#{'__struct__' := 'Elixir.XmppBridge.Message', bodies := Bodies} = Msg) when
    is_list(Bodies)
->
    undef('Elixir.XmppBridge.Message':body(Msg));
message_body(_) ->
    undefined.

%% @doc The kind of a stanza struct: `message', `presence' or `iq';
%% `undefined' for any other term (e.g. a non-stanza stream event).
-spec stanza_type(stanza() | term()) -> message | presence | iq | undefined.
stanza_type(#{'__struct__' := 'Elixir.XmppBridge.Message'}) -> message;
stanza_type(#{'__struct__' := 'Elixir.XmppBridge.Presence'}) -> presence;
stanza_type(#{'__struct__' := 'Elixir.XmppBridge.Iq'}) -> iq;
stanza_type(_) -> undefined.

%% @doc Builds a chat message (`type="chat"') to `To' with one body, ready
%% for {@link encode/1}. The JID is checked when encoding. Raises `badarg'
%% when `To' or `Body' is not a binary.
-spec chat(To :: binary(), Body :: binary()) -> stanza().
chat(To, Body) when is_binary(To), is_binary(Body) ->
    'Elixir.XmppBridge.Message':chat(To, Body);
chat(To, Body) ->
    erlang:error(badarg, [To, Body]).

%%====================================================================
%% Connections
%%====================================================================

%% @doc Opens a session owned by the calling process (or `owner'); see
%% {@link conn_opts()} for the options. Returns at once: `{online, _}'
%% follows when the session is up, or `{disconnected, Reason}' and
%% `{closed, Reason}' when it cannot be (wrong password, unknown CA, ...).
%% Invalid options give `{error, {bad_option, Detail}}', e.g.
%% `{error, {bad_option, {password, nil}}}' when `password' is missing.
-spec connect(conn_opts()) -> {ok, conn()} | {error, conn_reason()}.
connect(Opts) ->
    with_opts(Opts, fun(O) -> result(?CONN:open(reconnect_opts(O))) end).

%% @doc Queues a stanza (struct or `xmlel' tuple) on the session; never
%% blocks. Returns its sequence number, which a later `{acked, Seqs}' or
%% `{failed, Seqs, Reason}' message to the owner contains, or
%% `{error, queue_full}' (backpressure: `queue_limit' stanzas wait already),
%% `{error, closed}' (the session is over), or the encoding error.
-spec send(conn(), stanza() | xmlel()) -> {ok, seq()} | {error, conn_reason()}.
send(#{'__struct__' := ?CONN} = Conn, Stanza) ->
    try ?CONN:send(Conn, Stanza) of
        Result -> result(Result)
    catch
        error:Error:Stack -> not_a_connection(Error, Stack, send)
    end;
send(Other, _Stanza) ->
    not_a_connection(Other).

%% @equiv iq(Conn, Iq, 5000)
-spec iq(conn(), stanza()) -> {ok, stanza()} | {error, conn_reason()}.
iq(Conn, Iq) ->
    iq(Conn, Iq, 5000).

%% @doc Sends an IQ request (an `XmppBridge.Iq' of type `get' or `set'; one
%% without id gets a fresh one) and waits, in the caller, up to `Timeout'
%% ms for its answer. Returns `{ok, Result}' (an IQ of type `result'), or
%% `{error, {iq_error, ErrorIq}}' (the entity answered with an error),
%% `{error, timeout}' (no answer in time; the answer is then dropped if it
%% comes), `{error, closed}', or a disconnect reason.
-spec iq(conn(), stanza(), timeout()) -> {ok, stanza()} | {error, conn_reason()}.
iq(#{'__struct__' := ?CONN} = Conn, #{'__struct__' := ?IQ, type := Type} = Iq, Timeout) when
    (Type =:= get orelse Type =:= set),
    (Timeout =:= infinity orelse (is_integer(Timeout) andalso Timeout >= 0))
->
    try ?CONN:iq(Conn, Iq, Timeout) of
        Result -> result(Result)
    catch
        error:Error:Stack -> not_a_connection(Error, Stack, iq)
    end;
iq(#{'__struct__' := ?CONN}, #{'__struct__' := ?IQ, type := Type}, Timeout) when
    Type =:= get; Type =:= set
->
    bad_argument("the timeout must be a non-negative integer or infinity, got: ~0p", [Timeout]);
iq(#{'__struct__' := ?CONN}, #{'__struct__' := ?IQ, type := Type}, _Timeout) ->
    bad_argument("only an IQ of type get or set is a request, got one of type ~0p", [Type]);
iq(#{'__struct__' := ?CONN}, Other, _Timeout) ->
    bad_argument("expected an XmppBridge.Iq struct, got: ~0p", [Other]);
iq(Other, _Iq, _Timeout) ->
    not_a_connection(Other).

%% @doc Grants the session more incoming stanzas: a positive integer adds
%% to what is left, `once' leaves exactly one, `true' lifts the limit,
%% `false' stops delivery at once. A passive session starts reading again.
-spec set_active(conn(), pos_integer() | once | boolean()) -> ok | {error, conn_reason()}.
set_active(#{'__struct__' := ?CONN} = Conn, Active) ->
    try ?CONN:set_active(Conn, Active) of
        Result -> result(Result)
    catch
        error:Error:Stack -> not_a_connection(Error, Stack, set_active)
    end;
set_active(Other, _Active) ->
    not_a_connection(Other).

%% @doc Ends the session cleanly: stanzas already queued are written, and
%% the owner receives `{closed, normal}' last. Idempotent.
-spec close(conn()) -> ok | {error, conn_reason()}.
close(#{'__struct__' := ?CONN} = Conn) ->
    try
        ?CONN:close(Conn)
    catch
        error:Error:Stack -> not_a_connection(Error, Stack, close)
    end;
close(Other) ->
    not_a_connection(Other).

%%====================================================================
%% Internal
%%====================================================================

%% A reconnect policy may be a map or a proplist too.
%% @doc Starts a bus node (`XmppBridge.Bus'), linked to the caller: the
%% options of {@link connect/1} plus the bus's (`receiver', `handlers',
%% `heartbeat', `heartbeat_timeout', `max_calls', ...; see
%% `XmppBridge.Bus.start_link/1'). Terms sent to the node arrive at the
%% `receiver' as `{xmpp_bridge_bus, message, FromJid, Term}'; a monitored
%% node that goes down gives `{'DOWN', Ref, bus_node, Jid, Reason}'.
-spec bus_start_link(conn_opts()) -> {ok, pid()} | {error, term()}.
bus_start_link(Opts) ->
    with_opts(Opts, fun(O) ->
        case ?BUS:start_link(reconnect_opts(O)) of
            {error, #{'__struct__' := ?ERROR, reason := Reason}} -> {error, Reason};
            Other -> Other
        end
    end).

%% @doc Waits (up to 10 s) until the node's session is online.
-spec bus_await_online(bus()) -> ok | {error, timeout}.
bus_await_online(Bus) -> result(?BUS:await_online(Bus)).

%% @doc The full JID the node is bound to (`undefined' before it is online).
-spec bus_jid(bus()) -> binary() | undefined.
bus_jid(Bus) -> undef(?BUS:jid(Bus)).

%% @equiv bus_send(Bus, Jid, Term, [])
-spec bus_send(bus(), binary(), term()) -> {ok, reference()} | {error, term()}.
bus_send(Bus, Jid, Term) -> bus_send(Bus, Jid, Term, []).

%% @doc Sends `Term' to the node at `Jid' (a bare JID means `Jid/bus').
%% With `{delivery, confirmed}' the caller gets
%% `{xmpp_bridge_bus, delivered, Ref, Jid}' or
%% `{xmpp_bridge_bus, failed, Ref, Reason}' for the returned `Ref'. A term
%% holding a pid, reference, port or fun gives `{error, {not_portable, What}}'.
-spec bus_send(bus(), binary(), term(), bus_send_opts()) -> {ok, reference()} | {error, term()}.
bus_send(Bus, Jid, Term, Opts) ->
    with_opts(Opts, fun(O) -> result(?BUS:send(Bus, Jid, Term, O)) end).

%% @equiv bus_call(Bus, Jid, Method, Args, 5000)
-spec bus_call(bus(), binary(), binary(), [term()]) -> {ok, term()} | {error, term()}.
bus_call(Bus, Jid, Method, Args) -> bus_call(Bus, Jid, Method, Args, 5000).

%% @doc Calls `Method' (a binary) on the node at `Jid' with `Args' and waits
%% up to `Timeout' ms. Errors: `timeout', `{no_method, M}', `{crashed, Detail}',
%% `busy', `{peer_unavailable, Condition}', `{bad_args, Detail}',
%% `{not_portable, What}'.
-spec bus_call(bus(), binary(), binary(), [term()], pos_integer()) ->
    {ok, term()} | {error, term()}.
bus_call(Bus, Jid, Method, Args, Timeout) ->
    result(?BUS:call(Bus, Jid, Method, Args, Timeout)).

%% @doc Serves `Method': a call runs `Handler' (a fun applied to the call's
%% arguments, or `{Module, Function}') in a process of its own.
-spec bus_serve(bus(), binary(), function() | {module(), atom()}) -> ok | {error, term()}.
bus_serve(Bus, Method, Handler) -> result(?BUS:serve(Bus, Method, Handler)).

%% @doc Monitors the node at `Jid': `{'DOWN', Ref, bus_node, FullJid, Reason}'
%% arrives once, `Reason' being `noconnection', `shutdown',
%% `heartbeat_timeout' or `restarted'.
-spec bus_monitor(bus(), binary()) -> reference().
bus_monitor(Bus, Jid) -> ?BUS:monitor(Bus, Jid).

%% @doc Removes a monitor, flushing its DOWN message if one arrived.
-spec bus_demonitor(bus(), reference()) -> ok.
bus_demonitor(Bus, Ref) -> ?BUS:demonitor(Bus, Ref, [flush]).

%% @doc Stops the node cleanly (its watchers see DOWN `shutdown').
-spec bus_stop(bus()) -> ok.
bus_stop(Bus) -> ?BUS:stop(Bus).

%% @equiv bus_join(Bus, Group, [])
-spec bus_join(bus(), binary()) -> ok | {error, term()}.
bus_join(Bus, Group) -> bus_join(Bus, Group, []).

%% @doc Joins `Group' (a MUC room) for the calling process, which then gets
%% `{xmpp_bridge_bus, group, Group, FromJid, Term}' for each broadcast of
%% another member. Options: `{events, true}' (also `{xmpp_bridge_bus, joined,
%% Group, Jid}', `{xmpp_bridge_bus, left, Group, Jid, Reason}' and
%% `{xmpp_bridge_bus, status, Group, Jid, Status}'), `{history, N}',
%% `{timeout, Ms}', `{member_heartbeat, false}' (members leave the list only
%% when the room says so; no pings to them). Errors: `{bad_group, Detail}',
%% `{join_failed, Condition}', `timeout'.
-spec bus_join(bus(), binary(), [{events, boolean()} | {history, non_neg_integer()}
                                 | {timeout, pos_integer()}
                                 | {member_heartbeat, boolean()}] | map()) -> ok | {error, term()}.
bus_join(Bus, Group, Opts) ->
    with_opts(Opts, fun(O) -> result(?BUS:join(Bus, Group, O)) end).

%% @doc The calling process leaves `Group'.
-spec bus_leave(bus(), binary()) -> ok.
bus_leave(Bus, Group) -> ?BUS:leave(Bus, Group).

%% @doc Sends `Term' to every other member of `Group' (which the node must
%% have joined: `{error, {not_joined, Group}}' otherwise).
-spec bus_broadcast(bus(), binary(), term()) -> ok | {error, term()}.
bus_broadcast(Bus, Group, Term) -> result(?BUS:broadcast(Bus, Group, Term, [])).

%% @doc The members of `Group': maps with `jid', `bus' (a bus node or an
%% ordinary client) and `status' (`#{show, text, term}').
-spec bus_members(bus(), binary()) -> {ok, [map()]} | {error, term()}.
bus_members(Bus, Group) -> result(?BUS:members(Bus, Group)).

%% @doc The nodes online: the members of the node's discovery group (option
%% `discovery'); `{error, no_discovery_group}' without one.
-spec bus_nodes(bus()) -> {ok, [map()]} | {error, term()}.
bus_nodes(Bus) -> result(?BUS:nodes(Bus)).

%% @doc Publishes the node's status: `show' (`undefined' is written `nil' in
%% Elixir: leave it out), `text' (a binary), `term' (any portable term).
-spec bus_set_status(bus(), [{show, chat | away | xa | dnd} | {text, binary()} | {term, term()}]
                            | map()) -> ok | {error, term()}.
bus_set_status(Bus, Status) ->
    with_opts(Status, fun(O) -> result(?BUS:set_status(Bus, O)) end).

%% @doc The status of `Jid' (a full JID) as seen in a group both nodes are in.
-spec bus_status(bus(), binary()) -> {ok, map()} | error.
bus_status(Bus, Jid) -> ?BUS:status(Bus, Jid).

%% @doc The RPC methods the node at `Jid' serves (disco#items), sorted.
-spec bus_methods(bus(), binary()) -> {ok, [binary()]} | {error, term()}.
bus_methods(Bus, Jid) -> result(?BUS:methods(Bus, Jid, 5000)).

%% @equiv bus_register(Bus, Name, self())
-spec bus_register(bus(), binary()) -> ok | {error, term()}.
bus_register(Bus, Name) -> bus_register(Bus, Name, self()).

%% @doc Registers `Name' for `Pid' on a name host: a bus node started with
%% `{mode, component}' (docs/PROTOCOL.md section 7). The process is then
%% `Name@ComponentDomain/bus' ({@link bus_name_jid/2}): terms to it arrive
%% as `{xmpp_bridge_bus, message, From, Term}', calls as
%% `{xmpp_bridge_bus, call, Call, From, Method, Args}' (answer with
%% {@link bus_reply/2} or {@link bus_reply_error/2}), and what it sends
%% through `Bus' goes from that address. As `erlang:register/2': one name
%% per process, one process per name, released when the process exits
%% (watchers get `{'DOWN', Ref, bus_node, Jid, {exit, normal | shutdown |
%% killed | error}}'). Errors: `{bad_name, Why}', `{name_taken, Name}',
%% `{already_named, Name}', `noproc', `not_a_name_host'.
-spec bus_register(bus(), binary(), pid()) -> ok | {error, term()}.
bus_register(Bus, Name, Pid) -> result(?BUS:register(Bus, Name, Pid)).

%% @doc Releases `Name' (its watchers get DOWN `{exit, normal}').
-spec bus_unregister(bus(), binary()) -> ok | {error, term()}.
bus_unregister(Bus, Name) -> result(?BUS:unregister(Bus, Name)).

%% @doc The process holding `Name' on the name host, or `undefined'.
-spec bus_whereis(bus(), binary()) -> pid() | undefined.
bus_whereis(Bus, Name) -> undef(?BUS:whereis(Bus, Name)).

%% @doc The names registered on the name host, sorted.
-spec bus_registered(bus()) -> [binary()].
bus_registered(Bus) -> ?BUS:registered(Bus).

%% @doc The address of `Name' on the name host (`undefined' on a client node).
-spec bus_name_jid(bus(), binary()) -> binary() | undefined.
bus_name_jid(Bus, Name) -> undef(?BUS:jid(Bus, Name)).

%% @doc Answers a call to a registered name with `Value'; `{error,
%% {not_portable, What}}' when `Value' cannot cross the bus (the call still
%% waits). A call that no longer waits drops the answer.
-spec bus_reply(map(), term()) -> ok | {error, term()}.
bus_reply(Call, Value) -> result(?BUS:reply(Call, Value)).

%% @doc Answers a call to a registered name with an error: `no_method',
%% `busy', `{bad_args, Text}' or `{crashed, Text}'.
-spec bus_reply_error(map(), no_method | busy | {bad_args | crashed, binary()}) ->
          ok | {error, term()}.
bus_reply_error(Call, Reason) -> result(?BUS:reply_error(Call, Reason)).

reconnect_opts(Opts) ->
    case lists:keyfind(reconnect, 1, Opts) of
        {reconnect, Policy} when is_map(Policy) ->
            lists:keyreplace(reconnect, 1, Opts, {reconnect, maps:to_list(Policy)});
        _ ->
            Opts
    end.

%% Erlang conventions (maps, proplists where the first key wins) to the
%% keyword list the Elixir layer validates.
with_opts(Opts, Fun) when is_map(Opts) ->
    Fun(maps:to_list(Opts));
with_opts(Opts, Fun) when is_list(Opts) ->
    case first_wins(Opts, []) of
        {ok, List} -> Fun(List);
        error -> {error, {bad_option, Opts}}
    end;
with_opts(Opts, _Fun) ->
    {error, {bad_option, Opts}}.

first_wins([], Acc) ->
    {ok, lists:reverse(Acc)};
first_wins([{Key, _} = Opt | Rest], Acc) ->
    case lists:keymember(Key, 1, Acc) of
        true -> first_wins(Rest, Acc);
        false -> first_wins(Rest, [Opt | Acc])
    end;
first_wins([Other | Rest], Acc) ->
    first_wins(Rest, [Other | Acc]);
first_wins(_Improper, _Acc) ->
    error.

result({error, #{'__struct__' := ?ERROR, reason := Reason}}) -> {error, Reason};
result(Other) -> Other.

%% The parser is opaque (an Elixir @opaque struct), so it is not inspected
%% here: a term that is not one fails the clause of StreamParser's function,
%% or the NIF's resource check (badarg). Any other error is re-raised.
not_a_parser(function_clause, [{?PARSER, Fun, _, _} | _], Fun) ->
    {error, {bad_argument, <<"not a stream parser from xmpp_bridge:stream_new/0,1">>}};
not_a_parser(badarg, [{'Elixir.XmppBridge.Native', _, _, _} | _], _Fun) ->
    {error, {bad_argument, <<"not a stream parser from xmpp_bridge:stream_new/0,1">>}};
not_a_parser(Error, Stack, _Fun) ->
    erlang:raise(error, Error, Stack).

%% Like the parser, a connection is an Elixir struct holding a NIF resource;
%% a map that only looks like one fails Connection's clause or the NIF's
%% resource check.
not_a_connection(function_clause, [{?CONN, Fun, _, _} | _], Fun) ->
    not_a_connection(forged);
not_a_connection(badarg, [{'Elixir.XmppBridge.Native', _, _, _} | _], _Fun) ->
    not_a_connection(forged);
not_a_connection(Error, Stack, _Fun) ->
    erlang:raise(error, Error, Stack).

not_a_connection(_Term) ->
    {error, {bad_argument, <<"not a connection from xmpp_bridge:connect/1">>}}.

bad_argument(Format, Args) ->
    {error, {bad_argument, iolist_to_binary(io_lib:format(Format, Args))}}.

undef(nil) -> undefined;
undef(Value) -> Value.
