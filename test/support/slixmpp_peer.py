"""An ordinary third-party XMPP client (slixmpp) talking to bus nodes.

Used by test/xmpp_bridge/slixmpp_test.exs to show that a client that knows
nothing of xmpp_bridge but docs/PROTOCOL.md can take part: it calls bus
methods with XEP-0335 JSON arguments (section 5.3), sends JSON terms
(section 5.2) and reads a group's room (section 6.1).

    python slixmpp_peer.py --jid J --password P [--host H --port N]
                           [--tls plain|starttls|direct] [--ca-file PEM]

Run it with the venv that scripts/install-deps.sh makes
(/var/tmp/xmpp_bridge-venv/bin/python). For a loopback host without
--ca-file, the server certificate is not verified (the test harness's
certificates are signed by a CA of each run).

It prints one JSON object a line on stdout (logs go to stderr):

    {"event": "online", "jid": J}
    {"event": "result", "id": N, "json": V}
    {"event": "error", "id": N, "type": T, "condition": C, "bus": B, "text": X}
        B is the bus element's name (no-method, crashed, busy, timeout,
        bad-args) or null; "condition": "timeout" with type null when no
        answer came in time
    {"event": "delivered", "id": N}       the receipt of a send came
    {"event": "joined", "id": N, "room": R, "nick": K, "created": B}
    {"event": "sent", "id": N}            a groupchat message went out
    {"event": "groupchat", "room": R, "nick": K, "body": X, "json": V}
    {"event": "message", "from": J, "body": X, "json": V}
    {"event": "bad_command", "detail": D}
    {"event": "stopped"}                  before exiting 0

and reads one command a line on stdin:

    {"cmd": "call", "id": N, "to": J, "method": M, "args": [...], "timeout": MS}
    {"cmd": "send", "id": N, "to": J, "json": V, "timeout": MS}
    {"cmd": "join", "id": N, "room": R, "nick": K, "timeout": MS}
    {"cmd": "groupchat", "id": N, "room": R, "body": X, "json": V}
        a groupchat message to room R: the body X, and a <json/> payload
        when "json" is given; answered {"event": "sent", "id": N}
    {"cmd": "stop"}

The end of stdin stops it too.
"""

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import ssl
import sys
import uuid
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

BUS = "urn:xmpp-bridge:bus:0"
JSON_NS = "urn:xmpp:json:0"
RECEIPTS = "urn:xmpp:receipts"
SID = "urn:xmpp:sid:0"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
MUC_OWNER = "http://jabber.org/protocol/muc#owner"
DATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def emit(obj):
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The test that reads us is gone: nothing left to tell.
        pass


def json_element(value):
    """<json xmlns='urn:xmpp:json:0'> holding the value's JSON text (PROTOCOL §3)."""
    el = ET.Element("{%s}json" % JSON_NS)
    el.text = json.dumps(value)
    return el


def json_payload(parent):
    """The value of the first <json/> child of `parent`, or None."""
    el = parent.find("{%s}json" % JSON_NS)
    if el is None:
        return None
    return json.loads(el.text or "null")


