"""SMTP command pipelining (smtpconfig.transport.pipelining.send_mail) against real SMTP servers.

Most tests use the in-process aiosmtpd server with PIPELINING advertised; a small scripted
server covers replies aiosmtpd never gives, and Postfix's smtp-sink checks the real thing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smtpconfig.transport.pipelining import MAX_PIPELINED_RECIPIENTS, _quoted, send_mail
from smtpconfig.transport.smtp import TranscriptSMTP
from smtpconfig.transport.transcript import Direction, TranscriptLine
from tests.smtp_server import LOCALHOST, SmtpTestServer, unused_port

SENDER = "calmail@example.com"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"

# A line starting with "." must survive the dot-stuffing round trip unchanged.
CONTENT = (
    b"From: calmail@example.com\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: Pipelined\r\n"
    b"\r\n"
    b"First line\r\n"
    b".a line starting with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"Last line\r\n"
)

ClientFactory = Callable[[SmtpTestServer], smtplib.SMTP]


def plain_client(server) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=5)


def transcript_client(server) -> TranscriptSMTP:
    return TranscriptSMTP(server.host, server.port, timeout=5, transcript=[])


@pytest.fixture(params=[plain_client, transcript_client], ids=["smtplib", "TranscriptSMTP"])
def connect(request) -> Iterator[ClientFactory]:
    """Open clients of one class (both classes in turn); all are closed at teardown."""
    clients: list[smtplib.SMTP] = []

    def open_client(server) -> smtplib.SMTP:
        client = request.param(server)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def server(smtp_server_factory) -> SmtpTestServer:
    return smtp_server_factory(pipelining=True)


def count_sends(client: smtplib.SMTP) -> list[bytes]:
    """Record every write of this client (observing only: each write still goes out)."""
    writes: list[bytes] = []
    send = client.send

    def recording_send(data) -> None:
        writes.append(data.encode("ascii") if isinstance(data, str) else data)
        send(data)

    client.send = recording_send
    return writes


def outcome(call: Callable[[], tuple[dict, tuple[int, str]]]) -> object:
    """What send_mail() gave, comparable between two runs: the refused recipients and the
    reply code (the text names a random queue id), or the exception as (type, args)."""
    try:
        refused, (code, _text) = call()
    except smtplib.SMTPException as error:
        return type(error), error.args
    return refused, code


# Delivery ---------------------------------------------------------------------------------


def test_server_advertises_pipelining_only_when_asked(smtp_server_factory):
    with contextlib.closing(plain_client(smtp_server_factory(pipelining=True))) as client:
        client.ehlo()
        assert client.has_extn("pipelining")
    with contextlib.closing(plain_client(smtp_server_factory())) as client:
        client.ehlo()
        assert not client.has_extn("pipelining")


def test_mail_arrives_unchanged(server, connect):
    client = connect(server)

    refused, reply = send_mail(client, SENDER, [ALICE, BOB], CONTENT)

    assert refused == {}
    assert reply[0] == 250
    assert reply[1].startswith("2.0.0 Ok: queued as ")
    [message] = server.messages
    assert message.sender == SENDER
    assert message.recipients == [ALICE, BOB]
    assert message.raw == CONTENT
    assert message.subject == "Pipelined"


def test_content_without_final_line_break_gets_one(server, connect):
    client = connect(server)

    send_mail(client, SENDER, [ALICE], b"Subject: short\r\n\r\nno line break")

    assert server.messages[0].raw == b"Subject: short\r\n\r\nno line break\r\n"


def test_envelope_goes_out_in_one_write_and_content_in_a_second(server, connect):
    client = connect(server)
    client.ehlo()
    writes = count_sends(client)
    server.reads.clear()

    send_mail(client, SENDER, [ALICE, BOB, CAROL], CONTENT)

    envelope = (
        f"mail FROM:<{SENDER}> size={len(CONTENT)}\r\n"
        f"rcpt TO:<{ALICE}>\r\nrcpt TO:<{BOB}>\r\nrcpt TO:<{CAROL}>\r\n"
        "data\r\n"
    ).encode()
    content = CONTENT.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    assert writes == [envelope, content]
    # The server saw the same two pieces: the commands really travelled together.
    assert server.reads == [envelope, content]
    assert server.recipients_seen == [ALICE, BOB, CAROL]


def test_without_pipelining_every_command_is_a_write_of_its_own(smtp_server_factory, connect):
    server = smtp_server_factory()
    client = connect(server)
    client.ehlo()
    writes = count_sends(client)

    refused, reply = send_mail(client, SENDER, [ALICE, BOB], CONTENT)

    assert (refused, reply[0]) == ({}, 250)
    assert [write.split(b" ", 1)[0] for write in writes[:4]] == [
        b"mail",
        b"rcpt",
        b"rcpt",
        b"data\r\n",
    ]
    assert len(writes) == 5
    assert not any(b"mail FROM" in read and b"rcpt TO" in read for read in server.reads)
    assert server.messages[0].raw == CONTENT


def test_many_recipients_go_command_by_command(server, connect):
    # More commands than the socket buffers safely hold are not pipelined (RFC 2920 4).
    recipients = [f"r{number}@example.org" for number in range(MAX_PIPELINED_RECIPIENTS + 1)]
    client = connect(server)
    client.ehlo()
    writes = count_sends(client)

    refused, reply = send_mail(client, SENDER, recipients, CONTENT)

    assert (refused, reply[0]) == ({}, 250)
    assert len(writes) == len(recipients) + 3  # MAIL, each RCPT, DATA, content
    assert server.messages[0].recipients == recipients


def test_the_most_recipients_still_pipelined(server, connect):
    recipients = [f"r{number}@example.org" for number in range(MAX_PIPELINED_RECIPIENTS)]
    client = connect(server)
    client.ehlo()
    writes = count_sends(client)

    send_mail(client, SENDER, recipients, CONTENT)

    assert len(writes) == 2
    assert server.messages[0].recipients == recipients


def test_several_mails_on_one_connection(server, connect):
    client = connect(server)

    for number in range(3):
        content = b"Subject: mail %d\r\n\r\nbody\r\n" % number
        assert send_mail(client, SENDER, [ALICE, f"r{number}@example.com"], content)[0] == {}

    assert [message.subject for message in server.messages] == ["mail 0", "mail 1", "mail 2"]
    assert [message.recipients for message in server.messages] == [
        [ALICE, "r0@example.com"],
        [ALICE, "r1@example.com"],
        [ALICE, "r2@example.com"],
    ]
    assert server.connections_made == 1


def test_recipients_as_a_bare_string_are_one_address(server, connect):
    client = connect(server)

    send_mail(client, SENDER, ALICE, CONTENT)

    assert server.messages[0].recipients == [ALICE]


# Refusals ---------------------------------------------------------------------------------


def test_partly_refused_recipients_are_returned_and_the_others_get_the_mail(server, connect):
    server.reject_recipients[BOB] = (550, "5.1.1 User unknown")
    server.reject_recipients[CAROL] = (450, "4.2.1 Mailbox busy")
    client = connect(server)

    refused, reply = send_mail(client, SENDER, [ALICE, BOB, CAROL], CONTENT)

    assert refused == {BOB: (550, b"5.1.1 User unknown"), CAROL: (450, b"4.2.1 Mailbox busy")}
    assert reply[0] == 250
    assert server.messages[0].recipients == [ALICE]


def test_all_recipients_refused_and_the_connection_stays_usable(server, connect):
    server.fail_rcpt = (550, "5.1.1 User unknown")
    client = connect(server)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_mail(client, SENDER, [ALICE, BOB], CONTENT)

    assert refused.value.recipients == {
        ALICE: (550, b"5.1.1 User unknown"),
        BOB: (550, b"5.1.1 User unknown"),
    }
    assert server.messages == []
    server.fail_rcpt = None
    assert send_mail(client, SENDER, [CAROL], CONTENT)[0] == {}
    assert server.messages[0].recipients == [CAROL]


def test_refused_sender_and_the_connection_stays_usable(server, connect):
    server.fail_mail = (553, "5.7.1 Sender not allowed")
    client = connect(server)

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send_mail(client, SENDER, [ALICE], CONTENT)

    assert refused.value.args == (553, b"5.7.1 Sender not allowed", SENDER)
    assert refused.value.sender == SENDER
    server.fail_mail = None
    assert send_mail(client, SENDER, [ALICE], CONTENT)[1][0] == 250
    assert len(server.messages) == 1


@pytest.mark.parametrize("reply", [(554, "5.6.0 Content refused"), (451, "4.3.0 Try again")])
def test_refused_content_and_the_connection_stays_usable(server, connect, reply):
    server.fail_data = reply
    client = connect(server)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_mail(client, SENDER, [ALICE], CONTENT)

    assert refused.value.args == (reply[0], reply[1].encode())
    server.fail_data = None
    assert send_mail(client, SENDER, [ALICE], CONTENT)[1][0] == 250


def test_421_to_mail_closes_the_connection(server, connect):
    server.fail_mail = (421, "4.3.2 Shutting down")
    client = connect(server)

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send_mail(client, SENDER, [ALICE], CONTENT)

    assert refused.value.smtp_code == 421
    assert client.sock is None
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()


def test_421_to_a_recipient_closes_the_connection(server, connect):
    server.reject_recipients[BOB] = (421, "4.3.2 Shutting down")
    client = connect(server)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_mail(client, SENDER, [ALICE, BOB, CAROL], CONTENT)

    # Like sendmail(): the refusals up to the 421, nothing read after it.
    assert refused.value.recipients == {BOB: (421, b"4.3.2 Shutting down")}
    assert client.sock is None
    assert server.messages == []


def test_421_to_the_content_closes_the_connection(server, connect):
    server.fail_data = (421, "4.3.2 Shutting down")
    client = connect(server)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_mail(client, SENDER, [ALICE], CONTENT)

    assert refused.value.smtp_code == 421
    assert client.sock is None


def test_server_hanging_up(server, connect):
    server.drop_after_messages = 1
    client = connect(server)
    send_mail(client, SENDER, [ALICE], CONTENT)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        send_mail(client, SENDER, [ALICE], CONTENT)

    assert client.sock is None
    assert len(server.messages) == 1


SCENARIOS: dict[str, Callable[[SmtpTestServer], None]] = {
    "delivered": lambda server: None,
    "partly refused": lambda server: server.reject_recipients.update({BOB: (550, "5.1.1 No")}),
    "all refused": lambda server: setattr(server, "fail_rcpt", (550, "5.1.1 No")),
    "sender refused": lambda server: setattr(server, "fail_mail", (553, "5.7.1 No")),
    "content refused": lambda server: setattr(server, "fail_data", (554, "5.6.0 No")),
    "content deferred": lambda server: setattr(server, "fail_data", (451, "4.3.0 Later")),
    "421 to mail": lambda server: setattr(server, "fail_mail", (421, "4.3.2 Bye")),
    "421 to rcpt": lambda server: server.reject_recipients.update({ALICE: (421, "4.3.2 Bye")}),
    "421 to content": lambda server: setattr(server, "fail_data", (421, "4.3.2 Bye")),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_outcome_with_and_without_pipelining(smtp_server_factory, connect, scenario):
    """The fallback is smtplib's sendmail(); pipelining must not change what callers see."""
    servers = {
        pipelining: smtp_server_factory(pipelining=pipelining) for pipelining in (True, False)
    }
    results = {}
    for pipelining, server in servers.items():
        SCENARIOS[scenario](server)
        results[pipelining] = two_mails(server, connect(server))

    assert results[True] == results[False]


