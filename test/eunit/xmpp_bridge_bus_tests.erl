%%% EUnit tests of the bus through the Erlang facade, against the private
%%% ejabberd that the ExUnit test in bus_erlang_test.exs starts: it puts
%%% the server's address and two accounts in the application environment
%%% (`xmpp_bridge', `eunit_bus') before running this module.
-module(xmpp_bridge_bus_tests).

-include_lib("eunit/include/eunit.hrl").

env() ->
    {ok, Env} = application:get_env(xmpp_bridge, eunit_bus),
    Env.

node_opts(#{host := Host, port := Port}, {Jid, Password}, Extra) ->
    maps:merge(#{jid => Jid, password => Password, host => Host, port => Port,
                 tls => plain, heartbeat => 500, heartbeat_timeout => 1000},
               Extra).

bus_test_() ->
    {timeout, 60, fun exchange/0}.

exchange() ->
    Env = #{a := A, b := B} = env(),
    Self = self(),
    {ok, NodeA} = xmpp_bridge:bus_start_link(node_opts(Env, A, #{receiver => Self})),
    {ok, NodeB} = xmpp_bridge:bus_start_link(
                    node_opts(Env, B, #{handlers => #{<<"add">> => fun(X, Y) -> X + Y end}})),
    ok = xmpp_bridge:bus_await_online(NodeA),
    ok = xmpp_bridge:bus_await_online(NodeB),
    {JidB, _} = B,
    JidA = xmpp_bridge:bus_jid(NodeA),
    ?assertMatch(<<_/binary>>, JidA),

    %% A term from B's node to A's, confirmed.
    {ok, Ref} = xmpp_bridge:bus_send(NodeB, element(1, A), {hello, <<"from Erlang">>, [1, 2.5]},
                                     [{delivery, confirmed}]),
    receive
        {xmpp_bridge_bus, message, From, Term} ->
            ?assertEqual({hello, <<"from Erlang">>, [1, 2.5]}, Term),
            ?assertEqual(<<JidB/binary, "/bus">>, From)
    after 5000 -> ?assert(false)
    end,
    %% The delivery report goes to the sender (this process called bus_send).
    receive {xmpp_bridge_bus, delivered, Ref, _} -> ok after 5000 -> ?assert(false) end,

    %% What cannot cross the bus is refused.
    ?assertEqual({error, {not_portable, <<"pid">>}}, xmpp_bridge:bus_send(NodeA, JidB, self())),

    %% RPC, and its errors.
    ?assertEqual({ok, 42}, xmpp_bridge:bus_call(NodeA, JidB, <<"add">>, [40, 2])),
    ?assertEqual({error, {no_method, <<"sub">>}}, xmpp_bridge:bus_call(NodeA, JidB, <<"sub">>, [1, 2])),
    ?assertMatch({error, {crashed, _}}, xmpp_bridge:bus_call(NodeA, JidB, <<"add">>, [a, 2])),

    %% A monitor, and a clean stop.
    MRef = xmpp_bridge:bus_monitor(NodeA, JidB),
    timer:sleep(300),
    ok = xmpp_bridge:bus_stop(NodeB),
    receive
        {'DOWN', MRef, bus_node, Down, Reason} ->
            ?assertEqual(<<JidB/binary, "/bus">>, Down),
            ?assertEqual(shutdown, Reason)
    after 5000 -> ?assert(false)
    end,
    ok = xmpp_bridge:bus_stop(NodeA).

groups_test_() ->
    {timeout, 60, fun groups/0}.

%% Groups, status and discovery through the facade.
groups() ->
    Env = #{a := A, b := B} = env(),
    Group = <<"eunit-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    {ok, NodeA} = xmpp_bridge:bus_start_link(node_opts(Env, A, #{})),
    {ok, NodeB} = xmpp_bridge:bus_start_link(
                    node_opts(Env, B, #{handlers => #{<<"add">> => fun(X, Y) -> X + Y end}})),
    ok = xmpp_bridge:bus_await_online(NodeA),
    ok = xmpp_bridge:bus_await_online(NodeB),
    JidA = xmpp_bridge:bus_jid(NodeA),
    JidB = xmpp_bridge:bus_jid(NodeB),
    ok = xmpp_bridge:bus_set_status(NodeB, [{text, <<"ready">>}, {term, #{load => 2}}]),
    ok = xmpp_bridge:bus_join(NodeA, Group, [{events, true}]),
    %% B's member is another process, so that this one sees only A's side.
    Self = self(),
    Member = spawn_link(fun() ->
                            Self ! {joined_b, xmpp_bridge:bus_join(NodeB, Group)},
                            receive stop -> ok end
                        end),
    receive {joined_b, ok} -> ok after 10000 -> ?assert(false) end,
    receive {xmpp_bridge_bus, joined, Group, JidB} -> ok after 5000 -> ?assert(false) end,
    {ok, Members} = xmpp_bridge:bus_members(NodeA, Group),
    ?assertEqual(lists:sort([JidA, JidB]), lists:sort([J || #{jid := J} <- Members])),
    ?assertMatch({ok, #{text := <<"ready">>, term := #{load := 2}}},
                 xmpp_bridge:bus_status(NodeA, JidB)),
    %% A broadcast from B's node reaches A's member process (this one).
    ok = xmpp_bridge:bus_broadcast(NodeB, Group, {hello, group}),
    receive
        {xmpp_bridge_bus, group, Group, JidB, {hello, group}} -> ok
    after 5000 -> ?assert(false)
    end,
    ?assertEqual({ok, [<<"add">>]}, xmpp_bridge:bus_methods(NodeA, JidB)),
    ?assertMatch({error, {bad_group, _}}, xmpp_bridge:bus_join(NodeA, <<"Not A Group">>)),
    ?assertEqual({error, no_discovery_group}, xmpp_bridge:bus_nodes(NodeA)),
    Member ! stop,
    receive {xmpp_bridge_bus, left, Group, JidB, left} -> ok after 5000 -> ?assert(false) end,
    ok = xmpp_bridge:bus_leave(NodeA, Group),
    ok = xmpp_bridge:bus_stop(NodeB),
    ok = xmpp_bridge:bus_stop(NodeA).
