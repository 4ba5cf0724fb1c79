import base64
import email
import email.policy
import secrets
import smtplib
import time

import pytest
from django.core.mail import EmailMessage

from calmail.common.fields import UndecryptableSecret
from smtpconfig.models import Security, SmtpConfiguration
from smtpconfig.transport import (
    MASK,
    Direction,
    SendmailError,
    describe_exception,
    open_session,
    redact,
    send_test_mail,
    test_connection,
)
from tests.smtp_server import (
    SilentServer,
    SmtpTestServer,
    sendmail_configuration,
    smtp_configuration,
    unused_port,
)

SENDER = "calmail@example.com"
RECIPIENT = "admin@example.org"


def transcript_text(report) -> str:
    return "\n".join(f"{line.direction}: {line.text}" for line in report.transcript)


# test_connection ---------------------------------------------------------------------------


def test_connection_plain_server_ok(smtp_server):
    report = test_connection(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True
    assert report.verdict == "Connection OK: the server accepted the test sender and recipient."
    assert report.reply_code == 250
    assert smtp_server.senders_seen == [SENDER]
    assert smtp_server.recipients_seen == [RECIPIENT]
    # A probe only: nothing was sent.
    assert smtp_server.messages == []
    commands = [
        line.text.split(" ")[0].lower()
        for line in report.transcript
        if line.direction == Direction.CLIENT
    ]
    assert commands == ["ehlo", "mail", "rcpt", "rset", "quit"]
    assert report.transcript[0].direction == Direction.INFO
    assert report.transcript[1].direction == Direction.SERVER
    assert report.transcript[1].text.startswith("220 mail.calmail.test ")
    assert 0 < report.duration < 5


def test_connection_starttls_with_trusted_ca_ok(smtp_server_starttls, trust_test_ca):
    report = test_connection(
        smtp_configuration(smtp_server_starttls), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is True, report.verdict
    text = transcript_text(report)
    assert "client: STARTTLS" in text
    assert "info: TLS established: TLSv1" in text
    assert smtp_server_starttls.recipients_seen == [RECIPIENT]


def test_connection_starttls_untrusted_certificate_refused(smtp_server_starttls, settings):
    settings.CALMAIL_SMTP_CA_FILE = None

    report = test_connection(
        smtp_configuration(smtp_server_starttls), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is False
    assert report.verdict.startswith("Certificate not trusted: ")
    assert "certificate" in report.verdict.removeprefix("Certificate not trusted: ")
    assert smtp_server_starttls.senders_seen == []


def test_connection_untrusted_certificate_without_verification_ok(smtp_server_starttls, settings):
    settings.CALMAIL_SMTP_CA_FILE = None
    configuration = smtp_configuration(smtp_server_starttls, verify_certificate=False)

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True, report.verdict
    assert smtp_server_starttls.recipients_seen == [RECIPIENT]


def test_connection_implicit_tls_ok(smtp_server_tls, trust_test_ca):
    report = test_connection(
        smtp_configuration(smtp_server_tls), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is True, report.verdict
    assert report.transcript[1].direction == Direction.INFO
    assert report.transcript[1].text.startswith("TLS established: ")
    assert smtp_server_tls.recipients_seen == [RECIPIENT]


def test_connection_implicit_tls_untrusted_certificate_refused(smtp_server_tls, settings):
    settings.CALMAIL_SMTP_CA_FILE = None

    report = test_connection(
        smtp_configuration(smtp_server_tls), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is False
    assert report.verdict.startswith("Certificate not trusted: ")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_connection_auth_succeeds(mechanism, smtp_server_factory, smtp_credentials, trust_test_ca):
    server = smtp_server_factory(
        tls="starttls",
        credentials=smtp_credentials,
        auth_mechanisms=(mechanism,),
        auth_required=True,
    )
    configuration = smtp_configuration(
        server,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True, report.verdict
    assert report.verdict == "Connection OK: the server accepted the login and the test recipient."
    assert [(a.mechanism, a.username, a.success) for a in server.auth_attempts] == [
        (mechanism, "mailer", True)
    ]
    assert f"client: AUTH {mechanism} {MASK}" in transcript_text(report)
    assert smtp_credentials.password not in transcript_text(report)


def secret_forms(username: str, password: str) -> list[str]:
    return [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{username}\0{password}".encode()).decode(),
    ]


def test_connection_wrong_password_reports_535_and_hides_password(
    smtp_server_auth, smtp_credentials, trust_test_ca
):
    wrong_password = smtp_credentials.password + "-wrong"
    configuration = smtp_configuration(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=wrong_password,
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Authentication failed: 535 5.7.8 Authentication credentials invalid"
    assert report.reply_code == 535
    assert {attempt.success for attempt in smtp_server_auth.auth_attempts} == {False}
    everything = transcript_text(report) + report.verdict + report.reply_text
    for secret in secret_forms(smtp_credentials.username, wrong_password):
        assert secret not in everything
    # Both mechanisms were tried; each client line of the exchange is masked.
    assert f"client: AUTH PLAIN {MASK}" in everything
    assert f"client: AUTH LOGIN {MASK}" in everything
    assert f"client: {MASK}" in everything
    assert smtp_server_auth.senders_seen == []


# A server that quotes the credentials it refuses (issue 12, item 9).
ECHO = "535 5.7.8 Authentication failed for {username} {password}"


@pytest.mark.parametrize("check", [test_connection, send_test_mail])
def test_password_echoed_by_the_server_is_masked_in_the_report(
    check, smtp_server_auth, trust_test_ca
):
    smtp_server_auth.auth_failure_reply = ECHO
    password = "Falsch-" + secrets.token_urlsafe(12)
    configuration = smtp_configuration(
        smtp_server_auth, smtp_auth=True, username="mailer", password=password
    )

    report = check(configuration, sender=SENDER, recipient=RECIPIENT)

    assert (
        report.verdict
        == f"Authentication failed: 535 5.7.8 Authentication failed for mailer {MASK}"
    )
    assert (report.reply_code, report.reply_text) == (
        535,
        f"5.7.8 Authentication failed for mailer {MASK}",
    )
    refusals = [line.text for line in report.transcript if line.text.startswith("535")]
    # PLAIN, then LOGIN: both refusals quoted the password.
    assert refusals == [f"535 5.7.8 Authentication failed for mailer {MASK}"] * 2
    everything = transcript_text(report) + report.verdict + report.reply_text
    for secret in secret_forms("mailer", password):
        assert secret not in everything


def test_password_echoed_in_any_case_or_base64_form_is_masked(smtp_server_auth, trust_test_ca):
    password = "Falsch-" + secrets.token_urlsafe(12)
    smtp_server_auth.auth_failure_reply = (
        f"535 5.7.8 Rejected {{password_b64}} {{plain_b64}} {password.upper()} {password.lower()}"
    )
    configuration = smtp_configuration(
        smtp_server_auth, smtp_auth=True, username="mailer", password=password
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.verdict == (
        f"Authentication failed: 535 5.7.8 Rejected {MASK} {MASK} {MASK} {MASK}"
    )
    assert report.reply_text == f"5.7.8 Rejected {MASK} {MASK} {MASK} {MASK}"


def test_password_echoed_in_the_reply_to_a_test_mail_is_masked(
    smtp_server_auth, smtp_credentials, trust_test_ca
):
    smtp_server_auth.data_reply = (250, f"2.0.0 Ok: queued for mailer {smtp_credentials.password}")
    configuration = smtp_configuration(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True, report.verdict
    assert (
        report.verdict
        == f"Test mail accepted by the server: 250 2.0.0 Ok: queued for mailer {MASK}"
    )
    assert report.reply_text == f"2.0.0 Ok: queued for mailer {MASK}"
    assert f"server: 250 2.0.0 Ok: queued for mailer {MASK}" in transcript_text(report)
    assert smtp_credentials.password not in transcript_text(report)


REDACT_PASSWORD = "Ge+heim?42"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"535 failed for mailer {REDACT_PASSWORD}", f"535 failed for mailer {MASK}"),
        (f"535 failed: {REDACT_PASSWORD.upper()}.", f"535 failed: {MASK}."),
        # AUTH LOGIN's base64 of the password, with and without its padding.
        ("535 got R2UraGVpbT80Mg==", f"535 got {MASK}"),
        ("535 got R2UraGVpbT80Mg", f"535 got {MASK}"),
        # AUTH PLAIN's "\0mailer\0password".
        ("535 got AG1haWxlcgBHZStoZWltPzQy", f"535 got {MASK}"),
        (
            "535 5.7.8 Authentication credentials invalid",
            "535 5.7.8 Authentication credentials invalid",
        ),
        ("", ""),
    ],
)
def test_redact_masks_the_password_and_its_base64_forms(text, expected):
    configuration = SmtpConfiguration(username="mailer", password=REDACT_PASSWORD)

    assert redact(text, configuration) == expected


def test_redact_without_a_readable_password_changes_nothing():
    text = "535 failed for mailer Ge+heim?42"

    assert redact(text, SmtpConfiguration(username="mailer", password="")) == text
    unreadable = SmtpConfiguration(username="mailer", password=UndecryptableSecret("x"))
    assert redact(text, unreadable) == text


def test_describe_exception_masks_a_quoted_password():
    # What the delivery engine stores as a mail's error after a refused login.
    configuration = SmtpConfiguration(username="mailer", password=REDACT_PASSWORD)
    exc = smtplib.SMTPAuthenticationError(
        535, f"5.7.8 failed for mailer {REDACT_PASSWORD}".encode()
    )

    assert describe_exception(exc, configuration) == (
        f"Authentication failed: 535 5.7.8 failed for mailer {MASK}"
    )


def test_describe_exception_masks_a_password_whose_spaces_the_verdict_collapsed():
    configuration = SmtpConfiguration(username="mailer", password="zwei  Leer\tzeichen")
    exc = smtplib.SMTPAuthenticationError(535, b"5.7.8 failed for zwei  Leer\tzeichen")

    assert (
        describe_exception(exc, configuration)
        == f"Authentication failed: 535 5.7.8 failed for {MASK}"
    )


def test_connection_auth_not_offered(smtp_server):
    configuration = smtp_configuration(
        smtp_server, smtp_auth=True, username="mailer", password="secret"
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict.startswith("The server does not offer SMTP AUTH")


def test_connection_no_common_auth_mechanism(smtp_server_factory, smtp_credentials):
    server = smtp_server_factory(credentials=smtp_credentials, auth_mechanisms=())
    configuration = smtp_configuration(
        server, smtp_auth=True, username="mailer", password=smtp_credentials.password
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "The server offers no login method calmail supports (offered: -)"
    assert server.auth_attempts == []


def test_connection_undecryptable_password_gives_clear_verdict(smtp_server):
    configuration = smtp_configuration(smtp_server, smtp_auth=True, username="mailer")
    configuration.password = UndecryptableSecret("x")

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict.startswith("The stored password cannot be decrypted")
    # Refused before connecting.
    assert report.transcript == []
    assert smtp_server.senders_seen == []


def test_connection_greeting_421_refused(smtp_server):
    smtp_server.fail_greeting = (421, "4.3.2 Service not available, closing channel")

    report = test_connection(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == (
        "The server refused the connection: 421 4.3.2 Service not available, closing channel"
    )
    assert report.reply_code == 421


def test_connection_sender_refused(smtp_server):
    smtp_server.fail_mail = (553, "5.7.1 Sender address rejected")

    report = test_connection(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Sender refused: 553 5.7.1 Sender address rejected"


def test_connection_recipient_554_refused(smtp_server):
    smtp_server.fail_rcpt = (554, "5.7.1 Relay access denied")

    report = test_connection(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Recipient refused: 554 5.7.1 Relay access denied"
    assert (report.reply_code, report.reply_text) == (554, "5.7.1 Relay access denied")
    # The server was still talking, so the session ended politely.
    assert report.transcript[-2].text == "quit"


def test_connection_recipient_temporarily_refused(smtp_server):
    smtp_server.fail_rcpt = (451, "4.7.1 Greylisted, try again later")

    report = test_connection(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Recipient refused: 451 4.7.1 Greylisted, try again later"


def test_connection_silent_server_times_out(silent_smtp_server: SilentServer):
    configuration = smtp_configuration(silent_smtp_server, timeout=1)

    started = time.monotonic()
    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)
    elapsed = time.monotonic() - started

    assert report.ok is False
    assert report.verdict == "Timed out after 1 s"
    # A sanity bound that proves the timeout is honoured, not a performance assertion.
    assert elapsed < 4


def test_connection_silent_server_with_implicit_tls_times_out(silent_smtp_server, trust_test_ca):
    configuration = smtp_configuration(silent_smtp_server, timeout=1, security=Security.SSL)

    started = time.monotonic()
    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.verdict == "Timed out after 1 s"
    assert time.monotonic() - started < 4


def test_connection_closed_port_refused():
    port = unused_port()
    configuration = SmtpConfiguration(
        name="Nobody home", host="127.0.0.1", port=port, security=Security.NONE, timeout=5
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == f"Connection refused by 127.0.0.1:{port}"


def test_connection_unknown_host():
    configuration = SmtpConfiguration(
        name="Typo", host="mail.nonexistent.invalid", port=25, security=Security.NONE, timeout=5
    )

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Host name could not be resolved: mail.nonexistent.invalid"


def test_connection_starttls_not_offered(smtp_server):
    configuration = smtp_configuration(smtp_server, security=Security.STARTTLS)

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "The server does not offer STARTTLS"
    assert smtp_server.senders_seen == []


def test_connection_unreadable_ca_file_named_in_verdict(smtp_server_starttls, settings, tmp_path):
    missing = tmp_path / "missing-ca.pem"
    settings.CALMAIL_SMTP_CA_FILE = str(missing)

    report = test_connection(
        smtp_configuration(smtp_server_starttls), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is False
    assert report.verdict.startswith(
        f"The CA file {missing} (CALMAIL_SMTP_CA_FILE) cannot be loaded"
    )


def test_connection_sendmail_checks_binary_only(fake_sendmail):
    report = test_connection(
        sendmail_configuration(fake_sendmail), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is True
    assert report.verdict == (
        f"The sendmail binary {fake_sendmail} exists and is executable. This test does not run "
        "it; send a test mail to check delivery."
    )
    assert not (fake_sendmail.parent / "argv").exists()


def test_connection_sendmail_missing_binary(tmp_path):
    path = tmp_path / "no-such-sendmail"

    report = test_connection(sendmail_configuration(path), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == f"The sendmail binary {path} does not exist"


def test_connection_sendmail_not_executable(fake_sendmail):
    fake_sendmail.chmod(0o644)

    report = test_connection(
        sendmail_configuration(fake_sendmail), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is False
    assert report.verdict == f"The sendmail binary {fake_sendmail} is not executable"


# send_test_mail ---------------------------------------------------------------------------


def test_send_test_mail_delivered_to_server(smtp_server):
    configuration = smtp_configuration(smtp_server, name="Office relay")

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True, report.verdict
    assert report.reply_code == 250
    assert report.verdict == f"Test mail accepted by the server: 250 {report.reply_text}"
    assert report.reply_text.startswith("2.0.0 Ok: queued as ")
    [received] = smtp_server.messages
    assert received.sender == SENDER
    assert received.recipients == [RECIPIENT]
    assert received.subject == "calmail test mail"
    assert "“Office relay”" in received.text
    assert f"{smtp_server.host}:{smtp_server.port}" in received.text
    assert received.message["From"] == SENDER
    assert received.message["To"] == RECIPIENT
    text = transcript_text(report)
    assert "client: data" in text
    assert "client: [message content, " in text


def test_send_test_mail_in_german(smtp_server):
    configuration = smtp_configuration(smtp_server)

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT, language="de")

    assert report.ok is True, report.verdict
    assert smtp_server.messages[0].recipients == [RECIPIENT]


def test_send_test_mail_with_auth_over_starttls(smtp_server_auth, smtp_credentials, trust_test_ca):
    configuration = smtp_configuration(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True, report.verdict
    assert [m.recipients for m in smtp_server_auth.messages] == [[RECIPIENT]]
    assert [a.success for a in smtp_server_auth.auth_attempts] == [True]
    for secret in secret_forms(smtp_credentials.username, smtp_credentials.password):
        assert secret not in transcript_text(report)


def test_send_test_mail_data_refused(smtp_server):
    smtp_server.fail_data = (554, "5.6.0 Message rejected as spam")

    report = send_test_mail(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Message refused: 554 5.6.0 Message rejected as spam"
    assert report.reply_code == 554
    assert smtp_server.messages == []


def test_send_test_mail_recipient_refused(smtp_server):
    smtp_server.reject_recipients[RECIPIENT] = (550, "5.1.1 User unknown")

    report = send_test_mail(smtp_configuration(smtp_server), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Recipient refused: 550 5.1.1 User unknown"


def test_send_test_mail_wrong_password(smtp_server_auth, smtp_credentials, trust_test_ca):
    wrong_password = "not-" + smtp_credentials.password
    configuration = smtp_configuration(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=wrong_password,
    )

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == "Authentication failed: 535 5.7.8 Authentication credentials invalid"
    for secret in secret_forms(smtp_credentials.username, wrong_password):
        assert secret not in transcript_text(report) + report.verdict


def test_send_test_mail_silent_server_times_out(silent_smtp_server):
    configuration = smtp_configuration(silent_smtp_server, timeout=1)

    started = time.monotonic()
    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.verdict == "Timed out after 1 s"
    assert time.monotonic() - started < 4


def test_send_test_mail_undecryptable_password(smtp_server):
    configuration = smtp_configuration(smtp_server, smtp_auth=True, username="mailer")
    configuration.password = UndecryptableSecret("x")

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict.startswith("The stored password cannot be decrypted")
    assert smtp_server.messages == []


def test_send_test_mail_through_sendmail(fake_sendmail):
    configuration = sendmail_configuration(fake_sendmail)

    report = send_test_mail(
        configuration, sender="Calmail <calmail@example.com>", recipient=RECIPIENT
    )

    assert report.ok is True, report.verdict
    assert report.verdict == f"Test mail handed to {fake_sendmail}: exit status 0"
    argv = (fake_sendmail.parent / "argv").read_text().splitlines()
    assert argv == ["-i", "-f", "calmail@example.com", "--", RECIPIENT]
    stdin = (fake_sendmail.parent / "stdin").read_bytes()
    assert b"Subject: calmail test mail\n" in stdin
    assert f"To: {RECIPIENT}".encode() in stdin


def test_send_test_mail_sendmail_failure_reports_stderr(fake_sendmail, monkeypatch):
    monkeypatch.setenv("FAKE_SENDMAIL_EXIT", "1")

    report = send_test_mail(
        sendmail_configuration(fake_sendmail), sender=SENDER, recipient=RECIPIENT
    )

    assert report.ok is False
    assert report.verdict == (
        "sendmail failed with exit status 1: sendmail: fatal: simulated failure for testing"
    )
    assert "calmail test mail" not in transcript_text(report)


def test_send_test_mail_sendmail_missing_binary(tmp_path):
    path = tmp_path / "no-such-sendmail"

    report = send_test_mail(sendmail_configuration(path), sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict == f"The sendmail binary {path} does not exist"


# open_session --------------------------------------------------------------------------


def wire_bytes(message: EmailMessage) -> bytes:
    return message.message().as_bytes(linesep="\r\n")


@pytest.mark.parametrize("tls", ["none", "starttls", "ssl"])
def test_session_sends_message_over_each_tls_mode(
    tls, smtp_server_factory, smtp_credentials, trust_test_ca
):
    server = smtp_server_factory(tls=tls, credentials=smtp_credentials)
    configuration = smtp_configuration(
        server,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )
    message = EmailMessage(
        subject="Calibration due",
        body="Instrument 4711 is due for calibration.",
        from_email="Calmail <calmail@example.com>",
        to=["lab@example.org"],
        cc=["quality@example.org"],
    )

    with open_session(configuration) as session:
        sent = session.send_raw(
            "calmail@example.com", ["lab@example.org", "quality@example.org"], wire_bytes(message)
        )

    assert (sent.reply_code, sent.refused) == (250, "")
    [received] = server.messages
    assert received.sender == "calmail@example.com"
    assert received.recipients == ["lab@example.org", "quality@example.org"]
    assert received.subject == "Calibration due"
    assert received.text.strip() == "Instrument 4711 is due for calibration."
    assert [a.success for a in server.auth_attempts] == [True]


def test_session_without_auth_sends_no_credentials(smtp_server_factory, smtp_credentials):
    server = smtp_server_factory(credentials=smtp_credentials)
    configuration = smtp_configuration(
        server, smtp_auth=False, username="mailer", password="stored but unused"
    )

    with open_session(configuration) as session:
        session.send_raw(SENDER, [RECIPIENT], wire_bytes(EmailMessage("Hi", "Body")))

    assert [m.recipients for m in server.messages] == [[RECIPIENT]]
    assert server.auth_attempts == []


def test_session_returns_the_reply_to_each_message(smtp_server):
    with open_session(smtp_configuration(smtp_server)) as session:
        sent = session.send_raw(SENDER, [RECIPIENT], wire_bytes(EmailMessage("Hi", "Body")))

    assert sent.reply_code == 250
    assert sent.reply_text.startswith("2.0.0 Ok: queued as ")
    assert sent.exit_status is None


def test_session_names_refused_recipients_and_sends_to_the_others(smtp_server):
    smtp_server.reject_recipients["gone@example.org"] = (550, "5.1.1 User unknown")

    with open_session(smtp_configuration(smtp_server)) as session:
        sent = session.send_raw(
            SENDER, [RECIPIENT, "gone@example.org"], wire_bytes(EmailMessage("Hi", "Body"))
        )

    assert sent.refused == "gone@example.org: 550 5.1.1 User unknown"
    assert [m.recipients for m in smtp_server.messages] == [[RECIPIENT]]


def test_session_verifies_certificates(smtp_server_starttls, settings):
    settings.CALMAIL_SMTP_CA_FILE = None

    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        open_session(smtp_configuration(smtp_server_starttls))

    assert smtp_server_starttls.messages == []


def test_session_hang_up_drops_the_connection_without_quit(smtp_server):
    session = open_session(smtp_configuration(smtp_server))
    session.send_raw(SENDER, [RECIPIENT], wire_bytes(EmailMessage("Hi", "Body")))

    session.hang_up()

    assert session.broken is True
    # Safe to call on a dropped connection, and still no QUIT.
    session.close()
    assert [m.recipients for m in smtp_server.messages] == [[RECIPIENT]]
    assert b"QUIT" not in b"".join(smtp_server.reads).upper()


def test_session_is_worn_out_after_max_messages_per_connection(smtp_server):
    configuration = smtp_configuration(smtp_server, max_messages_per_connection=2)

    with open_session(configuration) as session:
        for _ in range(2):
            assert session.worn_out is False
            session.send_raw(SENDER, [RECIPIENT], wire_bytes(EmailMessage("Hi", "Body")))

        assert session.worn_out is True


def test_session_sendmail_pipes_message(fake_sendmail):
    message = EmailMessage(
        "Report", "See attachment.", SENDER, ["a@example.org"], bcc=["-oQ/tmp@example.org"]
    )

    with open_session(sendmail_configuration(fake_sendmail)) as session:
        sent = session.send_raw(
            SENDER, ["a@example.org", "-oQ/tmp@example.org"], wire_bytes(message)
        )

    assert (sent.exit_status, sent.reply_code, session.network) == (0, None, False)
    argv = (fake_sendmail.parent / "argv").read_text().splitlines()
    # Recipients come after "--", so even an address that looks like an option stays one.
    assert argv == ["-i", "-f", SENDER, "--", "a@example.org", "-oQ/tmp@example.org"]
    stdin = (fake_sendmail.parent / "stdin").read_bytes()
    # A local sendmail gets LF line ends.
    assert b"\r\n" not in stdin
    piped = email.message_from_bytes(stdin, policy=email.policy.default)
    assert piped["Subject"] == "Report"
    assert piped["To"] == "a@example.org"
    assert piped["Bcc"] is None
    assert piped.get_content().strip() == "See attachment."


def test_session_sendmail_failure_raises(fake_sendmail, monkeypatch):
    monkeypatch.setenv("FAKE_SENDMAIL_EXIT", "75")
    session = open_session(sendmail_configuration(fake_sendmail))

    with pytest.raises(SendmailError) as raised:
        session.send_raw(SENDER, [RECIPIENT], wire_bytes(EmailMessage("Hi", "Body")))

    assert raised.value.returncode == 75
    assert raised.value.temporary is True
    assert raised.value.stderr_line == "sendmail: fatal: simulated failure for testing"


def test_smtp_test_server_records_nothing_secret(smtp_server_auth, smtp_credentials):
    # The helper itself must not leak the password into what tests print.
    assert smtp_credentials.password not in repr(smtp_server_auth)
    assert smtp_credentials.password not in repr(smtp_credentials)
    assert isinstance(smtp_server_auth, SmtpTestServer)
