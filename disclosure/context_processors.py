from django.conf import settings

from disclosure.models import Programme


def programme(request):
    """The programme's names and commitments, for every page (``request`` may be None)."""
    return {
        "organisation": settings.ORGANISATION_NAME,
        "team_email": Programme.public_contact(),
        "sla_acknowledge_days": settings.SLA_ACKNOWLEDGE_DAYS,
        "sla_assess_days": settings.SLA_ASSESS_DAYS,
        "time_zone": settings.TIME_ZONE,
        "team_key_fingerprint": settings.TEAM_KEY_FINGERPRINT,
    }
