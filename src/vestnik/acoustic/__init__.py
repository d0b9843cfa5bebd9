"""Neural text-to-mel model for Russian: phoneme symbols, alignment search, network, training,
and the synthesis behind the `neural` TTS engine (see docs/acoustic.md)."""
