"""The benchmark's lean listing scan counts and pages exactly as a full XML parse would."""

from xml.etree import ElementTree

from hypothesis import given
from hypothesis import strategies as st

from bench.workloads import _top_level, count_entries

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _versions_doc(keys: list[str], markers: list[bool], next_key: str) -> bytes:
    root = ElementTree.Element("ListVersionsResult", xmlns=NS)
    ElementTree.SubElement(root, "IsTruncated").text = "true"
    ElementTree.SubElement(root, "NextKeyMarker").text = next_key
    ElementTree.SubElement(root, "NextVersionIdMarker").text = "v&1"
    for key, marker in zip(keys, markers, strict=True):
        entry = ElementTree.SubElement(root, "DeleteMarker" if marker else "Version")
        ElementTree.SubElement(entry, "Key").text = key
        ElementTree.SubElement(entry, "VersionId").text = "id"
        ElementTree.SubElement(ElementTree.SubElement(entry, "Owner"), "ID").text = "o"
    return ElementTree.tostring(root, encoding="utf-8")


# XML 1.0 cannot carry U+FFFE and U+FFFF, so ElementTree (the reference) cannot parse them.
keys = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
               min_size=1, max_size=20)


@given(st.lists(st.tuples(keys, st.booleans()), max_size=30), keys)
def test_versions_page_counted_and_marked_like_elementtree(entries, next_key):
    doc = _versions_doc([k for k, _ in entries], [m for _, m in entries], next_key)
    parsed = ElementTree.fromstring(doc)
    assert count_entries(doc, versions=True) == len(parsed.findall(f"{{{NS}}}Version")) + len(
        parsed.findall(f"{{{NS}}}DeleteMarker"))
    assert _top_level(doc, "NextKeyMarker") == parsed.findtext(f"{{{NS}}}NextKeyMarker")
    assert _top_level(doc, "NextVersionIdMarker") == "v&1"
    assert _top_level(doc, "IsTruncated") == "true"


def test_keys_that_look_like_tags_are_not_counted():
    doc = (f'<ListBucketResult xmlns="{NS}"><IsTruncated>false</IsTruncated>'
           "<Contents><Key>&lt;Contents&gt;</Key></Contents></ListBucketResult>").encode()
    assert count_entries(doc, versions=False) == 1
    assert _top_level(doc, "NextContinuationToken") is None
