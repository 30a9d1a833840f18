"""Cache keys: the partition (who may share an answer) and the exact-match question hash.

The partition is a SHA-256 over, in order: a key-format version, the tenant, the ACCESS SCOPE,
the model tier, a hash of the system prompt and any `vary_by` values (filters, top_k: anything
else that changes retrieval). Answers are only ever looked up inside one partition, so no answer
crosses tenants, scopes, models or prompts.

The access scope is what decides which chunks retrieval may read (shared.retrieval.access): a
chunk is readable when it is tenant-wide, OR it names the user in `acl.users`, OR it names one
of the principal's groups. So:
- groups: the sorted, de-duplicated `scope_groups`. They must be a subset of the principal's
  groups (a wider set would let a caller borrow another scope's answers: ValueError). A caller
  may narrow them to the groups that appear in any ACL of the tenant, since a group granting
  nothing cannot change what is readable; by default pass all of `principal.groups`.
- user: the user id is part of the scope whenever user-specific ACLs may exist (`user_acls`,
  default True: the safe choice, giving per-user partitions). Pass False only when the tenant
  has no document with a non-empty `acl.users`; then callers with the same groups share.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from shared.security.principal import Principal

KEY_VERSION = "c1"
_SPACE = re.compile(r"\s+")


def sha256_hex(text: str) -> str:
    """The hex SHA-256 of `text` as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def access_scope(
    principal: Principal, scope_groups: Iterable[str], user_acls: bool = True
) -> dict[str, Any]:
    """The groups (sorted) and, when user ACLs may apply, the user that decide retrieval."""
    groups = sorted(set(scope_groups))
    foreign = set(groups) - set(principal.groups)
    if foreign:
        raise ValueError(f"scope_groups not held by the principal: {sorted(foreign)}")
    return {"groups": groups, "user": principal.user_id if user_acls else None}


def cache_partition(
    principal: Principal,
    scope_groups: Iterable[str],
    tier: str,
    system_prompt: str,
    *,
    user_acls: bool = True,
    vary_by: Mapping[str, Any] | None = None,
) -> str:
    """The partition key: a hash of tenant, access scope, tier, system prompt and vary_by."""
    if not principal.tenant:
        raise ValueError("a principal without a tenant cannot use the cache")
    material = [
        KEY_VERSION,
        principal.tenant,
        access_scope(principal, scope_groups, user_acls),
        tier,
        sha256_hex(system_prompt),
        dict(sorted((vary_by or {}).items())),
    ]
    # JSON keeps field boundaries unambiguous ("a|b" + "c" never equals "a" + "b|c").
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return f"{KEY_VERSION}-{sha256_hex(encoded)}"


def normalise_question(text: str) -> str:
    """NFKC, case-folded, punctuation turned into spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    # Punctuation becomes a space, not nothing, so "3.5" and "35" stay different keys.
    spaced = "".join(" " if unicodedata.category(char).startswith("P") else char
                     for char in folded)  # fmt: skip
    return _SPACE.sub(" ", spaced).strip()


def question_key(text: str) -> str:
    """The exact-match item id: a hash of the normalised question."""
    return sha256_hex(normalise_question(text))[:40]


__all__ = [
    "KEY_VERSION",
    "access_scope",
    "cache_partition",
    "normalise_question",
    "question_key",
    "sha256_hex",
]