def two_mails(server: SmtpTestServer, client: smtplib.SMTP) -> tuple:
    """Send a mail, then (with every failure mode off) another on the same connection if
    it is still open; what the caller saw and what the server received."""
    first = outcome(lambda: send_mail(client, SENDER, [ALICE, BOB], CONTENT))
    connected = client.sock is not None
    received = [(message.sender, message.recipients, message.raw) for message in server.messages]
    server.reset()
    second = outcome(lambda: send_mail(client, SENDER, [CAROL], CONTENT)) if connected else None
    received += [(message.sender, message.recipients, message.raw) for message in server.messages]
    return first, connected, second, received


# TranscriptSMTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "fallback"])
def test_transcript_client_records_the_transcript(smtp_server_factory, pipelining):
    server = smtp_server_factory(pipelining=pipelining)
    transcript: list[TranscriptLine] = []
    with contextlib.closing(
        TranscriptSMTP(server.host, server.port, timeout=5, transcript=transcript)
    ) as client:
        _refused, reply = send_mail(client, SENDER, [ALICE], CONTENT)

        assert reply[0] == 250
        server.fail_data = (554, "5.6.0 Content refused")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send_mail(client, SENDER, [ALICE], CONTENT)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            554,
            b"5.6.0 Content refused",
        )

    commands = [line.text for line in transcript if line.direction == Direction.CLIENT]
    assert f"mail FROM:<{SENDER}> size={len(CONTENT)}" in commands
    assert f"rcpt TO:<{ALICE}>" in commands
    assert "data" in commands


