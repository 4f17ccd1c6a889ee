"""Fixed text used by AdaptCLIP.

The visual adapter is scored against *static* text features built from these exact lists (spec
§1.2); the order matters because the released checkpoints were trained against their average.
The textual adapter replaces the words of a placeholder sentence with learned embeddings (spec §2).
"""

from __future__ import annotations

CLASS_WORD = "object"

NORMAL_STATES: tuple[str, ...] = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)

ABNORMAL_STATES: tuple[str, ...] = (
    "damaged {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
)

# 21 templates; the "jpeg corrupted" one appears twice in the release and is kept twice on purpose.
TEMPLATES: tuple[str, ...] = (
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
)

#: Number of learnable context tokens per class in the textual adapter (the release's "12").
DEFAULT_PROMPT_LENGTH = 12


def state_sentences(states: tuple[str, ...], class_word: str = CLASS_WORD) -> list[str]:
    """All sentences for one group of states, state-major (every template for state 1, then 2...)."""
    return [template.format(state.format(class_word)) for state in states for template in TEMPLATES]


def normal_sentences() -> list[str]:
    """The 147 sentences whose raw features are averaged into the static 'normal' text feature."""
    return state_sentences(NORMAL_STATES)


def abnormal_sentences() -> list[str]:
    """The 84 sentences whose raw features are averaged into the static 'abnormal' text feature."""
    return state_sentences(ABNORMAL_STATES)


def placeholder_sentence(prompt_length: int = DEFAULT_PROMPT_LENGTH) -> str:
    """'X X ... X.': its token positions 1..r are replaced by the textual adapter's learned tokens."""
    return " ".join(["X"] * prompt_length) + "."
