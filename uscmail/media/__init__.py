"""The media library: images organisers upload for campaign mail, re-encoded by Pillow (no metadata, nothing of the
uploaded bytes served), stored under random names and served from our own domain to every recipient alike."""
