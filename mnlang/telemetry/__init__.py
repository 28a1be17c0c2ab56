"""Telemetry built from the journal: OpenTelemetry spans with ids derived from what the
journal recorded (`spans`), and their export over OTLP/HTTP with a delivery cursor
(`export`). Nothing here is imported by the runtime; OpenTelemetry loads only on export."""
