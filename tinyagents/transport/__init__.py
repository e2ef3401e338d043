"""Cross-node messaging: frames, the message codec, the handshake, remote refs."""
