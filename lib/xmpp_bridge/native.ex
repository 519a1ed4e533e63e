defmodule XmppBridge.Native do
  @moduledoc false
  # The NIF built from native/xmpp_bridge_nif. Callers go through the public
  # modules, which check argument types and choose the dirty variants.

  @on_load :load_nif

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:xmpp_bridge), ~c"native/libxmpp_bridge_nif")

    case :erlang.load_nif(path, 0) do
      :ok ->
        :ok

      {:error, {reason, text}} ->
        IO.warn(
          "xmpp_bridge: could not load its NIF from #{path}.so (#{reason}: #{text}). " <>
            "Run `mix compile` in the xmpp_bridge project, which builds it with cargo."
        )

        {:error, reason}
    end
  end

  defp nif_error, do: :erlang.nif_error(:nif_not_loaded)

  def stanza_decode(_bin, _max_bytes, _max_depth), do: nif_error()
  def stanza_decode_dirty(_bin, _max_bytes, _max_depth), do: nif_error()
  def stanza_encode(_term), do: nif_error()
  def stanza_encode_dirty(_term), do: nif_error()
  def xml_parse(_bin, _max_bytes, _max_depth), do: nif_error()
  def xml_parse_dirty(_bin, _max_bytes, _max_depth), do: nif_error()
  def xml_encode(_term), do: nif_error()
  def xml_encode_dirty(_term), do: nif_error()
  def jid_parse(_bin), do: nif_error()
  def jid_normalize(_bin), do: nif_error()
  def stream_new(_max_bytes, _max_depth), do: nif_error()
  def stream_feed(_ref, _bin), do: nif_error()
  def stream_feed_dirty(_ref, _bin), do: nif_error()
  def stream_reset(_ref), do: nif_error()
  def stream_buffered(_ref), do: nif_error()
  def conn_open(_opts, _owner, _id), do: nif_error()
  def conn_send(_ref, _stanza), do: nif_error()
  def conn_send_dirty(_ref, _stanza), do: nif_error()
  def conn_iq(_ref, _iq, _waiter, _token), do: nif_error()
  def conn_iq_dirty(_ref, _iq, _waiter, _token), do: nif_error()
  def conn_set_active(_ref, _active), do: nif_error()
  def conn_inject_panic(_ref), do: nif_error()
  def conn_cancel_iq(_ref, _token, _id), do: nif_error()
  def conn_close(_ref), do: nif_error()
  def conn_alive(_ref), do: nif_error()
  def conn_count, do: nif_error()
  def json_encode(_term), do: nif_error()
  def json_encode_dirty(_term), do: nif_error()
  def json_decode(_bin), do: nif_error()
  def json_decode_dirty(_bin), do: nif_error()
  def term_check(_bin), do: nif_error()
  def term_check_dirty(_bin), do: nif_error()
  def term_pack(_bin), do: nif_error()
  def term_pack_dirty(_bin), do: nif_error()
  def term_decode(_bin), do: nif_error()
  def term_decode_dirty(_bin), do: nif_error()
end
