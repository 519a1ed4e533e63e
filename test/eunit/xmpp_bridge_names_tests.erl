%%% EUnit tests of name hosts through the Erlang facade, against the
%%% private ejabberd that bus_names_test.exs starts: it puts the server's
%%% address, its component and an account in the application environment
%%% (`xmpp_bridge', `eunit_names') before running this module.
-module(xmpp_bridge_names_tests).

-include_lib("eunit/include/eunit.hrl").

env() ->
    {ok, Env} = application:get_env(xmpp_bridge, eunit_names),
    Env.

names_test_() ->
    {timeout, 60, fun names/0}.

%% An Erlang process registers a name; a client node sends to it, calls
%% it and monitors it.
names() ->
    #{host := Host, c2s := C2s, component := {Domain, Secret, CPort},
      client := {Jid, Password}} = env(),
    {ok, H} = xmpp_bridge:bus_start_link(#{mode => component, jid => Domain,
                                           password => Secret, host => Host, port => CPort,
                                           tls => plain}),
    {ok, C} = xmpp_bridge:bus_start_link(#{jid => Jid, password => Password, host => Host,
                                           port => C2s, tls => plain, receiver => self(),
                                           heartbeat => 500, heartbeat_timeout => 1000}),
    ok = xmpp_bridge:bus_await_online(H),
    ok = xmpp_bridge:bus_await_online(C),
    Name = <<"erl-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Self = self(),
    Holder = spawn(fun() ->
                           Self ! {registered, xmpp_bridge:bus_register(H, Name)},
                           holder(Self)
                   end),
    receive {registered, ok} -> ok after 5000 -> ?assert(false) end,
    NameJid = xmpp_bridge:bus_name_jid(H, Name),
    ?assertEqual(<<Name/binary, "@", Domain/binary, "/bus">>, NameJid),
    ?assertEqual(Holder, xmpp_bridge:bus_whereis(H, Name)),
    ?assert(lists:member(Name, xmpp_bridge:bus_registered(H))),
    ?assertEqual({error, {name_taken, Name}}, xmpp_bridge:bus_register(H, Name)),
    ?assertMatch({error, {bad_name, _}}, xmpp_bridge:bus_register(H, <<"Bad Name">>)),
    ?assertEqual({error, not_a_name_host}, xmpp_bridge:bus_register(C, <<"x">>)),

    ClientJid = xmpp_bridge:bus_jid(C),
    {ok, _} = xmpp_bridge:bus_send(C, NameJid, {job, 1}),
    receive {got, {ClientJid, {job, 1}}} -> ok after 5000 -> ?assert(false) end,
    ?assertEqual({ok, 5}, xmpp_bridge:bus_call(C, NameJid, <<"add">>, [2, 3])),
    ?assertEqual({error, {no_method, <<"sub">>}},
                 xmpp_bridge:bus_call(C, NameJid, <<"sub">>, [2, 3])),

    MRef = xmpp_bridge:bus_monitor(C, NameJid),
    timer:sleep(1200),
    exit(Holder, kill),
    receive
        {'DOWN', MRef, bus_node, NameJid, Reason} -> ?assertEqual({exit, killed}, Reason)
    after 5000 -> ?assert(false)
    end,
    ?assertEqual(undefined, xmpp_bridge:bus_whereis(H, Name)),
    ok = xmpp_bridge:bus_stop(C),
    ok = xmpp_bridge:bus_stop(H).

holder(Parent) ->
    receive
        {xmpp_bridge_bus, message, From, Term} ->
            Parent ! {got, {From, Term}};
        {xmpp_bridge_bus, call, Call, _From, <<"add">>, [A, B]} ->
            ok = xmpp_bridge:bus_reply(Call, A + B);
        {xmpp_bridge_bus, call, Call, _From, _Method, _Args} ->
            ok = xmpp_bridge:bus_reply_error(Call, no_method)
    end,
    holder(Parent).
