"""Booking domain: clinic catalogues, slots (号源), date/time phrases, exam planning, FHIR shapes."""
