defmodule XmppBridge.BuildersTest do
  use ExUnit.Case, async: true

  alias XmppBridge.{Error, Iq, Message, Presence, StanzaError}
  alias XmppBridge.Payload

  doctest XmppBridge.Message
  doctest XmppBridge.Presence
  doctest XmppBridge.Iq
  doctest XmppBridge.StanzaError
  doctest XmppBridge.Payload.ChatState
  doctest XmppBridge.Payload.ReceiptReceived
  doctest XmppBridge.Payload.Json
  doctest XmppBridge.Payload.Term

  defp bad_argument(fun) do
    error = assert_raise Error, fun
    assert {:bad_argument, detail} = error.reason
    assert is_binary(detail)
    detail
  end

  describe "struct defaults match the spec" do
    test "stanzas" do
      assert %Message{} == %Message{
               id: nil,
               type: :normal,
               from: nil,
               to: nil,
               lang: nil,
               bodies: [],
               subjects: [],
               thread: nil,
               thread_parent: nil,
               error: nil,
               payloads: [],
               attrs: []
             }

      assert Map.keys(%Presence{}) |> Enum.sort() ==
               Enum.sort([
                 :__struct__,
                 :id,
                 :type,
                 :from,
                 :to,
                 :lang,
                 :show,
                 :statuses,
                 :priority,
                 :error,
                 :payloads,
                 :attrs
               ])

      assert %Presence{}.type == :available

      assert Map.from_struct(%Iq{}) == %{
               id: nil,
               type: :get,
               from: nil,
               to: nil,
               lang: nil,
               payload: nil,
               error: nil,
               attrs: []
             }

      assert Map.from_struct(%StanzaError{}) == %{
               type: :cancel,
               by: nil,
               condition: :undefined_condition,
               condition_text: nil,
               text: nil,
               text_lang: nil,
               app: nil
             }
    end

    test "payloads" do
      expected = %{
        Payload.Delay => %{stamp: nil, from: nil, reason: nil},
        Payload.ChatState => %{state: :active},
        Payload.ReceiptRequest => %{},
        Payload.ReceiptReceived => %{id: nil},
        Payload.MucJoin => %{password: nil, history: nil},
        Payload.MucHistory => %{maxchars: nil, maxstanzas: nil, seconds: nil, since: nil},
        Payload.MucUser => %{items: [], status_codes: []},
        Payload.MucItem => %{
          affiliation: nil,
          role: nil,
          jid: nil,
          nick: nil,
          actor_jid: nil,
          actor_nick: nil,
          reason: nil
        },
        Payload.Roster => %{ver: nil, items: []},
        Payload.RosterItem => %{
          jid: nil,
          name: nil,
          subscription: nil,
          ask: nil,
          approved: false,
          groups: []
        },
        Payload.DiscoInfo => %{node: nil, identities: [], features: [], extensions: []},
        Payload.DiscoIdentity => %{category: nil, type: nil, name: nil, lang: nil},
        Payload.DiscoItems => %{node: nil, items: []},
        Payload.DiscoItem => %{jid: nil, node: nil, name: nil},
        Payload.Ping => %{},
        Payload.StanzaId => %{id: nil, by: nil},
        Payload.OriginId => %{id: nil},
        Payload.Json => %{json: nil},
        Payload.Term => %{value: nil}
      }

      for {module, fields} <- expected do
        assert module |> struct() |> Map.from_struct() == fields, inspect(module)
      end
    end
  end

  describe "Message.chat/3" do
    test "builds a chat message with one body without xml:lang" do
      assert Message.chat("juliet@example.com", "hi") == %Message{
               type: :chat,
               to: "juliet@example.com",
               bodies: [{nil, "hi"}]
             }
    end

    test "takes stanza options" do
      msg =
        Message.chat("juliet@example.com", "hi",
          id: "m1",
          from: "romeo@example.net/orchard",
          thread: "t1",
          thread_parent: "t0",
          payloads: [%Payload.ReceiptRequest{}],
          attrs: [{"xmlns", "jabber:server"}]
        )

      assert msg.id == "m1"
      assert msg.from == "romeo@example.net/orchard"
      assert {msg.thread, msg.thread_parent} == {"t1", "t0"}
      assert msg.payloads == [%Payload.ReceiptRequest{}]
      assert msg.attrs == [{"xmlns", "jabber:server"}]
    end

    test "rejects options that would contradict a chat message" do
      assert_raise ArgumentError, fn -> Message.chat("a@b", "hi", type: :groupchat) end
      assert_raise ArgumentError, fn -> Message.chat("a@b", "hi", bodies: []) end
    end

    test "requires binaries" do
      assert_raise FunctionClauseError, fn -> Message.chat(nil, "hi") end
      assert_raise FunctionClauseError, fn -> Message.chat("a@b", :hi) end
    end
  end

  describe "Message.new/1" do
    test "with no options is the default message" do
      assert Message.new() == %Message{}
    end

    test "sets every field" do
      error = StanzaError.new(:cancel, :service_unavailable)

      msg =
        Message.new(
          id: "e1",
          type: :error,
          from: "a@example.com",
          to: "b@example.com/r",
          lang: "en",
          bodies: [{nil, "x"}, {"de", "y"}],
          subjects: [{"en", "s"}],
          thread: "t",
          error: error,
          payloads: [{:xmlel, "x", [{"xmlns", "urn:example"}], []}],
          attrs: [{"foo", "bar"}]
        )

      assert msg == %Message{
               id: "e1",
               type: :error,
               from: "a@example.com",
               to: "b@example.com/r",
               lang: "en",
               bodies: [{nil, "x"}, {"de", "y"}],
               subjects: [{"en", "s"}],
               thread: "t",
               error: error,
               payloads: [{:xmlel, "x", [{"xmlns", "urn:example"}], []}],
               attrs: [{"foo", "bar"}]
             }
    end

    test ":body and :subject are shorthands without xml:lang" do
      msg = Message.new(body: "b", subject: "s")
      assert msg.bodies == [{nil, "b"}]
      assert msg.subjects == [{nil, "s"}]
    end

    test "accepts every message type" do
      for type <- [:normal, :chat, :groupchat, :headline, :error] do
        assert Message.new(type: type).type == type
      end
    end

    test "rejects an unknown type" do
      assert bad_argument(fn -> Message.new(type: :shout) end) =~ ":shout"
      assert bad_argument(fn -> Message.new(type: "chat") end) =~ "message type"
    end

    test "rejects a shorthand together with its list" do
      assert bad_argument(fn -> Message.new(body: "a", bodies: [{"en", "b"}]) end) =~
               "either :body or :bodies"

      assert bad_argument(fn -> Message.new(subject: "a", subjects: [{"en", "b"}]) end) =~
               "either :subject or :subjects"
    end

    test "rejects a body or subject that is not a binary" do
      assert bad_argument(fn -> Message.new(body: 42) end) =~ ":body must be a binary"
      assert bad_argument(fn -> Message.new(subject: ~c"x") end) =~ ":subject must be a binary"
    end

    test "rejects a thread parent without a thread" do
      assert bad_argument(fn -> Message.new(thread_parent: "p") end) =~ ":thread_parent"
    end

    test "rejects unknown options" do
      assert_raise ArgumentError, ~r/unknown keys \[:bdy\]/, fn -> Message.new(bdy: "x") end
    end
  end

  describe "Message.body/1 and subject/1" do
    test "prefer the text without xml:lang" do
      msg = %Message{lang: "en", bodies: [{"en", "tagged"}, {nil, "untagged"}]}
      assert Message.body(msg) == "untagged"
    end

    test "then the text in the stanza's language" do
      msg = %Message{lang: "fr", bodies: [{"de", "Hallo"}, {"fr", "Salut"}]}
      assert Message.body(msg) == "Salut"
    end

    test "then the first" do
      assert Message.body(%Message{bodies: [{"de", "Hallo"}, {"fr", "Salut"}]}) == "Hallo"
      assert Message.body(%Message{lang: "it", bodies: [{"de", "Hallo"}]}) == "Hallo"
    end

    test "are nil without texts" do
      assert Message.body(%Message{}) == nil
      assert Message.subject(%Message{}) == nil
    end

    test "subject chooses like body" do
      msg = %Message{lang: "de", subjects: [{"en", "News"}, {"de", "Neues"}]}
      assert Message.subject(msg) == "Neues"
    end
  end

  describe "Presence.available/1" do
    test "with no options is a plain broadcast presence" do
      assert Presence.available() == %Presence{type: :available}
    end

    test "sets every option" do
      presence =
        Presence.available(
          id: "p1",
          from: "a@example.com/r",
          to: "room@muc.example.com/nick",
          lang: "en",
          show: :xa,
          statuses: [{"en", "gone fishing"}],
          priority: -1,
          payloads: [%Payload.MucJoin{password: "pw"}],
          attrs: [{"a", "b"}]
        )

      assert presence == %Presence{
               type: :available,
               id: "p1",
               from: "a@example.com/r",
               to: "room@muc.example.com/nick",
               lang: "en",
               show: :xa,
               statuses: [{"en", "gone fishing"}],
               priority: -1,
               payloads: [%Payload.MucJoin{password: "pw"}],
               attrs: [{"a", "b"}]
             }
    end

    test "accepts every show value and the priority bounds" do
      for show <- [:away, :chat, :dnd, :xa] do
        assert Presence.available(show: show).show == show
      end

      assert Presence.available(priority: -128).priority == -128
      assert Presence.available(priority: 127).priority == 127
    end

    test "rejects an unknown show" do
      assert bad_argument(fn -> Presence.available(show: :busy) end) =~ ":busy"
      assert bad_argument(fn -> Presence.available(show: "away") end) =~ "show"
    end

    test "rejects a priority out of range or not an integer" do
      assert bad_argument(fn -> Presence.available(priority: 128) end) =~ "-128..127"
      assert bad_argument(fn -> Presence.available(priority: -129) end) =~ "-128..127"
      assert bad_argument(fn -> Presence.available(priority: 1.0) end) =~ "got: 1.0"
    end

    test "status is a shorthand exclusive with statuses" do
      assert Presence.available(status: "here").statuses == [{nil, "here"}]

      assert bad_argument(fn -> Presence.available(status: "a", statuses: [{nil, "b"}]) end) =~
               "either :status or :statuses"

      assert bad_argument(fn -> Presence.available(status: :here) end) =~
               ":status must be a binary"
    end

    test "rejects a type option: use unavailable/1 or the struct" do
      assert_raise ArgumentError, fn -> Presence.available(type: :subscribe) end
    end
  end

  describe "Presence.unavailable/1" do
    test "with no options" do
      assert Presence.unavailable() == %Presence{type: :unavailable}
    end

    test "carries a status and a destination" do
      presence = Presence.unavailable(to: "room@muc.example.com/nick", status: "bye", id: "u1")

      assert presence == %Presence{
               type: :unavailable,
               id: "u1",
               to: "room@muc.example.com/nick",
               statuses: [{nil, "bye"}]
             }
    end

    test "takes no show or priority, which have no meaning when unavailable" do
      assert_raise ArgumentError, fn -> Presence.unavailable(show: :away) end
      assert_raise ArgumentError, fn -> Presence.unavailable(priority: 1) end
    end
  end

  describe "Presence.status/1" do
    test "chooses as Message.body/1 does" do
      assert Presence.status(%Presence{statuses: [{"en", "a"}, {nil, "b"}]}) == "b"
      assert Presence.status(%Presence{lang: "en", statuses: [{"de", "a"}, {"en", "b"}]}) == "b"
      assert Presence.status(%Presence{statuses: [{"de", "a"}, {"en", "b"}]}) == "a"
      assert Presence.status(%Presence{}) == nil
    end
  end

  describe "Iq.get/3 and Iq.set/3" do
    test "build requests with the payload" do
      assert %Iq{type: :get, to: "example.com", payload: %Payload.Ping{}} =
               Iq.get("example.com", %Payload.Ping{})

      element = {:xmlel, "query", [{"xmlns", "jabber:iq:private"}], []}
      assert %Iq{type: :set, to: nil, payload: ^element} = Iq.set(nil, element)
    end

    test "generate a random URL-safe id of 12 characters" do
      ids = for _ <- 1..200, do: Iq.get(nil, %Payload.Roster{}).id
      assert length(Enum.uniq(ids)) == 200

      for id <- ids do
        assert id =~ ~r/\A[A-Za-z0-9_-]{12}\z/
      end
    end

    test "take options" do
      iq =
        Iq.set("pubsub.example.com", %Payload.Ping{},
          id: "x1",
          from: "a@example.com/r",
          lang: "en",
          attrs: [{"k", "v"}]
        )

      assert iq == %Iq{
               type: :set,
               id: "x1",
               to: "pubsub.example.com",
               from: "a@example.com/r",
               lang: "en",
               payload: %Payload.Ping{},
               attrs: [{"k", "v"}]
             }
    end

    test "require a payload" do
      assert_raise FunctionClauseError, fn -> Iq.get("example.com", nil) end
      assert_raise FunctionClauseError, fn -> Iq.set("example.com", "<ping/>") end
      assert_raise FunctionClauseError, fn -> Iq.get(:server, %Payload.Ping{}) end
    end

    test "reject unknown options" do
      assert_raise ArgumentError, fn -> Iq.get(nil, %Payload.Ping{}, type: :set) end
    end
  end

  describe "Iq.result/2" do
    setup do
      %{
        request:
          Iq.get("b@example.com/y", %Payload.DiscoInfo{}, id: "d1", from: "a@example.com/x")
      }
    end

    test "answers with the same id and swapped addresses", %{request: request} do
      info = %Payload.DiscoInfo{features: ["urn:xmpp:ping"]}

      assert Iq.result(request, info) == %Iq{
               type: :result,
               id: "d1",
               from: "b@example.com/y",
               to: "a@example.com/x",
               payload: info
             }
    end

    test "may be empty", %{request: request} do
      assert %Iq{type: :result, payload: nil, id: "d1"} = Iq.result(request)
    end

    test "does not answer a result or an error", %{request: request} do
      result = Iq.result(request)
      assert bad_argument(fn -> Iq.result(result) end) =~ "type :result"

      error = Iq.error(request, StanzaError.new(:item_not_found))
      assert bad_argument(fn -> Iq.result(error) end) =~ "type :error"
    end
  end

  describe "Iq.error/2" do
    test "answers with the error, same id and swapped addresses" do
      request = %Iq{type: :set, id: "s1", from: "a@example.com/x", to: "b@example.com"}
      error = StanzaError.new(:auth, :forbidden, text: "no")

      assert Iq.error(request, error) == %Iq{
               type: :error,
               id: "s1",
               from: "b@example.com",
               to: "a@example.com/x",
               error: error
             }
    end

    test "does not answer a result or an error" do
      error = StanzaError.new(:bad_request)

      for type <- [:result, :error] do
        assert bad_argument(fn -> Iq.error(%Iq{type: type, id: "1"}, error) end) =~
                 "type #{inspect(type)}"
      end
    end

    test "requires a StanzaError" do
      assert_raise FunctionClauseError, fn -> Iq.error(%Iq{type: :get}, :item_not_found) end
    end
  end

  describe "StanzaError" do
    test "conditions/0 lists the 22 RFC 6120 conditions" do
      assert StanzaError.conditions() == [
               :bad_request,
               :conflict,
               :feature_not_implemented,
               :forbidden,
               :gone,
               :internal_server_error,
               :item_not_found,
               :jid_malformed,
               :not_acceptable,
               :not_allowed,
               :not_authorized,
               :policy_violation,
               :recipient_unavailable,
               :redirect,
               :registration_required,
               :remote_server_not_found,
               :remote_server_timeout,
               :resource_constraint,
               :service_unavailable,
               :subscription_required,
               :undefined_condition,
               :unexpected_request
             ]
    end

    test "default_type/1 follows RFC 6120 section 8.3.3" do
      expected = %{
        auth: [:forbidden, :not_authorized, :registration_required, :subscription_required],
        modify: [:bad_request, :jid_malformed, :not_acceptable, :policy_violation, :redirect],
        wait: [
          :recipient_unavailable,
          :remote_server_timeout,
          :resource_constraint,
          :unexpected_request
        ],
        cancel: [
          :conflict,
          :feature_not_implemented,
          :gone,
          :internal_server_error,
          :item_not_found,
          :not_allowed,
          :remote_server_not_found,
          :service_unavailable,
          :undefined_condition
        ]
      }

      for {type, conditions} <- expected, condition <- conditions do
        assert StanzaError.default_type(condition) == type, inspect(condition)
      end

      assert expected |> Map.values() |> List.flatten() |> Enum.sort() ==
               Enum.sort(StanzaError.conditions())
    end

    test "default_type/1 rejects an unknown condition" do
      assert bad_argument(fn -> StanzaError.default_type(:teapot) end) =~ ":teapot"
    end

    test "new/1 uses the default type" do
      assert StanzaError.new(:not_authorized) == %StanzaError{
               type: :auth,
               condition: :not_authorized
             }
    end

    test "new/3 sets every option" do
      app = {:xmlel, "too-many", [{"xmlns", "urn:example:errors"}], []}

      assert StanzaError.new(:modify, :gone,
               by: "example.org",
               condition_text: "xmpp:new@example.org",
               text: "moved",
               text_lang: "en",
               app: app
             ) == %StanzaError{
               type: :modify,
               condition: :gone,
               by: "example.org",
               condition_text: "xmpp:new@example.org",
               text: "moved",
               text_lang: "en",
               app: app
             }
    end

    test "new/3 rejects an unknown type or condition" do
      assert bad_argument(fn -> StanzaError.new(:fatal, :conflict) end) =~ ":fatal"

      assert bad_argument(fn -> StanzaError.new(:cancel, :"item-not-found") end) =~
               "item-not-found"
    end

    test "new/3 keeps condition_text to gone and redirect" do
      assert StanzaError.new(:modify, :redirect, condition_text: "xmpp:x@y").condition_text ==
               "xmpp:x@y"

      assert bad_argument(fn ->
               StanzaError.new(:cancel, :conflict, condition_text: "xmpp:x@y")
             end) =~ ":conflict"
    end

    test "new/3 rejects text_lang without text and a malformed app element" do
      assert bad_argument(fn -> StanzaError.new(:cancel, :conflict, text_lang: "en") end) =~
               ":text_lang"

      assert bad_argument(fn -> StanzaError.new(:cancel, :conflict, app: "<x/>") end) =~ ":app"
    end

    test "new/3 rejects unknown options" do
      assert_raise ArgumentError, fn -> StanzaError.new(:cancel, :conflict, lang: "en") end
    end
  end

  describe "payload builders" do
    test "ChatState.new/1 accepts each state and rejects others" do
      for state <- [:active, :composing, :paused, :inactive, :gone] do
        assert Payload.ChatState.new(state) == %Payload.ChatState{state: state}
      end

      assert bad_argument(fn -> Payload.ChatState.new(:typing) end) =~ ":typing"
    end

    test "ReceiptReceived.new/1 takes the acknowledged id" do
      assert Payload.ReceiptReceived.new("m1") == %Payload.ReceiptReceived{id: "m1"}
      assert_raise FunctionClauseError, fn -> Payload.ReceiptReceived.new(nil) end
    end

    test "Json.new/1 keeps the text as it is" do
      text = ~s({"a": [1, 2.5, "é"]})
      assert Payload.Json.new(text) == %Payload.Json{json: text}
    end

    test "Json.new/1 rejects invalid UTF-8 and non-binaries" do
      assert bad_argument(fn -> Payload.Json.new(<<0xFF, ?{>>) end) =~ "UTF-8"
      assert_raise FunctionClauseError, fn -> Payload.Json.new(%{"a" => 1}) end
    end

    test "Term.new/1 wraps any term" do
      pid = self()
      value = {:job, 1, %{from: pid}, [1.5, "x"]}
      assert Payload.Term.new(value) == %Payload.Term{value: value}
      assert Payload.Term.new(nil) == %Payload.Term{value: nil}
    end
  end
end
