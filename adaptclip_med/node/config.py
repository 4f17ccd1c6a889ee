"""The node's settings: one TOML or YAML file (``node run --config``), a few flags on top.

Paths in the file are relative to the file's folder.  The ``[scoring]`` table takes the same flat
names as ``batch`` (method, adapters, bank, window, threshold, parametric_map ...; see
:class:`~adaptclip_med.volume.options.ScoringOptions`), so a study is scored by the node exactly as
``batch`` would score it with those flags.  Every problem is one line naming the file and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.utils.redact import describe_path

#: Modalities scored by default: the demo model and the windows are CT/MR ones.
DEFAULT_MODALITIES = ("CT", "MR")
#: Where the node's scoring differs from batch's defaults: on the CPU unless told, and a Key Object
#: Selection of the top slices sent with the SEG and SR (IHE AIR), so a PACS worklist flags them.
NODE_SCORING_DEFAULTS = {"device": "cpu", "key_objects": True}
#: AE titles are at most 16 characters of the DICOM default repertoire, no backslash.
MAX_AE_TITLE = 16


class ConfigError(AdaptClipError):
    """The node configuration file cannot be used (one line: file, key, reason)."""


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity: who may send to us (``port`` unused), or where results go."""

    ae_title: str
    host: str
    port: int = 0


@dataclass(frozen=True)
class Destination:
    """Where results are stored by C-STORE, and how hard to try before the study is ``failed``."""

    peer: Peer
    attempts: int = 3
    backoff_seconds: float = 5.0  # first retry delay, doubled at each attempt
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class NodeConfig:
    ae_title: str = "ADAPTCLIP"
    bind: str = "127.0.0.1"
    port: int = 11112
    state_dir: Path = Path("adaptclip-node")
    allow: tuple[Peer, ...] = ()
    destination: Destination | None = None
    quiet_seconds: float = 30.0
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    score_attempts: int = 2  # a node killed while scoring the same study this often gives up on it
    poll_seconds: float = 1.0
    scoring: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, ae_title: str | None = None, port: int | None = None, bind: str | None = None,
                       state_dir: Path | None = None) -> NodeConfig:
        """The command-line flags win over the file."""
        changes: dict[str, Any] = {}
        if ae_title is not None:
            changes["ae_title"] = _ae_title(ae_title, "--ae-title")
        if port is not None:
            changes["port"] = _port(port, "--port")
        if bind is not None:
            changes["bind"] = bind
        if state_dir is not None:
            changes["state_dir"] = Path(state_dir)
        return replace(self, **changes)

    def scoring_options(self):
        """The :class:`ScoringOptions` batch would use for the same flags (one-line error for an
        unknown name or a trainable method without weights)."""
        from adaptclip_med.methods.registry import get_method
        from adaptclip_med.volume.options import scoring_from_flat

        settings = {**NODE_SCORING_DEFAULTS, **self.scoring}
        if settings.get("adapters") == "untrained":  # as the CLI's --adapters untrained: fresh weights, no diagnostic value
            settings["adapters"] = None
            untrained = True
        else:
            untrained = False
        try:
            options = scoring_from_flat(settings)
        except TypeError as exc:
            raise ConfigError(f"[scoring]: {exc}") from None
        cls = get_method(options.model.method)
        if cls.trainable and not options.model.weights and not untrained:
            raise ConfigError(f"[scoring]: method '{options.model.method}' needs trained weights: set adapters = FILE "
                              f"(or \"demo\" for the packaged demo model, no diagnostic value)")
        if options.model.device == "auto":
            import torch

            options = options.with_model(device="cuda" if torch.cuda.is_available() else "cpu")
        return options


def _ae_title(value: Any, where: str) -> str:
    text = str(value).strip()
    if not text or len(text) > MAX_AE_TITLE or "\\" in text or not text.isascii():
        raise ConfigError(f"{where}: '{text[:20]}' is not an AE title (1-{MAX_AE_TITLE} ASCII characters, no backslash)")
    return text


def _port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ConfigError(f"{where}: '{value}' is not a TCP port (0-65535)")
    return value


def _number(value: Any, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"{where}: '{value}' is not a number >= {minimum:g}")
    return float(value)


