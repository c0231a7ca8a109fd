"""One model's policy state: what the policy remembers between evaluations, and its restore.

Saved in the checkpoint's ``"policy"`` part (:meth:`~monitor.alerting.policy.Policy.to_state`);
restored field by field, every field type-checked, so a crafted or foreign state is refused
whole instead of half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.settings import PolicySettings
from monitor.state import restore_checks as checks
from monitor.state.versions import MAX_VERSIONS


@dataclass(slots=True)
class ModelPolicyState:
    """Degradation, breach history, cooldown and versions seen of one model."""

    degraded: bool = False
    notified: bool = False  # the current degradation has been emitted unsuppressed
    history: dict[str, list[bool]] = field(default_factory=dict)  # evidenced outcomes per rule
    clean_streak: int = 0
    fired_rules: list[str] = field(default_factory=list)
    last_sent: float | None = None  # clock time of the last unsuppressed model.degraded
    transitions: int = 0
    version: str | None = None  # the Snapshot's current version at the last evaluation
    versions: list[str] = field(default_factory=list)  # seen, least recently seen first


def restore_model_state(raw: object, now: float, policy: PolicySettings) -> ModelPolicyState:
    """One model's state from :meth:`Policy.to_state`, every field type-checked."""
    d = checks.mapping(raw, "policy model state")
    fields = set(ModelPolicyState.__dataclass_fields__)
    if set(d) not in (fields, fields - {"versions"}):  # format 1 had no "versions"
        raise ValueError("policy model state has other fields than this modelmon writes")
    keep = policy.breaches_window or policy.breaches_to_fire
    history = {}
    for rule, outcomes in checks.mapping(d["history"], "policy history").items():
        if not all(isinstance(o, bool) for o in checks.sequence(outcomes, "policy history")):
            raise ValueError("policy history must hold booleans")
        history[rule] = list(outcomes)[-keep:]
    fired = checks.sequence(d["fired_rules"], "policy fired_rules")
    if not isinstance(d["degraded"], bool) or not isinstance(d["notified"], bool):
        raise ValueError("policy degraded and notified must be booleans")
    age = d["last_sent"]
    version = checks.optional_text(d["version"], "policy version")
    return ModelPolicyState(
        degraded=d["degraded"],
        notified=d["notified"],
        history=history,
        clean_streak=checks.integer(d["clean_streak"], "policy clean_streak", minimum=0),
        fired_rules=[checks.text(r, "policy fired rule") for r in fired],
        last_sent=None if age is None else now - checks.number(age, "policy last_sent"),
        transitions=checks.integer(d["transitions"], "policy transitions", minimum=0),
        version=version,
        versions=_versions(d, version),
    )


def _versions(raw: Mapping[str, Any], version: str | None) -> list[str]:
    """The seen versions of a model's saved state; format 1 knew only the last one."""
    if "versions" not in raw:
        return [] if version is None else [version]
    seen = raw["versions"]
    if not isinstance(seen, list) or not all(isinstance(v, str) for v in seen):
        raise ValueError("policy state: versions is not a list of strings")
    return seen[-MAX_VERSIONS:]
