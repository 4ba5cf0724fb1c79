import pytest
from django.core.exceptions import ValidationError

from compose.models import Draft, SendMode
from compose.services import (
    draft_add_attachment,
    draft_send,
    file_refusal,
    plan_mails,
)
from mailbox.models import OutboxMessage

LIMIT = 1_000_000


@pytest.mark.parametrize(
    "name", ["setup.exe", "run.BAT", "x.cmd", "a.com", "s.js", "v.vbs", "p.scr", "x.ps1",
             "i.msi", "lib.jar", "go.sh", "report.pdf.exe"],
)  # fmt: skip
def test_file_refusal_refuses_dangerous_extensions(name):
    assert "program or script" in file_refusal(
        filename=name, head=b"%PDF", size=10, max_bytes=LIMIT
    )


@pytest.mark.parametrize("head", [b"MZ\x90\x00", b"\x7fELF\x02", b"#!/bin/sh", b"\xcf\xfa\xed\xfe"])
def test_file_refusal_sniffs_programs_behind_harmless_names(head):
    refusal = file_refusal(filename="rechnung.pdf", head=head, size=10, max_bytes=LIMIT)
    assert "whatever its name says" in refusal


def test_file_refusal_refuses_too_large_file():
    refusal = file_refusal(filename="big.pdf", head=b"%PDF", size=2_500_000, max_bytes=LIMIT)
    assert refusal == "big.pdf is 2.5 MB; at most 1 MB are allowed per file."


def test_file_refusal_accepts_ordinary_file():
    assert file_refusal(filename="Zertifikat.pdf", head=b"%PDF-1.7", size=10, max_bytes=LIMIT) == ""


def test_plan_mails_one_per_to_recipient_expands_lists(customer, distribution_list):
    plan = plan_mails(
        to=[f"customer:{customer.pk}", f"list:{distribution_list.pk}"],
        cc=["chef@example.com"],
        bcc=[],
        mode=SendMode.PER_RECIPIENT,
    )
    assert [[r.email for r in mail.to] for mail in plan.mails] == [
        ["einkauf@muster.example"],
        ["anna@example.com"],
        ["extern@partner.example"],
    ]
    assert [r.via for r in plan.mails[1].to] == ["Labor-Team"]
    assert [[r.email for r in mail.cc] for mail in plan.mails] == [["chef@example.com"]] * 3


def test_plan_mails_one_for_all(customer, distribution_list):
    plan = plan_mails(
        to=[f"customer:{customer.pk}", f"list:{distribution_list.pk}"],
        cc=[],
        bcc=[],
        mode=SendMode.ALL,
    )
    assert len(plan.mails) == 1
    assert [r.email for r in plan.mails[0].to] == [
        "einkauf@muster.example",
        "anna@example.com",
        "extern@partner.example",
    ]


def test_plan_mails_empty_list_leaves_nobody(db):
    from tests.factories import DistributionListFactory

    empty = DistributionListFactory(name="Leer")
    with pytest.raises(ValidationError) as excinfo:
        plan_mails(to=[f"list:{empty.pk}"], cc=[], bcc=[], mode=SendMode.PER_RECIPIENT)
    assert list(excinfo.value.message_dict) == ["to"]


def test_draft_send_enqueues_and_deletes_draft(power_user, configuration, customer, team):
    draft = Draft.objects.create(
        owner=power_user,
        smtp_configuration=configuration,
        owner_group=team,
        to=[f"customer:{customer.pk}", "b@example.com"],
        subject="Ihr Zertifikat",
        body_html="<p>Hallo <b>Welt</b></p><script>alert(1)</script>",
    )
    draft_add_attachment(draft=draft, filename="z.pdf", content=b"%PDF-1.7 data")

    batch, mails = draft_send(draft=draft, user=power_user)

    rows = OutboxMessage.objects.filter(parameters__compose_batch=batch).order_by("pk")
    assert [row.to for row in rows] == [["Muster GmbH <einkauf@muster.example>"], ["b@example.com"]]
    assert [row.address_type for row in rows] == ["customer", "address"]
    assert [row.recipient_owner for row in rows] == ["1001 · Muster GmbH", ""]
    assert {row.source for row in rows} == {"compose"}
    assert {row.created_by_id for row in rows} == {power_user.pk}
    assert {row.owner_group_id for row in rows} == {team.pk}
    assert rows[0].body_html == "<p>Hallo <b>Welt</b></p>"
    assert rows[0].body_text == "Hallo Welt"
    assert [a.filename for a in rows[0].attachments.all()] == ["z.pdf"]
    assert [m.pk for m in mails] == [row.pk for row in rows]
    assert Draft.objects.filter(pk=draft.pk).exists() is False
