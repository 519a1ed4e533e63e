%%% EUnit tests of the Erlang facade `xmpp_bridge'. Compiled and run by
%%% test/xmpp_bridge/erlang_facade_test.exs (so `mix test' runs them); not in
%%% src/, so they do not ship with the library.
-module(xmpp_bridge_tests).

-include_lib("eunit/include/eunit.hrl").

-define(MSG, 'Elixir.XmppBridge.Message').
-define(HEADER, <<
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"
>>).

%%--------------------------------------------------------------------
%% Decoding and encoding
%%--------------------------------------------------------------------

decode_message_fields_test() ->
    Xml = <<
        "<message xmlns='jabber:client' from='Juliet@Example.COM/Balcony' "
        "to='romeo@example.net' type='chat' id='a1'>"
        "<body>Wherefore art thou?</body><body xml:lang='fr'>Pourquoi?</body>"
        "<thread>t1</thread><request xmlns='urn:xmpp:receipts'/>"
        "<x xmlns='urn:example'>y</x></message>"
    >>,
    {ok, Msg} = xmpp_bridge:decode(Xml),
    ?assertEqual(?MSG, maps:get('__struct__', Msg)),
    ?assertEqual(message, xmpp_bridge:stanza_type(Msg)),
    ?assertEqual(chat, maps:get(type, Msg)),
    ?assertEqual(<<"a1">>, maps:get(id, Msg)),
    %% JIDs arrive normalised
    ?assertEqual(<<"juliet@example.com/Balcony">>, maps:get(from, Msg)),
    ?assertEqual(<<"romeo@example.net">>, maps:get(to, Msg)),
    ?assertEqual(
        [{nil, <<"Wherefore art thou?">>}, {<<"fr">>, <<"Pourquoi?">>}],
        maps:get(bodies, Msg)
    ),
    ?assertEqual(<<"Wherefore art thou?">>, xmpp_bridge:message_body(Msg)),
    ?assertEqual(<<"t1">>, maps:get(thread, Msg)),
    ?assertMatch(
        [
            #{'__struct__' := 'Elixir.XmppBridge.Payload.ReceiptRequest'},
            {xmlel, <<"x">>, [{<<"xmlns">>, <<"urn:example">>}], [{xmlcdata, <<"y">>}]}
        ],
        maps:get(payloads, Msg)
    ).

