"""Identities and permissions in the review layer: claims -> roles, local and proxy identities,
and the server-side checks of every changing action (before any work starts)."""

from __future__ import annotations

import getpass

import pytest

from adaptclip_med.review import guarded
from adaptclip_med.review.access import (LOCAL, MANAGE, READ, SIGN_OFF, AccessDenied, RoleMap, identity_from_claims,
                                         identity_from_header, local_identity, require)
from adaptclip_med.review.store import ReviewStore

ROLES = RoleMap("groups", "radiologist", "ai-admin")


def test_claims_give_issuer_subject_name_email_and_roles():
    who = identity_from_claims({"iss": "https://kc.example/realms/h", "sub": "4f1c", "name": "Jane Roe",
                                "email": "jroe@h.example", "groups": ["radiologist", "staff"]}, ROLES)
    assert who.key == "https://kc.example/realms/h#4f1c" and who.display == "Jane Roe <jroe@h.example>"
    assert who.may(SIGN_OFF) and not who.may(MANAGE) and who.may(READ)
    entra = identity_from_claims({"iss": "https://login.microsoftonline.com/t/v2.0", "sub": "x", "roles": "AIAdmin"},
                                 RoleMap("roles", "Radiologist", "AIAdmin"))
    assert entra.may(MANAGE) and not entra.may(SIGN_OFF) and entra.display == "x"
    assert identity_from_claims({"sub": "no-issuer"}, ROLES) is None  # nothing to tie a decision to


def test_everyone_else_reads_only_and_is_told_why():
    reader = identity_from_claims({"iss": "https://idp", "sub": "s", "name": "Dr Reader", "groups": []}, ROLES)
    assert reader.permissions == frozenset({READ})
    with pytest.raises(AccessDenied, match="Dr Reader may not sign off"):
        require(reader, SIGN_OFF)
    with pytest.raises(AccessDenied, match="not logged in"):
        require(None, READ)


def test_local_mode_is_the_os_account_and_a_proxy_header_names_the_user():
    local = local_identity()
    assert local.mode == LOCAL and local.subject == getpass.getuser() and local.may(SIGN_OFF) and local.may(MANAGE)
    proxied = identity_from_header("jroe@h.example", "radiologist staff", ROLES, "X-Remote-User")
    assert proxied.key == "proxy:X-Remote-User#jroe@h.example" and proxied.may(SIGN_OFF) and not proxied.may(MANAGE)
    assert identity_from_header("", None, ROLES, "X-Remote-User") is None
    assert identity_from_header("evil\r\nX-Other: 1", None, ROLES, "X-Remote-User") is None


def test_bank_and_scoring_actions_are_refused_before_any_work(tmp_path):
    store = ReviewStore.in_folder(tmp_path / "out")
    radiologist = identity_from_claims({"iss": "https://idp", "sub": "r", "groups": ["radiologist"]}, ROLES)
    (tmp_path / "banks" / "ct").mkdir(parents=True)
    (tmp_path / "banks" / "ct" / "bank.json").write_text("{}")
    started = []
    with pytest.raises(AccessDenied, match="may not build or delete reference banks"):
        guarded.score_study(radiologist, store, "k", lambda: started.append("score"))
    with pytest.raises(AccessDenied):
        guarded.build_bank(radiologist, store, "ct2", lambda: started.append("build"))
    with pytest.raises(AccessDenied):
        guarded.delete_bank(radiologist, store, tmp_path / "banks", "ct")
    with pytest.raises(AccessDenied):
        guarded.rename_bank(radiologist, store, tmp_path / "banks", "ct", "ct3")
    assert started == [] and (tmp_path / "banks" / "ct" / "bank.json").is_file() and store.audit_trail() == []
    admin = identity_from_claims({"iss": "https://idp", "sub": "a", "groups": ["ai-admin"]}, ROLES)
    guarded.delete_bank(admin, store, tmp_path / "banks", "ct")
    assert not (tmp_path / "banks" / "ct").exists()
    assert [(e.action, e.reviewer_id) for e in store.audit_trail()] == [("bank_delete", "https://idp#a")]
