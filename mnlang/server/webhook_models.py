"""The bodies of the outbox routes of `/api/v1` (`mnlang.server.webhooks`); the OpenAPI
document is generated from them with the other models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mnlang.server.models import Body


class AttemptOut(BaseModel):
    attempt: int
    at: float
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer")
    error: str | None = Field(description="Why it failed; null for a success")


class DeliveryOut(BaseModel):
    event_id: str = Field(description="Constant for the event: the receiver deduplicates on it")
    type: str
    run_id: str
    workflow: str
    webhook: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_at: float | None = Field(description="When a pending delivery is tried next")
    created_at: float
    attempt_log: list[AttemptOut]
    event: dict[str, Any] = Field(description="The body the webhook receives")


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


class Redeliver(Body):
    event_id: str = Field(min_length=1, max_length=256)
    webhook: str = Field(min_length=1, max_length=256)


class WebhookOut(BaseModel):
    name: str
    url: str
    events: list[str]
    workflows: list[str] | None
    signed: bool = Field(description="A secret is configured (its value is never shown)")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]