def test_addresses_are_quoted_like_smtplib(server, connect):
    client = connect(server)
    client.ehlo()
    writes = count_sends(client)

    send_mail(client, f"Calmail <{SENDER}>", [f'"Alice A." <{ALICE}>'], CONTENT)

    assert writes[0].startswith(f"mail FROM:<{SENDER}> ".encode())
    assert f"\r\nrcpt TO:<{ALICE}>\r\n".encode() in writes[0]
    assert server.messages[0].recipients == [ALICE]


def test_newline_in_an_address_is_refused_before_anything_is_sent(server, connect):
    client = connect(server)
    client.ehlo()
    writes = count_sends(client)

    with pytest.raises(ValueError, match="prohibited newline"):
        # quoteaddr() passes this one through unparsed; putcmd() must still catch it.
        send_mail(client, SENDER, [ALICE, "<>\r\nRSET"], CONTENT)

    assert writes == []
    assert send_mail(client, SENDER, [ALICE], CONTENT)[0] == {}


# Replies aiosmtpd never gives -------------------------------------------------------------


class ScriptedServer:
    """A one-connection SMTP server advertising PIPELINING whose replies a test dictates.

    ``replies`` maps a command verb ("MAIL", "RCPT", "DATA") or "CONTENT" (the reply
    after the message) to a reply line; anything else gets a 250. ``received`` lists
    every line the client sent, the content's lines included.
    """

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.received: list[bytes] = []
        self._listener = socket.create_server((LOCALHOST, 0))
        self.host = LOCALHOST
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 scripted\r\n")
            in_content = False
            for line in lines:
                self.received.append(line)
                verb = line[:4].decode().upper()
                if in_content:
                    if line == b".\r\n":
                        in_content = False
                        self._reply(connection, self.replies.get("CONTENT", "250 OK"))
                elif verb == "EHLO":
                    connection.sendall(b"250-scripted\r\n250 PIPELINING\r\n")
                elif verb == "QUIT":
                    connection.sendall(b"221 Bye\r\n")
                    return
                else:
                    reply = self.replies.get(verb, "354 Go ahead" if verb == "DATA" else "250 OK")
                    in_content = reply.startswith("354")
                    self._reply(connection, reply)

    @staticmethod
    def _reply(connection: socket.socket, reply: str) -> None:
        connection.sendall(reply.encode() + b"\r\n")

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def scripted_server() -> Iterator[Callable[[dict[str, str]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(replies: dict[str, str]) -> ScriptedServer:
        servers.append(ScriptedServer(replies))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_data_accepted_after_every_recipient_was_refused_gets_a_lone_dot(scripted_server):
    server = scripted_server({"RCPT": "550 5.1.1 No", "CONTENT": "554 5.5.1 No valid recipients"})
    with contextlib.closing(plain_client(server)) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send_mail(client, SENDER, [ALICE], CONTENT)
        client.quit()

    assert refused.value.recipients == {ALICE: (550, b"5.1.1 No")}
    after_data = server.received[server.received.index(b"data\r\n") + 1 :]
    assert after_data == [b".\r\n", b"rset\r\n", b"quit\r\n"]


def test_refused_data_command_resets_the_transaction(scripted_server):
    server = scripted_server({"DATA": "451 4.3.0 Not now"})
    with contextlib.closing(plain_client(server)) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send_mail(client, SENDER, [ALICE], CONTENT)
        client.quit()

    assert refused.value.args == (451, b"4.3.0 Not now")
    assert server.received[-2:] == [b"rset\r\n", b"quit\r\n"]


# Postfix's smtp-sink ----------------------------------------------------------------------

SMTP_SINK = "/usr/sbin/smtp-sink"


@contextlib.contextmanager
def running_smtp_sink(dump_file: Path) -> Iterator[int]:
    """smtp-sink on a free port, appending every mail it receives to dump_file."""
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    for _attempt in range(5):
        port = unused_port()
        process = subprocess.Popen(
            [SMTP_SINK, *user, "-D", str(dump_file), f"{LOCALHOST}:{port}", "100"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if _wait_for_port(port, process):
                yield port
                return
        finally:
            process.terminate()
            process.wait(timeout=5)
            assert process.stderr is not None
            process.stderr.close()
    pytest.fail("smtp-sink did not start (port taken five times?)")


def _wait_for_port(port: int, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, port), 0.5):
            return True
        time.sleep(0.05)
    return False


def _wait_for_text(path: Path, text: bytes) -> bytes:
    # smtp-sink writes the dump on its own schedule; give it a moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_bytes():
            break
        time.sleep(0.05)
    return path.read_bytes() if path.exists() else b""


@pytest.mark.skipif(not shutil.which(SMTP_SINK), reason="Postfix's smtp-sink is not installed")
def test_pipelining_with_postfix_smtp_sink():
    # A directory anyone can write to: smtp-sink drops root privileges for "nobody".
    with tempfile.TemporaryDirectory() as directory:
        Path(directory).chmod(0o777)
        dump_file = Path(directory) / "dump"
        with (
            running_smtp_sink(dump_file) as port,
            contextlib.closing(smtplib.SMTP(LOCALHOST, port, timeout=5)) as client,
        ):
            client.ehlo()
            assert client.has_extn("pipelining")
            writes = count_sends(client)

            for number in range(2):
                content = CONTENT.replace(b"Pipelined", b"Pipelined %d" % number)
                refused, reply = send_mail(client, SENDER, [ALICE, BOB], content)
                assert (refused, reply[0]) == ({}, 250)
            client.quit()

            dump = _wait_for_text(dump_file, b"Subject: Pipelined 1")

    assert [write[:4] for write in writes] == [b"mail", b"From", b"mail", b"From", b"quit"]
    # The dump stores lines with LF endings, and the content un-stuffed.
    assert dump.count(f"X-Rcpt-Args: <{BOB}>".encode()) == 2
    body = CONTENT.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    assert dump.count(body) == 2


@pytest.mark.parametrize(
    "address",
    [
        "a@b.c",
        "x.y+z@sub.example.com",
        "Name <a@b.c>",
        "<a@b.c>",
        '"q x"@b.c',
        "a@[192.0.2.1]",
        "ä@b.c",
        "a@b.c (comment)",
        "",
    ],
)
def test_envelope_addresses_are_quoted_as_smtplib_quotes_them(address):
    # The shortcut for plain addresses must never change what goes on the wire.
    assert _quoted(address) == smtplib.quoteaddr(address)
