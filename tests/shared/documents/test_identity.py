"""Document identity: tenant folders, ids from tenant and name, uploads' ACL, the write rule."""

from __future__ import annotations

import pytest

from shared.documents.lifecycle import AclChange, can_write, parse_upload
from shared.documents.names import InvalidName, blob_path, split_blob_path, tenant_folder
from shared.documents.records import Acl, document_id
from shared.errors import InvalidRequest
from shared.security.principal import Principal


def test_the_same_name_in_two_tenants_is_two_documents_and_two_blobs() -> None:
    assert document_id("contoso", "uploads", "notes.txt") != document_id(
        "fabrikam", "uploads", "notes.txt"
    )
    assert blob_path("contoso", "notes.txt") == "contoso/notes.txt"
    assert blob_path("fabrikam", "notes.txt") == "fabrikam/notes.txt"


@pytest.mark.parametrize(
    "tenant", ["contoso", "72f988bf-86f1-41af-91ab-2d7cd011db47", "a/b", "a%2Fb", "..", ".", "é t"]
)
def test_tenant_folders_are_one_segment_and_round_trip(tenant: str) -> None:
    folder = tenant_folder(tenant)
    assert "/" not in folder and folder not in (".", "..")
    assert split_blob_path(blob_path(tenant, "x/notes.txt")) == (tenant, "x/notes.txt")


def test_distinct_tenants_never_share_a_folder() -> None:
    tenants = ["a/b", "a%2Fb", "a", "A", "..", "%2E%2E"]
    assert len({tenant_folder(tenant) for tenant in tenants}) == len(tenants)


@pytest.mark.parametrize(
    "path",
    [
        "notes.txt",  # no tenant folder
        "/notes.txt",
        "contoso/",
        "Contoso Ltd/notes.txt",  # not the canonical spelling of the folder
        "contoso/../fabrikam/notes.txt",
        "contoso//notes.txt",
    ],
)
def test_blobs_outside_a_canonical_tenant_folder_belong_to_no_tenant(path: str) -> None:
    assert split_blob_path(path) is None


def test_a_name_too_long_with_its_tenant_is_refused() -> None:
    with pytest.raises(InvalidName):
        blob_path("contoso", "n" * 1020)


def test_an_upload_without_acl_asks_for_none_and_an_empty_acl_is_tenant_wide() -> None:
    assert parse_upload("text/plain", b"x", {"name": "a.txt"}, 10).acl is None
    assert parse_upload("text/plain", b"x", {"name": "a.txt", "acl": ""}, 10).acl == Acl()
    given = parse_upload("text/plain", b"x", {"name": "a.txt", "acl": "group:finance"}, 10)
    assert given.acl == Acl((), ("finance",))


def test_writers_are_writers_who_may_read_it() -> None:
    finance = Acl((), ("finance",))
    dana = Principal("dana", "contoso", ("finance",), ("developer",))
    erin = Principal("erin", "contoso", (), ("developer",))
    alice = Principal("alice", "contoso", ("finance",), ("user",))
    root = Principal("root", "contoso", (), ("admin",))
    assert can_write(dana, finance) and can_write(erin, Acl())
    assert not can_write(erin, finance)  # may not read it
    assert not can_write(alice, finance)  # may read, has no documents:write
    assert not can_write(root, finance)  # no role bypasses an ACL


def test_an_acl_change_is_explicit_and_well_formed() -> None:
    assert AclChange.model_validate({"users": [], "groups": []}).acl() == Acl()
    change = AclChange.model_validate({"groups": ["legal", "finance", "legal"]})
    assert change.acl() == Acl((), ("finance", "legal"))
    for bad in ({}, {"users": ["a,b"]}, {"groups": [""]}, {"users": "alice"}, {"roles": []}):
        with pytest.raises(ValueError):
            AclChange.model_validate(bad)
    with pytest.raises(InvalidRequest):
        parse_upload("text/plain", b"x", {"name": "a.txt", "acl": "role:admin"}, 10)
