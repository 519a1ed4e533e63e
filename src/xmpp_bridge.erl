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
%%% @end
-module(xmpp_bridge).

-export([decode/1, decode/2, encode/1]).
-export([parse_xml/1, parse_xml/2, encode_xml/1]).
-export([jid_parse/1, jid_normalize/1]).
-export([stream_new/0, stream_new/1, stream_feed/2, stream_reset/1]).
-export([format_error/1]).
-export([message_body/1, stanza_type/1, chat/2]).

-export_type([stanza/0, xmlel/0, cdata/0, opts/0, jid/0, parser/0, event/0, reason/0]).

-define(ERROR, 'Elixir.XmppBridge.Error').
-define(PARSER, 'Elixir.XmppBridge.StreamParser').

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
    | {invalid_jid, binary()}
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
%% Internal
%%====================================================================

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

undef(nil) -> undefined;
undef(Value) -> Value.
