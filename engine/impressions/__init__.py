"""The impression and feature log: one record per ranking response, written
by a background thread to Arrow IPC files that the next model trains on and
off-policy evaluation reads (schema and file life cycle: logger.py)."""

from engine.impressions.logger import ImpressionLogger, LoggerStats
from engine.impressions.reader import (
    feature_matrix, read_impressions, record, record_components, record_features, to_records,
)
from engine.impressions.record import ImpressionRecord
from engine.impressions.replay import replay_table

__all__ = [
    "ImpressionLogger", "ImpressionRecord", "LoggerStats", "read_impressions", "to_records", "record",
    "record_features", "record_components", "feature_matrix", "replay_table",
]