def is_loopback(host):
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Peer(slixmpp.ClientXMPP):
    def __init__(self, opts):
        plugin_config = {}
        if opts.tls == "plain":
            # Plaintext only to loopback (the harness's c2s_plain port).
            if not is_loopback(opts.host):
                raise SystemExit("--tls plain is for loopback hosts only")
            plugin_config["feature_mechanisms"] = {
                "unencrypted_plain": True,
                "unencrypted_scram": True,
            }
        super().__init__(opts.jid, opts.password, plugin_config=plugin_config)
        self.opts = opts
        # Connection: only the way asked for.
        self.enable_plaintext = opts.tls == "plain"
        self.enable_starttls = opts.tls == "starttls"
        self.enable_direct_tls = opts.tls == "direct"
        if opts.ca_file:
            self.ca_certs = opts.ca_file
        elif is_loopback(opts.host):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.ssl_context = ctx
        self.online = asyncio.get_event_loop().create_future()
        self.receipts = {}
        self.joins = {}
        self.add_event_handler("session_start", self.on_start)
        # slixmpp's "message" event is only for messages with a <body/>.
        self.add_event_handler("message", self.on_message)
        self.register_handler(
            Callback(
                "bus receipt",
                MatchXPath("{jabber:client}message/{%s}received" % RECEIPTS),
                self.on_receipt,
            )
        )
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("failed_auth", self.on_failed_auth)

    async def on_start(self, _event):
        self.send_presence()
        emit({"event": "online", "jid": str(self.boundjid)})
        if not self.online.done():
            self.online.set_result(True)

    def on_failed_auth(self, _event):
        logging.error("authentication failed")
        if not self.online.done():
            self.online.set_exception(SystemExit("authentication failed"))

    def on_message(self, msg):
        if msg["type"] == "groupchat":
            self.on_groupchat(msg)
            return
        if msg["type"] == "error":
            logging.warning("bounced message %s: %s", msg["id"], msg["error"]["condition"])
            return
        emit(
            {
                "event": "message",
                "from": str(msg["from"]),
                "body": msg["body"] or None,
                "json": json_payload(msg.xml),
            }
        )

    def on_receipt(self, msg):
        received = msg.xml.find("{%s}received" % RECEIPTS)
        fut = self.receipts.pop(received.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(True)

    def on_groupchat(self, msg):
        payload = json_payload(msg.xml)
        if payload is None and not msg["body"]:
            # The subject, status codes: not a broadcast.
            return
        emit(
            {
                "event": "groupchat",
                "room": msg["from"].bare,
                "nick": msg["from"].resource,
                "body": msg["body"] or None,
                "json": payload,
            }
        )

    def on_presence(self, pres):
        room = pres["from"].bare
        fut = self.joins.get(room)
        if fut is None or fut.done():
            return
        if pres["type"] == "error":
            fut.set_exception(RuntimeError(pres["error"]["condition"] or "error"))
            return
        x = pres.xml.find("{%s}x" % MUC_USER)
        if x is None:
            return
        codes = {s.get("code") for s in x.findall("{%s}status" % MUC_USER)}
        if "110" in codes:
            fut.set_result("201" in codes)

    # ------------------------------------------------------------ commands

    async def call(self, cmd):
        """A bus call with JSON arguments, as PROTOCOL §5.3 writes it."""
        timeout_ms = int(cmd.get("timeout", 5000))
        iq = self.make_iq_set(ito=cmd["to"])
        call = ET.Element(
            "{%s}call" % BUS, {"method": cmd["method"], "timeout": str(timeout_ms)}
        )
        call.append(json_element(cmd.get("args", [])))
        iq.xml.append(call)
        try:
            answer = await iq.send(timeout=timeout_ms / 1000)
        except IqTimeout:
            emit(
                {
                    "event": "error",
                    "id": cmd.get("id"),
                    "type": None,
                    "condition": "timeout",
                    "bus": None,
                    "text": None,
                }
            )
            return
        except IqError as e:
            emit(dict({"event": "error", "id": cmd.get("id")}, **stanza_error(e.iq.xml)))
            return
        result = answer.xml.find("{%s}result" % BUS)
        value = json_payload(result) if result is not None else None
        emit({"event": "result", "id": cmd.get("id"), "json": value})

    async def send_json(self, cmd):
        """A JSON term message (PROTOCOL §5.2) with a receipt request."""
        token = uuid.uuid4().hex
        msg = self.make_message(mto=cmd["to"], mbody=json.dumps(cmd["json"]))
        msg["id"] = token
        msg.xml.append(json_element(cmd["json"]))
        msg.xml.append(ET.Element("{%s}origin-id" % SID, {"id": token}))
        msg.xml.append(ET.Element("{%s}request" % RECEIPTS))
        fut = asyncio.get_event_loop().create_future()
        self.receipts[token] = fut
        msg.send()
        try:
            await asyncio.wait_for(fut, int(cmd.get("timeout", 5000)) / 1000)
            emit({"event": "delivered", "id": cmd.get("id")})
        except asyncio.TimeoutError:
            self.receipts.pop(token, None)
            emit(
                {
                    "event": "error",
                    "id": cmd.get("id"),
                    "type": None,
                    "condition": "timeout",
                    "bus": None,
                    "text": "no receipt",
                }
            )

    async def join(self, cmd):
        """Joins a room as PROTOCOL §6.1 does: the nick, no history."""
        room, nick = cmd["room"], cmd["nick"]
        fut = asyncio.get_event_loop().create_future()
        self.joins[room] = fut
        pres = self.make_presence(pto="%s/%s" % (room, nick))
        x = ET.Element("{%s}x" % MUC)
        ET.SubElement(x, "{%s}history" % MUC, {"maxstanzas": "0"})
        pres.xml.append(x)
        pres.send()
        try:
            created = await asyncio.wait_for(fut, int(cmd.get("timeout", 5000)) / 1000)
        except (asyncio.TimeoutError, RuntimeError) as e:
            emit(
                {
                    "event": "error",
                    "id": cmd.get("id"),
                    "type": None,
                    "condition": str(e) or "timeout",
                    "bus": None,
                    "text": "join failed",
                }
            )
            return
        finally:
            self.joins.pop(room, None)
        if created:
            # A new room is locked until its owner configures it (§6.1).
            iq = self.make_iq_set(ito=room)
            query = ET.Element("{%s}query" % MUC_OWNER)
            form = ET.SubElement(query, "{%s}x" % DATA, {"type": "submit"})
            for var, value in [
                ("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig"),
                ("muc#roomconfig_whois", "anyone"),
                ("muc#roomconfig_persistentroom", "0"),
                ("muc#roomconfig_publicroom", "0"),
            ]:
                field = ET.SubElement(form, "{%s}field" % DATA, {"var": var})
                ET.SubElement(field, "{%s}value" % DATA).text = value
            iq.xml.append(query)
            await iq.send(timeout=5)
        emit(
            {
                "event": "joined",
                "id": cmd.get("id"),
                "room": room,
                "nick": nick,
                "created": created,
            }
        )


    async def groupchat(self, cmd):
        """A groupchat message, with a <json/> payload if one is given."""
        msg = self.make_message(mto=cmd["room"], mbody=cmd["body"], mtype="groupchat")
        if "json" in cmd:
            token = uuid.uuid4().hex
            msg["id"] = token
            msg.xml.append(json_element(cmd["json"]))
            msg.xml.append(ET.Element("{%s}origin-id" % SID, {"id": token}))
        msg.send()
        emit({"event": "sent", "id": cmd.get("id")})


def stanza_error(stanza_xml):
    """The error of an error stanza: type, condition, bus element, text."""
    out = {"type": None, "condition": None, "bus": None, "text": None}
    error = None
    for child in stanza_xml:
        if child.tag.endswith("}error") or child.tag == "error":
            error = child
    if error is None:
        return out
    out["type"] = error.get("type")
    for child in error:
        ns, _, name = child.tag[1:].partition("}")
        if ns == STANZAS and name == "text":
            out["text"] = child.text
        elif ns == STANZAS:
            out["condition"] = name
        elif ns == BUS:
            out["bus"] = name
    return out


async def read_commands(peer):
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict):
                raise ValueError("a command is a JSON object")
        except ValueError as e:
            emit({"event": "bad_command", "detail": str(e)})
            continue
        name = cmd.get("cmd")
        if name == "stop":
            break
        handler = {
            "call": peer.call,
            "send": peer.send_json,
            "join": peer.join,
            "groupchat": peer.groupchat,
        }.get(name)
        if handler is None:
            emit({"event": "bad_command", "detail": "unknown command %r" % (name,)})
            continue
        missing = [k for k in REQUIRED[name] if k not in cmd]
        if missing:
            emit({"event": "bad_command", "detail": "missing %s" % ", ".join(missing)})
            continue
        task = asyncio.ensure_future(handler(cmd))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for task in list(tasks):
        task.cancel()


REQUIRED = {
    "call": ["to", "method"],
    "send": ["to", "json"],
    "join": ["room", "nick"],
    "groupchat": ["room", "body"],
}


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls", choices=["plain", "starttls", "direct"], default="starttls")
    parser.add_argument("--ca-file")
    opts = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("SLIXMPP_PEER_DEBUG") else logging.WARNING,
        stream=sys.stderr,
    )
    peer = Peer(opts)
    peer.connect(opts.host, opts.port)
    try:
        await asyncio.wait_for(peer.online, 15)
    except asyncio.TimeoutError:
        logging.error("not online within 15 s")
        return 1
    await read_commands(peer)
    peer.disconnect()
    emit({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
