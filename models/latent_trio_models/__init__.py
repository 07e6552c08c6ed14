"""Latent Trio's model pipeline: MIDI data -> tokens -> MusicVAE -> ONNX."""
