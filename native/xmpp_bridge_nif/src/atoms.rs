//! Atoms used when building and reading terms.

rustler::atoms! {
    ok, error, nil, dirty,
    xmpp_bridge, xmpp_bridge_iq, stanza, element, online, resumed, disconnected, reconnecting,
    attempt, delay_ms, acked, failed, closed, normal, component, plain, direct, noproc, queue_full, true_ = "true", false_ = "false",
    xmlel, xmlcdata, io_thread_nice,
    client, starttls, once, passive, bad_argument, bad_option,
    stream_start, stream_end, invalid_stanza, parse_error,
    __struct__ = "__struct__",

    // modules
    message_mod = "Elixir.XmppBridge.Message",
    presence_mod = "Elixir.XmppBridge.Presence",
    iq_mod = "Elixir.XmppBridge.Iq",
    stanza_error_mod = "Elixir.XmppBridge.StanzaError",
    delay_mod = "Elixir.XmppBridge.Payload.Delay",
    chat_state_mod = "Elixir.XmppBridge.Payload.ChatState",
    receipt_request_mod = "Elixir.XmppBridge.Payload.ReceiptRequest",
    receipt_received_mod = "Elixir.XmppBridge.Payload.ReceiptReceived",
    muc_join_mod = "Elixir.XmppBridge.Payload.MucJoin",
    muc_history_mod = "Elixir.XmppBridge.Payload.MucHistory",
    muc_user_mod = "Elixir.XmppBridge.Payload.MucUser",
    muc_item_mod = "Elixir.XmppBridge.Payload.MucItem",
    roster_mod = "Elixir.XmppBridge.Payload.Roster",
    roster_item_mod = "Elixir.XmppBridge.Payload.RosterItem",
    disco_info_mod = "Elixir.XmppBridge.Payload.DiscoInfo",
    disco_identity_mod = "Elixir.XmppBridge.Payload.DiscoIdentity",
    disco_items_mod = "Elixir.XmppBridge.Payload.DiscoItems",
    disco_item_mod = "Elixir.XmppBridge.Payload.DiscoItem",
    ping_mod = "Elixir.XmppBridge.Payload.Ping",
    stanza_id_mod = "Elixir.XmppBridge.Payload.StanzaId",
    origin_id_mod = "Elixir.XmppBridge.Payload.OriginId",
    json_mod = "Elixir.XmppBridge.Payload.Json",
    term_mod = "Elixir.XmppBridge.Payload.Term",
    unknown_atom_mod = "Elixir.XmppBridge.Bus.UnknownAtom",

    // fields
    id, type_ = "type", from, to, lang, bodies, subjects, thread, thread_parent,
    payloads, payload, attrs, show, statuses, priority, by, condition, condition_text,
    text, text_lang, app, stamp, reason, state, password, history, maxchars, maxstanzas,
    seconds, since, items, status_codes, affiliation, role, jid, nick, actor_jid,
    actor_nick, ver, name, subscription, ask, approved, groups, node, identities,
    features, extensions, category, json, value, subscribe, children,

    // error reasons
    malformed_xml, invalid_utf8, forbidden_xml, undefined_entity, too_deep, too_large,
    unknown_element, bad_namespace, invalid_jid, invalid_value, missing_attribute,
    invalid_iq, invalid_xml_char, not_portable, parser_failed, invalid_field, invalid_json,
    localpart, domainpart, resourcepart,
}
