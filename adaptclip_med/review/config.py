"""Dashboard configuration, handed from ``adaptclip-med dashboard`` to the Streamlit app.

Streamlit runs the app in its own process and owns the command line, so the CLI writes this
configuration to a JSON file and passes its path in ``ADAPTCLIP_MED_DASHBOARD_CONFIG``.  The
file holds folders and model options only, never patient data.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adaptclip_med.errors import InputError
from adaptclip_med.utils.atomic import atomic_write_text
from adaptclip_med.volume.options import ScoringOptions

CONFIG_ENV = "ADAPTCLIP_MED_DASHBOARD_CONFIG"
DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_UPLOAD_TTL_MINUTES = 120
#: How people are identified: the hospital's OpenID Connect provider, the OS account (single user,
#: loopback only) or a header set by an authenticating reverse proxy (loopback / Unix socket only).
LOGIN_MODES = ("oidc", "local", "trusted-header")


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard may read (``data_roots``, ``results``), where it writes (``output``,
    ``banks_root``) and how it scores (``scoring``; ``model_configured`` is False when no adapters
    were given, in which case the app reviews existing results only)."""

    data_roots: tuple[Path, ...]
    output: Path
    banks_root: Path
    scoring: ScoringOptions = field(default_factory=ScoringOptions)
    model_configured: bool = True
    results: tuple[Path, ...] = ()
    show_patient_names: bool = False
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    demo: bool = False
    login: str = "local"
    allowed_hosts: tuple[str, ...] = ()  # Host header values accepted (empty: not checked)
    role_claim: str = "groups"
    sign_off_role: str = "radiologist"
    manage_role: str = "ai-admin"
    trusted_header: str = ""  # trusted-header mode: the header naming the user
    trusted_groups_header: str = ""  # ... and, optionally, the one listing their groups
    upload_ttl_minutes: int = DEFAULT_UPLOAD_TTL_MINUTES
    send_to: str = ""  # PACS for signed decisions: dimse://AE@host:port or a DICOMweb root ("" = none)

    def role_map(self):
        from adaptclip_med.review.access import RoleMap

        return RoleMap(self.role_claim, self.sign_off_role, self.manage_role)

    def to_json(self) -> str:
        data = asdict(self)
        data["scoring"] = self.scoring.to_dict()
        for key in ("data_roots", "results", "allowed_hosts"):
            data[key] = [str(p) for p in data[key]]
        data["output"], data["banks_root"] = str(self.output), str(self.banks_root)
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DashboardConfig":
        data: dict[str, Any] = json.loads(text)
        scoring = ScoringOptions.from_dict(data.pop("scoring", {}))
        return cls(data_roots=tuple(Path(p) for p in data.pop("data_roots")), output=Path(data.pop("output")),
                   banks_root=Path(data.pop("banks_root")), results=tuple(Path(p) for p in data.pop("results", [])),
                   allowed_hosts=tuple(data.pop("allowed_hosts", ())), scoring=scoring, **data)

    def save(self, path: Path) -> Path:
        return atomic_write_text(Path(path), self.to_json())


def load_config() -> DashboardConfig:
    """The configuration named by ``ADAPTCLIP_MED_DASHBOARD_CONFIG``."""
    value = os.environ.get(CONFIG_ENV)
    if not value:
        raise InputError(f"{CONFIG_ENV} is not set: start the dashboard with 'adaptclip-med dashboard --data-root DIR'")
    path = Path(value)
    try:
        return DashboardConfig.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path.name}: unreadable dashboard configuration ({type(exc).__name__})") from exc
