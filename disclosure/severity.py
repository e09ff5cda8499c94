"""Severity from a CVSS 3.x or 4.0 vector (the ``cvss`` package), and the P1-P4 priority
scale shared with the incident-response plan."""

from dataclasses import dataclass

from cvss import CVSS3, CVSS4, CVSSError

PRIORITY_FOR_SEVERITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}


@dataclass(frozen=True)
class Score:
    vector: str
    score: float
    severity: str  # none, low, medium, high, critical

    @property
    def priority(self) -> str:
        return PRIORITY_FOR_SEVERITY.get(self.severity, "")


def score_vector(vector: str) -> Score:
    """Parse and score a vector; raises ``ValueError`` with a readable message."""
    vector = (vector or "").strip()
    try:
        if vector.startswith("CVSS:4.0/"):
            parsed = CVSS4(vector)
            return Score(parsed.clean_vector(), float(parsed.base_score), parsed.severity.lower())
        if vector.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            parsed = CVSS3(vector)
            return Score(parsed.clean_vector(), float(parsed.scores()[0]), parsed.severities()[0].lower())
    except CVSSError as error:
        raise ValueError(f"Not a valid CVSS vector: {error}") from None
    raise ValueError("A CVSS vector starts with CVSS:3.1/, CVSS:3.0/ or CVSS:4.0/.")


def priority_for(severity: str) -> str:
    return PRIORITY_FOR_SEVERITY.get(severity or "", "")
