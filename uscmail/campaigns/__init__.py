"""Campaigns: newsletters and reminders, composed by organisers and sent in batches through the delivery pipeline."""
