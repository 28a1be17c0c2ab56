"""Telemetry built from the journal: OpenTelemetry spans with ids derived from what the
journal recorded (`spans`), and their export over OTLP/HTTP with a delivery cursor
(`export`). The runtime imports `spans` only (to give each call attempt its span id and
`traceparent`); OpenTelemetry loads only on export."""
