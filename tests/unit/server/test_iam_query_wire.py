"""The IAM query wire format: names checked before they reach an ARN, AWS's pagination
(markers resume after the last item returned, even when items change between pages),
member lists, policy quotas, and the XML envelopes."""

from __future__ import annotations

import pytest

from vallum.iam.directory import LimitExceeded
from vallum.server.iam_query import quotas, wire
from vallum.server.iam_query.wire import QueryError


@pytest.mark.parametrize("bad", ["a/b", "*", "a b", "x" * 65, "", "ü"])
def test_names_that_could_widen_an_arn_are_refused(bad):
    with pytest.raises(QueryError) as exc:
        wire.name({"UserName": bad}, "UserName")
    assert exc.value.code == "ValidationError"


def test_names_as_aws_allows_them():
    assert wire.name({"UserName": "a+=,.@_-Z9"}, "UserName") == "a+=,.@_-Z9"
    assert wire.name({"GroupName": "g" * 128}, "GroupName") == "g" * 128
    assert wire.name({}, "UserName", required=False) == ""


def test_pages_follow_markers_and_survive_changes():
    items = [f"n{i:02d}" for i in range(7)]
    seen, params = [], {"MaxItems": "3"}
    while True:
        out, trailer = wire.page(items, lambda s: s, params)
        seen += out
        if "<IsTruncated>false</IsTruncated>" in trailer:
            break
        marker = trailer.split("<Marker>")[1].split("</Marker>")[0]
        params = {"MaxItems": "3", "Marker": marker}
        items = [i for i in items if i != "n00"] + ["n015"]     # changes between pages
    # n00 deleted after the first page is not asked for again; n015, created before the
    # marker, is not returned on a later page; nothing after the marker is skipped.
    assert seen == [f"n{i:02d}" for i in range(7)]


@pytest.mark.parametrize("params", [{"MaxItems": "0"}, {"MaxItems": "1001"}, {"MaxItems": "-1"},
                                    {"Marker": "%%%"}])
def test_bad_pagination_parameters(params):
    with pytest.raises(QueryError) as exc:
        wire.page(["a"], lambda s: s, params)
    assert exc.value.code in ("ValidationError", "InvalidInput")


def test_members_tags_and_paths():
    p = {"Filter.member.1": "User", "Filter.member.2": "Role", "Filter.member.4": "Group"}
    assert wire.members(p, "Filter") == ["User", "Role"]
    assert wire.tags({"Tags.member.1.Key": "k", "Tags.member.1.Value": "v"}) == {"k": "v"}
    wire.path({"Path": "/"})
    with pytest.raises(QueryError):
        wire.path({"Path": "/division/"})


def test_quotas_count_without_whitespace():
    quotas.managed("x" * quotas.MANAGED + " " * 1000)
    with pytest.raises(LimitExceeded):
        quotas.managed("x" * (quotas.MANAGED + 1))
    quotas.inline("user", "u", "x" * 1000, ["y" * 1048])
    with pytest.raises(LimitExceeded):
        quotas.inline("user", "u", "x" * 1000, ["y" * 1049])


def test_envelopes():
    body = wire.response_xml("DeleteUser", None, "RID")
    assert body == (b'<DeleteUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
                    b"<ResponseMetadata><RequestId>RID</RequestId></ResponseMetadata>"
                    b"</DeleteUserResponse>")
    err = wire.error_xml("NoSuchEntity", "no <user>", 404, "RID")
    assert b"<Type>Sender</Type><Code>NoSuchEntity</Code><Message>no &lt;user&gt;</Message>" in err
    assert wire.document('{"a": "b c"}') == "%7B%22a%22%3A%20%22b%20c%22%7D"
