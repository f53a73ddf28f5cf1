"""The organisers' JSON API under /api/v1: bearer tokens, lists and subscribers, and its OpenAPI document."""
