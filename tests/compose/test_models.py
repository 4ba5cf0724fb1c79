from compose.models import Draft


def test_draft_str_is_its_subject():
    assert str(Draft(subject="Zertifikat")) == "Zertifikat"


def test_draft_str_without_subject_is_a_plain_string():
    text = str(Draft(subject=""))
    assert (text, type(text)) == ("(no subject)", str)