%% The example of the module documentation.
module_doc_example_test() ->
    {ok, Msg} = xmpp_bridge:decode(<<
        "<message to='a@example.com' type='chat'>"
        "<body>hi</body></message>"
    >>),
    message = xmpp_bridge:stanza_type(Msg),
    <<"hi">> = xmpp_bridge:message_body(Msg),
    {ok, Xml} = xmpp_bridge:encode(xmpp_bridge:chat(<<"b@example.com">>, <<"yo">>)),
    ?assertEqual(<<"yo">>, xmpp_bridge:message_body(decoded(Xml))),
    ?assertEqual(<<"m1">>, maps:get(id, decoded(element(2, xmpp_bridge:encode(Msg#{id := <<"m1">>}))))).

decode_presence_and_iq_test() ->
    {ok, P} = xmpp_bridge:decode(
        <<"<presence><show>away</show><priority>5</priority></presence>">>
    ),
    ?assertEqual(presence, xmpp_bridge:stanza_type(P)),
    ?assertMatch(#{type := available, show := away, priority := 5}, P),
    {ok, Iq} = xmpp_bridge:decode(
        <<"<iq type='get' id='r1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>">>
    ),
    ?assertEqual(iq, xmpp_bridge:stanza_type(Iq)),
    ?assertMatch(
        #{
            type := get,
            id := <<"r1">>,
            payload := #{'__struct__' := 'Elixir.XmppBridge.Payload.Ping'}
        },
        Iq
    ).

decode_options_as_map_or_proplist_test() ->
    Xml = <<"<message><body>hi</body></message>">>,
    ?assertMatch({ok, _}, xmpp_bridge:decode(Xml, #{max_bytes => 1000, max_depth => 2})),
    ?assertMatch({ok, _}, xmpp_bridge:decode(Xml, [{max_depth, 2}])),
    %% proplists semantics: the first occurrence of a key wins
    ?assertMatch({ok, _}, xmpp_bridge:decode(Xml, [{max_bytes, 1000}, {max_bytes, 1}])),
    ?assertEqual(
        {error, {too_large, 10}},
        xmpp_bridge:decode(Xml, [{max_bytes, 10}, {max_bytes, 1000}])
    ).

bad_options_test_() ->
    Xml = <<"<message/>">>,
    [
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:decode(Xml, [{max_bytes, 0}])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:decode(Xml, [{max_depth, 1000}])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:decode(Xml, #{colour => blue})),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:decode(Xml, [verbose])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:decode(Xml, [{max_bytes, 5} | oops])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:decode(Xml, max_bytes)),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:parse_xml(Xml, [{max_depth, -1}])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:stream_new([{max_bytes, foo}])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:stream_new(#{max_depth => 0}))
    ].

round_trip_test_() ->
    Stanzas = [
        <<
            "<message xmlns='jabber:client' type='chat' to='bob@example.com'>"
            "<body>hi</body></message>"
        >>,
        <<
            "<message xmlns='jabber:client' id='m1' to='room@muc.example.com' type='groupchat'>"
            "<body>caf\xc3\xa9 \xe2\x98\x83 &amp; &lt;tag&gt;</body>"
            "<x xmlns='urn:example' a='1'><y>z</y></x></message>"
        >>,
        <<"<presence xmlns='jabber:client'><show>dnd</show><status>busy</status></presence>">>,
        <<
            "<iq xmlns='jabber:client' id='r1' type='get' to='example.com'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>"
        >>
    ],
    Canonical = hd(Stanzas),
    [
        ?_test(begin
            {ok, Term} = xmpp_bridge:decode(X),
            {ok, Out} = xmpp_bridge:encode(Term),
            ?assertEqual({ok, Term}, xmpp_bridge:decode(Out)),
            ?assertEqual({ok, Out}, xmpp_bridge:encode(element(2, xmpp_bridge:decode(Out))))
        end)
     || X <- Stanzas
    ] ++
        %% the canonical form comes back byte for byte
        [?_assertEqual({ok, Canonical}, xmpp_bridge:encode(decoded(Canonical)))].

decoded(Xml) ->
    {ok, Stanza} = xmpp_bridge:decode(Xml),
    Stanza.

chat_builder_test() ->
    Msg = xmpp_bridge:chat(<<"juliet@example.com">>, <<"hi">>),
    ?assertEqual(message, xmpp_bridge:stanza_type(Msg)),
    ?assertMatch(#{type := chat, to := <<"juliet@example.com">>, bodies := [{nil, <<"hi">>}]}, Msg),
    ?assertEqual(<<"hi">>, xmpp_bridge:message_body(Msg)),
    ?assertEqual(
        {ok, <<
            "<message xmlns='jabber:client' type='chat' to='juliet@example.com'>"
            "<body>hi</body></message>"
        >>},
        xmpp_bridge:encode(Msg)
    ),
    ?assertEqual({ok, Msg}, xmpp_bridge:decode(element(2, xmpp_bridge:encode(Msg)))),
    ?assertError(badarg, xmpp_bridge:chat(juliet, <<"hi">>)),
    ?assertError(badarg, xmpp_bridge:chat(<<"juliet@example.com">>, "hi")).

message_body_and_stanza_type_test() ->
    {ok, NoBody} = xmpp_bridge:decode(<<"<message/>">>),
    ?assertEqual(undefined, xmpp_bridge:message_body(NoBody)),
    {ok, OnlyLang} = xmpp_bridge:decode(
        <<"<message><body xml:lang='de'>Hallo</body><body xml:lang='en'>Hello</body></message>">>
    ),
    ?assertEqual(<<"Hallo">>, xmpp_bridge:message_body(OnlyLang)),
    {ok, Presence} = xmpp_bridge:decode(<<"<presence/>">>),
    ?assertEqual(undefined, xmpp_bridge:message_body(Presence)),
    ?assertEqual(undefined, xmpp_bridge:message_body(<<"hi">>)),
    ?assertEqual(undefined, xmpp_bridge:stanza_type({xmlel, <<"message">>, [], []})),
    ?assertEqual(undefined, xmpp_bridge:stanza_type(stream_end)).

generic_xml_test() ->
    Xml = <<"<x xmlns='urn:example'>a &amp; b<y k='v'/></x>">>,
    El = {xmlel, <<"x">>, [{<<"xmlns">>, <<"urn:example">>}], [
        {xmlcdata, <<"a & b">>}, {xmlel, <<"y">>, [{<<"k">>, <<"v">>}], []}
    ]},
    ?assertEqual({ok, El}, xmpp_bridge:parse_xml(Xml)),
    ?assertEqual({ok, Xml}, xmpp_bridge:encode_xml(El)),
    ?assertEqual({error, {too_deep, 1}}, xmpp_bridge:parse_xml(Xml, [{max_depth, 1}])).

%% Big inputs take the NIF's dirty-scheduler path; the facade must not care.
large_inputs_test() ->
    Text = binary:copy(<<"caf\xc3\xa9 ">>, 50000),
    Big = xmpp_bridge:chat(<<"a@example.com">>, Text),
    {ok, Xml} = xmpp_bridge:encode(Big),
    ?assert(byte_size(Xml) > 250000),
    ?assertEqual({ok, Big}, xmpp_bridge:decode(Xml, #{max_bytes => 1 bsl 20})),
    ?assertEqual({error, {too_large, 262144}}, xmpp_bridge:decode(Xml)),
    Deep = <<(binary:copy(<<"<a>">>, 200))/binary, (binary:copy(<<"</a>">>, 200))/binary>>,
    ?assertEqual({error, {too_deep, 64}}, xmpp_bridge:parse_xml(Deep)),
    ?assertMatch({ok, {xmlel, <<"a">>, [], [_]}}, xmpp_bridge:parse_xml(Deep, [{max_depth, 200}])),
    {ok, P} = xmpp_bridge:stream_new(#{max_bytes => 1 bsl 20}),
    {ok, Events} = xmpp_bridge:stream_feed(P, <<(?HEADER)/binary, Xml/binary, Xml/binary>>),
    ?assertMatch([{stream_start, _}, Big, Big], Events).

%%--------------------------------------------------------------------
%% Errors: each class gives {error, Reason} with the bare reason
%%--------------------------------------------------------------------

billion_laughs() ->
    Entities = [
        io_lib:format("<!ENTITY lol~b \"~s\">", [N, lists:duplicate(10, io_lib:format("&lol~b;", [N - 1]))])
     || N <- lists:seq(1, 9)
    ],
    iolist_to_binary([
        "<?xml version='1.0'?><!DOCTYPE message [<!ENTITY lol0 \"lol\">",
        Entities,
        "]><message xmlns='jabber:client'><body>&lol9;</body></message>"
    ]).

decode_errors_test_() ->
    Cases = [
        {malformed_xml, <<"<message><body>hi</message>">>, []},
        {malformed_xml, <<"<message">>, []},
        {malformed_xml, <<>>, []},
        {unknown_element, <<"<foo xmlns='jabber:client'/>">>, []},
        {bad_namespace, <<"<message xmlns='urn:not-xmpp'/>">>, []},
        {invalid_jid, <<"<message to='a@b@c'/>">>, []},
        {invalid_utf8, <<"<message><body>", 16#ff, "</body></message>">>, []},
        {forbidden_xml, billion_laughs(), []},
        {forbidden_xml, <<"<message><!-- hi --></message>">>, []},
        {undefined_entity, <<"<message><body>&lol;</body></message>">>, []},
        {too_deep, <<"<message><a><b><c/></b></a></message>">>, [{max_depth, 2}]},
        {too_large, <<"<message><body>hi</body></message>">>, [{max_bytes, 10}]},
        {missing_attribute, <<"<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>">>, []}
    ],
    [
        {atom_to_list(Tag), ?_assertMatch({error, {Tag, _}}, xmpp_bridge:decode(Xml, Opts))}
     || {Tag, Xml, Opts} <- Cases
    ].

exact_error_reasons_test_() ->
    Bad = <<"<message><body>", 16#ff, "</body></message>">>,
    Cases = [
        {{forbidden_xml, dtd}, billion_laughs(), []},
        {{too_deep, 2}, <<"<message><a><b/></a></message>">>, [{max_depth, 2}]},
        {{too_large, 10}, <<"<message><body>hi</body></message>">>, #{max_bytes => 10}},
        {{invalid_utf8, 15}, Bad, []},
        {{unknown_element, <<"foo">>}, <<"<foo/>">>, []},
        {{bad_namespace, <<"urn:x">>}, <<"<message xmlns='urn:x'/>">>, []},
        {{invalid_jid, {<<"a@b@c">>, domainpart}}, <<"<message to='a@b@c'/>">>, []},
        {{missing_attribute, {<<"iq">>, <<"id">>}}, <<"<iq type='get'/>">>, []}
    ],
    [?_assertEqual({error, Reason}, xmpp_bridge:decode(Xml, Opts)) || {Reason, Xml, Opts} <- Cases] ++
        [?_assertEqual({error, {forbidden_xml, dtd}}, xmpp_bridge:parse_xml(billion_laughs()))].

not_binary_test_() ->
    Bad = [42, atom, "<message/>", 1.5, {xmlel, <<"m">>, [], []}],
    lists:append([
        [
            ?_assertEqual({error, {not_binary, X}}, xmpp_bridge:decode(X)),
            ?_assertEqual({error, {not_binary, X}}, xmpp_bridge:decode(X, #{max_depth => 3})),
            ?_assertEqual({error, {not_binary, X}}, xmpp_bridge:parse_xml(X)),
            ?_assertEqual({error, {not_binary, X}}, xmpp_bridge:jid_parse(X)),
            ?_assertEqual({error, {not_binary, X}}, xmpp_bridge:jid_normalize(X))
        ]
     || X <- Bad
    ]).

encode_errors_test() ->
    Msg = xmpp_bridge:chat(<<"bad@@jid">>, <<"hi">>),
    ?assertEqual({error, {invalid_jid, {<<"bad@@jid">>, domainpart}}}, xmpp_bridge:encode(Msg)),
    ?assertEqual({error, {invalid_field, {?MSG, to}}}, xmpp_bridge:encode(Msg#{to := 42})),
    NulBody = xmpp_bridge:chat(<<"a@b">>, <<0>>),
    ?assertEqual({error, {invalid_xml_char, 0}}, xmpp_bridge:encode(NulBody)),
    ?assertEqual({error, {not_a_stanza, 42}}, xmpp_bridge:encode(42)),
    ?assertEqual({error, {not_a_stanza, #{}}}, xmpp_bridge:encode(#{})),
    ?assertEqual({error, {not_an_element, foo}}, xmpp_bridge:encode_xml(foo)),
    ?assertMatch({error, {invalid_field, _}}, xmpp_bridge:encode_xml({xmlel, 1, [], []})).

format_error_test_() ->
    Cases = [
        {<<"<message><body>hi</message>">>, <<"malformed XML">>},
        {<<"<foo/>">>, <<"<foo>">>},
        {<<"<message xmlns='urn:x'/>">>, <<"urn:x">>},
        {<<"<message to='a@b@c'/>">>, <<"invalid JID">>},
        {<<"<message>", 16#ff, "</message>">>, <<"UTF-8">>},
        {billion_laughs(), <<"DTD">>},
        {<<"<message><body>&lol;</body></message>">>, <<"&lol;">>},
        {<<"<iq type='get'/>">>, <<"\"id\"">>}
    ],
    [
        ?_test(begin
            {error, Reason} = xmpp_bridge:decode(Xml),
            Text = xmpp_bridge:format_error(Reason),
            ?assert(is_binary(Text)),
            ?assertNotEqual(nomatch, binary:match(Text, Needle))
        end)
     || {Xml, Needle} <- Cases
    ] ++
        [
            ?_assertEqual(
                <<"stanza larger than the limit of 10 bytes">>,
                xmpp_bridge:format_error({too_large, 10})
            ),
            ?_assertEqual(
                <<"elements nested deeper than the limit of 2 levels">>,
                %% the exception struct is accepted as well as its reason
                xmpp_bridge:format_error(#{
                    '__struct__' => 'Elixir.XmppBridge.Error', reason => {too_deep, 2}
                })
            ),
            ?_assertEqual(
                <<"expected a binary, got: 42">>, xmpp_bridge:format_error({not_binary, 42})
            ),
            ?_assert(is_binary(xmpp_bridge:format_error({something, "odd", self()})))
        ].

%%--------------------------------------------------------------------
%% JIDs
%%--------------------------------------------------------------------

jid_test() ->
    ?assertEqual(
        {ok, #{node => <<"alice">>, domain => <<"example.com">>, resource => <<"Phone">>}},
        xmpp_bridge:jid_parse(<<"Alice@Example.COM/Phone">>)
    ),
    ?assertEqual(
        {ok, #{node => undefined, domain => <<"example.com">>, resource => undefined}},
        xmpp_bridge:jid_parse(<<"example.com">>)
    ),
    ?assertEqual(
        {ok, #{node => undefined, domain => <<"example.com">>, resource => <<"r">>}},
        xmpp_bridge:jid_parse(<<"example.com/r">>)
    ),
    ?assertEqual(
        {ok, <<"alice@example.com/Phone">>},
        xmpp_bridge:jid_normalize(<<"Alice@Example.COM/Phone">>)
    ),
    ?assertEqual({ok, <<"example.com">>}, xmpp_bridge:jid_normalize(<<"EXAMPLE.com">>)),
    ?assertEqual({error, {invalid_jid, {<<"a@b@c">>, domainpart}}}, xmpp_bridge:jid_parse(<<"a@b@c">>)),
    ?assertEqual({error, {invalid_jid, {<<"a@b@c">>, domainpart}}}, xmpp_bridge:jid_normalize(<<"a@b@c">>)),
    ?assertEqual({error, {invalid_jid, {<<>>, domainpart}}}, xmpp_bridge:jid_parse(<<>>)).

%%--------------------------------------------------------------------
%% Stream parser
%%--------------------------------------------------------------------

stream_bytes() ->
    <<
        (?HEADER)/binary,
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
        "<message to='juliet@example.com' type='chat'>"
        "<body>caf\xc3\xa9 \xe2\x98\x83 &amp;</body></message>",
        "\n  <presence><show>xa</show></presence>",
        "<message to='a@b@c'/>",
        "<iq id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        "</stream:stream>"
    >>.

feed_all(Parser, Chunks) ->
    lists:append([
        begin
            {ok, Events} = xmpp_bridge:stream_feed(Parser, C),
            Events
        end
     || C <- Chunks
    ]).

stream_one_chunk_test() ->
    {ok, P} = xmpp_bridge:stream_new(),
    Events = feed_all(P, [stream_bytes()]),
    ?assertMatch(
        [
            {stream_start, _},
            {xmlel, <<"stream:features">>, _, _},
            #{'__struct__' := ?MSG},
            #{'__struct__' := 'Elixir.XmppBridge.Presence', show := xa},
            {invalid_stanza, {invalid_jid, {<<"a@b@c">>, domainpart}}, {xmlel, <<"message">>, _, _}},
            #{'__struct__' := 'Elixir.XmppBridge.Iq', id := <<"p1">>},
            stream_end
        ],
        Events
    ),
    [{stream_start, Attrs} | _] = Events,
    ?assertEqual({<<"to">>, <<"example.com">>}, lists:keyfind(<<"to">>, 1, Attrs)),
    Msg = lists:nth(3, Events),
    ?assertEqual(<<"caf\xc3\xa9 \xe2\x98\x83 &">>, xmpp_bridge:message_body(Msg)).

stream_byte_chunks_test() ->
    Bytes = stream_bytes(),
    {ok, P1} = xmpp_bridge:stream_new(),
    Whole = feed_all(P1, [Bytes]),
    {ok, P2} = xmpp_bridge:stream_new(),
    Bytewise = feed_all(P2, [<<B>> || <<B>> <= Bytes]),
    ?assertEqual(7, length(Whole)),
    ?assertEqual(Whole, Bytewise),
    %% and any split in two
    [
        begin
            {ok, P} = xmpp_bridge:stream_new(),
            <<A:N/binary, B/binary>> = Bytes,
            ?assertEqual(Whole, feed_all(P, [A, B]))
        end
     || N <- lists:seq(0, byte_size(Bytes), 7)
    ].

stream_limits_test() ->
    {ok, P} = xmpp_bridge:stream_new(#{max_depth => 2}),
    {ok, [{stream_start, _}]} = xmpp_bridge:stream_feed(P, ?HEADER),
    ?assertMatch(
        {ok, [{parse_error, {too_deep, 2}}]},
        xmpp_bridge:stream_feed(P, <<"<message><a><b/></a></message>">>)
    ).

stream_fatal_error_and_reset_test() ->
    {ok, P} = xmpp_bridge:stream_new([{max_bytes, 4096}]),
    {ok, [{stream_start, _}]} = xmpp_bridge:stream_feed(P, ?HEADER),
    {ok, Events} = xmpp_bridge:stream_feed(P, <<"<message><body>x</body></nomatch>">>),
    ?assertMatch([{parse_error, {malformed_xml, _}}], Events),
    [{parse_error, Reason}] = Events,
    ?assertEqual({error, {parser_failed, Reason}}, xmpp_bridge:stream_feed(P, <<"<presence/>">>)),
    ?assert(is_binary(xmpp_bridge:format_error({parser_failed, Reason}))),
    ?assertEqual(ok, xmpp_bridge:stream_reset(P)),
    ?assertMatch(
        {ok, [{stream_start, _}, #{'__struct__' := 'Elixir.XmppBridge.Presence'}]},
        xmpp_bridge:stream_feed(P, <<(?HEADER)/binary, "<presence/>">>)
    ).

stream_bad_arguments_test() ->
    {ok, P} = xmpp_bridge:stream_new(),
    ?assertEqual({error, {not_binary, 42}}, xmpp_bridge:stream_feed(P, 42)),
    ?assertEqual({error, {not_binary, "abc"}}, xmpp_bridge:stream_feed(P, "abc")),
    ?assertMatch({error, {bad_argument, _}}, xmpp_bridge:stream_feed(not_a_parser, <<"x">>)),
    ?assertMatch({error, {bad_argument, _}}, xmpp_bridge:stream_reset(make_ref())),
    Forged = P#{ref := make_ref()},
    ?assertMatch({error, {bad_argument, _}}, xmpp_bridge:stream_feed(Forged, <<"x">>)),
    ?assertMatch({error, {bad_argument, _}}, xmpp_bridge:stream_reset(Forged)),
    %% the real parser is unharmed
    ?assertMatch({ok, [{stream_start, _}]}, xmpp_bridge:stream_feed(P, ?HEADER)).

%%--------------------------------------------------------------------
%% Connections, without a server: option and argument errors, and
%% sessions that cannot start (the runs against ejabberd are in
%% test/xmpp_bridge/client_test.exs)
%%--------------------------------------------------------------------

-define(JID, <<"bot@localhost">>).

connect_option_errors_test_() ->
    Ok = #{jid => ?JID, password => <<"pw">>},
    Pl = [{jid, ?JID}, {password, <<"pw">>}],
    [
        ?_assertEqual(
            {error, {bad_option, {jid, nil}}}, xmpp_bridge:connect(#{password => <<"pw">>})
        ),
        ?_assertEqual({error, {bad_option, {password, nil}}}, xmpp_bridge:connect([{jid, ?JID}])),
        %% binaries, not strings
        ?_assertEqual(
            {error, {bad_option, {jid, "bot@localhost"}}},
            xmpp_bridge:connect(Ok#{jid := "bot@localhost"})
        ),
        ?_assertEqual(
            {error, {bad_option, {unknown, [colour]}}}, xmpp_bridge:connect(Ok#{colour => blue})
        ),
        ?_assertEqual({error, {bad_option, {tls, none}}}, xmpp_bridge:connect(Ok#{tls => none})),
        ?_assertEqual({error, {bad_option, {port, 70000}}}, xmpp_bridge:connect(Ok#{port => 70000})),
        ?_assertEqual(
            {error, {bad_option, {owner, self}}}, xmpp_bridge:connect(Pl ++ [{owner, self}])
        ),
        %% a reconnect policy may be a map or a proplist
        ?_assertEqual(
            {error, {bad_option, {reconnect, [{initial, 0}]}}},
            xmpp_bridge:connect(Ok#{reconnect => #{initial => 0}})
        ),
        ?_assertEqual(
            {error, {bad_option, {reconnect, [{initial, 0}]}}},
            xmpp_bridge:connect(Pl ++ [{reconnect, [{initial, 0}]}])
        ),
        ?_assertEqual(
            {error, {bad_option, {reconnect, maybe}}}, xmpp_bridge:connect(Ok#{reconnect => maybe})
        ),
        %% proplists semantics: the first occurrence of a key wins
        ?_assertEqual(
            {error, {bad_option, {tls, none}}},
            xmpp_bridge:connect(Pl ++ [{tls, none}, {tls, plain}])
        ),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:connect(Pl ++ [verbose])),
        ?_assertMatch({error, {bad_option, _}}, xmpp_bridge:connect([{jid, ?JID} | oops])),
        ?_assertEqual({error, {bad_option, nope}}, xmpp_bridge:connect(nope)),
        ?_assert(is_binary(xmpp_bridge:format_error({bad_option, {unknown, [colour]}})))
    ].

ping(To) ->
    {ok, Ping} = xmpp_bridge:decode(
        <<"<iq type='get' id='p1' to='", To/binary, "'><ping xmlns='urn:xmpp:ping'/></iq>">>
    ),
    Ping.

%% The next event of the session Conn, as the owner receives it.
next_event(#{id := Id}) ->
    receive
        {xmpp_bridge, Id, Event} -> Event
    after 5000 -> no_event
    end.

%% Plaintext to an address that is not loopback is refused by the session,
%% which ends at once with the reason.
plaintext_off_loopback_test() ->
    {ok, Conn} = xmpp_bridge:connect(#{
        jid => ?JID, password => <<"pw">>, host => <<"192.0.2.1">>, tls => plain
    }),
    ?assertMatch({closed, {bad_config, _}}, next_event(Conn)),
    ?assertEqual(ok, xmpp_bridge:close(Conn)).

refused_connection_test() ->
    {ok, Listen} = gen_tcp:listen(0, [{ip, loopback}]),
    {ok, Port} = inet:port(Listen),
    ok = gen_tcp:close(Listen),
    {ok, Conn} = xmpp_bridge:connect([
        {jid, ?JID},
        {password, <<"pw">>},
        {host, <<"127.0.0.1">>},
        {port, Port},
        {tls, plain},
        {reconnect, false}
    ]),
    ?assertMatch({disconnected, {connect_failed, _}}, next_event(Conn)),
    ?assertMatch({closed, {connect_failed, _}}, next_event(Conn)),
    Msg = xmpp_bridge:chat(<<"alice@localhost">>, <<"hi">>),
    ?assertEqual({error, closed}, xmpp_bridge:send(Conn, Msg)),
    ?assertEqual({error, closed}, xmpp_bridge:iq(Conn, ping(<<"localhost">>))),
    ?assertEqual(ok, xmpp_bridge:close(Conn)),
    ?assertEqual(ok, xmpp_bridge:close(Conn)).

%% A socket that accepts but never speaks: what was queued is reported
%% failed, and the IQ waiting in its caller gets the reason.
silent_server_test() ->
    {ok, Listen} = gen_tcp:listen(0, [{ip, loopback}]),
    {ok, Port} = inet:port(Listen),
    {ok, Conn} = xmpp_bridge:connect(#{
        jid => ?JID,
        password => <<"pw">>,
        host => <<"127.0.0.1">>,
        port => Port,
        tls => plain,
        connect_timeout => 300,
        reconnect => #{max_attempts => 0}
    }),
    {ok, Seq} = xmpp_bridge:send(Conn, xmpp_bridge:chat(<<"alice@localhost">>, <<"hi">>)),
    Timeout = {timeout, <<"stream negotiation">>},
    ?assertEqual({error, Timeout}, xmpp_bridge:iq(Conn, ping(<<"localhost">>), 5000)),
    ?assertEqual({disconnected, Timeout}, next_event(Conn)),
    %% the message, and the IQ too
    ?assertMatch({failed, [Seq, _], Timeout}, next_event(Conn)),
    ?assertEqual({closed, Timeout}, next_event(Conn)),
    ok = gen_tcp:close(Listen).

connection_bad_arguments_test() ->
    Msg = xmpp_bridge:chat(<<"alice@localhost">>, <<"hi">>),
    Ping = ping(<<"localhost">>),
    NotConn = {error, {bad_argument, <<"not a connection from xmpp_bridge:connect/1">>}},
    Forged = #{'__struct__' => 'Elixir.XmppBridge.Connection', ref => make_ref(), id => 1},
    Partial = #{'__struct__' => 'Elixir.XmppBridge.Connection'},
    [
        begin
            ?assertEqual(NotConn, xmpp_bridge:send(C, Msg)),
            ?assertEqual(NotConn, xmpp_bridge:iq(C, Ping)),
            ?assertEqual(NotConn, xmpp_bridge:iq(C, Ping, 100)),
            ?assertEqual(NotConn, xmpp_bridge:close(C))
        end
     || C <- [not_a_conn, #{}, 42, Forged, Partial]
    ],
    %% a real connection (over at once), with wrong requests
    {ok, Conn} = xmpp_bridge:connect(#{
        jid => ?JID, password => <<"pw">>, host => <<"192.0.2.1">>, tls => plain
    }),
    ?assertMatch({error, {bad_argument, <<"expected an XmppBridge.Iq", _/binary>>}},
        xmpp_bridge:iq(Conn, Msg)),
    ?assertMatch({error, {bad_argument, <<"only an IQ of type get or set", _/binary>>}},
        xmpp_bridge:iq(Conn, Ping#{type := result})),
    ?assertMatch({error, {bad_argument, <<"the timeout", _/binary>>}},
        xmpp_bridge:iq(Conn, Ping, -1)),
    ?assertMatch({error, {bad_argument, _}}, xmpp_bridge:iq(Conn, Ping, soon)),
    %% encoding errors come before the state of the session
    ?assertEqual(
        {error, {invalid_jid, {<<"a@@b">>, domainpart}}},
        xmpp_bridge:send(Conn, xmpp_bridge:chat(<<"a@@b">>, <<"x">>))
    ),
    ?assertMatch({closed, {bad_config, _}}, next_event(Conn)).
