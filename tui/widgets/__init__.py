"""Widgets the console's screens share: chart panels, the wrapping log and text helpers."""
