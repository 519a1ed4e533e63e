defmodule XmppBridge.Bus.Wire do
  @moduledoc false
  # The bus's stanzas (docs/PROTOCOL.md §5): building them and reading them.
  # Pure functions; XmppBridge.Bus does the sending and the bookkeeping.

  alias XmppBridge.{Error, Iq, Jid, Message, Presence, StanzaError}
  alias XmppBridge.Bus.Term, as: BusTerm
  alias XmppBridge.Payload

  @ns "urn:xmpp-bridge:bus:0"
  @term_ns "urn:xmpp-bridge:term:0"
  @json_ns "urn:xmpp:json:0"
  @max_method_bytes 256

  # Conditions a server answers with for a peer that is not there.
  @unavailable [
    :service_unavailable,
    :recipient_unavailable,
    :item_not_found,
    :remote_server_not_found,
    :remote_server_timeout,
    :gone
  ]

  def ns, do: @ns

  ## Addresses

  @doc false
  # The full JID a bus node has: a bare JID gets the default resource.
  def address(jid, resource) when is_binary(jid) do
    case Jid.parse(jid) do
      {:ok, %Jid{resource: nil} = parsed} ->
        {:ok, Jid.to_string(%Jid{parsed | resource: resource})}

      {:ok, parsed} ->
        {:ok, Jid.to_string(parsed)}

      {:error, _} ->
        {:error, %Error{reason: {:bad_jid, jid}}}
    end
  end

  def address(jid, _resource), do: {:error, %Error{reason: {:bad_jid, jid}}}

  def bare(jid) do
    [bare | _] = :binary.split(jid, "/")
    bare
  end

  ## Values

  @doc false
  # The payload element carrying `value`: a term, or JSON.
  def value_element(value, :term) do
    with {:ok, el, _body} <- value_and_body(value, :term), do: {:ok, el}
  end

  def value_element(value, :json) do
    with {:ok, el, _body} <- value_and_body(value, :json), do: {:ok, el}
  end

  @doc false
  # The payload element and the message body for `value`.
  def value_and_body(value, :term) do
    with {:ok, b64, body} <- BusTerm.pack(value) do
      {:ok, {:xmlel, "term", [{"xmlns", @term_ns}], [{:xmlcdata, b64}]}, body}
    end
  end

  def value_and_body(value, :json) do
    with {:ok, %Payload.Json{json: json}} <- Payload.Json.from_term(value) do
      {:ok, {:xmlel, "json", [{"xmlns", @json_ns}], [{:xmlcdata, json}]}, BusTerm.body(value)}
    end
  end

  @doc false
  # The value a message's payloads carry: {:ok, value, format} when there
  # is one, {:refused, reason} when there is one we do not accept, :none.
  def message_value(payloads), do: value_in(payloads, :none)

  defp value_in([%Payload.Term{value: v} | _], _acc), do: {:ok, v, :term}
  defp value_in([{:xmlel, "term", _, _} = el | _], _acc), do: read_value(el)
  defp value_in([%Payload.Json{} = j | rest], acc), do: value_in(rest, json_value(j, acc))
  defp value_in([_ | rest], acc), do: value_in(rest, acc)
  defp value_in([], acc), do: acc

  defp json_value(%Payload.Json{} = j, :none) do
    case Payload.Json.to_term(j) do
      {:ok, v} -> {:ok, v, :json}
      {:error, %Error{reason: r}} -> {:refused, r}
    end
  end

  defp json_value(_j, acc), do: acc

  @doc false
  # A value in a generic element (inside <call/> or <result/>).
  def read_value({:xmlel, "term", attrs, children}) do
    with true <- List.keyfind(attrs, "xmlns", 0) == {"xmlns", @term_ns},
         {:ok, etf} <- Base.decode64(text(children), ignore: :whitespace),
         {:ok, value} <- BusTerm.decode(etf) do
      {:ok, value, :term}
    else
      {:error, %Error{reason: reason}} -> {:refused, reason}
      _ -> {:refused, {:bad_args, "unreadable term payload"}}
    end
  end

  def read_value({:xmlel, "json", attrs, children}) do
    with true <- List.keyfind(attrs, "xmlns", 0) == {"xmlns", @json_ns},
         {:ok, v} <- Payload.Json.to_term(%Payload.Json{json: text(children)}) do
      {:ok, v, :json}
    else
      {:error, %Error{reason: reason}} -> {:refused, reason}
      _ -> {:refused, {:bad_args, "unreadable JSON payload"}}
    end
  end

  def read_value(_), do: :none

  defp text(children), do: for({:xmlcdata, t} <- children, into: "", do: t)

  ## Terms

  @doc false
  def term_message(to, id, value_el, body, confirmed?) do
    receipt = if confirmed?, do: [%Payload.ReceiptRequest{}], else: []

    %Message{
      to: to,
      id: id,
      bodies: [{nil, body}],
      payloads: [value_el, %Payload.OriginId{id: id} | receipt]
    }
  end

  def receipt(to, id),
    do: %Message{to: to, id: Iq.new_id(), payloads: [%Payload.ReceiptReceived{id: id}]}

  def not_acceptable(%Message{} = msg, detail) do
    %Message{
      to: msg.from,
      id: msg.id,
      type: :error,
      error: %StanzaError{type: :modify, condition: :not_acceptable, text: detail}
    }
  end

  # These run for every incoming message: plain recursion over the
  # payloads, no closures.
  def origin_id(%Message{payloads: payloads, id: id}), do: origin_in(payloads, id)

  defp origin_in([%Payload.OriginId{id: oid} | _], _id) when oid != nil, do: oid
  defp origin_in([_ | rest], id), do: origin_in(rest, id)
  defp origin_in([], id), do: id

  def receipt_requested?(%Message{payloads: payloads}), do: receipt_request_in(payloads)

  defp receipt_request_in([%Payload.ReceiptRequest{} | _]), do: true
  defp receipt_request_in([_ | rest]), do: receipt_request_in(rest)
  defp receipt_request_in([]), do: false

  def receipt_for(%Message{payloads: payloads}), do: receipt_in(payloads)

  defp receipt_in([%Payload.ReceiptReceived{id: id} | _]) when is_binary(id), do: id
  defp receipt_in([_ | rest]), do: receipt_in(rest)
  defp receipt_in([]), do: nil

  def cancel_of(%Message{type: :headline, payloads: payloads}) do
    Enum.find_value(payloads, fn
      {:xmlel, "cancel", attrs, _} -> if xmlns(attrs) == @ns, do: attr(attrs, "id")
      _ -> nil
    end)
  end

  def cancel_of(_), do: nil

  def cancel(to, id),
    do: %Message{
      to: to,
      type: :headline,
      payloads: [{:xmlel, "cancel", [{"xmlns", @ns}, {"id", id}], []}]
    }

  ## RPC

  @doc false
  def method_name(m) when is_atom(m) and m not in [nil, true, false],
    do: method_name(Atom.to_string(m))

  def method_name(m) when is_binary(m) and byte_size(m) in 1..@max_method_bytes do
    if String.valid?(m),
      do: {:ok, m},
      else: {:error, %Error{reason: {:bad_argument, "method name is not UTF-8"}}}
  end

  def method_name(m),
    do:
      {:error,
       %Error{
         reason:
           {:bad_argument,
            "a method name is a non-empty string of at most #{@max_method_bytes} bytes, got: #{inspect(m)}"}
       }}

  def call_iq(to, method, args_el, timeout) do
    %Iq{
      type: :set,
      to: to,
      id: Iq.new_id(),
      payload:
        {:xmlel, "call",
         [{"xmlns", @ns}, {"method", method}, {"timeout", Integer.to_string(timeout)}], [args_el]}
    }
  end

  @doc false
  # {:call, method, timeout_ms, args_result} for a bus call, or nil.
  def call_of(%Iq{type: :set, payload: {:xmlel, "call", attrs, children}}) do
    if xmlns(attrs) == @ns do
      timeout =
        case Integer.parse(attr(attrs, "timeout") || "") do
          {ms, ""} when ms > 0 -> min(ms, 86_400_000)
          _ -> 5000
        end

      args =
        case Enum.find(children, &match?({:xmlel, _, _, _}, &1)) do
          nil -> {:ok, [], :term}
          el -> read_value(el)
        end

      {:call, attr(attrs, "method"), timeout, args}
    end
  end

  def call_of(_), do: nil

  def result_iq(%Iq{} = req, value_el),
    do: %Iq{
      type: :result,
      id: req.id,
      to: req.from,
      payload: {:xmlel, "result", [{"xmlns", @ns}], [value_el]}
    }

  # The error answers of §5.3.
  def error_iq(%Iq{} = req, reason) do
    {type, condition, app, text} =
      case reason do
        {:no_method, m} -> {:cancel, :item_not_found, "no-method", m}
        {:crashed, detail} -> {:cancel, :internal_server_error, "crashed", detail}
        :busy -> {:wait, :resource_constraint, "busy", nil}
        :timeout -> {:wait, :undefined_condition, "timeout", nil}
        {:bad_args, detail} -> {:modify, :bad_request, "bad-args", detail}
        :not_a_call -> {:cancel, :service_unavailable, nil, nil}
      end

    app_el = if app, do: {:xmlel, app, [{"xmlns", @ns}], []}
    text = if text, do: String.slice(text, 0, 4000)

    %Iq{
      type: :error,
      id: req.id,
      to: req.from,
      error: %StanzaError{type: type, condition: condition, app: app_el, text: text}
    }
  end

  @doc false
  # The reason a call's error answer means (§5.3).
  def call_error(%Iq{error: %StanzaError{} = e}) do
    case e.app do
      {:xmlel, name, attrs, _} ->
        if xmlns(attrs) == @ns, do: app_reason(name, e), else: stanza_reason(e)

      _ ->
        stanza_reason(e)
    end
  end

  def call_error(%Iq{} = iq), do: {:iq_error, iq}

  defp app_reason("no-method", e), do: {:no_method, e.text || ""}
  defp app_reason("crashed", e), do: {:crashed, e.text || ""}
  defp app_reason("busy", _), do: :busy
  defp app_reason("timeout", _), do: :timeout
  defp app_reason("bad-args", e), do: {:bad_args, e.text || ""}
  defp app_reason(_, e), do: stanza_reason(e)

  defp stanza_reason(%StanzaError{condition: c}) when c in @unavailable,
    do: {:peer_unavailable, condition_name(c)}

  defp stanza_reason(%StanzaError{} = e), do: {:iq_error, %Iq{type: :error, error: e}}

  def unavailable_condition?(c), do: c in @unavailable

  @doc false
  # A name host's answer for a name nobody holds (§7.2): `<noproc/>`.
  def noproc?(%StanzaError{app: {:xmlel, "noproc", attrs, _}}), do: xmlns(attrs) == @ns
  def noproc?(_), do: false

  @doc false
  # The DOWN reason a goodbye presence gives (§5.4, §7.3).
  def goodbye_reason(nil), do: :shutdown
  def goodbye_reason("normal"), do: {:exit, :normal}
  def goodbye_reason("shutdown"), do: {:exit, :shutdown}
  def goodbye_reason("killed"), do: {:exit, :killed}
  def goodbye_reason(_), do: {:exit, :error}

  def condition_name(c) when is_atom(c), do: c |> Atom.to_string() |> String.replace("_", "-")
  def condition_name(c), do: inspect(c)

  def result_value(%Iq{payload: {:xmlel, "result", attrs, children}}) do
    with true <- xmlns(attrs) == @ns,
         el when el != nil <- Enum.find(children, &match?({:xmlel, _, _, _}, &1)),
         {:ok, value, _} <- read_value(el) do
      {:ok, value}
    else
      {:refused, reason} -> {:error, %Error{reason: reason}}
      nil -> {:ok, nil}
      _ -> {:error, %Error{reason: {:bad_args, "the answer carries no readable result"}}}
    end
  end

  def result_value(%Iq{}), do: {:ok, nil}

  ## Presence (§5.1, §5.4)

  def node_element(incarnation, extra \\ []),
    do: {:xmlel, "node", [{"xmlns", @ns}, {"incarnation", incarnation} | extra], []}

  def goodbye_presence(to, incarnation),
    do: %Presence{
      to: to,
      type: :unavailable,
      payloads: [node_element(incarnation, [{"goodbye", "true"}])]
    }

  def ping(to), do: %Iq{type: :get, to: to, id: Iq.new_id(), payload: %Payload.Ping{}}

  @doc false
  # What a presence says about its sender's node: %{incarnation, watch,
  # goodbye, exit}.
  def node_info(payloads) do
    Enum.find_value(payloads, %{incarnation: nil, watch: false, goodbye: false, exit: nil}, fn
      {:xmlel, "node", attrs, _} ->
        if xmlns(attrs) == @ns do
          %{
            incarnation: attr(attrs, "incarnation"),
            watch: attr(attrs, "watch") == "true",
            goodbye: attr(attrs, "goodbye") == "true",
            exit: attr(attrs, "exit")
          }
        end

      _ ->
        nil
    end)
  end

  def ping_incarnation(%Iq{payload: {:xmlel, "node", attrs, _}}) do
    if xmlns(attrs) == @ns, do: attr(attrs, "incarnation")
  end

  def ping_incarnation(_), do: nil

  ## Method discovery (§6.3)

  @methods_node @ns <> "#methods"

  def methods_query(to),
    do: %Iq{
      type: :get,
      to: to,
      id: Iq.new_id(),
      payload: %Payload.DiscoItems{node: @methods_node}
    }

  # The answer to a disco#items query: the methods, or the way to them.
  def methods_answer(%Iq{payload: %Payload.DiscoItems{node: node}} = req, me, methods) do
    case node do
      @methods_node ->
        items =
          for m <- Enum.sort(methods),
              do: %Payload.DiscoItem{jid: me, node: @methods_node, name: m}

        %Iq{
          type: :result,
          id: req.id,
          to: req.from,
          payload: %Payload.DiscoItems{node: node, items: items}
        }

      nil ->
        items = [%Payload.DiscoItem{jid: me, node: @methods_node, name: "methods"}]
        %Iq{type: :result, id: req.id, to: req.from, payload: %Payload.DiscoItems{items: items}}

      _ ->
        %Iq{
          type: :error,
          id: req.id,
          to: req.from,
          error: %StanzaError{type: :cancel, condition: :item_not_found}
        }
    end
  end

  def methods_of(%Iq{payload: %Payload.DiscoItems{items: items}}),
    do:
      items
      |> Enum.filter(&(&1.node == @methods_node and is_binary(&1.name)))
      |> Enum.map(& &1.name)
      |> Enum.sort()

  def methods_of(_), do: []

  defp xmlns(attrs), do: attr(attrs, "xmlns")

  defp attr(attrs, name) do
    case List.keyfind(attrs, name, 0) do
      {_, v} -> v
      nil -> nil
    end
  end
end