def _peer(entry: Any, where: str, needs_port: bool) -> Peer:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table with ae_title and host")
    unknown = sorted(set(entry) - {"ae_title", "host", "port", "attempts", "backoff_seconds", "timeout_seconds"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "ae_title" not in entry or "host" not in entry:
        raise ConfigError(f"{where}: needs both ae_title and host")
    port = _port(entry.get("port", 0), f"{where}.port")
    if needs_port and port == 0:
        raise ConfigError(f"{where}: needs a port")
    return Peer(_ae_title(entry["ae_title"], f"{where}.ae_title"), str(entry["host"]), port)


_NODE_KEYS = {"ae_title", "bind", "port", "state_dir", "quiet_seconds", "modalities", "score_attempts", "poll_seconds"}
_TOP_KEYS = {"node", "allow", "destination", "scoring"}


def _read(path: Path) -> dict[str, Any]:
    label = describe_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read the node configuration ({exc.strerror or type(exc).__name__})") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{label}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'YAML'} ({reason})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected tables [node], [[allow]], [destination], [scoring]")
    return data


def load_config(path: Path) -> NodeConfig:
    """Read and check a node configuration file (``.toml``, or ``.yaml``/``.yml``)."""
    path = Path(path)
    label = describe_path(path)
    data = _read(path)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{label}: unknown section(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOP_KEYS))})")
    node = data.get("node", {}) or {}
    if not isinstance(node, dict):
        raise ConfigError(f"{label}: [node] must be a table")
    unknown = sorted(set(node) - _NODE_KEYS)
    if unknown:
        raise ConfigError(f"{label}: [node]: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_NODE_KEYS))})")
    base = path.resolve().parent
    defaults = NodeConfig()
    allow_entries = data.get("allow", []) or []
    if not isinstance(allow_entries, list):
        raise ConfigError(f"{label}: allow must be a list of {{ae_title, host}} entries ([[allow]] in TOML)")
    allow = tuple(_peer(entry, f"{label}: allow[{i}]", needs_port=False) for i, entry in enumerate(allow_entries))
    destination = None
    if data.get("destination"):
        entry = data["destination"]
        peer = _peer(entry, f"{label}: [destination]", needs_port=True)
        destination = Destination(peer, attempts=int(_number(entry.get("attempts", 3), f"{label}: [destination].attempts", 1)),
                                  backoff_seconds=_number(entry.get("backoff_seconds", 5.0), f"{label}: [destination].backoff_seconds"),
                                  timeout_seconds=_number(entry.get("timeout_seconds", 60.0), f"{label}: [destination].timeout_seconds", 1))
    scoring = dict(data.get("scoring", {}) or {})
    if not isinstance(data.get("scoring", {}) or {}, dict):
        raise ConfigError(f"{label}: [scoring] must be a table")
    if scoring.get("bank"):
        bank = Path(str(scoring["bank"])).expanduser()
        scoring["bank"] = str(bank if bank.is_absolute() else base / bank)
    if scoring.get("adapters") and scoring["adapters"] not in ("demo", "untrained"):
        adapters = Path(str(scoring["adapters"])).expanduser()
        scoring["adapters"] = str(adapters if adapters.is_absolute() else base / adapters)
    modalities = node.get("modalities", list(defaults.modalities))
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities) or not modalities:
        raise ConfigError(f"{label}: [node].modalities must be a list of modality codes, e.g. [\"CT\", \"MR\"]")
    state_dir = Path(str(node.get("state_dir", defaults.state_dir))).expanduser()
    return NodeConfig(
        ae_title=_ae_title(node.get("ae_title", defaults.ae_title), f"{label}: [node].ae_title"),
        bind=str(node.get("bind", defaults.bind)),
        port=_port(node.get("port", defaults.port), f"{label}: [node].port"),
        state_dir=state_dir if state_dir.is_absolute() else base / state_dir,
        allow=allow, destination=destination,
        quiet_seconds=_number(node.get("quiet_seconds", defaults.quiet_seconds), f"{label}: [node].quiet_seconds"),
        modalities=tuple(m.strip().upper() for m in modalities),
        score_attempts=int(_number(node.get("score_attempts", defaults.score_attempts), f"{label}: [node].score_attempts", 1)),
        poll_seconds=_number(node.get("poll_seconds", defaults.poll_seconds), f"{label}: [node].poll_seconds", 0.05),
        scoring=scoring)


EXAMPLE_CONFIG = '''\
# adaptclip-med node: a DICOM AI node next to a PACS (docs/deploy-pacs.md).
# Research software, NOT for clinical use.  Paths are relative to this file.

[node]
ae_title = "ADAPTCLIP"          # our AE title (the PACS registers it as a modality)
bind = "127.0.0.1"              # address to listen on ("0.0.0.0": every interface)
port = 11112
state_dir = "adaptclip-node"    # spool, results and the queue database (node.sqlite)
quiet_seconds = 30              # a study is complete when nothing arrived for it this long
modalities = ["CT", "MR"]       # anything else is logged and skipped; results (SEG/SR/KO/PMAP) never scored
score_attempts = 2              # a node that dies this often while scoring one study marks it failed

# Who may send to us: calling AE title AND host must match one entry; everyone else is refused
# at association.  No entry: nobody may send.
[[allow]]
ae_title = "ORTHANC"
host = "127.0.0.1"

# Where results go (C-STORE into the same study), with retries; after the last attempt the
# study is "failed" in `adaptclip-med node status` with the reason.
[destination]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242
attempts = 3
backoff_seconds = 5             # first retry delay, doubled at each attempt
timeout_seconds = 60

# How studies are scored: the flags of `adaptclip-med batch`, by name.  Always sent: a DICOM SEG and a
# TID 1500 Comprehensive 3D SR (findings, regions, measurements), in the source study.
[scoring]
method = "adaptclip"
adapters = "demo"               # the packaged demo model (synthetic training data, NO diagnostic value)
# bank = "banks/demo-ct-head"   # reference bank folder (omit for zero-shot)
window = "brain"
# threshold = 0.5               # default: the bank's calibrated value
parametric_map = true           # also a DICOM Parametric Map of the anomaly probability
key_objects = true              # and a Key Object Selection of the top slices (the node's default)
device = "cpu"
'''


def write_example_config(path: Path) -> Path:
    """Write the commented example (refuses to overwrite an existing file)."""
    from adaptclip_med.utils.atomic import atomic_write_text

    path = Path(path)
    if path.exists():
        raise ConfigError(f"{describe_path(path)}: already exists (not overwritten)")
    return atomic_write_text(path, EXAMPLE_CONFIG)
