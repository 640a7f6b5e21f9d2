"""State that a view carries for itself (private_metadata, a button's value), read back leniently."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ValidationError


class CarriedState(BaseModel):
    """A model stored as JSON in Slack; what cannot be read back becomes the defaults."""

    @classmethod
    def load(cls, raw: str | None) -> Self:
        try:
            return cls.model_validate_json(raw or "{}")
        except ValidationError:
            return cls()
